"""Chapter 12 — dropout and batch normalisation: reference solutions."""
import numpy as np

import tinygrad_cv as tg


class Dropout(tg.Function):
    """Inverted dropout with given uniforms u: y = x m, m = 1/(1-p) where u >= p, else 0; x̄ = ȳ m."""

    @staticmethod
    def forward(ctx, x, u, p):
        scale = 0.0 if p == 1 else 1.0 / (1.0 - p)    # p = 1 drops everything: no division by zero
        mask = np.where(u >= p, scale, 0.0).astype(x.dtype)
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad * mask, None, None


class BatchNorm(tg.Function):
    """Training-mode batch norm over every axis but 1, fused: the closed-form backward of chapter 12."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps=1e-5):
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        mu = x.mean(axis=axes, keepdims=True)
        var = x.var(axis=axes, keepdims=True)           # biased: divides by n
        s = 1 / np.sqrt(var + eps)
        xhat = (x - mu) * s
        ctx.save_for_backward(xhat, s, weight)
        ctx.axes, ctx.shape = axes, shape
        return xhat * weight.reshape(shape) + bias.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        xhat, s, weight = ctx.saved_tensors
        axes, shape = ctx.axes, ctx.shape
        n = grad.numel() // grad.shape[1]
        gxhat = grad * weight.reshape(shape)
        gx = s / n * (n * gxhat - gxhat.sum(axes, keepdim=True) - xhat * (gxhat * xhat).sum(axes, keepdim=True))
        return gx, (grad * xhat).sum(axes), grad.sum(axes)
