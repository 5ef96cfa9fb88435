"""Chapter 3 — tensors and broadcasting: reference solutions."""

import tinygrad_cv as tg


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes along which an input of ``shape`` was copied."""
    shape = tuple(shape)
    lead = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(lead)))          # the leading axes the input did not have
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


class SquaredDifference(tg.Function):
    """(a - b)²; d/da = 2(a - b), d/db = -2(a - b), each summed back to its input's shape."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return (a - b) ** 2

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        g = grad * 2 * (a - b)
        ga = g.sum_to(a.shape) if ctx.needs_input_grad[0] else None
        gb = (-g).sum_to(b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb
