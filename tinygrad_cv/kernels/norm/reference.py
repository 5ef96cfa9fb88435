r"""Batch normalisation (training mode), reference twin: the formulas in NumPy.

x is (N, C, *spatial); every statistic is per channel c, over the n = N·prod(spatial)
values of that channel (all axes but 1):

    mean[c] = 1/n Σ x[:, c]          var[c] = 1/n Σ (x[:, c] - mean[c])²      (biased)
    inv_std = 1 / √(var + eps)       x̂ = (x - mean) · inv_std                y = x̂ · weight + bias

and, for g = dL/dy and gw = g · weight (the paths through mean and var included),

    dL/dx = inv_std / n · (n gw - Σ gw - x̂ Σ(gw x̂))      dL/dweight = Σ g x̂      dL/dbias = Σ g
"""
from __future__ import annotations

import numpy as np


def _axes_and_shape(x):
    """The reduction axes (all but 1) and the broadcast shape (1, C, 1, ...) of a per-channel vector."""
    return (0,) + tuple(range(2, x.ndim)), (1, x.shape[1]) + (1,) * (x.ndim - 2)


def batch_norm_stats(x):
    """(mean, var), each (C,): the batch mean and the biased variance of every channel."""
    axes, _ = _axes_and_shape(x)
    mean = x.mean(axis=axes)
    _, bshape = _axes_and_shape(x)
    var = ((x - mean.reshape(bshape)) ** 2).mean(axis=axes)
    return mean, var


def batch_norm_forward(x, mean, var, weight=None, bias=None, eps=1e-5):
    """(y, xhat, inv_std (C,)) for given statistics (C,) or (1, C, 1, ...)."""
    _, bshape = _axes_and_shape(x)
    c = x.shape[1]
    inv_std = (1 / np.sqrt(np.reshape(var, c) + eps)).astype(x.dtype)
    xhat = (x - np.reshape(mean, bshape)) * inv_std.reshape(bshape)
    y = xhat
    if weight is not None:
        y = y * np.reshape(weight, bshape)
    if bias is not None:
        y = y + np.reshape(bias, bshape)
    return y.astype(x.dtype), xhat.astype(x.dtype), inv_std


def batch_norm_backward(grad, xhat, inv_std, weight=None, need_x=True, need_w=True, need_b=True):
    """(dL/dx, dL/dweight, dL/dbias), each None unless asked for."""
    axes, bshape = _axes_and_shape(grad)
    n = grad.size // grad.shape[1] if grad.shape[1] else 0
    gw = grad if weight is None else grad * np.reshape(weight, bshape)
    gx = gweight = gbias = None
    if need_x:
        gx = (np.reshape(inv_std, bshape) / n
              * (n * gw - gw.sum(axis=axes, keepdims=True) - xhat * (gw * xhat).sum(axis=axes, keepdims=True)))
        gx = gx.astype(grad.dtype)
    if need_w:
        gweight = (grad * xhat).sum(axis=axes).astype(grad.dtype)
    if need_b:
        gbias = grad.sum(axis=axes).astype(grad.dtype)
    return gx, gweight, gbias
