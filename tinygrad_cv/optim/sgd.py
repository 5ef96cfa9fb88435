r"""Stochastic gradient descent with momentum, Nesterov momentum and weight decay (PyTorch's ``SGD``).

With learning rate γ, momentum μ, dampening τ, weight decay λ, each step does

    g ← -∇ if maximize else ∇           (ascent is descent on -f)
    g ← g + λ θ                          (L2 penalty λ/2 ‖θ‖²)
    if μ ≠ 0:
        b ← g                  on the first step (no dampening yet)
        b ← μ b + (1 - τ) g    afterwards
        g ← g + μ b  (Nesterov: look ahead along the velocity)   or   g ← b
    θ ← θ - γ g
"""
from __future__ import annotations

from ..tensor import Tensor
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
        lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
        if mu != 0 and "momentum_buffer" not in state and p.device == "cuda":
            state["momentum_buffer"] = self._zeros_like(p)
            first = True
        else:
            first = False
        if self._fused_on_gpu(p, grad, state):
            from ..kernels.cuda_optim import sgd_step

            buf = state.get("momentum_buffer")
            sgd_step(p.data.device_array(), grad.device_array(), None if buf is None else buf.data.device_array(),
                     lr, mu, group["dampening"], wd, group["nesterov"], group["maximize"], first)
            return
        g = -grad if group["maximize"] else grad
        if wd != 0:
            g = g + wd * p.data
        if mu != 0:
            buf = state.get("momentum_buffer")
            if buf is None or first:
                buf = state["momentum_buffer"] = Tensor._wrap(g.copy())
            else:
                b = buf.data
                b *= mu
                b += (1 - group["dampening"]) * g
            g = g + mu * buf.data if group["nesterov"] else buf.data
        p.data -= lr * g
