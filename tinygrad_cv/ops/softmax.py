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


def _log_softmax(x, axis):
    m = np.max(x, axis=axis, keepdims=True)
    if not np.all(np.isfinite(m)):
        m = np.where(np.isfinite(m), m, 0)
    z = x - m
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


class Softmax(Function):
    @staticmethod
    def forward(ctx, x, axis):
        out = np.exp(_log_softmax(x, axis))
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
