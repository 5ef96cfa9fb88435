"""`Scalar`: the teaching engine — one Python float, its gradient, and the graph.

Each operation is a tiny `Function`: ``forward`` computes the value,
``backward`` multiplies the upstream gradient by the local derivative, which
is written right next to it. Everything else (subtraction, division, ...) is
built from these few primitives, so there are only eight rules to check.

>>> a, b = Scalar(2.0), Scalar(-3.0)
>>> y = a * b + a            # dy/da = b + 1 = -2,  dy/db = a = 2
>>> y.backward()
>>> a.grad, b.grad
(-2.0, 2.0)
"""
from __future__ import annotations

import math

from .autograd import Function, Node

__all__ = ["Scalar"]


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, grad):  # d(a+b)/da = 1, d(a+b)/db = 1
        return grad, grad


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad):  # d(ab)/da = b, d(ab)/db = a
        a, b = ctx.saved_values
        return grad * b, grad * a


class Pow(Function):
    @staticmethod
    def forward(ctx, a, p):  # p is a plain number
        ctx.save_for_backward(a)
        ctx.p = p
        return _safe(lambda: a**p)

    @staticmethod
    def backward(ctx, grad):  # d(a^p)/da = p a^(p-1)
        (a,) = ctx.saved_values
        if ctx.p == 0:  # a^0 is constant; avoids 0 * a^-1 = 0 * inf at a = 0
            return grad * 0.0, None
        return grad * ctx.p * a ** (ctx.p - 1), None


class Exp(Function):
    @staticmethod
    def forward(ctx, a):
        out = _safe(lambda: math.exp(a), overflow=math.inf)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):  # d(e^a)/da = e^a
        (out,) = ctx.saved_values
        return grad * out


class Log(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return math.log(a) if a > 0 else (-math.inf if a == 0 else math.nan)

    @staticmethod
    def backward(ctx, grad):  # d(ln a)/da = 1/a
        (a,) = ctx.saved_values
        return grad / a


class Tanh(Function):
    @staticmethod
    def forward(ctx, a):
        out = math.tanh(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):  # d(tanh a)/da = 1 - tanh(a)^2
        (out,) = ctx.saved_values
        return grad * (1 - out * out)


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, a):
        # two forms so that exp never overflows
        out = 1 / (1 + math.exp(-a)) if a >= 0 else math.exp(a) / (1 + math.exp(a))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):  # d(sigma a)/da = sigma(a) (1 - sigma(a))
        (out,) = ctx.saved_values
        return grad * out * (1 - out)


class ReLU(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.positive = a > 0
        return a if a > 0 else 0.0

    @staticmethod
    def backward(ctx, grad):  # d relu(a)/da = 1 if a > 0 else 0 (0 at the kink)
        return grad * (1.0 if ctx.positive else 0.0)


def _safe(f, overflow=math.nan):
    """Python raises where NumPy returns inf/nan; the engine follows NumPy."""
    try:
        r = f()
    except OverflowError:
        return overflow
    except ZeroDivisionError:
        return math.inf
    return math.nan if isinstance(r, complex) else float(r)


class Scalar(Node):
    """A single float that remembers how it was computed.

    ``Scalar(x)`` makes a leaf whose ``.grad`` (a float, 0.0 until a
    ``backward()``) receives d(output)/d(this) — on every node of the graph,
    not only leaves, so each intermediate gradient can be inspected.
    """

    __slots__ = ("label",)

    def __init__(self, data, label: str = "", requires_grad: bool = True):
        if isinstance(data, Scalar):
            data = data.data
        self.data = float(data)
        self.requires_grad = bool(requires_grad)
        self._ctx = None
        self._out_index = 0
        self._grad = None
        self._retains_grad = True  # teaching engine: every node keeps its gradient
        self.label = label

    # --- hooks used by the graph walk ----------------------------------------
    @classmethod
    def _wrap(cls, data):
        s = object.__new__(cls)
        s.data = float(data)
        s.requires_grad = False
        s._ctx = None
        s._out_index = 0
        s._grad = None
        s._retains_grad = True
        s.label = ""
        return s

    def _seed_grad(self):
        return Scalar(1.0, requires_grad=False)

    @classmethod
    def _zeros(cls, meta):
        return cls._wrap(0.0)

    def _as_grad(self, g):
        return g if isinstance(g, Scalar) else Scalar(g, requires_grad=False)

    # --- public API -------------------------------------------------------------
    @property
    def grad(self) -> float:
        """d(output)/d(self) as a float; 0.0 before any backward()."""
        return 0.0 if self._grad is None else self._grad.data

    @grad.setter
    def grad(self, value):
        self._grad = None if value is None or value == 0 else Scalar(value, requires_grad=False)

    @property
    def grad_node(self):
        """The gradient as a `Scalar` (part of a graph after ``create_graph=True``)."""
        return self._grad

    def zero_grad(self):
        self._grad = None

    def item(self) -> float:
        return self.data

    def __repr__(self):
        return f"Scalar(data={self.data:.6g}, grad={self.grad:.6g})"

    def __float__(self):
        return self.data

    def to_dot(self, rankdir: str = "LR") -> str:
        """Graphviz DOT text of the graph that produced this value (values and gradients)."""
        from .viz import to_dot

        return to_dot(self, rankdir=rankdir)

    # --- operations ---------------------------------------------------------------
    def __add__(self, other):
        return Add.apply(self, _lift(other))

    def __mul__(self, other):
        return Mul.apply(self, _lift(other))

    def __pow__(self, p):
        if not isinstance(p, (int, float)):
            raise TypeError("Scalar ** p supports plain number exponents only")
        return Pow.apply(self, p)

    def exp(self):
        return Exp.apply(self)

    def log(self):
        return Log.apply(self)

    def tanh(self):
        return Tanh.apply(self)

    def sigmoid(self):
        return Sigmoid.apply(self)

    def relu(self):
        return ReLU.apply(self)

    # composites: built from the primitives above, so they need no backward of their own
    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-_lift(other))

    def __truediv__(self, other):
        return self * _lift(other) ** -1

    def __radd__(self, other):
        return _lift(other) + self

    def __rmul__(self, other):
        return _lift(other) * self

    def __rsub__(self, other):
        return _lift(other) - self

    def __rtruediv__(self, other):
        return _lift(other) / self

    # comparisons look at the values only (no gradient)
    def __lt__(self, other):
        return self.data < _value(other)

    def __le__(self, other):
        return self.data <= _value(other)

    def __gt__(self, other):
        return self.data > _value(other)

    def __ge__(self, other):
        return self.data >= _value(other)

    __hash__ = object.__hash__


def _lift(x) -> Scalar:
    """Plain numbers become constant Scalars (they need no gradient)."""
    if isinstance(x, Scalar):
        return x
    if isinstance(x, (int, float)):
        return Scalar._wrap(x)
    return NotImplemented if x is None else _bad_operand(x)


def _bad_operand(x):
    raise TypeError(f"cannot combine a Scalar with {type(x).__name__}")


def _value(x) -> float:
    return x.data if isinstance(x, Scalar) else float(x)
