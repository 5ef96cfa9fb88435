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
dividing √v by √(1 - β₂ᵗ), not before. The update of one parameter is the
kernel twins' ``adam_step`` (``kernels/optim/``: one compiled pass on the
CPU, one fused launch on the GPU).
"""
from __future__ import annotations

from .. import kernels
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
        beta1, beta2 = group["betas"]
        state["step"] += 1
        vmax = state.get("max_exp_avg_sq")
        kernels.backend_for(p.data).adam_step(
            p.data, grad, state["exp_avg"].data, state["exp_avg_sq"].data, None if vmax is None else vmax.data,
            state["step"], group["lr"], beta1, beta2, group["eps"], group["weight_decay"], self._decoupled,
            group["amsgrad"], group["maximize"])


class AdamW(Adam):
    """Adam with decoupled weight decay (θ ← θ(1 - lr·λ) before the Adam step); λ defaults to 1e-2."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
