r"""Negative log-likelihood: the loss that sits after ``log_softmax``.

For log-probabilities z (N, C, ...) and class indices t (N, ...),

    loss_n = -w[t_n] z[n, t_n]      (0 where t_n == ignore_index)

and the gradient is -w[t_n] at the target position, 0 elsewhere — a one-hot
row. Composed with log-softmax this gives the famous dL/dx = p - y.
Reductions: ``"none"`` keeps loss_n, ``"sum"`` adds them, ``"mean"`` divides
the sum by sum_n w[t_n] (the number of non-ignored targets when unweighted).

The arithmetic is the kernel twins' (``kernels/softmax_loss/``), on rows
(M, C) with the class axis last; the targets were checked by
``F.nll_loss`` / ``F.cross_entropy``.
"""
from __future__ import annotations

import numpy as np

from .. import kernels
from ..autograd import Function, once_differentiable


def _one_hot_coef(k, coef, target, classes, ignore_index):
    """dz (M, C): -coef at each row's target, 0 elsewhere: d loss / d z for an upstream gradient of 1."""
    one = np.ones((), dtype=coef.dtype, like=coef)
    return k.nll_loss_backward(one, coef, target, classes, ignore_index, "sum")


class NLLLoss(Function):
    """loss_n = -w[t_n] z[n, t_n] for log-probabilities z; backward: the one-hot rows -w[t_n], times g."""

    @staticmethod
    def forward(ctx, logp, target, weight, ignore_index, reduction):
        # move the class axis last so the target indexes it directly: (M, C)
        z = np.moveaxis(logp, 1, -1)
        flat_z = z.reshape(-1, z.shape[-1])
        t = target.reshape(-1)
        k = kernels.backend_for(logp)
        out, coef = k.nll_loss_forward(flat_z, t, weight, ignore_index, reduction)
        dz = _one_hot_coef(k, coef, t, flat_z.shape[1], ignore_index)
        # d loss / d logp with the class axis back in place
        ctx.dz = np.moveaxis(dz.reshape(z.shape), -1, 1)
        ctx.reduction = reduction
        return out.reshape(target.shape) if reduction == "none" else out

    @staticmethod
    def backward(ctx, grad):
        if ctx.reduction == "none":
            grad = grad.unsqueeze(1)  # one loss per (n, ...) -> broadcast over classes
        return grad * grad._wrap(ctx.dz), None, None, None, None


class CrossEntropy(Function):
    r"""nll(log_softmax(x)) for logits x (N, C) and class indices t (N,), as one node.

    With p = softmax(x) and y the one-hot rows of t, the gradient is the
    famous

        dL/dx[n, :] = coef[n] (p[n, :] - y[n, :]),

    coef[n] = w[t_n] (divided by sum_n w[t_n] for the mean), so the backward
    pass is one kernel call. The composite (``LogSoftmax`` then ``NLLLoss``)
    records two nodes and about six operations in backward, each a Python
    call; it remains the oracle in the tests and the path for (N, C, d1, ...)
    inputs and label smoothing. Gradients of gradients (``create_graph``)
    are built from differentiable operations on x.
    """

    @staticmethod
    def forward(ctx, x, target, weight, ignore_index, reduction):
        out, logp, coef = kernels.backend_for(x).cross_entropy_forward(x, target, weight, ignore_index, reduction)
        ctx.save_for_backward(x)
        ctx.args = target, ignore_index, reduction
        ctx.logp, ctx.coef = logp, coef
        return out

    @staticmethod
    def composite_backward(ctx, grad):
        """create_graph: p = softmax(x) as a differentiable operation."""
        target, ignore_index, reduction = ctx.args
        k = kernels.backend_for(grad.data)
        (x,) = ctx.saved_tensors
        g = grad.unsqueeze(1) if reduction == "none" else grad  # one loss per row -> broadcast over classes
        wrap = grad._wrap
        dz = _one_hot_coef(k, ctx.coef, target, ctx.logp.shape[1], ignore_index)  # -coef y
        return g * (x.softmax(1) * wrap(ctx.coef[:, None]) + wrap(dz)), None, None, None, None

    @staticmethod
    @once_differentiable(fallback=composite_backward)
    def backward(ctx, grad):
        target, ignore_index, reduction = ctx.args
        k = kernels.backend_for(grad.data)
        dx = k.cross_entropy_backward(grad.data, ctx.logp, ctx.coef, target, ignore_index, reduction)
        return dx, None, None, None, None
