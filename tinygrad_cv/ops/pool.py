r"""Max and average pooling as differentiable Functions.

Max pooling keeps the largest value of each k×k window; its derivative is 1
for that one element and 0 for the others, so the backward pass *routes* each
output gradient to the position of its window's maximum (the argmax indices
saved by the forward pass). Tie rule: the first maximum in row-major order
within the window wins; a NaN in the window wins over numbers.

Average pooling divides each window's sum by its size, so each input element
receives gy / divisor from every window that contains it.

Both backward passes are linear in the output gradient and are themselves
Functions, so double backward works.
"""
from __future__ import annotations

import numpy as np

from .. import kernels
from ..autograd import Function


class MaxPool2d(Function):
    """Returns (values, indices); indices are int64 positions in each H×W plane, as PyTorch."""

    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding, dilation, ceil_mode):
        y, idx = kernels.backend_for(x).max_pool2d_forward(x, kernel_size, stride, padding, dilation, ceil_mode)
        ctx.idx = idx
        ctx.x_shape = x.shape
        return y, idx

    @staticmethod
    def backward(ctx, grad, _grad_idx):
        return MaxUnpoolAdd.apply(grad, ctx.idx, ctx.x_shape), None, None, None, None, None


class MaxUnpoolAdd(Function):
    """gx = zeros(x_shape); gx.flat_plane[idx] += gy — the adjoint of picking the argmax."""

    @staticmethod
    def forward(ctx, gy, idx, x_shape):
        ctx.idx = idx
        return kernels.backend_for(gy).max_pool2d_backward(gy, idx, x_shape)

    @staticmethod
    def backward(ctx, grad):
        n, c = ctx.idx.shape[:2]
        idx = ctx.idx.reshape(n, c, -1)
        picked = grad.reshape(n, c, -1).gather(2, np.maximum(idx, 0))
        if (idx < 0).any():  # windows that missed the input (index -1) took nothing
            picked = picked * grad._wrap((idx >= 0).astype(grad.dtype))
        return picked.reshape(ctx.idx.shape), None, None


class AvgPool2d(Function):
    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
        ctx.args = kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
        ctx.x_shape = x.shape
        return kernels.backend_for(x).avg_pool2d_forward(x, *ctx.args)

    @staticmethod
    def backward(ctx, grad):
        return (AvgPoolAdjoint.apply(grad, ctx.x_shape, ctx.args),) + (None,) * 6


class AvgPoolAdjoint(Function):
    """The transpose of average pooling (spread gy / divisor over each window)."""

    @staticmethod
    def forward(ctx, gy, x_shape, args):
        ctx.args = args
        return kernels.backend_for(gy).avg_pool2d_backward(gy, x_shape, *args)

    @staticmethod
    def backward(ctx, grad):
        return AvgPool2d.apply(grad, *ctx.args), None, None
