r"""RMSprop (PyTorch's ``RMSprop``): divide the gradient by a running root-mean-square of past gradients.

    g ← -∇ if maximize else ∇
    g ← g + λ θ
    v ← α v + (1 - α) g²
    centered:  ḡ ← α ḡ + (1 - α) g,   a ← √(v - ḡ²) + ε   (an estimate of the gradient's std)
    otherwise: a ← √v + ε
    momentum μ > 0:  b ← μ b + g / a,  θ ← θ - γ b      (b starts at zero)
    otherwise:       θ ← θ - γ g / a
"""
from __future__ import annotations

import numpy as np

from .optimizer import Optimizer, _check

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, *,
                 maximize=False):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def _validate_group(self, group):
        _check(group["lr"] >= 0.0, f"Invalid learning rate: {group['lr']}")
        _check(group["eps"] >= 0.0, f"Invalid epsilon value: {group['eps']}")
        _check(group["momentum"] >= 0.0, f"Invalid momentum value: {group['momentum']}")
        _check(group["weight_decay"] >= 0.0, f"Invalid weight_decay value: {group['weight_decay']}")
        _check(group["alpha"] >= 0.0, f"Invalid alpha value: {group['alpha']}")

    def _update(self, p, grad, state, group):
        if not state:
            state["step"] = 0
            state["square_avg"] = self._zeros_like(p)
            if group["momentum"] > 0:
                state["momentum_buffer"] = self._zeros_like(p)
            if group["centered"]:
                state["grad_avg"] = self._zeros_like(p)
        alpha, eps, wd, mu = group["alpha"], group["eps"], group["weight_decay"], group["momentum"]
        g = -grad if group["maximize"] else grad
        state["step"] += 1
        if wd != 0:
            g = g + wd * p.data
        v = state["square_avg"].data
        v *= alpha
        v += (1 - alpha) * (g * g)
        if group["centered"]:
            gbar = state["grad_avg"].data
            gbar *= alpha
            gbar += (1 - alpha) * g
            avg = np.sqrt(v - gbar * gbar) + eps
        else:
            avg = np.sqrt(v) + eps
        if mu > 0:
            b = state["momentum_buffer"].data
            b *= mu
            b += g / avg
            p.data -= group["lr"] * b
        else:
            p.data -= group["lr"] * (g / avg)
