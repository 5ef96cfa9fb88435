"""Elementwise kernels, CPU twin: ReLU, parallel and in one pass.

The most frequent elementwise pair in a CNN: NumPy's ``maximum`` / ``where``
run on one core and the backward needs a mask array; here each direction is
one ``prange`` loop. Small arrays stay in NumPy (see ``_RELU_PARALLEL_MIN``),
and so do integer ones.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from .. import jit
from ..jit import njit
from ..host import FLOATS as _FLOATS

_PAR = jit.PAR


@njit(**_PAR)
def _relu_fwd(x, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = 0 if v <= 0 else v  # written so that NaN passes through, as in np.maximum and PyTorch


@njit(**_PAR)
def _relu_bwd(gy, y, gx):
    for i in prange(gy.size):
        gx[i] = gy[i] if y[i] > 0 else 0


def _contiguous(a):
    # np.ascontiguousarray turns a 0-d array into shape (1,); 0-d arrays are contiguous anyway
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


# Below this many elements ReLU runs in NumPy on the calling thread: waking the
# kernel threads costs more than the pass itself.
_RELU_PARALLEL_MIN = 4096


def relu_forward(x):
    """y = max(x, 0) (see ``reference.relu_forward``)."""
    x = _contiguous(x)
    if x.dtype.type not in _FLOATS or x.size < _RELU_PARALLEL_MIN:
        return np.maximum(x, 0, dtype=x.dtype)
    y = np.empty_like(x)
    _relu_fwd(x.reshape(-1), y.reshape(-1))
    return y


def relu_backward(gy, y):
    """gx = gy * (y > 0) (see ``reference.relu_backward``)."""
    gy = _contiguous(gy)
    y = _contiguous(y.astype(gy.dtype, copy=False))
    if gy.dtype.type not in _FLOATS or gy.size < _RELU_PARALLEL_MIN:
        return np.where(y > 0, gy, np.zeros((), gy.dtype))
    gx = np.empty_like(gy)
    _relu_bwd(gy.reshape(-1), y.reshape(-1), gx.reshape(-1))
    return gx
