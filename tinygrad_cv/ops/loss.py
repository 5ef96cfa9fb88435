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

from ..autograd import Function


class NLLLoss(Function):
    @staticmethod
    def forward(ctx, logp, target, weight, ignore_index, reduction):
        # move the class axis last so the target indexes it directly: (M, C)
        z = np.moveaxis(logp, 1, -1)
        flat_z = z.reshape(-1, z.shape[-1])
        t = target.reshape(-1)
        keep = t != ignore_index
        safe_t = np.where(keep, t, 0)
        if not isinstance(logp, np.ndarray):
            return _nll_gpu(ctx, logp, z, flat_z, t, keep, safe_t, weight, reduction)
        w = (weight[safe_t] if weight is not None else np.ones(t.shape, logp.dtype)) * keep
        w = w.astype(logp.dtype)
        picked = flat_z[np.arange(t.size), safe_t]
        losses = -w * picked
        if reduction == "mean":
            denom = w.sum()
            with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 -> nan, as PyTorch when every target is ignored
                coef = w / denom
                out = np.asarray(losses.sum() / denom, dtype=logp.dtype)
        elif reduction == "sum":
            coef = w
            out = np.asarray(losses.sum(), dtype=logp.dtype)
        else:
            coef = w
            out = losses.reshape(target.shape)
        # d loss / d z: -coef at the target of each row, 0 elsewhere (class axis back in place)
        onehot = np.zeros(flat_z.shape, dtype=logp.dtype)
        onehot[np.arange(t.size), safe_t] = -coef
        ctx.dz = np.moveaxis(onehot.reshape(z.shape), -1, 1)
        ctx.reduction = reduction
        return out

    @staticmethod
    def backward(ctx, grad):
        if ctx.reduction == "none":
            grad = grad.unsqueeze(1)  # one loss per (n, ...) -> broadcast over classes
        return grad * grad._wrap(ctx.dz), None, None, None, None


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
