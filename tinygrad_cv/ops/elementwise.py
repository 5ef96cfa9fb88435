"""Elementwise operations: the forward on NumPy arrays, the local derivative next to it.

Binary operations broadcast like NumPy. Broadcasting copies an input along new
or size-1 axes, so by the chain rule every copy sends gradient back to the one
element it came from: the gradient of a broadcast input is the upstream
gradient *summed* over the broadcast axes. One helper, :func:`unbroadcast`,
does that for every binary operation.

Backward methods are written with `Tensor` operations, never raw NumPy, so the
backward pass is itself differentiable (``create_graph=True``).
"""
from __future__ import annotations

import numpy as np

from .. import kernels
from ..autograd import Function


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: the adjoint of broadcasting ``shape`` up to ``grad.shape``."""
    if grad.shape == tuple(shape):
        return grad
    return SumTo.apply(grad, tuple(shape))


def _sum_to_array(a, shape):
    lead = a.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and a.shape[i + lead] != 1)
    out = a.sum(axis=axes, keepdims=True) if axes else a
    return out.reshape(shape)


class SumTo(Function):
    """Sum over broadcast axes down to ``shape``; backward broadcasts back."""

    @staticmethod
    def forward(ctx, a, shape):
        ctx.in_shape = a.shape
        return _sum_to_array(a, shape)

    @staticmethod
    def backward(ctx, grad):
        return BroadcastTo.apply(grad, ctx.in_shape), None


class BroadcastTo(Function):
    """Copy along new / size-1 axes (``expand``); backward sums back."""

    @staticmethod
    def forward(ctx, a, shape):
        ctx.in_shape = a.shape
        # a read-only view with zero strides: no copy is made. Leaves' .grad is
        # always copied out, so nothing ever writes through such a view.
        return np.broadcast_to(a, shape)

    @staticmethod
    def backward(ctx, grad):
        return unbroadcast(grad, ctx.in_shape), None


# --- binary ------------------------------------------------------------------------
class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = a.shape, b.shape
        return a + b

    @staticmethod
    def backward(ctx, grad):  # d(a+b)/da = d(a+b)/db = 1
        sa, sb = ctx.shapes
        return unbroadcast(grad, sa), unbroadcast(grad, sb)


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = a.shape, b.shape
        return a - b

    @staticmethod
    def backward(ctx, grad):  # d(a-b)/da = 1, d(a-b)/db = -1
        sa, sb = ctx.shapes
        return unbroadcast(grad, sa), unbroadcast(-grad, sb)


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad):  # d(ab)/da = b, d(ab)/db = a
        a, b = ctx.saved_tensors
        ga = unbroadcast(grad * b, a.shape) if ctx.needs_input_grad[0] else None
        gb = unbroadcast(grad * a, b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        with np.errstate(divide="ignore", invalid="ignore"):
            return a / b

    @staticmethod
    def backward(ctx, grad):  # d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
        a, b = ctx.saved_tensors
        ga = unbroadcast(grad / b, a.shape) if ctx.needs_input_grad[0] else None
        gb = unbroadcast(-grad * a / (b * b), b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb


class Pow(Function):
    """a ** b with a tensor exponent."""

    @staticmethod
    def forward(ctx, a, b):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out = a**b
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, grad):  # d(a^b)/da = b a^(b-1), d(a^b)/db = a^b ln a
        a, b, out = ctx.saved_tensors
        ga = unbroadcast(grad * b * a ** (b - 1), a.shape) if ctx.needs_input_grad[0] else None
        gb = None
        if ctx.needs_input_grad[1]:
            # a^b ln a -> 0 as a -> 0 (for b > 0); take that limit instead of 0 * (-inf)
            at_zero = a.data == 0
            safe_a = Where.apply(at_zero, grad._wrap(np.ones((), a.dtype, like=a.data)), a) if at_zero.any() else a
            gb = unbroadcast(grad * out * safe_a.log(), b.shape)
        return ga, gb


class PowScalar(Function):
    """a ** p with a plain-number exponent p."""

    @staticmethod
    def forward(ctx, a, p):
        ctx.save_for_backward(a)
        ctx.p = p
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return a ** a.dtype.type(p) if a.dtype.kind == "f" else a**p

    @staticmethod
    def backward(ctx, grad):  # d(a^p)/da = p a^(p-1)
        (a,) = ctx.saved_tensors
        p = ctx.p
        if p == 0:
            return grad * 0, None
        return grad * p * (a ** (p - 1) if p != 1 else 1), None


class _Extreme2(Function):
    """Elementwise max / min of two tensors. Where a == b the gradient is split
    evenly between them (as PyTorch does); elsewhere it goes to the chosen side."""

    pick = wins = None  # np.maximum & np.greater, or np.minimum & np.less

    @classmethod
    def forward(cls, ctx, a, b):
        ctx.save_for_backward(a, b)
        return cls.pick(a, b)

    @classmethod
    def backward(cls, ctx, grad):
        a, b = ctx.saved_tensors
        wa = cls.wins(a.data, b.data) + 0.5 * (a.data == b.data)  # a's share of the gradient
        wa = grad._wrap(wa.astype(grad.dtype))
        return unbroadcast(grad * wa, a.shape), unbroadcast(grad * (1 - wa), b.shape)


class Maximum(_Extreme2):
    pick, wins = staticmethod(np.maximum), staticmethod(np.greater)


class Minimum(_Extreme2):
    pick, wins = staticmethod(np.minimum), staticmethod(np.less)


class Where(Function):
    """cond ? a : b. ``cond`` is a constant boolean array; gradient flows to the chosen side."""

    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.cond = cond
        ctx.shapes = a.shape, b.shape
        return np.where(cond, a, b)

    @staticmethod
    def backward(ctx, grad):
        sa, sb = ctx.shapes
        zero = grad._wrap(np.zeros((), dtype=grad.dtype, like=grad.data))
        cond = ctx.cond
        ga = unbroadcast(Where.apply(cond, grad, zero), sa) if ctx.needs_input_grad[1] else None
        gb = unbroadcast(Where.apply(cond, zero, grad), sb) if ctx.needs_input_grad[2] else None
        return None, ga, gb


# --- unary -------------------------------------------------------------------------
class Neg(Function):
    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, grad):  # d(-a)/da = -1
        return -grad


class Exp(Function):
    @staticmethod
    def forward(ctx, a):
        with np.errstate(over="ignore"):
            out = np.exp(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):  # d(e^a)/da = e^a
        (out,) = ctx.saved_tensors
        return grad * out


class Log(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(a)

    @staticmethod
    def backward(ctx, grad):  # d(ln a)/da = 1/a
        (a,) = ctx.saved_tensors
        return grad / a


class Sqrt(Function):
    @staticmethod
    def forward(ctx, a):
        with np.errstate(invalid="ignore"):
            out = np.sqrt(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):  # d(sqrt a)/da = 1 / (2 sqrt a)
        (out,) = ctx.saved_tensors
        return grad / (out * 2)


class Abs(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return np.abs(a)

    @staticmethod
    def backward(ctx, grad):  # d|a|/da = sign(a), 0 at the kink (as PyTorch)
        (a,) = ctx.saved_tensors
        return grad * grad._wrap(np.sign(a.data).astype(grad.dtype))


class Tanh(Function):
    @staticmethod
    def forward(ctx, a):
        out = np.tanh(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):  # d(tanh a)/da = 1 - tanh(a)^2
        (out,) = ctx.saved_tensors
        return grad * (1 - out * out)


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, a):
        # two forms so exp never sees a positive argument (no overflow for large |a|)
        e = np.exp(-np.abs(a))
        out = np.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):  # d(sigma a)/da = sigma(a) (1 - sigma(a))
        (out,) = ctx.saved_tensors
        return grad * out * (1 - out)


class ReLU(Function):
    """max(a, 0). The derivative is 1 where a > 0 and 0 elsewhere (0 at the kink, as PyTorch).

    A hot path of every CNN, so both directions run in the kernel twins.
    """

    @staticmethod
    def forward(ctx, a):
        y = kernels.backend_for(a).relu_forward(a)
        ctx.save_for_backward(y)  # the mask (y > 0) is read from the output: no separate mask array
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors  # the node, so an in-place change to y since forward is refused
        return ReLUGrad.apply(grad, y.data)


class ReLUGrad(Function):
    """g * (y > 0): linear in g, so its own backward is itself."""

    @staticmethod
    def forward(ctx, g, y):
        ctx.y = y
        return kernels.backend_for(g).relu_backward(g, y)

    @staticmethod
    def backward(ctx, grad):
        return ReLUGrad.apply(grad, ctx.y), None


class LeakyReLU(Function):
    """max(a, 0) + slope * min(a, 0); slope 0 is ReLU. The derivative at 0 is taken as slope."""

    @staticmethod
    def forward(ctx, a, negative_slope=0.0):
        positive = a > 0
        ctx.slope_mask = np.where(positive, 1, negative_slope).astype(a.dtype)
        return a * ctx.slope_mask

    @staticmethod
    def backward(ctx, grad):  # d/da = 1 for a > 0, slope otherwise
        return grad * grad._wrap(ctx.slope_mask), None


class Clip(Function):
    """Clamp to [lo, hi]; gradient 1 inside, 0 where clamped (on the bound itself: 1, as PyTorch)."""

    @staticmethod
    def forward(ctx, a, lo, hi):
        inside = np.ones(a.shape, dtype=bool, like=a)
        if lo is not None:
            inside &= a >= lo
        if hi is not None:
            inside &= a <= hi
        ctx.inside = inside.astype(a.dtype)
        return np.clip(a, lo, hi)

    @staticmethod
    def backward(ctx, grad):
        return grad * grad._wrap(ctx.inside), None, None


class Cast(Function):
    """Change dtype; the gradient is cast back to the input's dtype."""

    @staticmethod
    def forward(ctx, a, dtype):
        ctx.in_dtype = a.dtype
        return a.astype(dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad.to(ctx.in_dtype), None
