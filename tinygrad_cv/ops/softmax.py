r"""Softmax and log-softmax along one axis, numerically stable.

softmax(x)_i = e^{x_i - m} / sum_j e^{x_j - m}, with m = max_j x_j: subtracting
the max changes nothing mathematically but keeps every exponent <= 0, so
logits of 1e4 do not overflow.

Backward (s = softmax(x), g = upstream gradient):
    softmax:      dx = s * (g - sum_j g_j s_j)
    log_softmax:  dx = g - s * sum_j g_j

Along the last axis (the common case: class scores) the arithmetic is the
kernel twins' (``kernels/softmax_loss/``), on the array seen as rows (M, C);
along another axis it is the same formula as array expressions. With
``create_graph`` the engine runs the composite backward instead, built from
differentiable operations (``@once_differentiable(fallback=...)``).
"""
from __future__ import annotations

import numpy as np

from .. import kernels
from ..autograd import Function, once_differentiable


def _as_rows(x, axis):
    """x as rows (M, C) with the softmax axis last, or None when the axis is not the last one."""
    if x.ndim == 0 or axis != x.ndim - 1:
        return None
    return x.reshape(-1, x.shape[-1])


def _log_softmax(x, axis, exp=False):
    if x.size == 0:  # an empty batch or a zero-width axis: nothing to normalise (as PyTorch)
        return x.copy()
    rows = _as_rows(x, axis)
    if rows is not None:
        k = kernels.backend_for(x)
        out = k.softmax_forward(rows) if exp else k.log_softmax_forward(rows)
        return out.reshape(x.shape)
    m = np.max(x, axis=axis, keepdims=True)
    if not np.all(np.isfinite(m)):
        m = np.where(np.isfinite(m), m, 0)
    z = x - m
    out = z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))
    return np.exp(out) if exp else out


def _fused_backward(grad, saved, axis, kernel_name):
    """The backward kernel on rows, or None when it does not apply (another axis, empty)."""
    if saved.data.size == 0:
        return None
    g, s = _as_rows(grad.data, axis), _as_rows(saved.data, axis)
    if g is None:
        return None
    kernel = getattr(kernels.backend_for(g), kernel_name)
    return grad._wrap(kernel(g, s.astype(g.dtype, copy=False)).reshape(grad.shape))


class Softmax(Function):
    """s = softmax(x) along ``axis``; backward dx = s * (g - sum_j g_j s_j)."""

    @staticmethod
    def forward(ctx, x, axis):
        out = _log_softmax(x, axis, exp=True)
        ctx.axis = axis
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def composite_backward(ctx, grad):
        """dx = s * (g - sum_j g_j s_j) with differentiable operations."""
        (s,) = ctx.saved_tensors
        return s * (grad - (grad * s).sum(ctx.axis, keepdim=True)), None

    @staticmethod
    @once_differentiable(fallback=composite_backward)
    def backward(ctx, grad):
        (s,) = ctx.saved_tensors
        fused = _fused_backward(grad, s, ctx.axis, "softmax_backward")
        if fused is not None:
            return fused, None
        return Softmax.composite_backward(ctx, grad)  # another axis or empty: the formula as array expressions


class LogSoftmax(Function):
    """log_softmax(x) along ``axis``; backward dx = g - softmax(x) * sum_j g_j."""

    @staticmethod
    def forward(ctx, x, axis):
        out = _log_softmax(x, axis)
        ctx.axis = axis
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def composite_backward(ctx, grad):
        """dx = g - exp(logp) * sum_j g_j with differentiable operations."""
        (logp,) = ctx.saved_tensors
        return grad - logp.exp() * grad.sum(ctx.axis, keepdim=True), None

    @staticmethod
    @once_differentiable(fallback=composite_backward)
    def backward(ctx, grad):
        (logp,) = ctx.saved_tensors
        fused = _fused_backward(grad, logp, ctx.axis, "log_softmax_backward")
        if fused is not None:
            return fused, None
        return LogSoftmax.composite_backward(ctx, grad)  # another axis or empty: the formula as array expressions
