r"""Softmax, log-softmax and the NLL / cross-entropy loss, reference twin: the formulas in NumPy.

For rows x (M, C) along the last axis, with m = max_j x_j (0 if that is not
finite: an inf or NaN row then gives the IEEE result of the formula):

    log_softmax(x)_j = (x_j - m) - log sum_k exp(x_k - m)        softmax = exp(log_softmax)

Subtracting m changes nothing mathematically and keeps every exponent <= 0.
Their gradients, for g = dL/d(output):

    softmax:      dx = s (g - sum_j g_j s_j)        log_softmax:  dx = g - p sum_j g_j

Negative log-likelihood of log-probabilities z (M, C) at class indices t (M,),
with w_m = weight[t_m] (1 without a weight) and w_m = 0 where t_m == ignore_index:

    loss_m = -w_m z[m, t_m]          "sum": sum_m loss_m        "mean": sum_m loss_m / sum_m w_m

and d loss / d z[m, j] = -coef_m [j == t_m], coef = w (divided by sum w for
"mean"). Cross-entropy is the NLL of log_softmax(x), whose gradient is the
famous dL/dx = g coef (softmax(x) - onehot(t)).
"""
from __future__ import annotations

import numpy as np


def log_softmax_forward(x):
    """log_softmax of each row of x (M, C) -> (M, C)."""
    m = x.max(axis=1, keepdims=True) if x.shape[1] else np.zeros((x.shape[0], 1), x.dtype)
    m = np.where(np.isfinite(m), m, 0)  # an inf/NaN row: the formula's IEEE result
    z = x - m
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def softmax_forward(x):
    """softmax of each row of x (M, C) -> (M, C): exp(log_softmax(x))."""
    return np.exp(log_softmax_forward(x))


def log_softmax_backward(grad, logp):
    """dx = g - p * sum_j g_j per row, p = exp(logp)."""
    return grad - np.exp(logp) * grad.sum(axis=1, keepdims=True)


def softmax_backward(grad, s):
    """dx = s * (g - sum_j g_j s_j) per row."""
    return s * (grad - (grad * s).sum(axis=1, keepdims=True))


def _weights(target, weight, ignore_index, dtype):
    """w_m = weight[t_m] (or 1), 0 for ignored rows; and the targets made safe to index with."""
    keep = target != ignore_index
    safe = np.where(keep, target, 0)
    w = np.ones(target.shape, dtype) if weight is None else weight[safe].astype(dtype)
    return np.where(keep, w, 0).astype(dtype), safe, keep


def nll_loss_forward(logp, target, weight=None, ignore_index=-100, reduction="mean"):
    """(out, coef): the reduced loss (or the (M,) losses for "none") and d loss / d loss_m."""
    w, safe, keep = _weights(target, weight, ignore_index, logp.dtype)
    rows = np.arange(target.shape[0])
    losses = np.where(keep, -w * logp[rows, safe], 0).astype(logp.dtype)  # an ignored row is 0, even at -inf
    if reduction == "none":
        return losses, w
    total = losses.sum()
    if reduction == "sum":
        return np.asarray(total, logp.dtype), w
    with np.errstate(divide="ignore", invalid="ignore"):  # every target ignored: 0/0 -> nan, as PyTorch
        return np.asarray(total / w.sum(), logp.dtype), (w / w.sum()).astype(logp.dtype)


def nll_loss_backward(grad_out, coef, target, C, ignore_index=-100, reduction="mean"):
    """Dense (M, C) gradient: -coef_m * g_m at (m, t_m), 0 elsewhere; g_m = grad_out (or grad_out[m] for "none")."""
    rows = np.arange(target.shape[0])
    keep = target != ignore_index
    g = np.asarray(grad_out).reshape(-1) if reduction == "none" else np.asarray(grad_out).reshape(())
    out = np.zeros((target.shape[0], C), coef.dtype)
    out[rows[keep], target[keep]] = -(coef * g)[keep] if reduction == "none" else -(coef[keep] * g)
    return out


def cross_entropy_forward(x, target, weight=None, ignore_index=-100, reduction="mean"):
    """(out, logp, coef): the NLL loss of log_softmax(x) for logits x (M, C)."""
    logp = log_softmax_forward(x)
    out, coef = nll_loss_forward(logp, target, weight, ignore_index, reduction)
    return out, logp, coef


def cross_entropy_backward(grad_out, logp, coef, target, ignore_index=-100, reduction="mean"):
    """dL/dx[m, :] = g_m coef_m (softmax(x)[m, :] - onehot(t_m))."""
    g = np.asarray(grad_out).reshape(-1, 1) if reduction == "none" else np.asarray(grad_out).reshape(())
    onehot = np.zeros(logp.shape, logp.dtype)
    keep = target != ignore_index
    onehot[np.arange(target.shape[0])[keep], target[keep]] = 1
    return (g * coef[:, None] * (np.exp(logp) - onehot)).astype(logp.dtype)
