r"""Negative log-likelihood: the loss that sits after ``log_softmax``.

For log-probabilities z (N, C, ...) and class indices t (N, ...),

    loss_n = -w[t_n] z[n, t_n]      (0 where t_n == ignore_index)

and the gradient is -w[t_n] at the target position, 0 elsewhere — a one-hot
row. Composed with log-softmax this gives the famous dL/dx = p - y.
Reductions: ``"none"`` keeps loss_n, ``"sum"`` adds them, ``"mean"`` divides
the sum by sum_n w[t_n] (the number of non-ignored targets when unweighted).
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, is_grad_enabled
from .softmax import _log_softmax


def _nll_rows(flat_z, t, weight, ignore_index, reduction, out_shape):
    """The loss of log-probabilities ``flat_z`` (M, C) against targets ``t`` (M,), and d loss / d z.

    Returns (loss, coef, dz): coef[m] = d loss / d loss_m (w[t_m], divided by
    sum w for "mean"), and dz (M, C) is -coef at each row's target, 0 elsewhere.
    """
    keep = t != ignore_index
    safe_t = np.where(keep, t, 0)
    w = keep.astype(flat_z.dtype) if weight is None else (weight[safe_t] * keep).astype(flat_z.dtype)
    rows = np.arange(t.size)
    losses = -w * flat_z[rows, safe_t]
    if reduction == "mean":
        denom = w.sum()
        if denom == 0:  # every target ignored: 0/0 -> nan, as in PyTorch
            with np.errstate(divide="ignore", invalid="ignore"):
                coef = w / denom
                out = np.asarray(losses.sum() / denom, dtype=flat_z.dtype)
        else:
            coef = w / denom
            out = np.asarray(losses.sum() / denom, dtype=flat_z.dtype)
    elif reduction == "sum":
        coef = w
        out = np.asarray(losses.sum(), dtype=flat_z.dtype)
    else:
        coef = w
        out = losses.reshape(out_shape)
    dz = np.zeros(flat_z.shape, dtype=flat_z.dtype)
    dz[rows, safe_t] = -coef
    return out, coef, dz


class NLLLoss(Function):
    @staticmethod
    def forward(ctx, logp, target, weight, ignore_index, reduction):
        # move the class axis last so the target indexes it directly: (M, C)
        z = np.moveaxis(logp, 1, -1)
        flat_z = z.reshape(-1, z.shape[-1])
        t = target.reshape(-1)
        if not isinstance(logp, np.ndarray):
            keep = t != ignore_index
            return _nll_gpu(ctx, logp, z, flat_z, t, keep, np.where(keep, t, 0), weight, reduction)
        out, _, dz = _nll_rows(flat_z, t, weight, ignore_index, reduction, target.shape)
        # d loss / d logp with the class axis back in place
        ctx.dz = np.moveaxis(dz.reshape(z.shape), -1, 1)
        ctx.reduction = reduction
        return out

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
    pass is one multiply. The composite (``LogSoftmax`` then ``NLLLoss``)
    records two nodes and about six operations in backward, each a Python
    call; it remains the oracle in the tests and the path for (N, C, d1, ...)
    inputs and label smoothing. Gradients of gradients (``create_graph``)
    are built from differentiable operations on x.
    """

    @staticmethod
    def forward(ctx, x, target, weight, ignore_index, reduction):
        logp = _log_softmax(x, 1)  # the same numbers as the composite's LogSoftmax
        out, coef, dz = _nll_rows(logp, target, weight, ignore_index, reduction, target.shape)
        ctx.save_for_backward(x)
        ctx.reduction = reduction
        ctx.coef, ctx.dz = coef, dz  # dz = -coef * y
        ctx.dx = np.exp(logp) * coef[:, None] + dz  # coef (p - y)
        return out

    @staticmethod
    def backward(ctx, grad):
        g = grad.unsqueeze(1) if ctx.reduction == "none" else grad  # one loss per row -> broadcast over classes
        if is_grad_enabled():  # create_graph: p = softmax(x) as a differentiable operation
            (x,) = ctx.saved_tensors
            wrap = grad._wrap
            return g * (x.softmax(1) * wrap(ctx.coef[:, None]) + wrap(ctx.dz)), None, None, None, None
        return grad._wrap(g.data * ctx.dx), None, None, None, None


def _nll_gpu(ctx, logp, z, flat_z, t, keep, safe_t, weight, reduction):
    """The same loss with gathers instead of fancy indexing (GPU arrays have no advanced indexing)."""
    from ..cuda.array import scatter_add_along_axis

    m, c = flat_z.shape
    col = safe_t.reshape(m, 1)
    w = keep.astype(logp.dtype)
    if weight is not None:
        w = w * np.take_along_axis(np.broadcast_to(weight.reshape(1, c), (m, c)), col, 1).reshape(m)
    losses = -w * np.take_along_axis(flat_z, col, 1).reshape(m)
    if reduction == "mean":
        coef = w / w.sum()
        out = losses.sum() / w.sum()
    elif reduction == "sum":
        coef, out = w, losses.sum()
    else:
        coef, out = w, losses.reshape(z.shape[:-1])  # one loss per target position
    dz = scatter_add_along_axis((-coef).reshape(m, 1), col, 1, (m, c))
    ctx.dz = np.moveaxis(dz.reshape(z.shape), -1, 1)
    ctx.reduction = reduction
    return out.astype(logp.dtype, copy=False)
