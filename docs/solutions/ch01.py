"""Chapter 1 — derivatives and the chain rule: reference solutions."""
import math

import tinygrad_cv as tg


class SiLU(tg.Function):
    """silu(a) = a σ(a);  silu'(a) = σ(a) (1 + a (1 - σ(a)))."""

    @staticmethod
    def forward(ctx, a):
        s = 1 / (1 + math.exp(-a)) if a >= 0 else math.exp(a) / (1 + math.exp(a))   # never overflows
        ctx.save_for_backward(a, s)   # a comes back as the input node, s as a constant Scalar
        return a * s

    @staticmethod
    def backward(ctx, grad):
        a, s = ctx.saved_values
        return grad * s * (1 + a * (1 - s))   # upstream gradient times the local derivative
