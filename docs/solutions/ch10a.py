"""Chapter 10a — modules and initialisation: reference solutions."""
import numpy as np

import tinygrad_cv as tg
from tinygrad_cv import nn


class LeakyReLU(tg.Function):
    """max(x, αx); the local derivative is 1 for x > 0, α otherwise."""

    @staticmethod
    def forward(ctx, x, alpha):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return np.where(x > 0, x, alpha * x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        slope = tg.where(x > 0, 1.0, ctx.alpha).to(grad.dtype)
        return grad * slope, None


class Linear(nn.Module):
    """y = x Wᵀ + b with He-normal W ~ N(0, 2/in_features) and b = 0."""

    def __init__(self, in_features, out_features):
        super().__init__()
        std = np.sqrt(2.0 / in_features)
        self.weight = nn.Parameter(tg.randn(out_features, in_features) * std)
        self.bias = nn.Parameter(tg.zeros(out_features))

    def forward(self, x):
        return x @ self.weight.T + self.bias
