r"""Stateless operations on tensors, PyTorch's ``torch.nn.functional`` (import as ``F``).

Activations and losses are built from the primitives in ``tinygrad_cv.ops``;
the argument names, order and defaults follow PyTorch.
"""
from __future__ import annotations

import numpy as np

from .ops import movement as M
from .ops.loss import NLLLoss
from .tensor import Tensor, concatenate, stack, where  # noqa: F401  (re-exported)

__all__ = [
    "relu", "leaky_relu", "sigmoid", "tanh", "softmax", "log_softmax",
    "cross_entropy", "nll_loss", "mse_loss", "pad",
]


def relu(input):
    r"""max(x, 0); derivative 1 for x > 0 and 0 otherwise (0 at the kink)."""
    return input.relu()


def leaky_relu(input, negative_slope=0.01):
    return input.leaky_relu(negative_slope)


def sigmoid(input):
    r"""\sigma(x) = 1 / (1 + e^{-x}), derivative \sigma(x)(1 - \sigma(x))."""
    return input.sigmoid()


def tanh(input):
    return input.tanh()


def softmax(input, dim=-1):
    r"""e^{x_i} / \sum_j e^{x_j} along ``dim``, computed stably."""
    return input.softmax(dim)


def log_softmax(input, dim=-1):
    r"""x_i - \log \sum_j e^{x_j} along ``dim``, computed stably."""
    return input.log_softmax(dim)


_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _class_targets(input, target, ignore_index, name):
    """Validate integer class targets against (N, C, ...) / (C,) scores; returns (input, target, unbatched)."""
    t = target.data if isinstance(target, Tensor) else np.asarray(target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{name}: class-index targets must be integers, got {t.dtype}")
    unbatched = input.ndim == 1
    if unbatched:
        input = input.unsqueeze(0)
        t = t.reshape(1) if t.ndim == 0 else t
    if input.ndim < 2:
        raise ValueError(f"{name}: input must have shape (N, C) or (N, C, d1, ...), got {input.shape}")
    expected = (input.shape[0],) + input.shape[2:]
    if t.shape != expected:
        raise ValueError(
            f"{name}: target shape {t.shape} does not match input shape {input.shape} "
            f"(expected target shape {expected})"
        )
    c = input.shape[1]
    bad = t[(t != ignore_index) & ((t < 0) | (t >= c))]
    if bad.size:
        raise IndexError(f"{name}: target {int(bad.flat[0])} is out of bounds for {c} classes")
    return input, t.astype(np.int64, copy=False), unbatched


def _class_weight(weight, input, name):
    if weight is None:
        return None
    w = weight.data if isinstance(weight, Tensor) else np.asarray(weight)
    if w.shape != (input.shape[1],):
        raise ValueError(f"{name}: weight has shape {w.shape}, expected ({input.shape[1]},) for input {input.shape}")
    return w.astype(input.dtype)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    r"""Negative log-likelihood of class indices: -w[t_n] \cdot input[n, t_n], reduced."""
    _check_reduction(reduction)
    input, t, unbatched = _class_targets(input, target, ignore_index, "nll_loss")
    w = _class_weight(weight, input, "nll_loss")
    out = NLLLoss.apply(input, t, w, ignore_index, reduction)
    return out.squeeze(0) if unbatched and reduction == "none" else out


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    r"""Softmax cross-entropy of raw scores (logits) ``input`` (N, C, ...) against ``target``.

    ``target`` holds class indices (N, ...) or class probabilities (same shape
    as ``input``). With label smoothing ε the target distribution becomes
    (1 - ε) y + ε / C, i.e.

        loss = (1 - ε) nll(log_softmax(x), t) + ε / C \sum_c -w_c log_softmax(x)_c

    The gradient with respect to the logits is softmax(x) - y (times the
    weights and the reduction's scale).
    """
    _check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    tdata = target.data if isinstance(target, Tensor) else np.asarray(target)
    if tdata.dtype.kind == "f":
        return _soft_cross_entropy(input, target, weight, reduction, label_smoothing)
    input, t, unbatched = _class_targets(input, target, ignore_index, "cross_entropy")
    w = _class_weight(weight, input, "cross_entropy")
    logp = input.log_softmax(1)
    loss = NLLLoss.apply(logp, t, w, ignore_index, reduction)
    if label_smoothing > 0:
        c = input.shape[1]
        keep = t != ignore_index
        wl = logp if w is None else logp * Tensor._wrap(w.reshape((1, c) + (1,) * (logp.ndim - 2)))
        smooth = -wl.sum(1) * Tensor._wrap(keep.astype(logp.dtype))
        if reduction == "mean":
            denom = keep.sum() if w is None else w[np.where(keep, t, 0)][keep].sum()
            smooth = smooth.sum() / float(denom)
        elif reduction == "sum":
            smooth = smooth.sum()
        loss = loss * (1 - label_smoothing) + smooth * (label_smoothing / c)
    return loss.squeeze(0) if unbatched and reduction == "none" else loss


def _soft_cross_entropy(input, target, weight, reduction, label_smoothing):
    target = target if isinstance(target, Tensor) else Tensor(target, dtype=input.dtype)
    if target.shape != input.shape:
        raise ValueError(f"cross_entropy: probability target shape {target.shape} != input shape {input.shape}")
    cdim = 0 if input.ndim == 1 else 1
    c = input.shape[cdim]
    if label_smoothing > 0:
        target = target * (1 - label_smoothing) + label_smoothing / c
    logp = input.log_softmax(cdim)
    if weight is not None:
        w = _class_weight(weight, input if cdim else input.unsqueeze(0), "cross_entropy")
        logp = logp * Tensor._wrap(w.reshape((c,) + (1,) * (logp.ndim - cdim - 1)))
    losses = -(target * logp).sum(cdim)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / (input.shape[0] if cdim else 1) / (int(np.prod(input.shape[2:])) if cdim else 1)


def mse_loss(input, target, reduction="mean"):
    r"""Mean squared error (x - y)^2, reduced. Shapes must match exactly.

    (PyTorch only warns on a mismatch; silently broadcasting (N, 1) against
    (N,) into (N, N) is a classic bug, so it is an error here.)
    """
    _check_reduction(reduction)
    target = target if isinstance(target, Tensor) else input._lift(target)
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: input shape {input.shape} and target shape {target.shape} differ")
    d = input - target
    sq = d * d
    return sq.mean() if reduction == "mean" else sq.sum() if reduction == "sum" else sq


def pad(input, pad, mode="constant", value=0.0):
    """Pad with a constant; ``pad`` lists (left, right) pairs starting from the LAST dim, as PyTorch.

    ``F.pad(x, (1, 1, 2, 2))`` pads the last dim by 1 on each side and the one
    before it by 2. Negative values crop.
    """
    if mode != "constant":
        raise ValueError(f"pad: only mode='constant' is supported, got {mode!r}")
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: {pad} must hold (left, right) pairs for at most {input.ndim} dims of shape {input.shape}")
    widths = [(0, 0)] * input.ndim
    for k in range(len(pad) // 2):
        widths[input.ndim - 1 - k] = (pad[2 * k], pad[2 * k + 1])
    for n, (b, e) in zip(input.shape, widths):
        if n + b + e < 0:
            raise ValueError(f"pad: {pad} crops more than the size of shape {input.shape}")
    return M.Pad.apply(input, tuple(widths), value)
