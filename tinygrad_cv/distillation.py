r"""Knowledge distillation (Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", 2015).

A small *student* learns from a large *teacher*'s softened output
distribution as well as from the labels. With temperature T, the soft
targets are the teacher's softmax of its logits divided by T,

    q_T = softmax(z_teacher / T),   p_T = softmax(z_student / T),

and the loss mixes a soft term and the ordinary hard-label term:

    loss = α · T² · KL(q_T ‖ p_T)  +  (1 − α) · CE(z_student, y)

with KL averaged per sample (``kl_div(..., reduction="batchmean")``).
A high T spreads the teacher's probability mass over the wrong classes,
whose relative sizes ("a 2 looks more like a 3 than a 7") carry the "dark
knowledge" a one-hot label lacks.

Why T²: the gradient of the soft term with respect to a student logit is
(p_T − q_T) / T, and for large T (logits small next to T) p_T − q_T itself
shrinks like (z_student − z_teacher) / (C T), so the gradient scales as
1 / T². Multiplying by T² keeps the soft term's gradient magnitude roughly
independent of T, so changing T does not silently re-weight the two terms
(and α keeps its meaning).

The teacher's logits are constants: they are detached, so no gradient ever
reaches the teacher (run it under ``no_grad()`` / in ``eval()`` mode anyway,
to save memory and freeze its batch-norm statistics and dropout).
"""
from __future__ import annotations

import numbers

import numpy as np

from . import functional as F
from .autograd import no_grad
from .nn.module import Module
from .tensor import Tensor

__all__ = ["soft_targets", "distillation_loss", "DistillationLoss"]


def _check_temperature(T, name):
    if isinstance(T, bool) or not isinstance(T, numbers.Real) or not np.isfinite(T) or T <= 0:
        raise ValueError(f"{name}: temperature T must be a finite number > 0, got {T!r}")
    return float(T)


def _check_alpha(alpha, name):
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"{name}: alpha must be in [0, 1], got {alpha!r}")
    return float(alpha)


def _logits(x, name, what):
    if not isinstance(x, Tensor):
        x = Tensor(np.asarray(x))
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: {what} must be floating point logits, got {x.dtype}")
    return x


def soft_targets(teacher_logits, T):
    r"""The teacher's softened distribution softmax(z / T) over the class axis (1, or 0 for a 1-D input), no grad.

    T = 1 is the ordinary softmax; larger T flattens it towards uniform.
    The result is a constant tensor (``requires_grad`` False).
    """
    T = _check_temperature(T, "soft_targets")
    z = _logits(teacher_logits, "soft_targets", "teacher_logits")
    if z.ndim == 0:
        raise ValueError(f"soft_targets: teacher_logits must have a class axis, got shape {z.shape}")
    with no_grad():
        return (z.detach() / T).softmax(1 if z.ndim > 1 else 0)


def distillation_loss(student_logits, teacher_logits, target, T=4.0, alpha=0.9):
    r"""Hinton et al.'s distillation loss: α T² KL(softmax(z_t/T) ‖ softmax(z_s/T)) + (1 − α) CE(z_s, y).

    ``student_logits`` and ``teacher_logits``: raw scores (N, C) (or
    (N, C, d1, ...), classes on axis 1), same shape. The KL term is
    ``kl_div(log_softmax(z_s / T), softmax(z_t / T), reduction="batchmean")``
    (summed over classes, averaged over the batch); the cross-entropy uses
    the *unscaled* student logits (T = 1) and ``target`` (class indices, or
    probabilities, as ``cross_entropy`` accepts). ``target`` may be None only
    when ``alpha == 1`` (pure distillation, e.g. on unlabelled data). A term
    whose coefficient is 0 is not computed.

    The teacher logits are detached: the loss never sends gradient to the
    teacher. See the module docstring for why the soft term carries T².
    """
    name = "distillation_loss"
    T = _check_temperature(T, name)
    alpha = _check_alpha(alpha, name)
    zs = _logits(student_logits, name, "student_logits")
    zt = _logits(teacher_logits, name, "teacher_logits")
    if zs.ndim < 2:
        raise ValueError(f"{name}: student_logits must have shape (N, C, ...), got {zs.shape}")
    if zs.shape != zt.shape:
        raise ValueError(f"{name}: student_logits shape {zs.shape} and teacher_logits shape {zt.shape} differ")
    if target is None and alpha < 1.0:
        raise ValueError(f"{name}: target is None, which is allowed only with alpha == 1 (got alpha={alpha}); "
                         "the hard-label term has weight 1 - alpha")
    zt = zt.detach()
    if zt.dtype != zs.dtype:
        zt = zt.to(zs.dtype)
    loss = None
    if alpha > 0.0:
        q = soft_targets(zt, T)
        kl = F.kl_div((zs / T).log_softmax(1), q, reduction="batchmean")
        loss = kl * (alpha * T * T)
    if alpha < 1.0:
        ce = F.cross_entropy(zs, target)
        loss = ce * (1.0 - alpha) if loss is None else loss + ce * (1.0 - alpha)
    return loss


class DistillationLoss(Module):
    """``distillation_loss`` as a module: ``DistillationLoss(T=4.0, alpha=0.9)(student, teacher, target=None)``."""

    def __init__(self, T=4.0, alpha=0.9):
        super().__init__()
        self.T = _check_temperature(T, "DistillationLoss")
        self.alpha = _check_alpha(alpha, "DistillationLoss")

    def forward(self, student_logits, teacher_logits, target=None):
        return distillation_loss(student_logits, teacher_logits, target, T=self.T, alpha=self.alpha)

    def extra_repr(self):
        return f"T={self.T}, alpha={self.alpha}"
