r"""Stochastic gradient descent with momentum, Nesterov momentum and weight decay (PyTorch's ``SGD``).

With learning rate γ, momentum μ, dampening τ, weight decay λ, each step does

    g ← -∇ if maximize else ∇           (ascent is descent on -f)
    g ← g + λ θ                          (L2 penalty λ/2 ‖θ‖²)
    if μ ≠ 0:
        b ← g                  on the first step (no dampening yet)
        b ← μ b + (1 - τ) g    afterwards
        g ← g + μ b  (Nesterov: look ahead along the velocity)   or   g ← b
    θ ← θ - γ g

The update of one parameter is the kernel twins' ``sgd_step`` (``kernels/optim/``).
"""
from __future__ import annotations

from .. import kernels
from .optimizer import Optimizer, _check

__all__ = ["SGD"]


class SGD(Optimizer):
    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _validate_group(self, group):
        _check(group["lr"] >= 0.0, f"Invalid learning rate: {group['lr']}")
        _check(group["momentum"] >= 0.0, f"Invalid momentum value: {group['momentum']}")
        _check(group["dampening"] >= 0.0, f"Invalid dampening value: {group['dampening']}")
        _check(group["weight_decay"] >= 0.0, f"Invalid weight_decay value: {group['weight_decay']}")
        if group["nesterov"]:
            _check(group["momentum"] > 0 and group["dampening"] == 0,
                   f"Nesterov momentum requires a momentum and zero dampening "
                   f"(got momentum={group['momentum']}, dampening={group['dampening']})")

    def _update(self, p, grad, state, group):
        mu = group["momentum"]
        first = mu != 0 and state.get("momentum_buffer") is None  # the first step starts the buffer at g
        if first:
            state["momentum_buffer"] = self._zeros_like(p)
        buf = state["momentum_buffer"].data if mu != 0 else None
        kernels.backend_for(p.data).sgd_step(p.data, grad, buf, group["lr"], mu, group["dampening"],
                                             group["weight_decay"], group["nesterov"], group["maximize"], first)
