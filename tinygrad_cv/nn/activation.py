"""Activation layers: thin modules around the functions in ``tinygrad_cv.functional``."""
from __future__ import annotations

from .. import functional as F
from .module import Module

__all__ = ["ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax"]


class ReLU(Module):
    """max(x, 0). ``inplace`` is accepted for PyTorch compatibility; the result is always a new tensor."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.relu(input)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """x for x > 0, ``negative_slope`` · x otherwise."""

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def forward(self, input):
        return F.leaky_relu(input, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class Sigmoid(Module):
    def forward(self, input):
        return F.sigmoid(input)


class Tanh(Module):
    def forward(self, input):
        return F.tanh(input)


def _require_dim(name, dim):
    # PyTorch guesses a dim when none is given (and warns); guessing wrong
    # normalises over the batch, so here the dim must be said.
    if dim is None:
        raise ValueError(f"{name}: dim is required (e.g. {name}(dim=1) for (N, C) scores)")
    return dim


class Softmax(Module):
    """softmax along ``dim`` (required)."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = _require_dim("Softmax", dim)

    def forward(self, input):
        return F.softmax(input, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """log_softmax along ``dim`` (required)."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = _require_dim("LogSoftmax", dim)

    def forward(self, input):
        return F.log_softmax(input, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"
