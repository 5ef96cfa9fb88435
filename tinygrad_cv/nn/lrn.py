"""Local response normalisation (AlexNet, 2012): ``torch.nn.LocalResponseNorm``'s formula and defaults."""
from __future__ import annotations

import numbers

from .. import functional as F
from .module import Module

__all__ = ["LocalResponseNorm"]


class LocalResponseNorm(Module):
    r"""Normalisation across neighbouring channels (``torch.nn.LocalResponseNorm``'s formula and defaults).

    For input (N, C, *)::

        b_c = a_c / (k + alpha / size · Σ_{c'} a_{c'}²)^beta

    with c' from c - size//2 to c + (size-1)//2, clipped to 0..C-1.

    PyTorch divides ``alpha`` by ``size``; the AlexNet paper does not, so its
    constants (k = 2, n = 5, α = 1e-4, β = 0.75) are ``LocalResponseNorm(5,
    alpha=5e-4, beta=0.75, k=2.0)`` here. Built from pad, slicing, sums and a
    power, all differentiable. Shape unchanged; no parameters.
    """

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"LocalResponseNorm: size must be a positive int, got {size!r}")
        self.size, self.alpha, self.beta, self.k = int(size), float(alpha), float(beta), float(k)

    def forward(self, input):
        if input.ndim < 3:
            raise ValueError(f"LocalResponseNorm: expected (N, C, *) input with at least 3 dims, "
                             f"got shape {input.shape}")
        c = input.shape[1]
        sq = input * input
        # zero channels on both sides, then a sliding sum of `size` channels
        pad = [0, 0] * (input.ndim - 2) + [self.size // 2, (self.size - 1) // 2]
        sq = F.pad(sq, tuple(pad))
        total = sq[:, 0:c]
        for j in range(1, self.size):
            total = total + sq[:, j:j + c]
        return input / (total * (self.alpha / self.size) + self.k) ** self.beta

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
