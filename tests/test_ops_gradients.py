"""Property tests for every differentiable Tensor operation.

Each test checks two things on random float64 inputs (many of them
non-contiguous views, see ``strategies.py``):

1. the forward value against NumPy / SciPy;
2. the gradient against central finite differences with ``gradcheck``, which
   backpropagates a *random* upstream gradient v and compares vᵀJ entry by
   entry. Reducing with ``.sum()`` first would only test v = 1, where e.g. a
   gradient that is summed over the wrong axis, or sent to the wrong element,
   can still come out right.

The last section checks second derivatives: gradcheck applied to
x -> d(f(x)·v)/dx, built with ``create_graph=True``, verifies Hessian-vector
products.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import special
from strategies import (
    as_tensor,
    broadcastable_shapes,
    distinct_array,
    divisor_array,
    floats_array,
    normalize_dims,
    positive_array,
    reduction_dims,
    shapes,
    tensors,
)

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import Tensor, enable_grad, gradcheck

SEEDS = st.integers(0, 2**32 - 1)
# In float64 with gradcheck's step of 1e-6 the finite differences are good to
# ~1e-9 on these small, well-scaled inputs, so much tighter tolerances than
# gradcheck's defaults (atol 1e-5, rtol 1e-3) are safe — and catch a gradient
# that is off by a factor of 1.001.
GRAD_ATOL, GRAD_RTOL = 1e-7, 1e-5


def check(data, fn, inputs, expected, rtol=1e-10, atol=1e-12):
    """Forward against ``expected``, gradients against finite differences, inputs left untouched."""
    before = [np.array(t.data, copy=True) for t in inputs]
    out = fn(*inputs)
    assert isinstance(out, Tensor)
    expected = np.asarray(expected, dtype=np.float64)
    assert out.shape == expected.shape, f"shape {out.shape}, expected {expected.shape}"
    assert out.dtype == np.float64, f"dtype {out.dtype}: float64 inputs must give a float64 result"
    np.testing.assert_allclose(out.data, expected, rtol=rtol, atol=atol)
    assert gradcheck(fn, inputs, atol=GRAD_ATOL, rtol=GRAD_RTOL, seed=data.draw(SEEDS, label="upstream-gradient seed"))
    for t, b in zip(inputs, before):
        np.testing.assert_array_equal(t.data, b, err_msg="an operation modified its input")


# ----------------------------------------------------------------------------------------
# Arithmetic
# ----------------------------------------------------------------------------------------
BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a.add(b), np.add),
    "sub": (lambda a, b: a - b, lambda a, b: a.sub(b), np.subtract),
    "mul": (lambda a, b: a * b, lambda a, b: a.mul(b), np.multiply),
    "div": (lambda a, b: a / b, lambda a, b: a.div(b), np.divide),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@given(data=st.data())
def test_binary_op_with_broadcasting(name, data):
    op, method, ref = BINARY[name]
    sa, sb = data.draw(broadcastable_shapes(allow_empty=True), label="shapes")
    a = data.draw(tensors(floats_array(sa)), label="a")
    b = data.draw(tensors(divisor_array(sb) if name == "div" else floats_array(sb),
                          requires_grad=data.draw(st.booleans(), label="b requires grad")), label="b")
    fn = data.draw(st.sampled_from([op, method]), label="form")
    check(data, fn, [a, b], ref(a.data, b.data))


@pytest.mark.parametrize("name", sorted(BINARY))
@given(data=st.data())
def test_binary_op_with_python_number_and_ndarray(name, data):
    """Reflected operators: ``2.5 - x``, ``x / 3``, ``ndarray * x`` — the Tensor gets the gradient."""
    op, _, ref = BINARY[name]
    tensor_on_left = data.draw(st.booleans(), label="tensor on the left")
    divides_by_other = name == "div" and tensor_on_left
    kind = data.draw(st.sampled_from(["int", "float", "ndarray"]), label="other operand")
    if kind == "ndarray":  # broadcasting either way
        shape, other_shape = data.draw(broadcastable_shapes(), label="shapes")
        other = data.draw(divisor_array(other_shape) if divides_by_other else floats_array(other_shape), label="other")
    else:
        shape = data.draw(shapes(allow_empty=True), label="shape")
        if kind == "int":
            other = data.draw(st.integers(-3, 3).filter(lambda v: v != 0 or not divides_by_other), label="other")
        else:
            other = data.draw(st.floats(-3, 3).filter(lambda v: abs(v) >= 0.5 or not divides_by_other), label="other")
    values = divisor_array(shape) if name == "div" and not tensor_on_left else floats_array(shape)
    x = data.draw(tensors(values), label="x")
    fn = (lambda t: op(t, other)) if tensor_on_left else (lambda t: op(other, t))
    expected = ref(x.data, other) if tensor_on_left else ref(other, x.data)
    check(data, fn, [x], expected)


@given(data=st.data())
def test_pow_with_number_exponent(data):
    p = data.draw(st.sampled_from([0, 1, 2, 3, -1, -2, 0.5, -0.5, 1.5, 2.5]) | st.floats(-3, 3), label="p")
    shape = data.draw(shapes(allow_empty=True), label="shape")
    if isinstance(p, int) and p >= 0:
        values = floats_array(shape)  # integer powers are smooth everywhere, negative bases included
    elif isinstance(p, int):
        values = divisor_array(shape)
    else:
        values = positive_array(shape)
    x = data.draw(tensors(values), label="x")
    fn = data.draw(st.sampled_from([lambda t: t**p, lambda t: t.pow(p)]), label="form")
    check(data, fn, [x], np.power(x.data, p))


@given(data=st.data())
def test_pow_with_tensor_exponent(data):
    """a ** b with both tensors (positive base, broadcasting) and ``number ** tensor`` (rpow)."""
    sa, sb = data.draw(broadcastable_shapes(), label="shapes")
    a = data.draw(tensors(positive_array(sa)), label="a")
    b = data.draw(tensors(floats_array(sb), requires_grad=data.draw(st.booleans())), label="b")
    check(data, lambda x, y: x**y, [a, b], np.power(a.data, b.data))
    c = data.draw(st.floats(0.5, 3.0), label="base")
    check(data, lambda y: c**y, [as_tensor(b.data)], np.power(c, b.data))


# ----------------------------------------------------------------------------------------
# Elementwise functions
# ----------------------------------------------------------------------------------------
def _sigmoid(x):
    return special.expit(x)


UNARY = {
    # name: (forms, numpy reference, values)
    "neg": ([lambda t: -t, lambda t: t.neg()], np.negative, floats_array),
    "exp": ([lambda t: t.exp()], np.exp, floats_array),
    "log": ([lambda t: t.log()], np.log, positive_array),
    "sqrt": ([lambda t: t.sqrt()], np.sqrt, positive_array),
    "abs": ([lambda t: t.abs(), lambda t: abs(t)], np.abs, lambda s: floats_array(s, avoid=(0.0,))),
    "tanh": ([lambda t: t.tanh(), F.tanh], np.tanh, lambda s: floats_array(s, -3, 3)),
    "sigmoid": ([lambda t: t.sigmoid(), F.sigmoid], _sigmoid, lambda s: floats_array(s, -6, 6)),
    "relu": ([lambda t: t.relu(), F.relu], lambda x: np.maximum(x, 0), lambda s: floats_array(s, avoid=(0.0,))),
    "square": ([lambda t: t.square()], np.square, floats_array),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@given(data=st.data())
def test_unary_op(name, data):
    forms, ref, values = UNARY[name]
    shape = data.draw(shapes(allow_empty=True), label="shape")
    x = data.draw(tensors(values(shape)), label="x")
    fn = data.draw(st.sampled_from(forms), label="form")
    check(data, fn, [x], ref(x.data))


@given(data=st.data())
def test_leaky_relu(data):
    slope = data.draw(st.sampled_from([0.01, 0.2]) | st.floats(0.0, 1.5), label="negative_slope")
    shape = data.draw(shapes(allow_empty=True), label="shape")
    x = data.draw(tensors(floats_array(shape, avoid=(0.0,))), label="x")
    fn = data.draw(st.sampled_from([lambda t: t.leaky_relu(slope), lambda t: F.leaky_relu(t, slope),
                                    lambda t: F.leaky_relu(t, negative_slope=slope)]), label="form")
    check(data, fn, [x], np.where(x.data > 0, x.data, slope * x.data))


@given(data=st.data())
def test_leaky_relu_default_slope(data):
    x = data.draw(tensors(floats_array(data.draw(shapes()), avoid=(0.0,))), label="x")
    check(data, lambda t: t.leaky_relu(), [x], np.where(x.data > 0, x.data, 0.01 * x.data))


@given(data=st.data())
def test_clip(data):
    lo = data.draw(st.none() | st.floats(-1.5, 1.0), label="min")
    hi = data.draw(st.none() | st.floats(-1.0, 1.5), label="max")
    assume(lo is not None or hi is not None)
    if lo is not None and hi is not None:
        assume(hi - lo >= 0.3)
    bounds = tuple(v for v in (lo, hi) if v is not None)
    x = data.draw(tensors(floats_array(data.draw(shapes(allow_empty=True)), avoid=bounds)), label="x")
    fn = data.draw(st.sampled_from([lambda t: t.clip(lo, hi), lambda t: t.clamp(min=lo, max=hi)]), label="form")
    check(data, fn, [x], np.clip(x.data, lo, hi))


def _separated(shape, offset):
    """Values on a 0.2-grid shifted by ``offset``: two such arrays with offsets 0 and 0.1 never tie."""
    return hnp.arrays(np.int64, shape, elements=st.integers(-10, 10)).map(lambda i: 0.2 * i + offset)


@pytest.mark.parametrize("name", ["maximum", "minimum"])
@given(data=st.data())
def test_maximum_minimum(name, data):
    sa, sb = data.draw(broadcastable_shapes(), label="shapes")
    off_a, off_b = data.draw(st.sampled_from([(0.0, 0.1), (0.1, 0.0)]), label="offsets")
    a = data.draw(tensors(_separated(sa, off_a)), label="a")
    b = data.draw(tensors(_separated(sb, off_b), requires_grad=data.draw(st.booleans())), label="b")
    ref = getattr(np, name)
    fn = data.draw(st.sampled_from([lambda x, y: getattr(tg, name)(x, y), lambda x, y: getattr(x, name)(y)]))
    check(data, fn, [a, b], ref(a.data, b.data))
    c = 0.05  # a number never within 0.05 of the grid
    check(data, lambda x: getattr(x, name)(c), [as_tensor(a.data)], ref(a.data, c))


@given(data=st.data())
def test_where(data):
    sc, sa, sb = data.draw(broadcastable_shapes(n=3), label="shapes")
    cond = data.draw(hnp.arrays(np.bool_, sc), label="cond")
    a = data.draw(tensors(floats_array(sa)), label="a")
    b = data.draw(tensors(floats_array(sb), requires_grad=data.draw(st.booleans())), label="b")
    form = data.draw(st.sampled_from(["function", "method", "ndarray-cond"]), label="form")
    if form == "function":
        fn = lambda x, y: tg.where(Tensor(cond), x, y)  # noqa: E731
    elif form == "method":
        fn = lambda x, y: x.where(Tensor(cond), y)  # noqa: E731
    else:
        fn = lambda x, y: tg.where(cond, x, y)  # noqa: E731
    check(data, fn, [a, b], np.where(cond, a.data, b.data))
    check(data, lambda x: tg.where(Tensor(cond), x, 0.5), [as_tensor(a.data)], np.where(cond, a.data, 0.5))
    check(data, lambda y: tg.where(Tensor(cond), -1.0, y), [as_tensor(b.data)], np.where(cond, -1.0, b.data))


# ----------------------------------------------------------------------------------------
# Reductions
# ----------------------------------------------------------------------------------------
def _reduce(t, name, dim, keep, alias, **kw):
    f = getattr(t, name)
    if alias:
        return f(axis=dim, keepdims=keep, **kw)
    return f(dim, keepdim=keep, **kw) if keep or dim is not None else f(**kw)


REDUCTIONS = {"sum": np.sum, "mean": np.mean, "amax": np.max, "amin": np.min}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@given(data=st.data())
def test_reduction(name, data):
    shape = data.draw(shapes(allow_empty=name == "sum"), label="shape")
    values = distinct_array if name in ("amax", "amin") else floats_array
    x = data.draw(tensors(values(shape)), label="x")
    dim = data.draw(reduction_dims(len(shape)), label="dim")
    keep = data.draw(st.booleans(), label="keepdim")
    alias = data.draw(st.booleans(), label="numpy alias")
    expected = REDUCTIONS[name](x.data, axis=normalize_dims(dim, len(shape)), keepdims=keep)
    check(data, lambda t: _reduce(t, name, dim, keep, alias), [x], expected)


@pytest.mark.parametrize("name", ["max", "min"])
@given(data=st.data())
def test_max_min_without_dim_is_amax_amin(name, data):
    x = data.draw(tensors(distinct_array(data.draw(shapes()))), label="x")
    check(data, lambda t: getattr(t, name)(), [x], getattr(np, name)(x.data))


@pytest.mark.parametrize("name", ["var", "std"])
@given(data=st.data())
def test_var_std(name, data):
    # sides >= 2: every reduction covers >= 2 entries, so n - correction > 0 and std > 0
    shape = data.draw(shapes(min_dims=1, min_side=2, max_side=3), label="shape")
    x = data.draw(tensors(distinct_array(shape)), label="x")
    dim = data.draw(reduction_dims(len(shape)), label="dim")
    keep = data.draw(st.booleans(), label="keepdim")
    alias = data.draw(st.booleans(), label="numpy alias")
    correction = data.draw(st.sampled_from([None, 0, 1]), label="correction")
    kw = {} if correction is None else {"correction": correction}
    ddof = 1 if correction is None else correction  # PyTorch's default is the unbiased estimate
    expected = getattr(np, name)(x.data, axis=normalize_dims(dim, len(shape)), keepdims=keep, ddof=ddof)
    check(data, lambda t: _reduce(t, name, dim, keep, alias, **kw), [x], expected)


@given(data=st.data())
def test_var_unbiased_flag(data):
    x = data.draw(tensors(distinct_array(data.draw(shapes(min_dims=1, min_side=2)))), label="x")
    check(data, lambda t: t.var(unbiased=False), [x], np.var(x.data))
    check(data, lambda t: t.var(unbiased=True), [as_tensor(x.data)], np.var(x.data, ddof=1))


@pytest.mark.parametrize("name", ["max", "min"])
@given(data=st.data())
def test_max_min_with_dim(name, data):
    """``max(dim)`` returns (values, indices); the gradient goes to the selected element."""
    shape = data.draw(shapes(), label="shape")
    x = data.draw(tensors(distinct_array(shape)), label="x")
    n = max(len(shape), 1)  # a 0-d tensor takes dim 0 / -1, as in PyTorch
    dim = data.draw(st.integers(-n, n - 1), label="dim")
    keep = data.draw(st.booleans(), label="keepdim")
    alias = data.draw(st.booleans(), label="numpy alias")

    def fn(t):
        res = getattr(t, name)(axis=dim, keepdims=keep) if alias else getattr(t, name)(dim, keepdim=keep)
        return res.values

    res = getattr(x, name)(dim, keepdim=keep)
    values, indices = res
    arg = np.argmax if name == "max" else np.argmin
    axis = dim if shape else None
    np.testing.assert_array_equal(indices.data, arg(x.data, axis=axis, keepdims=keep and bool(shape)))
    assert indices.dtype == np.int64 and not indices.requires_grad and indices.shape == values.shape
    assert res.values is values and res.indices is indices
    check(data, fn, [x], getattr(np, name)(x.data, axis=axis, keepdims=keep))


# ----------------------------------------------------------------------------------------
# Movement
# ----------------------------------------------------------------------------------------
@given(data=st.data())
def test_reshape_and_view(data):
    shape = data.draw(shapes(allow_empty=True), label="shape")
    x = data.draw(tensors(floats_array(shape)), label="x")
    target = list(data.draw(st.permutations(shape), label="permuted sides"))
    target[len(target):] = [1] * data.draw(st.integers(0, 2), label="extra ones")
    target = data.draw(st.permutations(target))
    if target and 0 not in target and data.draw(st.booleans(), label="use -1"):
        target[data.draw(st.integers(0, len(target) - 1))] = -1
    target = tuple(target)
    form = data.draw(st.sampled_from(["tuple", "varargs", "view"]), label="form")
    fn = {
        "tuple": lambda t: t.reshape(target),
        "varargs": lambda t: t.reshape(*target),
        "view": lambda t: t.view(target),
    }[form]
    check(data, fn, [x], x.data.reshape(target))


@given(data=st.data())
def test_flatten(data):
    shape = data.draw(shapes(allow_empty=True), label="shape")
    x = data.draw(tensors(floats_array(shape)), label="x")
    if not shape:
        check(data, lambda t: t.flatten(), [x], x.data.reshape(1))
        return
    n = len(shape)
    s = data.draw(st.integers(0, n - 1), label="start")
    e = data.draw(st.integers(s, n - 1), label="end")
    start = s - n if data.draw(st.booleans()) else s
    end = e - n if data.draw(st.booleans()) else e
    expected = x.data.reshape(shape[:s] + (int(np.prod(shape[s:e + 1])),) + shape[e + 1:])
    check(data, lambda t: t.flatten(start, end), [x], expected)


@given(data=st.data())
def test_transpose_permute_T(data):
    shape = data.draw(shapes(min_dims=2, allow_empty=True), label="shape")
    x = data.draw(tensors(floats_array(shape)), label="x")
    n = len(shape)
    d0, d1 = data.draw(st.integers(-n, n - 1), label="dim0"), data.draw(st.integers(-n, n - 1), label="dim1")
    check(data, lambda t: t.transpose(d0, d1), [x], np.swapaxes(x.data, d0, d1))
    check(data, lambda t: t.transpose(), [x], np.swapaxes(x.data, -2, -1))
    perm = tuple(data.draw(st.permutations(range(n)), label="perm"))
    check(data, lambda t: t.permute(perm), [x], np.transpose(x.data, perm))
    check(data, lambda t: t.permute(*[p - n for p in perm]), [x], np.transpose(x.data, perm))
    check(data, lambda t: t.T, [x], x.data.T)


@given(data=st.data())
def test_squeeze_unsqueeze(data):
    shape = data.draw(shapes(max_side=2, allow_empty=True), label="shape")  # plenty of size-1 axes
    x = data.draw(tensors(floats_array(shape)), label="x")
    n = len(shape)
    dim = data.draw(reduction_dims(n), label="dim") if n else None
    axes = range(n) if dim is None else normalize_dims(dim, n)
    expected = x.data.reshape(tuple(s for i, s in enumerate(shape) if not (i in axes and s == 1)))
    check(data, lambda t: t.squeeze(dim), [x], expected)
    d = data.draw(st.integers(-n - 1, n), label="unsqueeze dim")
    check(data, lambda t: t.unsqueeze(d), [x], np.expand_dims(x.data, d))


@given(data=st.data())
def test_expand(data):
    shape = data.draw(shapes(max_side=3, max_numel=16), label="shape")
    x = data.draw(tensors(floats_array(shape)), label="x")
    lead = data.draw(st.lists(st.integers(1, 3), max_size=2), label="new leading axes")
    target = list(lead)
    for s in shape:
        if s == 1:
            target.append(data.draw(st.integers(1, 3)))
        else:
            target.append(-1 if data.draw(st.booleans()) else s)
    target = tuple(target)
    full = tuple(lead) + tuple(shape[i] if t == -1 else t for i, t in enumerate(target[len(lead):]))
    form = data.draw(st.sampled_from(["tuple", "varargs", "broadcast_to", "expand_as"]), label="form")
    fn = {
        "tuple": lambda t: t.expand(target),
        "varargs": lambda t: t.expand(*target),
        "broadcast_to": lambda t: t.broadcast_to(full),
        "expand_as": lambda t: t.expand_as(tg.zeros(full, dtype=tg.float64)),
    }[form]
    check(data, fn, [x], np.broadcast_to(x.data, full))


@given(data=st.data())
def test_getitem_basic(data):
    """ints (negative too), slices with any step, None and Ellipsis."""
    shape = data.draw(shapes(min_dims=1, allow_empty=True), label="shape")
    x = data.draw(tensors(floats_array(shape)), label="x")
    if len(shape) == 1:
        key = data.draw(st.slices(shape[0]) | st.integers(-shape[0], shape[0] - 1) if shape[0] else st.slices(0))
    else:
        key = data.draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True), label="key")
    check(data, lambda t: t[key], [x], x.data[key])


def _int_index(n, min_size=1, max_size=5):
    """Indices into an axis of size n, negatives included, with at least one repeated entry."""
    return st.lists(st.integers(-n, n - 1), min_size=min_size, max_size=max_size).map(lambda v: np.array(v + v[:1]))


@given(data=st.data())
def test_getitem_integer_arrays_accumulate_repeats(data):
    """x[..., idx, ...] with repeated indices: each pick sends its gradient back, and they add up."""
    shape = data.draw(shapes(min_dims=1), label="shape")
    x = data.draw(tensors(floats_array(shape)), label="x")
    n = len(shape)
    axis = data.draw(st.integers(0, n - 1), label="axis")
    idx = data.draw(_int_index(shape[axis]), label="index")
    if data.draw(st.booleans(), label="2-d index"):
        idx = np.stack([idx, idx[::-1]])
    form = data.draw(st.sampled_from(["ndarray", "list", "tensor"]), label="index form")
    k = {"ndarray": idx, "list": idx.tolist(), "tensor": Tensor(idx)}[form]
    key = (slice(None),) * axis + (k,)
    if axis + 1 < n and data.draw(st.booleans(), label="trailing Ellipsis"):
        key = key + (Ellipsis,)
    check(data, lambda t: t[key], [x], x.data[(slice(None),) * axis + (idx,)])
    if n >= 2:  # two index arrays broadcast together, plus a slice
        i0 = data.draw(_int_index(shape[0], max_size=3), label="i0")
        i1 = data.draw(_int_index(shape[1], min_size=len(i0) - 1, max_size=len(i0) - 1), label="i1")
        check(data, lambda t: t[i0, i1], [x], x.data[i0, i1])
        check(data, lambda t: t[i0, 1:], [x], x.data[i0, 1:])


@given(data=st.data())
def test_getitem_boolean_mask(data):
    shape = data.draw(shapes(min_dims=1), label="shape")
    x = data.draw(tensors(floats_array(shape)), label="x")
    k = data.draw(st.integers(1, len(shape)), label="mask dims")
    mask = data.draw(hnp.arrays(np.bool_, shape[:k]), label="mask")
    form = data.draw(st.sampled_from(["ndarray", "tensor"]), label="mask form")
    key = mask if form == "ndarray" else Tensor(mask)
    check(data, lambda t: t[key], [x], x.data[mask])
    check(data, lambda t: t[t > 0.25], [x], x.data[x.data > 0.25])


def _gather_ref(a, dim, index):
    out = np.empty(index.shape)
    for pos in np.ndindex(*index.shape):
        src = list(pos)
        src[dim] = index[pos]
        out[pos] = a[tuple(src)]
    return out


@given(data=st.data())
def test_gather(data):
    shape = data.draw(shapes(min_dims=1), label="shape")
    x = data.draw(tensors(floats_array(shape)), label="x")
    n = len(shape)
    dim = data.draw(st.integers(-n, n - 1), label="dim")
    d = dim % n
    ishape = shape[:d] + (data.draw(st.integers(1, 5), label="picks"),) + shape[d + 1:]
    index = data.draw(hnp.arrays(np.int64, ishape, elements=st.integers(0, shape[d] - 1)), label="index")
    idx = data.draw(st.sampled_from([index, Tensor(index)]), label="index form")
    check(data, lambda t: t.gather(dim, idx), [x], _gather_ref(x.data, d, index))


@given(data=st.data())
def test_concatenate(data):
    base = data.draw(shapes(min_dims=1, max_numel=24), label="shape")
    n = len(base)
    dim = data.draw(st.integers(-n, n - 1), label="dim")
    k = data.draw(st.integers(1, 3), label="count")
    parts = []
    for i in range(k):
        s = list(base)
        s[dim % n] = data.draw(st.integers(0, 3), label="size along dim")
        rg = i == 0 or data.draw(st.booleans(), label="requires grad")
        parts.append(data.draw(tensors(floats_array(tuple(s)), requires_grad=rg), label=f"part {i}"))
    form = data.draw(st.sampled_from(["cat", "concatenate-axis"]), label="form")
    if form == "cat":
        fn = lambda *ts: tg.cat(list(ts), dim)  # noqa: E731
    else:
        fn = lambda *ts: tg.concatenate(ts, axis=dim)  # noqa: E731
    check(data, fn, parts, np.concatenate([p.data for p in parts], axis=dim))


@given(data=st.data())
def test_stack(data):
    shape = data.draw(shapes(max_numel=24), label="shape")
    n = len(shape)
    dim = data.draw(st.integers(-n - 1, n), label="dim")
    k = data.draw(st.integers(1, 3), label="count")
    parts = [data.draw(tensors(floats_array(shape), requires_grad=i == 0 or data.draw(st.booleans())),
                       label=f"part {i}") for i in range(k)]
    check(data, lambda *ts: tg.stack(list(ts), dim), parts, np.stack([p.data for p in parts], axis=dim))


def _pad_ref(a, widths, value):
    """Independent of the implementation: output[i] = a[i - before] where that exists, else value."""
    out = a
    for axis, (b, e) in enumerate(widths):
        n = out.shape[axis]
        m = n + b + e
        src = np.arange(m) - b
        valid = (src >= 0) & (src < n)
        if n:
            taken = np.take(out, np.where(valid, src, 0), axis=axis)
        else:
            taken = np.zeros(out.shape[:axis] + (m,) + out.shape[axis + 1:])
        vshape = [1] * out.ndim
        vshape[axis] = m
        out = np.where(valid.reshape(vshape), taken, value)
    return out


@given(data=st.data())
def test_pad_positive_and_negative_widths(data):
    shape = data.draw(shapes(min_dims=1, max_numel=32), label="shape")
    x = data.draw(tensors(floats_array(shape)), label="x")
    k = data.draw(st.integers(1, len(shape)), label="padded dims")
    pad, widths = [], [(0, 0)] * len(shape)
    for j in range(k):  # PyTorch order: (left, right) of the last dim first
        axis = len(shape) - 1 - j
        size = shape[axis]
        b = data.draw(st.integers(-size, 2), label="before")
        e = data.draw(st.integers(-(size + b), 2), label="after")
        pad += [b, e]
        widths[axis] = (b, e)
    value = data.draw(st.sampled_from([0.0, 1.5]), label="value")
    check(data, lambda t: F.pad(t, tuple(pad), value=value), [x], _pad_ref(x.data, widths, value))


# ----------------------------------------------------------------------------------------
# Matrix product
# ----------------------------------------------------------------------------------------
MATMUL_FORMS = [lambda a, b: a @ b, lambda a, b: tg.matmul(a, b), lambda a, b: a.matmul(b)]


@pytest.mark.parametrize("kind", ["1-D@1-D", "1-D@2-D", "2-D@1-D", "2-D@2-D", "batched", "1-D@batched", "batched@1-D"])
@given(data=st.data())
def test_matmul(kind, data):
    m, k, n = (data.draw(st.integers(1, 4), label=s) for s in "mkn")
    ba, bb = data.draw(broadcastable_shapes(max_dims=2, max_numel=6), label="batch dims")
    sa, sb = {
        "1-D@1-D": ((k,), (k,)),
        "1-D@2-D": ((k,), (k, n)),
        "2-D@1-D": ((m, k), (k,)),
        "2-D@2-D": ((m, k), (k, n)),
        "batched": (ba + (m, k), bb + (k, n)),
        "1-D@batched": ((k,), bb + (k, n)),
        "batched@1-D": (ba + (m, k), (k,)),
    }[kind]
    a = data.draw(tensors(floats_array(sa)), label="a")
    b = data.draw(tensors(floats_array(sb), requires_grad=data.draw(st.booleans())), label="b")
    fn = data.draw(st.sampled_from(MATMUL_FORMS), label="form")
    check(data, fn, [a, b], np.matmul(a.data, b.data), rtol=1e-9)


# ----------------------------------------------------------------------------------------
# Linear: one fused node, checked against finite differences and its composite x @ w.T + b
# ----------------------------------------------------------------------------------------
@given(data=st.data(), lead=st.lists(st.integers(0, 3), max_size=2).map(tuple), k=st.integers(1, 4),
       n=st.integers(1, 4), has_bias=st.booleans())
def test_linear(data, lead, k, n, has_bias):
    x = data.draw(tensors(floats_array(lead + (k,))), label="x")
    w = data.draw(tensors(floats_array((n, k)), requires_grad=data.draw(st.booleans())), label="w")
    b = data.draw(tensors(floats_array((n,))), label="b") if has_bias else None
    inputs = [x, w] + ([b] if has_bias else [])
    out = F.linear(x, w, b)
    assert out.grad_fn.name == "Linear"  # the fused node, not the composite
    expected = x.data @ w.data.T + (b.data if has_bias else 0)
    if x.data.size == 0:
        np.testing.assert_array_equal(out.data, expected)
        return
    check(data, lambda *t: F.linear(*t), inputs, expected, rtol=1e-9)
    # the composite is the oracle: same value, same gradients for a random upstream gradient
    v = Tensor(data.draw(floats_array(expected.shape), label="v"), dtype=tg.float64)
    wanted = [t for t in inputs if t.requires_grad]
    fused = tg.grad(F.linear(*inputs), wanted, grad_outputs=v)
    composite = tg.grad(x @ w.T + (b if has_bias else 0), wanted, grad_outputs=v)
    for got, ref in zip(fused, composite):
        np.testing.assert_allclose(got.data, ref.data, rtol=1e-12, atol=1e-14)


@settings(max_examples=15)
@given(data=st.data(), batch=st.sampled_from([(), (2,)]), k=st.integers(1, 3), n=st.integers(1, 3))
def test_second_order_linear(data, batch, k, n):
    x = data.draw(tensors(floats_array(batch + (2, k))), label="x")
    w = data.draw(tensors(floats_array((n, k))), label="w")
    b = data.draw(tensors(floats_array((n,))), label="b")
    v = Tensor(data.draw(floats_array(batch + (2, n))), dtype=tg.float64)
    # the create_graph backward (tensor operations) gives the first-order backward's values ...
    recorded = tg.grad(F.linear(x, w, b), [x, w, b], grad_outputs=v, create_graph=True)
    plain = tg.grad(F.linear(x, w, b), [x, w, b], grad_outputs=v)
    for got, ref in zip(recorded, plain):
        np.testing.assert_allclose(got.data, ref.data, rtol=1e-12, atol=1e-14)
    # ... and is itself differentiable
    assert gradcheck(_gradient_of(lambda *t: F.linear(*t).tanh(), v), [x, w, b], atol=GRAD_ATOL, rtol=GRAD_RTOL,
                     seed=data.draw(SEEDS))


def test_linear_falls_back_to_the_composite_for_mixed_dtypes_and_broadcast_bias():
    x = Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    w = Tensor(np.full((4, 3), 0.5), requires_grad=True)  # float64: promoted, as x @ w.T would be
    y = F.linear(x, w, Tensor(np.ones((1, 4), np.float64)))
    assert y.dtype == np.float64 and y.shape == (2, 4) and y.grad_fn.name != "Linear"
    np.testing.assert_array_equal(y.data, np.full((2, 4), 2.5))
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.full((2, 3), 2.0, np.float32))


# ----------------------------------------------------------------------------------------
# Softmax and losses
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@given(data=st.data())
def test_softmax_any_dim(name, data):
    shape = data.draw(shapes(min_dims=1), label="shape")
    x = data.draw(tensors(floats_array(shape, -4, 4)), label="x")
    dim = data.draw(st.integers(-len(shape), len(shape) - 1), label="dim")
    fn = data.draw(st.sampled_from([lambda t: getattr(t, name)(dim), lambda t: getattr(F, name)(t, dim)]))
    check(data, fn, [x], getattr(special, name)(x.data, axis=dim))


def _log_softmax(x, axis):
    return special.log_softmax(x, axis=axis)


def _ce_ref(x, t, weight, ignore_index, reduction, eps):
    """PyTorch's cross_entropy with class-index targets, written from its documentation."""
    c = x.shape[1]
    logp = np.moveaxis(_log_softmax(x, 1), 1, -1).reshape(-1, c)
    tt = t.reshape(-1)
    w = np.ones(c) if weight is None else weight
    keep = tt != ignore_index
    safe = np.where(keep, tt, 0)
    wt = w[safe] * keep
    nll = -wt * logp[np.arange(tt.size), safe]
    smooth = -(logp * w).sum(-1) * keep
    loss = (1 - eps) * nll + eps / c * smooth
    if reduction == "none":
        return loss.reshape(t.shape)
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / wt.sum()


@st.composite
def classification(draw, max_classes=5):
    """(N, C) or (N, C, d1[, d2]) scores, the class count and the target shape."""
    n = draw(st.integers(1, 4), label="N")
    c = draw(st.integers(2, max_classes), label="C")
    extra = draw(st.sampled_from([(), (), (2,), (3,), (2, 2)]), label="extra dims")
    return (n, c) + extra, c, (n,) + extra


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@settings(max_examples=20)
@given(data=st.data())
def test_cross_entropy_class_targets(reduction, weighted, data):
    shape, c, tshape = data.draw(classification())
    x = data.draw(tensors(floats_array(shape, -3, 3)), label="logits")
    target = data.draw(hnp.arrays(np.int64, tshape, elements=st.integers(0, c - 1)), label="target")
    eps = data.draw(st.sampled_from([0.0, 0.1, 0.3]), label="label_smoothing")
    weight = data.draw(hnp.arrays(np.float64, (c,), elements=st.floats(0.5, 2.0)), label="weight") if weighted else None
    kwargs = {"reduction": reduction, "label_smoothing": eps}
    ignore_index = -100
    if data.draw(st.booleans(), label="ignore some targets"):
        ignore_index = data.draw(st.sampled_from([-1, 0, 7]), label="ignore_index")
        drop = data.draw(hnp.arrays(np.bool_, tshape), label="ignored")
        target = np.where(drop, ignore_index, target) if ignore_index != 0 else target
        kwargs["ignore_index"] = ignore_index
        assume(reduction != "mean" or np.any(target != ignore_index))  # else 0/0, as in PyTorch
    if weight is not None:
        kwargs["weight"] = data.draw(st.sampled_from([weight, Tensor(weight)]), label="weight form")
    t = data.draw(st.sampled_from([target, Tensor(target)]), label="target form")
    check(data, lambda z: F.cross_entropy(z, t, **kwargs), [x],
          _ce_ref(x.data, target, weight, ignore_index, reduction, eps))


@given(data=st.data())
def test_cross_entropy_unbatched(data):
    c = data.draw(st.integers(2, 5))
    x = data.draw(tensors(floats_array((c,), -3, 3)), label="logits")
    k = data.draw(st.integers(0, c - 1), label="target")
    check(data, lambda z: F.cross_entropy(z, Tensor(np.int64(k))), [x], -_log_softmax(x.data, 0)[k])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@settings(max_examples=20)
@given(data=st.data())
def test_cross_entropy_probability_targets(reduction, data):
    shape, c, _ = data.draw(classification())
    x = data.draw(tensors(floats_array(shape, -3, 3)), label="logits")
    y = special.softmax(data.draw(floats_array(shape, -2, 2), label="target logits"), axis=1)
    eps = data.draw(st.sampled_from([0.0, 0.2]), label="label_smoothing")
    weight = data.draw(st.none() | hnp.arrays(np.float64, (c,), elements=st.floats(0.5, 2.0)), label="weight")
    w = np.ones(c) if weight is None else weight
    wshape = (1, c) + (1,) * (len(shape) - 2)
    ys = (1 - eps) * y + eps / c
    losses = -(ys * _log_softmax(x.data, 1) * w.reshape(wshape)).sum(1)
    expected = {"none": losses, "sum": losses.sum(), "mean": losses.sum() / losses.size}[reduction]
    target = as_tensor(y, requires_grad=data.draw(st.booleans(), label="target requires grad"))
    check(data, lambda z, yy: F.cross_entropy(z, yy, weight=weight, reduction=reduction, label_smoothing=eps),
          [x, target], expected)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@settings(max_examples=20)
@given(data=st.data())
def test_nll_loss(reduction, data):
    shape, c, tshape = data.draw(classification())
    x = data.draw(tensors(floats_array(shape, -3, 0.5)), label="log-probabilities")
    target = data.draw(hnp.arrays(np.int64, tshape, elements=st.integers(0, c - 1)), label="target")
    weight = data.draw(st.none() | hnp.arrays(np.float64, (c,), elements=st.floats(0.5, 2.0)), label="weight")
    ignore_index = data.draw(st.sampled_from([-100, 1]), label="ignore_index")
    assume(reduction != "mean" or np.any(target != ignore_index))
    w = np.ones(c) if weight is None else weight
    z = np.moveaxis(x.data, 1, -1).reshape(-1, c)
    tt = target.reshape(-1)
    keep = tt != ignore_index
    wt = w[np.where(keep, tt, 0)] * keep
    losses = -wt * z[np.arange(tt.size), np.where(keep, tt, 0)]
    expected = {"none": lambda: losses.reshape(tshape), "sum": losses.sum,
                "mean": lambda: losses.sum() / wt.sum()}[reduction]()
    check(data, lambda s: F.nll_loss(s, Tensor(target), weight=weight, ignore_index=ignore_index,
                                     reduction=reduction), [x], expected)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@settings(max_examples=20)
@given(data=st.data(), n=st.integers(1, 4), c=st.integers(2, 5), weighted=st.booleans(), ignore=st.booleans())
def test_cross_entropy_fused_node_matches_the_composite(reduction, data, n, c, weighted, ignore):
    """(N, C) logits take one fused node; values and gradients equal log_softmax + nll_loss, also with create_graph."""
    x = data.draw(tensors(floats_array((n, c), -3, 3)), label="logits")
    target = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)), label="target")
    if ignore:
        target[data.draw(hnp.arrays(np.bool_, (n,)), label="ignored")] = -100
        assume(reduction != "mean" or np.any(target != -100))
    kwargs = dict(reduction=reduction)
    if weighted:
        kwargs["weight"] = Tensor(data.draw(hnp.arrays(np.float64, (c,), elements=st.floats(0.5, 2.0)), label="w"))
    fused = F.cross_entropy(x, Tensor(target), **kwargs)
    composite = F.nll_loss(F.log_softmax(x, 1), Tensor(target), **kwargs)
    assert fused.grad_fn.name == "CrossEntropy" and composite.grad_fn.name == "NLLLoss"
    np.testing.assert_allclose(fused.data, composite.data, rtol=1e-12, atol=1e-14)
    v = Tensor(data.draw(floats_array(fused.shape), label="v"), dtype=tg.float64)
    (g_composite,) = tg.grad(composite, [x], grad_outputs=v)
    (g_fused,) = tg.grad(F.cross_entropy(x, Tensor(target), **kwargs), [x], grad_outputs=v)
    (g_recorded,) = tg.grad(F.cross_entropy(x, Tensor(target), **kwargs), [x], grad_outputs=v, create_graph=True)
    np.testing.assert_allclose(g_fused.data, g_composite.data, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(g_recorded.data, g_composite.data, rtol=1e-10, atol=1e-13)


@given(data=st.data())
def test_nll_after_log_softmax_is_cross_entropy(data):
    shape, c, tshape = data.draw(classification())
    x = data.draw(tensors(floats_array(shape, -3, 3)), label="logits")
    target = Tensor(data.draw(hnp.arrays(np.int64, tshape, elements=st.integers(0, c - 1)), label="target"))
    check(data, lambda z: F.nll_loss(F.log_softmax(z, 1), target), [x],
          F.cross_entropy(x.detach(), target).data)


@given(data=st.data())
def test_mse_loss(data):
    shape = data.draw(shapes(), label="shape")
    x = data.draw(tensors(floats_array(shape)), label="input")
    y = data.draw(tensors(floats_array(shape), requires_grad=data.draw(st.booleans())), label="target")
    reduction = data.draw(st.sampled_from(["mean", "sum", "none"]), label="reduction")
    sq = (x.data - y.data) ** 2
    expected = {"none": sq, "sum": sq.sum(), "mean": sq.mean()}[reduction]
    check(data, lambda a, b: F.mse_loss(a, b, reduction=reduction), [x, y], expected)
    check(data, lambda a: F.mse_loss(a, y.data), [as_tensor(x.data)], sq.mean())


# ----------------------------------------------------------------------------------------
# dtype casts
# ----------------------------------------------------------------------------------------
@given(data=st.data())
def test_cast_round_trip_through_float32(data):
    """float64 -> float32 -> float64: the value is rounded once, the gradient is cast back.

    (No finite differences here: float32 rounding would swamp a step of 1e-6.)
    """
    shape = data.draw(shapes(allow_empty=True), label="shape")
    x = data.draw(tensors(floats_array(shape)), label="x")
    form = data.draw(st.sampled_from(["to", "to-dtype", "float-double"]), label="form")
    if form == "to":
        y = x.to(tg.float32)
    elif form == "to-dtype":
        y = x.to(dtype=tg.float32)
    else:
        y = x.float()
    assert y.dtype == np.float32 and y.requires_grad
    np.testing.assert_array_equal(y.data, x.data.astype(np.float32))
    z = y.double() if form == "float-double" else y.to(tg.float64)
    assert z.dtype == np.float64
    np.testing.assert_array_equal(z.data, x.data.astype(np.float32).astype(np.float64))
    v = data.draw(floats_array(shape), label="upstream gradient")
    z.backward(v)
    assert x.grad.dtype == np.float64 and x.grad.shape == x.shape
    np.testing.assert_array_equal(x.grad.data, v.astype(np.float32).astype(np.float64))
    assert x.to(tg.float64) is x  # casting to the same dtype is the identity


# ----------------------------------------------------------------------------------------
# Composite expressions
# ----------------------------------------------------------------------------------------
@settings(max_examples=15)
@given(data=st.data())
def test_mlp_with_bias_broadcasting(data):
    n, i, h, o = (data.draw(st.integers(1, 4), label=s) for s in ("batch", "in", "hidden", "out"))
    x = data.draw(tensors(floats_array((n, i))), label="x")
    w1 = data.draw(tensors(floats_array((i, h), -1, 1)), label="w1")
    b1 = data.draw(tensors(floats_array((h,), -1, 1)), label="b1")
    w2 = data.draw(tensors(floats_array((h, o), -1, 1)), label="w2")
    b2 = data.draw(tensors(floats_array((o,), -1, 1)), label="b2")

    def mlp(x, w1, b1, w2, b2):
        return (x @ w1 + b1).tanh() @ w2 + b2

    expected = np.tanh(x.data @ w1.data + b1.data) @ w2.data + b2.data
    check(data, mlp, [x, w1, b1, w2, b2], expected, rtol=1e-9)
    target = Tensor(data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, o - 1)))) if o > 1 else None
    if target is not None:
        check(data, lambda *p: F.cross_entropy(mlp(*p), target), [as_tensor(t.data) for t in (x, w1, b1, w2, b2)],
              _ce_ref(expected, target.data, None, -100, "mean", 0.0), rtol=1e-9)


@given(data=st.data())
def test_layer_norm_like_expression(data):
    shape = data.draw(shapes(min_dims=1, min_side=2), label="shape")
    x = data.draw(tensors(distinct_array(shape)), label="x")
    g = data.draw(tensors(floats_array(shape[-1:])), label="gain")

    def norm(x, g):
        mu = x.mean(-1, keepdim=True)
        return (x - mu) / (x.var(-1, keepdim=True, correction=0) + 1e-5).sqrt() * g

    a = x.data
    expected = (a - a.mean(-1, keepdims=True)) / np.sqrt(a.var(-1, keepdims=True) + 1e-5) * g.data
    check(data, norm, [x, g], expected, rtol=1e-9)


@given(data=st.data())
def test_same_tensor_on_many_paths(data):
    """x feeds several ops whose results are combined: the gradients of all paths add up."""
    shape = data.draw(shapes(min_dims=1), label="shape")
    x = data.draw(tensors(positive_array(shape)), label="x")

    def f(x):
        return x * x.exp() + x.log() / x - x.sqrt() * x.sum(0, keepdim=True) + x[..., :1] * x.mean()

    a = x.data
    expected = a * np.exp(a) + np.log(a) / a - np.sqrt(a) * a.sum(0, keepdims=True) + a[..., :1] * a.mean()
    check(data, f, [x], expected)


# ----------------------------------------------------------------------------------------
# Second order: create_graph=True gives gradients that are themselves differentiable
# ----------------------------------------------------------------------------------------
def _gradient_of(f, v):
    """x -> d(f(x)·v)/dx for all inputs, flattened and joined (so cross terms are checked too).

    gradcheck evaluates functions under no_grad and hands over inputs that do
    not require grad while it perturbs another one; both are undone here.
    """

    def g(*xs):
        with enable_grad():
            xs = [x if x.requires_grad else x.detach().requires_grad_() for x in xs]
            out = f(*xs)
            grads = tg.grad(out, xs, grad_outputs=v, create_graph=True)
        if len(grads) == 1:
            return grads[0]
        return tg.cat([gr.reshape(-1) for gr in grads])

    return g


SECOND_ORDER = {
    "mul": (lambda a, b: a * b, 2, floats_array),
    "div": (lambda a, b: a / b, 2, divisor_array),
    "exp": (lambda a: a.exp(), 1, floats_array),
    "log": (lambda a: a.log(), 1, positive_array),
    "tanh": (lambda a: a.tanh(), 1, floats_array),
    "sigmoid": (lambda a: a.sigmoid(), 1, floats_array),
    "pow-number": (lambda a: a**3 + a**-1.5, 1, positive_array),
    "pow-tensor": (lambda a, b: a**b, 2, positive_array),
    "softmax": (lambda a: a.softmax(-1), 1, floats_array),
    "log_softmax": (lambda a: a.log_softmax(0), 1, floats_array),
    # movement and reductions inside a non-linearity: their backward passes must be differentiable too
    "movement-reductions": (lambda a: (F.pad(a, (1, -1)) * a.amax(-1, keepdim=True) + a[..., ::-1] * a.sum(0)).tanh(),
                            1, distinct_array),
}


@pytest.mark.parametrize("name", sorted(SECOND_ORDER))
@settings(max_examples=15)
@given(data=st.data())
def test_second_order(name, data):
    f, arity, values = SECOND_ORDER[name]
    shape = data.draw(shapes(min_dims=1, max_numel=12), label="shape")
    xs = [data.draw(tensors(values(shape)), label=f"x{i}") for i in range(arity)]
    v = Tensor(data.draw(floats_array(shape), label="v"), dtype=tg.float64)
    assert gradcheck(_gradient_of(f, v), xs, atol=GRAD_ATOL, rtol=GRAD_RTOL, seed=data.draw(SEEDS))


@settings(max_examples=15)
@given(data=st.data())
def test_second_order_matmul(data):
    m, k, n = (data.draw(st.integers(1, 3), label=s) for s in "mkn")
    batch = data.draw(st.sampled_from([(), (2,)]), label="batch")
    a = data.draw(tensors(floats_array(batch + (m, k))), label="a")
    b = data.draw(tensors(floats_array((k, n))), label="b")
    v = Tensor(data.draw(floats_array(batch + (m, n))), dtype=tg.float64)
    # the product is bilinear: d/da (v·ab) = v bᵀ depends on b only — the cross terms are the check
    assert gradcheck(_gradient_of(lambda x, y: (x @ y).tanh(), v), [a, b], atol=GRAD_ATOL, rtol=GRAD_RTOL,
                     seed=data.draw(SEEDS))


@settings(max_examples=10)
@given(data=st.data())
def test_second_order_cross_entropy(data):
    shape, c, tshape = data.draw(classification(max_classes=3))
    x = data.draw(tensors(floats_array(shape, -2, 2)), label="logits")
    t = Tensor(data.draw(hnp.arrays(np.int64, tshape, elements=st.integers(0, c - 1))))
    v = Tensor(np.array(1.0))
    assert gradcheck(_gradient_of(lambda z: F.cross_entropy(z, t, label_smoothing=0.1), v), [x],
                     atol=GRAD_ATOL, rtol=GRAD_RTOL, seed=data.draw(SEEDS))
