"""The CUDA kernel twin seen from the autograd operations.

``tinygrad_cv.kernels.cuda`` works on plain numba device arrays (C-contiguous),
like its CPU twin works on ndarrays. The operations hold ``CudaArray``s, so
this module exposes the same function names and turns ``CudaArray``
arguments into device arrays and results back - without copying data that is
already contiguous.
"""
from __future__ import annotations

import functools

from ..kernels import cuda as _kernels
from .array import CudaArray, from_device_array

_NAMES = (
    "conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight", "conv2d_backward",
    "conv_transpose2d_forward", "conv_transpose2d_backward_input", "conv_transpose2d_backward_weight",
    "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
    "matmul", "relu_forward", "relu_backward",
)


def _in(a):
    return a.device_array() if isinstance(a, CudaArray) else a


def _out(r):
    if r is None:  # a gradient that was not asked for
        return None
    if isinstance(r, tuple):
        return tuple(_out(x) for x in r)
    return from_device_array(r)


def _adapt(name):
    fn = getattr(_kernels, name)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        return _out(fn(*(_in(a) for a in args), **{k: _in(v) for k, v in kwargs.items()}))

    return call


for _name in _NAMES:
    globals()[_name] = _adapt(_name)


__all__ = list(_NAMES)
