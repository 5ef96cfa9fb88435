r"""Optimiser steps, reference twin: the update formulas as NumPy expressions, in place.

SGD with learning rate γ, momentum μ, dampening τ, weight decay λ::

    g ← -∇ if maximize else ∇
    g ← g + λ θ                                   (L2 penalty λ/2 ‖θ‖²)
    if μ ≠ 0:   b ← g (first step)  or  b ← μ b + (1 - τ) g;    g ← g + μ b (Nesterov)  or  g ← b
    θ ← θ - γ g

Adam / AdamW at step t with β₁, β₂, ε::

    g ← -∇ if maximize else ∇
    g ← g + λ θ  (Adam)          θ ← θ (1 - γ λ)  (AdamW: decoupled)
    m ← β₁ m + (1 - β₁) g        v ← β₂ v + (1 - β₂) g²        v ← v̂max ← max(v̂max, v)  (amsgrad)
    θ ← θ - γ / (1 - β₁ᵗ) · m / (√v / √(1 - β₂ᵗ) + ε)

(PyTorch's arrangement: ε is added after √v is divided by √(1 - β₂ᵗ).)
"""
from __future__ import annotations

import numpy as np

from . import check_step as _check_step


def sgd_step(param, grad, buf, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
             maximize=False, first_step=False):
    """θ (and the momentum buffer b) updated in place; returns None."""
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + weight_decay * param
    if momentum != 0:
        buf[...] = g if first_step else momentum * buf + (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    param[...] = param - lr * g


def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr=1e-3, beta1=0.9, beta2=0.999,
              eps=1e-8, weight_decay=0.0, decoupled=False, amsgrad=False, maximize=False):
    """θ, m, v (and v̂max) updated in place; returns None."""
    _check_step(step)
    g = -grad if maximize else grad
    if weight_decay != 0:
        if decoupled:
            param[...] = param * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * param
    exp_avg[...] = beta1 * exp_avg + (1 - beta1) * g
    exp_avg_sq[...] = beta2 * exp_avg_sq + (1 - beta2) * g * g
    v = exp_avg_sq
    if amsgrad:
        max_exp_avg_sq[...] = np.maximum(max_exp_avg_sq, exp_avg_sq)
        v = max_exp_avg_sq
    param[...] = param - lr / (1 - beta1**step) * exp_avg / (np.sqrt(v) / np.sqrt(1 - beta2**step) + eps)
