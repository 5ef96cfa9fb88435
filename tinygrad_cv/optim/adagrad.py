r"""Adagrad (PyTorch's ``Adagrad``): per-coordinate steps shrinking with the sum of squared gradients.

    t ← t + 1
    g ← -∇ if maximize else ∇
    g ← g + λ θ
    γ̃ ← γ / (1 + (t - 1) η)            (learning-rate decay η)
    s ← s + g²                          (s starts at initial_accumulator_value)
    θ ← θ - γ̃ g / (√s + ε)

Coordinates with large past gradients take small steps; rarely updated ones
keep large steps — good for sparse features, too aggressive a decay for long
deep-network training.
"""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from .optimizer import Optimizer, _check

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10, *,
                 maximize=False):
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize)
        super().__init__(params, defaults)
        # the accumulators exist from the start, as in PyTorch (state_dict shows them before any step)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, self.state.setdefault(p, {}), group)

    @staticmethod
    def _init_state(p, state, group):
        state["step"] = 0
        state["sum"] = Tensor._wrap(np.full_like(p.data, group["initial_accumulator_value"]))

    def _validate_group(self, group):
        _check(group["lr"] >= 0.0, f"Invalid learning rate: {group['lr']}")
        _check(group["lr_decay"] >= 0.0, f"Invalid lr_decay value: {group['lr_decay']}")
        _check(group["weight_decay"] >= 0.0, f"Invalid weight_decay value: {group['weight_decay']}")
        _check(group["initial_accumulator_value"] >= 0.0,
               f"Invalid initial_accumulator_value value: {group['initial_accumulator_value']}")
        _check(group["eps"] >= 0.0, f"Invalid epsilon value: {group['eps']}")

    def _update(self, p, grad, state, group):
        if not state:
            self._init_state(p, state, group)
        g = -grad if group["maximize"] else grad
        state["step"] += 1
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * p.data
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        s = state["sum"].data
        s += g * g
        p.data -= clr * (g / (np.sqrt(s) + group["eps"]))
