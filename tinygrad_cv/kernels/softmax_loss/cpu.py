r"""Softmax, log-softmax and the NLL / cross-entropy loss, CPU twin: NumPy, as the operations ran it.

These are memory-bound passes over small arrays (LeNet's logits are 64 x 10),
where NumPy's vectorised loops are as fast as a compiled kernel would be, so
the CPU twin is the NumPy code that ``ops/softmax.py`` and ``ops/loss.py``
ran before the kernel boundary existed, moved here verbatim: the same
operations in the same order, so the same bits. It differs from the
reference in one corner: an ignored row of the NLL loss is ``-0 * logp``,
which is NaN where logp is -inf there (the reference and CUDA twins give 0).
Arguments are checked by the caller (``kernels/contract.py``).
"""
from __future__ import annotations

import numpy as np


def log_softmax_forward(x):
    """log_softmax along the last axis of x (M, C); see ``reference.log_softmax_forward``."""
    m = np.max(x, axis=-1, keepdims=True)
    if not np.all(np.isfinite(m)):
        m = np.where(np.isfinite(m), m, 0)
    z = x - m
    return z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))


def softmax_forward(x):
    """softmax along the last axis of x (M, C): exp(log_softmax(x))."""
    return np.exp(log_softmax_forward(x))


def log_softmax_backward(grad, logp):
    """grad - exp(logp) * sum_j grad, per row."""
    return grad - np.exp(logp) * np.sum(grad, axis=-1, keepdims=True)


def softmax_backward(grad, s):
    """s * (grad - sum_j grad * s), per row."""
    return s * (grad - np.sum(grad * s, axis=-1, keepdims=True))


def nll_loss_forward(logp, target, weight=None, ignore_index=-100, reduction="mean"):
    """(out, coef) for log-probabilities logp (M, C) and targets (M,); see the contract."""
    keep = target != ignore_index
    safe_t = np.where(keep, target, 0)
    w = keep.astype(logp.dtype) if weight is None else (weight[safe_t] * keep).astype(logp.dtype)
    rows = np.arange(target.size)
    losses = -w * logp[rows, safe_t]
    if reduction == "mean":
        denom = w.sum()
        if denom == 0:  # every target ignored: 0/0 -> nan, as in PyTorch
            with np.errstate(divide="ignore", invalid="ignore"):
                coef = w / denom
                out = np.asarray(losses.sum() / denom, dtype=logp.dtype)
        else:
            coef = w / denom
            out = np.asarray(losses.sum() / denom, dtype=logp.dtype)
    elif reduction == "sum":
        coef = w
        out = np.asarray(losses.sum(), dtype=logp.dtype)
    else:
        coef = w
        out = losses
    return out, coef


def nll_loss_backward(grad_out, coef, target, C, ignore_index=-100, reduction="mean"):
    """Dense (M, C) gradient -coef_m g_m at (m, t_m); see the contract."""
    g = grad_out.reshape(-1) if reduction == "none" else grad_out.reshape(())
    keep = target != ignore_index
    safe_t = np.where(keep, target, 0)
    dz = np.zeros((target.size, C), dtype=coef.dtype)
    dz[np.arange(target.size), safe_t] = -(coef * g)
    return dz


def cross_entropy_forward(x, target, weight=None, ignore_index=-100, reduction="mean"):
    """(out, logp, coef): log_softmax, then the NLL loss of it."""
    logp = log_softmax_forward(x)
    out, coef = nll_loss_forward(logp, target, weight, ignore_index, reduction)
    return out, logp, coef


def cross_entropy_backward(grad_out, logp, coef, target, ignore_index=-100, reduction="mean"):
    """g * coef (p - y): exp(logp) * coef[:, None], minus coef at each row's target, times g.

    (The same numbers as adding the one-hot -coef rows of ``nll_loss_backward``:
    a - c is a + (-c) exactly, and the other entries gain + 0.)
    """
    dx = np.exp(logp) * coef[:, None]
    dx[np.arange(target.size), np.where(target != ignore_index, target, 0)] -= coef
    g = grad_out.reshape(-1, 1) if reduction == "none" else grad_out
    return g * dx
