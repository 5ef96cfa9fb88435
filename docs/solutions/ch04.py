"""Chapter 4 — the gradient of a matrix product: reference solutions."""
import numpy as np

import tinygrad_cv as tg


class MatMul(tg.Function):
    """C = A B (batch axes broadcast); Ā = G Bᵀ, B̄ = Aᵀ G, each summed over the batch axes it was copied along."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.matmul(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        ga = (grad @ b.mT).sum_to(a.shape) if ctx.needs_input_grad[0] else None
        gb = (a.mT @ grad).sum_to(b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb
