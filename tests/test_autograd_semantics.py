"""The rules of the autograd engine, one test per rule.

What ``requires_grad`` means and how it spreads, leaves and ``grad_fn``,
accumulation into ``.grad``, ``backward``/``grad`` arguments, grad modes,
freeing of the graph, user-written Functions, gradcheck catching a wrong
backward, the Scalar engine, dtype preservation, and that a training loop
neither leaks memory nor builds reference cycles.
"""
from __future__ import annotations

import gc
import math
import re
import time
import tracemalloc
import weakref

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import Function, GradcheckError, Scalar, Tensor, enable_grad, gradcheck, no_grad
from tinygrad_cv.autograd import Context


def f64(a, requires_grad=True):
    return Tensor(np.asarray(a, dtype=np.float64), dtype=tg.float64, requires_grad=requires_grad)


# ----------------------------------------------------------------------------------------
# requires_grad, leaves and grad_fn
# ----------------------------------------------------------------------------------------
def test_requires_grad_propagates_from_any_input():
    a = f64([1.0, 2.0])
    b = f64([3.0, 4.0], requires_grad=False)
    assert (a * b).requires_grad and (b * a).requires_grad and (b + a).requires_grad
    assert not (b * b).requires_grad
    assert not (b * 2).requires_grad
    assert (a.exp().sum() * 3).requires_grad


def test_new_tensors_do_not_require_grad():
    assert not Tensor([1.0]).requires_grad
    assert not tg.zeros(2).requires_grad
    assert tg.zeros(2, requires_grad=True).requires_grad


def test_leaves_and_non_leaves():
    x = f64([1.0, 2.0])
    c = f64([1.0, 2.0], requires_grad=False)
    y = x * 2
    assert x.is_leaf and x.grad_fn is None
    assert c.is_leaf and c.grad_fn is None
    assert not y.is_leaf and y.grad_fn is not None
    assert y.grad_fn.name == "Mul" and "Mul" in repr(y.grad_fn)
    assert (c * 2).is_leaf  # nothing to differentiate: no graph recorded
    with no_grad():
        z = x * 2
    assert z.is_leaf and z.grad_fn is None and not z.requires_grad


def test_non_leaf_grad_stays_none_without_retain_grad():
    x = f64([1.0, 2.0])
    y = x * 3
    (y * y).sum().backward()
    assert y.grad is None
    np.testing.assert_allclose(x.grad.data, 18 * x.data)


def test_integer_outputs_never_require_grad():
    x = f64([[1.0, 5.0], [3.0, 2.0]])
    values, indices = x.max(1)
    assert values.requires_grad and not indices.requires_grad
    assert not x.argmax().requires_grad
    assert not x.to(tg.int64).requires_grad
    assert not (x > 1).requires_grad


# ----------------------------------------------------------------------------------------
# .grad accumulation
# ----------------------------------------------------------------------------------------
def test_grad_is_a_tensor_accumulated_until_reset():
    x = f64([1.0, -2.0, 3.0])
    assert x.grad is None
    (x * x).sum().backward()
    assert isinstance(x.grad, Tensor) and not x.grad.requires_grad
    assert x.grad.dtype == np.float64 and x.grad.shape == x.shape
    np.testing.assert_allclose(x.grad.data, 2 * x.data)
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.data, 2 * x.data + 3)
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.data, [3.0, 3.0, 3.0])


def test_grad_memory_is_owned_and_writable():
    """The stored gradient must not alias a broadcast view, the upstream gradient or another .grad."""
    x = f64(1.5)
    b = f64([1.0, 2.0, 3.0])
    v = np.array([1.0, 1.0, 1.0])
    (x + b).backward(v)  # x's gradient is a sum over a broadcast, b's is v itself
    np.testing.assert_allclose(x.grad.data, 3.0)
    b.grad.data[...] = 0  # an optimiser writes in place
    np.testing.assert_array_equal(v, [1.0, 1.0, 1.0])
    x.grad.zero_()
    np.testing.assert_array_equal(x.grad.data, 0.0)


def test_grad_setter_checks_shape():
    x = f64([1.0, 2.0])
    x.grad = np.array([5.0, 6.0])
    assert isinstance(x.grad, Tensor)
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        x.grad = np.zeros(3)


def test_leaf_that_does_not_require_grad_gets_no_grad():
    x = f64([1.0, 2.0])
    c = f64([3.0, 4.0], requires_grad=False)
    (x * c).sum().backward()
    assert c.grad is None
    np.testing.assert_allclose(x.grad.data, c.data)


# ----------------------------------------------------------------------------------------
# backward() arguments
# ----------------------------------------------------------------------------------------
def test_backward_on_a_scalar_and_on_a_one_element_tensor():
    x = f64([2.0, 3.0])
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, [4.0, 6.0])
    w = f64([[2.0]])
    (w * 5).backward()  # one element: the implicit gradient is 1
    np.testing.assert_allclose(w.grad.data, [[5.0]])


def test_backward_on_non_scalar_needs_a_gradient():
    x = f64([[1.0, 2.0], [3.0, 4.0]])
    y = x * x
    with pytest.raises(RuntimeError, match=r"\(2, 2\)"):
        y.backward()
    g = np.array([[1.0, 0.5], [-1.0, 2.0]])
    y.backward(g)
    np.testing.assert_allclose(x.grad.data, 2 * x.data * g)
    x.grad = None
    (x * 3).backward(Tensor(g, dtype=tg.float64))  # a Tensor gradient works too
    np.testing.assert_allclose(x.grad.data, 3 * g)


def test_backward_gradient_of_wrong_shape_is_a_value_error():
    x = f64([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        (x * 2).backward(np.ones(2))


def test_backward_on_several_roots():
    x = f64([1.0, 2.0])
    a, b = x * 2, x * x
    tg.backward([a, b], [np.ones(2), np.array([1.0, -1.0])])
    np.testing.assert_allclose(x.grad.data, 2 + 2 * x.data * np.array([1.0, -1.0]))


def test_backward_on_result_made_under_no_grad_raises():
    x = f64([1.0, 2.0])
    with no_grad():
        y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        f64([1.0], requires_grad=False).sum().backward()


# ----------------------------------------------------------------------------------------
# detach, grad modes, requires_grad_
# ----------------------------------------------------------------------------------------
def test_detach_shares_data_and_has_no_grad():
    x = f64([1.0, 2.0])
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.is_leaf and d.grad_fn is None
    assert np.shares_memory(d.data, y.data)
    d.data[0] = 10.0
    assert y.data[0] == 10.0
    (x * d).sum().backward()  # d is a constant: no gradient flows through it to x
    np.testing.assert_allclose(x.grad.data, d.data)


def test_no_grad_context_manager():
    x = f64([1.0, 2.0])
    assert tg.is_grad_enabled()
    with no_grad():
        assert not tg.is_grad_enabled()
        y = x * 2
    assert tg.is_grad_enabled()
    assert not y.requires_grad


def test_no_grad_restores_mode_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            1 / 0
    assert tg.is_grad_enabled()


def test_no_grad_decorator():
    x = f64([1.0, 2.0])

    @no_grad()
    def evaluate(t):
        assert not tg.is_grad_enabled()
        return t * 2

    y = evaluate(x)
    assert not y.requires_grad and tg.is_grad_enabled()


def test_no_grad_decorator_on_a_recursive_function_restores_the_mode():
    """One decorator instance serves every call; nested calls must not clobber each other's saved mode."""

    @no_grad()
    def depth(n):
        assert not tg.is_grad_enabled()
        return 0 if n == 0 else 1 + depth(n - 1)

    assert depth(3) == 3
    assert tg.is_grad_enabled()


def test_enable_grad_inside_no_grad():
    x = f64([1.0, 2.0])

    @enable_grad()
    def tracked(t):
        return t * 3

    with no_grad():
        with enable_grad():
            assert tg.is_grad_enabled()
            y = x * 2
        assert not tg.is_grad_enabled()
        z = tracked(x)
        assert not tg.is_grad_enabled()
    assert y.requires_grad and z.requires_grad
    (y + z).sum().backward()
    np.testing.assert_allclose(x.grad.data, [5.0, 5.0])


def test_set_grad_enabled():
    with tg.set_grad_enabled(False):
        assert not tg.is_grad_enabled()
        with tg.set_grad_enabled(True):
            assert tg.is_grad_enabled()
    assert tg.is_grad_enabled()


def test_requires_grad_in_place():
    x = Tensor([1.0, 2.0])
    assert x.requires_grad_() is x and x.requires_grad
    x.requires_grad_(False)
    assert not x.requires_grad
    y = x.requires_grad_() * 2
    with pytest.raises(RuntimeError, match="leaf"):
        y.requires_grad_(False)


@pytest.mark.parametrize("make", [
    lambda: Tensor([1, 2, 3], requires_grad=True),
    lambda: tg.tensor([1, 2, 3], requires_grad=True),
    lambda: tg.zeros(3, dtype=tg.int64, requires_grad=True),
    lambda: tg.arange(3).requires_grad_(),
    lambda: Tensor([True, False]).requires_grad_(),
])
def test_integer_tensors_cannot_require_grad(make):
    with pytest.raises(TypeError, match="floating point"):
        make()


# ----------------------------------------------------------------------------------------
# freeing the graph
# ----------------------------------------------------------------------------------------
def test_second_backward_raises_and_mentions_retain_graph():
    x = f64([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_graph_without_saved_values_is_freed_too():
    x = f64([1.0, 2.0])
    y = (x + 1).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_saved_values_are_released_after_backward():
    x = f64([1.0, 2.0])
    y = x * x
    ctx = y.grad_fn
    assert len(ctx.saved_tensors) == 2
    y.backward(np.ones(2))
    with pytest.raises(RuntimeError, match="retain_graph"):
        ctx.saved_tensors


def test_retain_graph_allows_a_second_backward():
    x = f64([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward(retain_graph=True)
    np.testing.assert_allclose(x.grad.data, 4 * x.data)
    y.backward()
    np.testing.assert_allclose(x.grad.data, 6 * x.data)
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_shared_subgraph_needs_retain_graph_for_the_second_loss():
    x = f64([1.0, 2.0])
    h = x.exp()
    l1, l2 = h.sum(), (h * 2).sum()
    l1.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        l2.backward()
    x.grad = None
    h = x.exp()
    l1, l2 = h.sum(), (h * 2).sum()
    l1.backward(retain_graph=True)
    l2.backward()
    np.testing.assert_allclose(x.grad.data, 3 * np.exp(x.data))


def test_grad_frees_the_graph_unless_retained():
    x = f64([1.0, 2.0])
    y = (x * x).sum()
    (g,) = tg.grad(y, [x], retain_graph=True)
    (g2,) = tg.grad(y, [x])
    np.testing.assert_allclose(g.data, g2.data)
    with pytest.raises(RuntimeError, match="retain_graph"):
        tg.grad(y, [x])


# ----------------------------------------------------------------------------------------
# retain_grad and tinygrad_cv.grad
# ----------------------------------------------------------------------------------------
def test_retain_grad_on_a_non_leaf():
    x = f64([1.0, 2.0])
    y = x * 2
    assert y.retain_grad() is y
    z = (y * y).sum()
    z.retain_grad()
    z.backward()
    np.testing.assert_allclose(y.grad.data, 2 * y.data)
    np.testing.assert_allclose(z.grad.data, 1.0)
    np.testing.assert_allclose(x.grad.data, 8 * x.data)
    with pytest.raises(RuntimeError):
        f64([1.0], requires_grad=False).retain_grad()


def test_grad_returns_gradients_without_touching_dot_grad():
    x = f64([1.0, 2.0])
    w = f64([3.0, -1.0])
    x.grad = np.array([100.0, 100.0])
    y = (x * w).sum()
    gx, gw = tg.grad(y, [x, w])
    np.testing.assert_allclose(gx.data, w.data)
    np.testing.assert_allclose(gw.data, x.data)
    np.testing.assert_allclose(x.grad.data, [100.0, 100.0])
    assert w.grad is None
    assert not gx.requires_grad


def test_grad_allow_unused():
    x, u = f64([1.0, 2.0]), f64([3.0])
    y = (x * x).sum()
    with pytest.raises(RuntimeError, match="allow_unused"):
        tg.grad(y, [x, u], retain_graph=True)
    gx, gu = tg.grad(y, [x, u], allow_unused=True)
    assert gu is None
    np.testing.assert_allclose(gx.data, 2 * x.data)


def test_grad_with_respect_to_an_intermediate_and_with_grad_outputs():
    x = f64([1.0, 2.0, 3.0])
    h = x * 2
    y = h.exp()
    v = np.array([1.0, -1.0, 0.5])
    gh, gx = tg.grad(y, [h, x], grad_outputs=v)
    np.testing.assert_allclose(gh.data, v * np.exp(h.data))
    np.testing.assert_allclose(gx.data, 2 * v * np.exp(h.data))


def test_grad_of_grad_gives_higher_derivatives():
    x = f64([0.5, -1.0, 2.0])
    y = (x**3).sum()
    (g,) = tg.grad(y, [x], create_graph=True)
    assert g.requires_grad
    np.testing.assert_allclose(g.data, 3 * x.data**2)
    (h,) = tg.grad(g.sum(), [x], create_graph=True)
    np.testing.assert_allclose(h.data, 6 * x.data)
    (t,) = tg.grad(h.sum(), [x])
    np.testing.assert_allclose(t.data, [6.0, 6.0, 6.0])


def test_backward_with_create_graph_makes_grad_differentiable():
    x = f64([0.3, -0.7])
    x.tanh().sum().backward(create_graph=True)
    g = x.grad
    assert g.requires_grad
    (h,) = tg.grad(g.sum(), [x])
    t = np.tanh(x.data)
    np.testing.assert_allclose(h.data, -2 * t * (1 - t**2))


# ----------------------------------------------------------------------------------------
# user-written Functions
# ----------------------------------------------------------------------------------------
class ScaledCube(Function):
    """y = s * x^3 * w, with a plain-number scale s: dy/dx = 3 s x^2 w, dy/dw = s x^3."""

    seen_needs = []

    @staticmethod
    def forward(ctx, x, s, w):
        ctx.save_for_backward(x, w)
        ctx.s = s
        return s * x**3 * w

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        ScaledCube.seen_needs.append(ctx.needs_input_grad)
        gx = grad * ctx.s * 3 * x * x * w if ctx.needs_input_grad[0] else None
        gw = (grad * ctx.s * x * x * x).sum_to(w.shape) if ctx.needs_input_grad[2] else None
        return gx, None, gw


def test_user_function_forward_backward_and_needs_input_grad():
    x = f64([[1.0, -2.0], [0.5, 3.0]])
    w = f64([2.0, -1.0], requires_grad=False)
    y = ScaledCube.apply(x, 0.5, w)
    assert y.requires_grad and y.grad_fn.name == "ScaledCube"
    np.testing.assert_allclose(y.data, 0.5 * x.data**3 * w.data)
    ScaledCube.seen_needs.clear()
    y.sum().backward()
    assert ScaledCube.seen_needs == [(True, False, False)]
    np.testing.assert_allclose(x.grad.data, 1.5 * x.data**2 * w.data)
    assert w.grad is None


def test_user_function_passes_gradcheck_first_and_second_order():
    x = f64([[1.0, -2.0], [0.5, 1.5]])
    w = f64([2.0, -1.0])
    assert gradcheck(lambda a, b: ScaledCube.apply(a, 0.5, b), [x, w])

    def grad_x(a, b):  # backward is written with Tensor ops, so it differentiates again
        with enable_grad():
            (g,) = tg.grad(ScaledCube.apply(a, 0.5, b).sum(), [a], create_graph=True)
        return g

    assert gradcheck(grad_x, [x, w])


def test_function_apply_needs_a_node():
    with pytest.raises(TypeError, match="needs at least one"):
        ScaledCube.apply(1.0, 2.0, 3.0)


class WrongShapeGrad(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        return grad.sum()


class TooManyGrads(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        return grad * 2, grad


def test_backward_returning_a_wrong_shape_or_count_is_caught():
    x = f64([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"WrongShapeGrad.*\(\).*\(2,\)"):
        WrongShapeGrad.apply(x).sum().backward()
    with pytest.raises(RuntimeError, match="TooManyGrads.*2 gradients for 1 input"):
        TooManyGrads.apply(x).sum().backward()


# ----------------------------------------------------------------------------------------
# gradcheck catches wrong gradients
# ----------------------------------------------------------------------------------------
class ForgotTheTwo(Function):
    """y = x * z with a deliberately wrong dy/dz (and a right dy/dx)."""

    @staticmethod
    def forward(ctx, x, z):
        ctx.save_for_backward(x, z)
        return x * z

    @staticmethod
    def backward(ctx, grad):
        x, z = ctx.saved_tensors
        return grad * z, grad * x * 0.5  # wrong: should be grad * x


def _values_in_message(msg):
    m = re.search(r"analytic (?:np\.float64\()?([-+\deE.]+)\)? vs numerical (?:np\.float64\()?([-+\deE.]+)", msg)
    assert m, msg
    return float(m.group(1)), float(m.group(2))


def test_gradcheck_names_the_input_and_both_values():
    x = f64([1.0, 2.0, 3.0])
    z = f64([4.0, -5.0, 6.0])
    v = np.array([1.0, 2.0, -1.0])
    with pytest.raises(GradcheckError) as err:
        gradcheck(ForgotTheTwo.apply, [x, z], grad_output=v)
    msg = str(err.value)
    assert "input 1" in msg and "index (0,)" in msg
    analytic, numerical = _values_in_message(msg)
    assert analytic == pytest.approx(0.5 * v[0] * x.data[0])
    assert numerical == pytest.approx(v[0] * x.data[0], rel=1e-6)
    assert gradcheck(ForgotTheTwo.apply, [x, z], grad_output=v, raise_exception=False) is False
    z.requires_grad_(False)  # only the correct input left
    assert gradcheck(ForgotTheTwo.apply, [x, z], grad_output=v) is True


def test_gradcheck_with_its_own_random_upstream_gradient_catches_it():
    x, z = f64(np.linspace(-1, 1, 6).reshape(2, 3)), f64(np.linspace(1, 2, 6).reshape(2, 3))
    with pytest.raises(GradcheckError, match="input 1"):
        gradcheck(ForgotTheTwo.apply, [x, z])


def test_gradcheck_random_direction_path_catches_a_wrong_backward():
    rng = np.random.default_rng(0)
    x, z = f64(rng.standard_normal((40, 50))), f64(rng.standard_normal((40, 50)))
    with pytest.raises(GradcheckError, match="input 1.*random direction"):
        gradcheck(ForgotTheTwo.apply, [x, z], max_full=16)
    assert gradcheck(lambda a, b: a * b, [x, z], max_full=16)


def test_gradcheck_refuses_float32_inputs():
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda a: a * 2, [Tensor([1.0, 2.0], requires_grad=True)])


def test_gradcheck_works_on_non_contiguous_inputs():
    base = np.arange(12.0).reshape(3, 4) / 7
    for arr in (base.T, base[:, ::2], base[::-1]):
        x = tg.from_numpy(arr).requires_grad_()
        assert gradcheck(lambda a: a * a.exp(), [x])
    bad = tg.from_numpy(base.T).requires_grad_()
    with pytest.raises(GradcheckError):
        gradcheck(lambda a: ForgotTheTwo.apply(a, a), [bad])


# ----------------------------------------------------------------------------------------
# several paths to one input
# ----------------------------------------------------------------------------------------
def test_diamond_graph_sums_both_paths():
    a = f64([0.5, -1.5])
    b = a * 2
    c = a + 3
    d = (b * c).sum()  # d = 2a(a + 3) -> dd/da = 4a + 6
    d.backward()
    np.testing.assert_allclose(a.grad.data, 4 * a.data + 6)


def test_a_times_a():
    a = f64([0.5, -1.5, 2.0])
    (a * a).backward(np.ones(3))
    np.testing.assert_allclose(a.grad.data, 2 * a.data)
    a.grad = None
    (a * a * a).sum().backward()
    np.testing.assert_allclose(a.grad.data, 3 * a.data**2)
    a.grad = None
    (a - a).sum().backward()
    np.testing.assert_allclose(a.grad.data, 0.0)
    a.grad = None
    (a / a).sum().backward()
    np.testing.assert_allclose(a.grad.data, 0.0, atol=1e-15)


def test_intermediate_used_many_times():
    x = f64([0.3, 0.8])
    h = x.tanh()
    y = (h * h + h.exp() + h).sum()
    y.backward()
    t = np.tanh(x.data)
    np.testing.assert_allclose(x.grad.data, (2 * t + np.exp(t) + 1) * (1 - t**2))


# ----------------------------------------------------------------------------------------
# The Scalar engine
# ----------------------------------------------------------------------------------------
def scalar_fd(f, values, h=1e-6):
    """Central differences of a function of Scalars, one partial derivative per argument."""
    grads = []
    for i in range(len(values)):
        up = [Scalar(v + (h if j == i else 0.0)) for j, v in enumerate(values)]
        down = [Scalar(v - (h if j == i else 0.0)) for j, v in enumerate(values)]
        grads.append((f(*up).data - f(*down).data) / (2 * h))
    return grads


def _sig(a):
    return 1 / (1 + math.exp(-a))


SCALAR_OPS = {
    # name: (function of Scalars, same function of floats, arity, domain of the arguments)
    "add": (lambda a, b: a + b, lambda a, b: a + b, 2, "any"),
    "sub": (lambda a, b: a - b, lambda a, b: a - b, 2, "any"),
    "mul": (lambda a, b: a * b, lambda a, b: a * b, 2, "any"),
    "div": (lambda a, b: a / b, lambda a, b: a / b, 2, "nonzero"),
    "pow2": (lambda a: a**2, lambda a: a**2, 1, "any"),
    "pow3": (lambda a: a**3, lambda a: a**3, 1, "any"),
    "pow-1": (lambda a: a**-1, lambda a: a**-1, 1, "nonzero"),
    "pow0.5": (lambda a: a**0.5, lambda a: a**0.5, 1, "positive"),
    "pow-2.5": (lambda a: a**-2.5, lambda a: a**-2.5, 1, "positive"),
    "neg": (lambda a: -a, lambda a: -a, 1, "any"),
    "exp": (lambda a: a.exp(), math.exp, 1, "any"),
    "log": (lambda a: a.log(), math.log, 1, "positive"),
    "tanh": (lambda a: a.tanh(), math.tanh, 1, "any"),
    "sigmoid": (lambda a: a.sigmoid(), _sig, 1, "any"),
    "relu": (lambda a: a.relu(), lambda a: max(a, 0.0), 1, "nonzero"),
    "radd": (lambda a: 2.5 + a, lambda a: 2.5 + a, 1, "any"),
    "rsub": (lambda a: 2.5 - a, lambda a: 2.5 - a, 1, "any"),
    "rmul": (lambda a: 3 * a, lambda a: 3 * a, 1, "any"),
    "rdiv": (lambda a: 2 / a, lambda a: 2 / a, 1, "nonzero"),
    "add-number": (lambda a: a + 1, lambda a: a + 1, 1, "any"),
    "sub-number": (lambda a: a - 1.5, lambda a: a - 1.5, 1, "any"),
    "mul-number": (lambda a: a * -2, lambda a: a * -2, 1, "any"),
    "div-number": (lambda a: a / 4, lambda a: a / 4, 1, "any"),
    "expression": (lambda a, b: (a * b + b.exp()).tanh() - a / (b * b + 1) + (a**2 + 1).log(),
                   lambda a, b: math.tanh(a * b + math.exp(b)) - a / (b * b + 1) + math.log(a**2 + 1), 2, "any"),
}

DOMAINS = {
    "any": st.floats(-2, 2),
    "nonzero": st.floats(0.2, 2) | st.floats(-2, -0.2),
    "positive": st.floats(0.2, 3),
}


@pytest.mark.parametrize("name", sorted(SCALAR_OPS))
@settings(max_examples=15)
@given(data=st.data())
def test_scalar_op_against_finite_differences(name, data):
    f, ref, arity, domain = SCALAR_OPS[name]
    values = [data.draw(DOMAINS[domain], label=f"x{i}") for i in range(arity)]
    xs = [Scalar(v) for v in values]
    y = f(*xs)
    assert isinstance(y, Scalar)
    assert y.data == pytest.approx(ref(*values), rel=1e-12, abs=1e-12)
    y.backward()
    for x, numerical in zip(xs, scalar_fd(f, values)):
        assert x.grad == pytest.approx(numerical, rel=1e-5, abs=1e-6)


def test_scalar_gradients_add_over_all_paths():
    a, b = Scalar(2.0), Scalar(-3.0)
    c = a * b  # -6
    d = c + a  # -4
    e = d * d + c.tanh() + a  # a is used along four paths
    e.backward()
    # de/dd = 2d; dd/dc = 1, dd/da = 1; dc/da = b, dc/db = a
    de_dc = 2 * d.data + (1 - math.tanh(c.data) ** 2)
    assert a.grad == pytest.approx(de_dc * b.data + 2 * d.data + 1)
    assert b.grad == pytest.approx(de_dc * a.data)
    assert c.grad == pytest.approx(de_dc)  # every Scalar node keeps its gradient
    assert d.grad == pytest.approx(2 * d.data)


def test_scalar_defaults_and_accumulation():
    a = Scalar(1.5)
    assert a.requires_grad and a.grad == 0.0 and a.is_leaf
    (a * a).backward()
    assert a.grad == pytest.approx(3.0)
    (a * 2).backward()
    assert a.grad == pytest.approx(5.0)
    a.zero_grad()
    assert a.grad == 0.0
    const = Scalar(2.0, requires_grad=False)
    (a * const).backward()
    assert const.grad == 0.0 and a.grad == pytest.approx(2.0)


def test_scalar_second_order():
    x = Scalar(0.7)
    (g,) = tg.grad(x.tanh() * x, [x], create_graph=True)
    (h,) = tg.grad(g, [x])
    t = math.tanh(0.7)
    # d2/dx2 [x tanh x] = 2 sech^2 x - 2 x tanh x sech^2 x
    assert h.data == pytest.approx(2 * (1 - t * t) - 2 * 0.7 * t * (1 - t * t))


def test_scalar_to_dot_has_values_and_grads():
    a, b = Scalar(2.0, label="a"), Scalar(-3.0, label="b")
    y = a * b + a
    y.label = "y"
    y.backward()
    dot = y.to_dot()
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    assert "a | data 2 | grad -2" in dot
    assert "b | data -3 | grad 2" in dot
    assert "y | data -4 | grad 1" in dot
    assert 'label="Mul"' in dot and 'label="Add"' in dot
    assert dot.count("->") == 6  # a, b -> Mul -> ab; ab, a -> Add -> y


def test_scalar_chain_of_a_million_nodes():
    """Deep graphs: the walk uses an explicit stack, never Python recursion.

    y = x + x + ... + x (a chain 1,000,000 additions deep, x feeding every one),
    so dy/dx = 1,000,001 — which also checks that a million contributions to
    one leaf are all added up.
    """
    n = 1_000_000
    # The graph has no reference cycles (see the memory test), so the cycle
    # collector has nothing to find; left on, it rescans the growing heap
    # again and again and doubles the run time.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        x = Scalar(0.5)
        y = x
        for _ in range(n):
            y = y + x
        t1 = time.perf_counter()
        y.backward()
        t2 = time.perf_counter()
        assert y.data == pytest.approx(0.5 * (n + 1))
        assert x.grad == n + 1
        del y  # freeing a million-deep chain by refcounting must not overflow the C stack either
    finally:
        if gc_was_enabled:
            gc.enable()
    print(f"\n1M-node Scalar chain: build {t1 - t0:.2f} s, backward {t2 - t1:.2f} s")


# ----------------------------------------------------------------------------------------
# dtypes
# ----------------------------------------------------------------------------------------
DTYPE_EXPRESSIONS = {
    "x*2.0": lambda x: x * 2.0,
    "2.0*x": lambda x: 2.0 * x,
    "2.0-x": lambda x: 2.0 - x,
    "x+1": lambda x: x + 1,
    "x**2": lambda x: x**2,
    "x**0.5": lambda x: (x * x + 1) ** 0.5,
    "2.0**x": lambda x: 2.0**x,
    "x/3": lambda x: x / 3,
    "1/x": lambda x: 1 / (x * x + 1),
    "exp-log": lambda x: (x.exp() + 1).log(),
    "tanh-sigmoid-relu": lambda x: x.tanh() + x.sigmoid() + x.relu() + x.leaky_relu(0.1),
    "clip-abs-sqrt": lambda x: x.clip(-0.5, 0.5) + (x.abs() + 1).sqrt(),
    "maximum-where": lambda x: tg.maximum(x, 0.1) + tg.where(x > 0, x, 0.5),
    "mean": lambda x: x.mean(),
    "mean-dim": lambda x: x.mean(1),
    "var": lambda x: x.var(),
    "std": lambda x: x.std(0),
    "sum-amax": lambda x: x.sum(0) + x.amax(1).sum() + x.max(1).values.sum(),
    "softmax": lambda x: x.softmax(-1),
    "log_softmax": lambda x: F.log_softmax(x, 0),
    "cross_entropy": lambda x: F.cross_entropy(x, Tensor([0, 2, 1])),
    "cross_entropy-smoothing": lambda x: F.cross_entropy(x, Tensor([0, 2, 1]), label_smoothing=0.1,
                                                         weight=[1, 2, 3, 4]),
    "cross_entropy-probs": lambda x: F.cross_entropy(x, np.full((3, 4), 0.25)),
    "nll_loss": lambda x: F.nll_loss(x, Tensor([0, 2, 1]), weight=np.ones(4)),
    "mse_loss": lambda x: F.mse_loss(x, tg.zeros_like(x)) + F.mse_loss(x, 0.5 * x.detach(), reduction="sum"),
    "matmul": lambda x: x @ x.T,
    "movement": lambda x: F.pad(x, (1, 1))[:, ::2].reshape(-1)[[0, 0, 3]],
    "cat-stack": lambda x: tg.cat([x, x * 2], 1).sum(1) + tg.stack([x, x]).sum((0, 2)),
}


@pytest.mark.parametrize("name", sorted(DTYPE_EXPRESSIONS))
@pytest.mark.parametrize("dtype", [tg.float32, tg.float64])
def test_float_dtype_is_preserved_end_to_end(name, dtype):
    """float32 stays float32 (Python numbers do not upcast to float64), float64 stays float64."""
    rng = np.random.default_rng(1)
    x = Tensor(rng.standard_normal((3, 4)), dtype=dtype, requires_grad=True)
    y = DTYPE_EXPRESSIONS[name](x)
    assert y.dtype == dtype, f"{name}: {y.dtype}"
    y.backward(np.ones(y.shape, dtype=dtype))
    assert x.grad.dtype == dtype
    assert np.all(np.isfinite(x.grad.data))


def test_float32_gradients_flow_through_every_intermediate_as_float32():
    x = Tensor([[0.5, -1.0], [2.0, 0.25]], requires_grad=True)
    assert x.dtype == np.float32
    h = (x * 2.0 + 1).tanh()
    h.retain_grad()
    loss = F.cross_entropy(h @ x, Tensor([1, 0]))
    assert loss.dtype == np.float32
    loss.backward()
    assert h.grad.dtype == np.float32 and x.grad.dtype == np.float32


def test_python_float_data_defaults_to_float32_and_float64_arrays_stay_float64():
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor(np.array([1.0, 2.0])).dtype == np.float64
    assert (Tensor([1.0]) + Tensor(np.array([1.0]))).dtype == np.float64  # promotion, as PyTorch


def test_int_tensor_with_float_number_gives_float32():
    i = Tensor([1, 2, 3])
    assert i.dtype == np.int64
    y = i + 0.5
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.data, [1.5, 2.5, 3.5])
    assert (i * 2.0).dtype == np.float32 and (2.5 - i).dtype == np.float32
    assert (i + 2).dtype == np.int64 and (i * 3).dtype == np.int64
    assert (i / 2).dtype == np.float32  # true division
    np.testing.assert_allclose((i / 2).data, [0.5, 1.0, 1.5])
    assert (i + Tensor([0.5, 0.5, 0.5])).dtype == np.float32
    assert i.mean().dtype == np.float32


# ----------------------------------------------------------------------------------------
# memory
# ----------------------------------------------------------------------------------------
def test_training_loop_does_not_grow_memory_or_make_cycles():
    """1,000 SGD steps of a small MLP: memory flat, the graph freed by refcounting alone.

    The graph holds its outputs weakly, so once the loss is dropped every
    intermediate dies at once — checked at every step with the cycle
    collector switched off. Memory is compared at steps 100 and 1000: what
    stays allocated between steps, and the peak of one step (a graph that
    kept growing across steps would show in both). A full collection runs
    before each measurement because it also empties CPython's free lists
    (which fill up over the first ~2000 steps and would look like growth); it
    runs with DEBUG_SAVEALL, so anything it finds is kept and reported
    instead of silently reclaimed.
    """
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((16, 8)).astype(np.float32))
    target = Tensor(rng.integers(0, 4, 16))
    w1 = Tensor(rng.standard_normal((8, 16)).astype(np.float32) * 0.3, requires_grad=True)
    b1 = tg.zeros(16, requires_grad=True)
    w2 = Tensor(rng.standard_normal((16, 4)).astype(np.float32) * 0.3, requires_grad=True)
    b2 = tg.zeros(4, requires_grad=True)
    params = [w1, b1, w2, b2]

    def step():
        hidden = (x @ w1 + b1).relu()
        logits = hidden @ w2 + b2
        loss = F.cross_entropy(logits, target)
        loss.backward()
        with no_grad():
            for p in params:
                p.data = (p - 0.05 * p.grad).data
                p.grad = None
        return loss.item(), weakref.ref(hidden), weakref.ref(logits)

    def measured_step():
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        loss, *refs = step()
        peak = tracemalloc.get_traced_memory()[1] - before
        gc.collect()
        return loss, refs, before, peak, tracemalloc.get_traced_memory()[0]

    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    tracemalloc.start()
    try:
        stats = {}
        for i in range(1000):
            if i in (99, 999):
                loss, refs, *stats[i] = measured_step()
            else:
                loss, *refs = step()
            if i == 0:
                first_loss = loss
            assert all(r() is None for r in refs), f"step {i}: graph kept alive after the loss was dropped"
        cyclic = [o for o in gc.garbage if isinstance(o, (Tensor, Context))]
    finally:
        tracemalloc.stop()
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert not cyclic, f"{len(cyclic)} graph objects were only reclaimable by the cycle collector"
    (before_100, peak_100, after_100), (before_1000, peak_1000, after_1000) = stats[99], stats[999]
    assert before_1000 - before_100 < 4096, stats
    assert after_1000 - after_100 < 4096, stats
    assert peak_1000 - peak_100 < 4096, stats
    assert loss < first_loss  # and it does learn


def test_create_graph_gradients_are_collected():
    """With create_graph, x.grad references x's graph (a cycle, as in PyTorch); the collector frees it."""
    x = f64([1.0, 2.0])
    (x * x).sum().backward(create_graph=True)
    assert x.grad.grad_fn is not None
    ref = weakref.ref(x.grad)
    del x
    gc.collect()
    assert ref() is None
