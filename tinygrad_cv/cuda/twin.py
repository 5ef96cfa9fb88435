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
from ..kernels import shapes
from .array import CudaArray, from_device_array

_NAMES = (
    "conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight",
    "conv_transpose2d_forward", "conv_transpose2d_backward_input", "conv_transpose2d_backward_weight",
    "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
    "matmul", "relu_forward", "relu_backward",
)


def _in(a):
    return a.device_array() if isinstance(a, CudaArray) else a


def _out(r):
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


def conv2d_backward(x, gy, w, stride, padding, dilation, groups, need_input=True, need_weight=True,
                    need_bias=True):
    """All gradients of conv2d, as in the other twins: on the GPU the input and weight kernels one
    after the other, and the bias gradient a reduction of gy over (N, H, W)."""
    shapes.check_conv2d_grad(x.shape, w.shape, gy.shape, stride, padding, dilation, groups)
    args = stride, padding, dilation, groups
    gx = _out(_kernels.conv2d_backward_input(_in(gy), _in(w), x.shape, *args)) if need_input else None
    gw = _out(_kernels.conv2d_backward_weight(_in(x), _in(gy), w.shape, *args)) if need_weight else None
    gb = gy.sum(axis=(0, 2, 3)) if need_bias else None
    return gx, gw, gb


__all__ = list(_NAMES) + ["conv2d_backward"]
