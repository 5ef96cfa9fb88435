r"""Softmax and log-softmax along one axis, numerically stable.

softmax(x)_i = e^{x_i - m} / sum_j e^{x_j - m}, with m = max_j x_j: subtracting
the max changes nothing mathematically but keeps every exponent <= 0, so
logits of 1e4 do not overflow.

Backward (s = softmax(x), g = upstream gradient):
    softmax:      dx = s * (g - sum_j g_j s_j)
    log_softmax:  dx = g - s * sum_j g_j
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function


def _log_softmax(x, axis, exp=False):
    if x.size == 0:  # an empty batch or a zero-width axis: nothing to normalise (as PyTorch)
        return x.copy()
    if not isinstance(x, np.ndarray) and axis == x.ndim - 1 and x.ndim >= 1:
        # GPU: one fused launch per row block instead of max, subtract, exp, sum, log, subtract
        from ..cuda.array import from_device_array
        from ..kernels import cuda_nn

        rows = x.reshape(-1, x.shape[-1]).device_array()
        out = cuda_nn.softmax_forward(rows) if exp else cuda_nn.log_softmax_forward(rows)
        return from_device_array(out).reshape(x.shape)
    m = np.max(x, axis=axis, keepdims=True)
    if not np.all(np.isfinite(m)):
        m = np.where(np.isfinite(m), m, 0)
    z = x - m
    out = z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))
    return np.exp(out) if exp else out


class Softmax(Function):
    @staticmethod
    def forward(ctx, x, axis):
        out = _log_softmax(x, axis, exp=True)
        ctx.axis = axis
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (s,) = ctx.saved_tensors
        return s * (grad - (grad * s).sum(ctx.axis, keepdim=True)), None


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx, x, axis):
        out = _log_softmax(x, axis)
        ctx.axis = axis
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (logp,) = ctx.saved_tensors
        return grad - logp.exp() * grad.sum(ctx.axis, keepdim=True), None
