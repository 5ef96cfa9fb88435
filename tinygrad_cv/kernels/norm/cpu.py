"""Batch normalisation (training mode), CPU twin: NumPy, as ``F.batch_norm`` and ``ops/nn.py`` ran it.

A handful of whole-array passes per direction, which NumPy runs as fast as a
compiled loop would at these sizes; the code is what the operations ran
before the kernel boundary existed, moved here verbatim (same operations,
same order: the same bits). Statistics are computed in two passes (the mean,
then squared deviations from it), never as E[x²] - E[x]², which cancels.
Arguments are checked by the caller (``kernels/contract.py``).
"""
from __future__ import annotations

import numpy as np


def _layout(x):
    axes = (0,) + tuple(range(2, x.ndim))
    bshape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    return axes, bshape


def batch_norm_stats(x):
    """(mean, var) per channel, each (C,); var is the biased variance."""
    axes, _ = _layout(x)
    mean = x.mean(axis=axes, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=axes, keepdims=True)
    c = x.shape[1]
    return mean.reshape(c), var.reshape(c)


def batch_norm_forward(x, mean, var, weight=None, bias=None, eps=1e-5):
    """(y, xhat, inv_std) with inv_std of shape (C,); see the contract."""
    _, bshape = _layout(x)
    inv_std = 1.0 / np.sqrt(var.reshape(bshape) + x.dtype.type(eps))
    xhat = (x - mean.reshape(bshape)) * inv_std
    y = xhat if weight is None else xhat * weight.reshape(bshape)
    if bias is not None:
        y = y + bias.reshape(bshape)
    return y.astype(x.dtype, copy=False), xhat, inv_std.reshape(x.shape[1])


def batch_norm_backward(grad, xhat, inv_std, weight=None, need_x=True, need_w=True, need_b=True):
    """(gx, gweight, gbias), the closed form; see the contract."""
    g = grad
    axes, bshape = _layout(g)
    n = g.size // g.shape[1]
    inv_std = inv_std.reshape(bshape)
    gx = gweight = gbias = None
    if need_x:
        gw = g if weight is None else g * weight.reshape(bshape)
        sum_gw = gw.sum(axis=axes, keepdims=True)
        sum_gw_xhat = (gw * xhat).sum(axis=axes, keepdims=True)
        gx = ((gw * n - sum_gw - xhat * sum_gw_xhat) * (inv_std / n)).astype(g.dtype, copy=False)
    if need_w:
        gweight = (g * xhat).sum(axis=axes).astype(weight.dtype, copy=False)
    if need_b:
        gbias = g.sum(axis=axes)
    return gx, gweight, gbias
