"""Chapter 7 — higher-order gradients: reference solutions."""
import numpy as np

import tinygrad_cv as tg


class Sigmoid(tg.Function):
    """σ(x); backward uses the saved output *node*, so it can be differentiated again."""

    @staticmethod
    def forward(ctx, x):
        out = 0.5 * (1 + np.tanh(0.5 * x))   # = 1/(1 + e^-x), without overflow
        ctx.save_for_backward(out)           # a raw output: saved_tensors gives back the output node
        return out

    @staticmethod
    def backward(ctx, grad):
        (s,) = ctx.saved_tensors
        return grad * s * (1 - s)            # tensor operations: recorded under create_graph=True


def hvp(f, x, v):
    """H v = ∇(∇f · v): a gradient with create_graph=True, a dot product with v, a second gradient."""
    (g,) = tg.grad(f(x), [x], create_graph=True)
    (hv,) = tg.grad((g * tg.tensor(v)).sum(), [x])
    return hv
