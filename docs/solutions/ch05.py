"""Chapter 5 — softmax and cross-entropy: reference solutions."""
import numpy as np

import tinygrad_cv as tg


class LogSoftmax(tg.Function):
    """log p = (z - m) - log Σ exp(z - m) along the last axis; z̄ = g - p Σ g."""

    @staticmethod
    def forward(ctx, z):
        m = z.max(axis=-1, keepdims=True)              # the max-subtraction trick: every exponent <= 0
        out = z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (logp,) = ctx.saved_tensors
        return grad - logp.exp() * grad.sum(-1, keepdim=True)


class CrossEntropy(tg.Function):
    """The mean cross-entropy of (N, C) logits against class indices; ∂L/∂z = (P - Y)/N."""

    @staticmethod
    def forward(ctx, z, target):
        m = z.max(axis=1, keepdims=True)
        logp = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
        n = z.shape[0]
        y = np.zeros_like(z)
        y[np.arange(n), target] = 1.0
        ctx.save_for_backward((np.exp(logp) - y) / n)   # the whole gradient, ready for backward
        return np.asarray(-logp[np.arange(n), target].mean())

    @staticmethod
    def backward(ctx, grad):
        (g,) = ctx.saved_tensors
        return grad * g, None                          # no gradient for the integer targets
