"""Elementwise kernels, CUDA twin: ReLU, one grid-stride launch per direction."""
from __future__ import annotations

from numba import cuda

from ..cuda_common import contiguous, device, grid_1d


@cuda.jit
def _relu_fwd(x, y):
    """y = max(x, 0) (flat); NaN stays NaN, like NumPy's maximum and PyTorch."""
    zero = x.dtype.type(0)
    for k in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        val = x[k]
        y[k] = zero if val < zero else val


@cuda.jit
def _relu_bwd(gy, y, gx):
    """gx = gy where y > 0, else 0 (flat)."""
    zero = gx.dtype.type(0)
    for k in range(cuda.grid(1), gy.size, cuda.gridsize(1)):
        gx[k] = gy[k] if y[k] > 0 else zero


def relu_forward(x):
    """y = max(x, 0), elementwise (see ``reference.relu_forward``); NaN propagates."""
    x = device(x, "x")
    x = contiguous(x, x.dtype)
    y = cuda.device_array(x.shape, dtype=x.dtype)
    if x.size:
        _relu_fwd[grid_1d(x.size)](x.reshape(x.size), y.reshape(y.size))
    return y


def relu_backward(gy, y):
    """gx = gy where the ReLU's output y is positive, else 0 (see ``reference.relu_backward``)."""
    gy = device(gy, "gy")
    gy = contiguous(gy, gy.dtype)
    y = device(y, "y")
    y = contiguous(y, y.dtype)
    gx = cuda.device_array(gy.shape, dtype=gy.dtype)
    if gy.size:
        _relu_bwd[grid_1d(gy.size)](gy.reshape(gy.size), y.reshape(y.size), gx.reshape(gx.size))
    return gx
