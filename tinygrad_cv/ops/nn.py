r"""Batch normalisation with batch statistics as one fused `Function`.

Written as a dozen elementary operations, batch norm records as many graph
nodes, each making a full pass over the activations in both directions. Here
the forward pass is a few NumPy expressions and the backward pass applies the
closed-form gradient. With n values per channel, x̂ = (x - μ) / √(σ² + ε),
g the upstream gradient and gw = g · weight:

    dL/dx      = 1/(n √(σ² + ε)) · (n gw - Σ gw - x̂ Σ(gw x̂))
    dL/dweight = Σ g x̂             dL/dbias = Σ g

(sums over every axis but the channel axis 1). The two subtracted terms are
the paths through μ and σ², which depend on every element of the channel.

The batch statistics are computed by the caller (``F.batch_norm``, which
also needs them for the running averages) and passed in as constants:
correct, because the formula above already accounts for their dependence on
x. The arithmetic of both directions is the kernel twins'
(``kernels/norm/``). For double backward (``create_graph=True``) the same
formula is evaluated with differentiable Tensor operations on the saved
input, so gradients of gradients stay exact; the test suite checks both paths
against the composite definition.
"""
from __future__ import annotations

from .. import kernels
from ..autograd import Function, once_differentiable


def _layout(x):
    axes = (0,) + tuple(range(2, x.ndim))
    bshape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    return axes, bshape


class BatchNormTrain(Function):
    """``y = (x - mean) / sqrt(var + eps) * weight + bias`` with ``mean``/``var`` the batch statistics of ``x``.

    ``weight`` and ``bias`` may be None; ``mean`` and ``var`` are plain arrays
    of shape (C,) (the biased variance).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, mean, var, eps):
        y, xhat, inv_std = kernels.backend_for(x).batch_norm_forward(x, mean, var, weight, bias, eps)
        if weight is None:
            ctx.save_for_backward(x)
        else:
            ctx.save_for_backward(x, weight)
        ctx.xhat, ctx.inv_std, ctx.eps = xhat, inv_std, eps
        return y

    @staticmethod
    def composite_backward(ctx, grad):
        """create_graph: the same formula built from differentiable operations on the saved input."""
        saved = ctx.saved_tensors
        x, weight = saved[0], (saved[1] if len(saved) > 1 else None)
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        axes, bshape = _layout(grad)
        n = grad.numel() // grad.shape[1]
        mean = x.mean(axes, keepdim=True)
        centred = x - mean
        inv_std = 1 / ((centred * centred).mean(axes, keepdim=True) + ctx.eps).sqrt()
        xhat = centred * inv_std
        gw = grad if weight is None else grad * weight.reshape(bshape)
        gx = gw * n - gw.sum(axes, keepdim=True) - xhat * (gw * xhat).sum(axes, keepdim=True)
        gx = gx * inv_std / n if need_x else None
        gweight = (grad * xhat).sum(axes) if need_w else None
        gbias = grad.sum(axes) if need_b else None
        return gx, gweight, gbias, None, None, None

    @staticmethod
    @once_differentiable(fallback=composite_backward)
    def backward(ctx, grad):
        saved = ctx.saved_tensors
        weight = saved[1] if len(saved) > 1 else None
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx, gweight, gbias = kernels.backend_for(grad.data).batch_norm_backward(
            grad.data, ctx.xhat, ctx.inv_std, None if weight is None else weight.data, need_x, need_w, need_b)
        return gx, gweight, gbias, None, None, None
