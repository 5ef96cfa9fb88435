"""Reductions. ``axis`` is ``None`` (all axes) or a tuple of non-negative axes,
already normalised by the caller; ``keepdims`` keeps reduced axes as size 1.

The gradient of a reduction is the upstream gradient *spread back* over the
elements that were reduced: for a sum every element receives it unchanged,
for a max only the maxima do.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from .elementwise import BroadcastTo
from .movement import Reshape


def _keepdims_shape(in_shape, axis):
    axes = range(len(in_shape)) if axis is None else axis
    return tuple(1 if i in axes else n for i, n in enumerate(in_shape))


def _spread(grad, in_shape, axis, keepdims):
    """Broadcast a reduced gradient back to the input's shape."""
    kd = _keepdims_shape(in_shape, axis)
    if not keepdims and grad.shape != kd:
        grad = Reshape.apply(grad, kd)
    return BroadcastTo.apply(grad, in_shape)


class Sum(Function):
    """y = sum_i a_i over ``axis``; dy/da_i = 1, so every element gets the upstream gradient."""

    @staticmethod
    def forward(ctx, a, axis, keepdims):
        ctx.args = a.shape, axis, keepdims
        return np.sum(a, axis=axis, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        return _spread(grad, *ctx.args), None, None


class _Extreme(Function):
    """amax / amin. Tie rule: the gradient is split evenly between all elements
    equal to the extreme value (as ``torch.amax``), so it still sums to the
    upstream gradient. NaN inputs propagate (the result is NaN)."""

    reduce = None

    @classmethod
    def forward(cls, ctx, a, axis, keepdims):
        out = cls.reduce(a, axis=axis, keepdims=True)
        hit = (a == out) | (np.isnan(a) & np.isnan(out)) if a.dtype.kind == "f" else (a == out)
        ctx.weights = (hit / hit.sum(axis=axis, keepdims=True)).astype(a.dtype if a.dtype.kind == "f" else np.float64)
        ctx.args = a.shape, axis, keepdims
        return out if keepdims else np.squeeze(out, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        return _spread(grad, *ctx.args) * grad._wrap(ctx.weights), None, None


class Amax(_Extreme):
    reduce = staticmethod(np.max)


class Amin(_Extreme):
    reduce = staticmethod(np.min)
