"""Loss layers over ``F.cross_entropy``, ``F.nll_loss``, ``F.mse_loss``, ``F.kl_div`` and ``F.multi_margin_loss``.

The arguments after ``weight`` are keyword-only: PyTorch still has the
deprecated ``size_average`` and ``reduce`` in positions 2 and 4, so a
positional call written for PyTorch would silently mean something else here.
"""
from __future__ import annotations

from .. import functional as F
from ..tensor import Tensor
from .module import Module

__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss", "KLDivLoss", "MultiMarginLoss"]


class _WeightedLoss(Module):
    def __init__(self, weight, reduction):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction
        if weight is not None and not isinstance(weight, Tensor):
            weight = Tensor(weight)
        self.register_buffer("weight", weight)  # a buffer, as PyTorch: saved with the model


class CrossEntropyLoss(_WeightedLoss):
    """Softmax cross-entropy of raw scores (N, C, ...) against class indices (N, ...) or class probabilities."""

    def __init__(self, weight=None, *, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__(weight, reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of log-probabilities (N, C, ...) against class indices (N, ...)."""

    def __init__(self, weight=None, *, ignore_index=-100, reduction="mean"):
        super().__init__(weight, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class MSELoss(Module):
    """Mean squared error; input and target must have the same shape."""

    def __init__(self, *, reduction="mean"):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class KLDivLoss(Module):
    """KL(target ‖ exp(input)) for log-probabilities ``input``; see ``F.kl_div``.

    ``reduction="batchmean"`` is the divergence per sample (the mathematical
    KL); the default ``"mean"`` (PyTorch's) also divides by the number of
    classes.
    """

    def __init__(self, *, reduction="mean", log_target=False):
        super().__init__()
        if reduction not in F._KL_REDUCTIONS:
            raise ValueError(f"reduction must be one of {F._KL_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self.log_target = bool(log_target)

    def forward(self, input, target):
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)

    def extra_repr(self):
        return f"reduction={self.reduction!r}, log_target={self.log_target}"


class MultiMarginLoss(_WeightedLoss):
    """Multi-class hinge loss of scores (N, C) or (C,) against class indices; see ``F.multi_margin_loss``.

    ``p``, ``margin`` and ``weight`` take PyTorch's positions; ``reduction``
    is keyword-only (PyTorch's fourth argument is the deprecated ``size_average``).
    """

    def __init__(self, p=1, margin=1.0, weight=None, *, reduction="mean"):
        if isinstance(p, bool) or p not in (1, 2):
            raise ValueError(f"only p == 1 and p == 2 are supported, got p={p!r}")
        super().__init__(weight, reduction)
        self.p = int(p)
        self.margin = float(margin)

    def forward(self, input, target):
        return F.multi_margin_loss(input, target, p=self.p, margin=self.margin, weight=self.weight,
                                   reduction=self.reduction)

    def extra_repr(self):
        return f"p={self.p}, margin={self.margin}, reduction={self.reduction!r}"
