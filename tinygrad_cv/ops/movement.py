"""Operations that move data without computing on it: their gradients move it back.

reshape <-> reshape back, permute <-> inverse permute, indexing <-> scatter-add
into zeros, concatenate <-> slice, pad <-> crop.
"""
from __future__ import annotations

import numpy as np

from .. import kernels
from ..autograd import Function


class Reshape(Function):
    @staticmethod
    def forward(ctx, a, shape):
        ctx.in_shape = a.shape
        return a.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        return Reshape.apply(grad, ctx.in_shape), None


class Permute(Function):
    @staticmethod
    def forward(ctx, a, axes):
        ctx.axes = axes
        return a.transpose(axes)

    @staticmethod
    def backward(ctx, grad):
        return Permute.apply(grad, tuple(np.argsort(ctx.axes))), None


def _is_advanced(key):
    return any(isinstance(k, np.ndarray) for k in key)


class GetItem(Function):
    """a[key] with ints, slices, None, Ellipsis, integer arrays and boolean masks.

    Backward scatters the gradient into zeros of the input's shape; with
    integer arrays an element picked twice receives the sum of both gradients.
    """

    @staticmethod
    def forward(ctx, a, key):
        ctx.key = key
        ctx.in_shape = a.shape
        return a[key]

    @staticmethod
    def backward(ctx, grad):
        return IndexAdd.apply(grad, ctx.key, ctx.in_shape), None


class IndexAdd(Function):
    """zeros(shape)[key] += a  — the adjoint of ``GetItem``."""

    @staticmethod
    def forward(ctx, a, key, shape):
        ctx.key = key
        out = np.zeros(shape, dtype=a.dtype, like=a)
        if _is_advanced(key):
            np.add.at(out, key, a)  # unbuffered: repeated indices accumulate
        else:
            out[key] = a
        return out

    @staticmethod
    def backward(ctx, grad):
        return GetItem.apply(grad, ctx.key), None, None


class Gather(Function):
    """out[..., i, ...] = a[..., index[..., i, ...], ...] along ``axis`` (``torch.gather``)."""

    @staticmethod
    def forward(ctx, a, axis, index):
        ctx.args = axis, index, a.shape
        return np.take_along_axis(a, index, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        axis, index, shape = ctx.args
        return ScatterAdd.apply(grad, axis, index, shape), None, None


class ScatterAdd(Function):
    """zeros(shape) with ``a`` added at ``index`` along ``axis`` — the adjoint of ``Gather``."""

    @staticmethod
    def forward(ctx, a, axis, index, shape):
        ctx.args = axis, index
        return kernels.backend_for(a).scatter_add_along_axis(a, index, axis, shape)  # np.add.at; atomics on the GPU

    @staticmethod
    def backward(ctx, grad):
        axis, index = ctx.args
        return Gather.apply(grad, axis, index), None, None, None


class Concatenate(Function):
    """Join along ``axis``; each input's gradient is its slice of the upstream gradient."""

    @staticmethod
    def forward(ctx, *arrays, axis):
        ctx.axis = axis
        ctx.sizes = [a.shape[axis] for a in arrays]
        return np.concatenate(arrays, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        grads, start = [], 0
        lead = (slice(None),) * ctx.axis
        for need, n in zip(ctx.needs_input_grad, ctx.sizes):
            grads.append(GetItem.apply(grad, lead + (slice(start, start + n),)) if need else None)
            start += n
        return tuple(grads)


class Pad(Function):
    """Constant padding; ``widths`` is NumPy's ((before, after), ...) per axis.

    Negative widths crop. The gradient is the upstream gradient cropped back.
    """

    @staticmethod
    def forward(ctx, a, widths, value):
        ctx.widths = widths
        grow = [(max(b, 0), max(e, 0)) for b, e in widths]
        out = np.pad(a, grow, mode="constant", constant_values=value) if any(b or e for b, e in grow) else a
        crop = tuple(slice(max(-b, 0), out.shape[i] - max(-e, 0)) for i, (b, e) in enumerate(widths))
        return out[crop]

    @staticmethod
    def backward(ctx, grad):
        return Pad.apply(grad, tuple((-b, -e) for b, e in ctx.widths), 0), None, None
