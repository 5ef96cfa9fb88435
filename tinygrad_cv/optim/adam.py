r"""Adam and AdamW (PyTorch's ``Adam`` / ``AdamW``).

Adam keeps running averages of the gradient (first moment m) and of its
square (second moment v), corrects their bias towards the zero they start
from, and takes a step of size ≈ lr in the direction m / √v — per coordinate,
so badly scaled parameters all move at a similar pace. With β₁, β₂, ε and step
count t (per parameter):

    g ← -∇ if maximize else ∇
    g ← g + λ θ                     (Adam: L2 penalty folded into the gradient)
    θ ← θ (1 - lr λ)                (AdamW instead: decoupled weight decay)
    m ← β₁ m + (1 - β₁) g
    v ← β₂ v + (1 - β₂) g²
    v̂max ← max(v̂max, v)            (amsgrad: use the largest v seen so far)
    θ ← θ - lr / (1 - β₁ᵗ) · m / (√v / √(1 - β₂ᵗ) + ε)

The last line is how PyTorch arranges the bias corrections: ε is added after
dividing √v by √(1 - β₂ᵗ), not before.
"""
from __future__ import annotations

import math

import numpy as np

from ..kernels import cpu_optim
from .optimizer import Optimizer, _check

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 maximize=False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize)
        super().__init__(params, defaults)

    def _validate_group(self, group):
        _check(group["lr"] >= 0.0, f"Invalid learning rate: {group['lr']}")
        _check(group["eps"] >= 0.0, f"Invalid epsilon value: {group['eps']}")
        betas = group["betas"]
        _check(len(betas) == 2, f"betas must be a pair, got {betas!r}")
        _check(0.0 <= betas[0] < 1.0, f"Invalid beta parameter at index 0: {betas[0]}")
        _check(0.0 <= betas[1] < 1.0, f"Invalid beta parameter at index 1: {betas[1]}")
        _check(group["weight_decay"] >= 0.0, f"Invalid weight_decay value: {group['weight_decay']}")

    def _update(self, p, grad, state, group):
        if not state:
            state["step"] = 0
            state["exp_avg"] = self._zeros_like(p)
            state["exp_avg_sq"] = self._zeros_like(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = self._zeros_like(p)
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        state["step"] += 1
        t = state["step"]
        vmax = state.get("max_exp_avg_sq")
        if self._fused_on_gpu(p, grad, state):
            from ..kernels.cuda_optim import adam_step

            adam_step(p.data.device_array(), grad.device_array(), state["exp_avg"].data.device_array(),
                      state["exp_avg_sq"].data.device_array(), None if vmax is None else vmax.data.device_array(),
                      t, lr, beta1, beta2, eps, wd, self._decoupled, group["amsgrad"], group["maximize"])
            return
        m, v = state["exp_avg"].data, state["exp_avg_sq"].data
        if cpu_optim.can_fuse(p.data, grad, m, v, *(() if vmax is None else (vmax.data,))):
            # one compiled pass, bit-identical to the array expressions below
            cpu_optim.adam_step(p.data, grad, m, v, None if vmax is None else vmax.data, t, lr, beta1, beta2,
                                eps, wd, self._decoupled, group["amsgrad"], group["maximize"])
            return
        g = -grad if group["maximize"] else grad
        if wd != 0:
            if self._decoupled:
                p.data *= 1 - lr * wd
            else:
                g = g + wd * p.data
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * (g * g)
        if group["amsgrad"]:
            v = np.maximum(vmax.data, v, out=vmax.data)
        step_size = lr / (1 - beta1**t)
        denom = np.sqrt(v) / math.sqrt(1 - beta2**t) + eps
        p.data -= step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (θ ← θ(1 - lr·λ) before the Adam step); λ defaults to 1e-2."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
