"""conv2d, conv_transpose2d, max_pool2d, avg_pool2d through the autograd engine.

Gradients are checked against central finite differences in float64 with a
random upstream gradient (gradcheck draws one), over random configurations;
the forward pass is checked against the reference kernel twin.
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import kernels


# compile the Numba kernels once, before the first hypothesis example
pytestmark = pytest.mark.usefixtures("warm_kernels")


def _t(shape, rng, noncontig=False):
    if noncontig:  # a strided view: every other element of a larger array
        big = rng.standard_normal(shape[:-1] + (2 * shape[-1],))
        arr = big[..., ::2]
        assert shape[-1] == 1 or not arr.flags.c_contiguous
    else:
        arr = rng.standard_normal(shape)
    return tg.from_numpy(arr).requires_grad_()


@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 1, 2]))
    cin = groups * draw(st.integers(1, 2))
    cout = groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 6))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 6))
    n = draw(st.integers(1, 2))
    return dict(n=n, cin=cin, cout=cout, k=(kh, kw), s=(sh, sw), d=(dh, dw), p=(ph, pw), hw=(h, w), groups=groups,
                bias=draw(st.booleans()), noncontig=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


@settings(max_examples=30, deadline=None)
@given(conv_cases())
def test_conv2d_gradients_and_forward(c):
    rng = np.random.default_rng(c["seed"])
    x = _t((c["n"], c["cin"]) + c["hw"], rng, c["noncontig"])
    w = _t((c["cout"], c["cin"] // c["groups"]) + c["k"], rng)
    b = _t((c["cout"],), rng) if c["bias"] else None
    args = dict(stride=c["s"], padding=c["p"], dilation=c["d"], groups=c["groups"])
    y = F.conv2d(x, w, b, **args)
    # output size: PyTorch's formula
    for ax in range(2):
        expect = (c["hw"][ax] + 2 * c["p"][ax] - c["d"][ax] * (c["k"][ax] - 1) - 1) // c["s"][ax] + 1
        assert y.shape[2 + ax] == expect
    with kernels.use_backend("reference"):
        y_ref = F.conv2d(x.detach(), w.detach(), None if b is None else b.detach(), **args)
    np.testing.assert_allclose(y.data, y_ref.data, rtol=1e-10, atol=1e-12)
    inputs = [x, w] + ([b] if b is not None else [])
    assert tg.gradcheck(lambda x, w, *b: F.conv2d(x, w, b[0] if b else None, **args), inputs)


@settings(max_examples=25, deadline=None)
@given(conv_cases(), st.integers(0, 2))
def test_conv_transpose2d_gradients(c, extra):
    rng = np.random.default_rng(c["seed"])
    op = tuple(min(extra, max(s, d) - 1) for s, d in zip(c["s"], c["d"]))
    pad = tuple(min(p, (k - 1) * d) for p, k, d in zip(c["p"], c["k"], c["d"]))
    x = _t((c["n"], c["cin"]) + c["hw"], rng, c["noncontig"])
    w = _t((c["cin"], c["cout"] // c["groups"]) + c["k"], rng)
    b = _t((c["cout"],), rng) if c["bias"] else None
    args = dict(stride=c["s"], padding=pad, output_padding=op, groups=c["groups"], dilation=c["d"])
    expect = [(c["hw"][ax] - 1) * c["s"][ax] - 2 * pad[ax] + c["d"][ax] * (c["k"][ax] - 1) + op[ax] + 1 for ax in range(2)]
    assume(min(expect) > 0)  # padding can crop the output away entirely
    y = F.conv_transpose2d(x, w, b, **args)
    assert list(y.shape[2:]) == expect
    with kernels.use_backend("reference"):
        y_ref = kernels.get_backend().conv_transpose2d_forward(
            x.data, w.data, None if b is None else b.data, c["s"], pad, op, c["groups"], c["d"])
    np.testing.assert_allclose(y.data, y_ref, rtol=1e-10, atol=1e-12)
    inputs = [x, w] + ([b] if b is not None else [])
    assert tg.gradcheck(lambda x, w, *b: F.conv_transpose2d(x, w, b[0] if b else None, **args), inputs)


@st.composite
def pool_cases(draw):
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    h, w = draw(st.integers(kh, 7)), draw(st.integers(kw, 7))
    return dict(k=(kh, kw), s=stride, p=(ph, pw), hw=(h, w), n=draw(st.integers(1, 2)), c=draw(st.integers(1, 3)),
                ceil=draw(st.booleans()), noncontig=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


def _distinct(shape, rng, noncontig):
    """Values spaced >= 0.05 apart so no window has a tie within finite-difference reach."""
    n = int(np.prod(shape))
    vals = (rng.permutation(n) * 0.05 - n * 0.025).reshape(shape)
    if noncontig:
        big = np.zeros(shape[:-1] + (2 * shape[-1],))
        big[..., ::2] = vals
        vals = big[..., ::2]
    return tg.from_numpy(vals).requires_grad_()


@settings(max_examples=30, deadline=None)
@given(pool_cases(), st.integers(1, 2))
def test_max_pool2d_gradients(c, dil):
    rng = np.random.default_rng(c["seed"])
    x = _distinct((c["n"], c["c"]) + c["hw"], rng, c["noncontig"])
    assume(all(h >= dil * (k - 1) + 1 - 2 * p for h, k, p in zip(c["hw"], c["k"], c["p"])))
    args = dict(kernel_size=c["k"], stride=c["s"], padding=c["p"], dilation=dil, ceil_mode=c["ceil"])
    y, idx = F.max_pool2d(x, return_indices=True, **args)
    with kernels.use_backend("reference"):
        y_ref, idx_ref = F.max_pool2d(x.detach(), return_indices=True, **args)
    np.testing.assert_array_equal(y.data, y_ref.data)
    np.testing.assert_array_equal(idx.data, idx_ref.data)
    assert tg.gradcheck(lambda x: F.max_pool2d(x, **args), [x])


@settings(max_examples=30, deadline=None)
@given(pool_cases(), st.booleans(), st.sampled_from([None, 3]))
def test_avg_pool2d_gradients(c, count_include_pad, divisor):
    rng = np.random.default_rng(c["seed"])
    x = _t((c["n"], c["c"]) + c["hw"], rng, c["noncontig"])
    args = dict(kernel_size=c["k"], stride=c["s"], padding=c["p"], ceil_mode=c["ceil"],
                count_include_pad=count_include_pad, divisor_override=divisor)
    y = F.avg_pool2d(x, **args)
    with kernels.use_backend("reference"):
        y_ref = F.avg_pool2d(x.detach(), **args)
    np.testing.assert_allclose(y.data, y_ref.data, rtol=1e-12)
    assert tg.gradcheck(lambda x: F.avg_pool2d(x, **args), [x])


def test_max_pool_tie_goes_to_first_maximum():
    x = tg.tensor([[[[1.0, 3.0], [3.0, 2.0]]]], requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[[[0, 1], [0, 0]]]])


def test_second_order_through_conv_and_pool():
    rng = np.random.default_rng(0)
    x = _t((1, 2, 5, 5), rng)
    w = _t((3, 2, 3, 3), rng)

    def grad_of_loss(x, w):
        y = F.max_pool2d(F.conv2d(x, w, padding=1).tanh(), 2)
        (gw,) = tg.grad((y * y).sum(), [w], create_graph=True)
        return gw

    assert tg.gradcheck(grad_of_loss, [x, w])


def test_float32_stays_float32():
    x = tg.randn(2, 1, 8, 8, requires_grad=True)
    w = tg.randn(4, 1, 3, 3, requires_grad=True)
    y = F.avg_pool2d(F.max_pool2d(F.conv2d(x, w, padding="same"), 2), 2)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: F.conv2d(tg.zeros(1, 3, 5, 5), tg.zeros(4, 2, 3, 3)), ["3", "2"]),
        (lambda: F.conv2d(tg.zeros(1, 3, 5, 5), tg.zeros(4, 1, 3, 3), groups=2), ["3", "groups=2"]),
        (lambda: F.conv2d(tg.zeros(1, 1, 2, 2), tg.zeros(1, 1, 3, 3)), ["3"]),
        (lambda: F.conv2d(tg.zeros(1, 1, 5), tg.zeros(1, 1, 3, 3)), ["4-D", "(1, 1, 5)"]),
        (lambda: F.max_pool2d(tg.zeros(1, 1, 4, 4), 2, padding=2), ["pad", "half"]),
        (lambda: F.avg_pool2d(tg.zeros(1, 1, 4, 4), 3, padding=2), ["pad", "half"]),
        (lambda: F.max_pool2d(tg.zeros(1, 1, 2, 2), 3), ["3"]),
        (lambda: F.conv2d(tg.zeros(1, 1, 5, 5), tg.zeros(1, 1, 3, 3), stride=2, padding="same"), ["same"]),
        (lambda: F.conv_transpose2d(tg.zeros(1, 2, 3, 3), tg.zeros(3, 1, 3, 3)), ["3", "2"]),
        (lambda: F.conv_transpose2d(tg.zeros(1, 1, 3, 3), tg.zeros(1, 1, 3, 3), stride=2, output_padding=2), ["output_padding"]),
    ],
)
def test_impossible_configurations_raise_valueerror_with_numbers(call, words):
    with pytest.raises(ValueError) as err:
        call()
    for word in words:
        assert word in str(err.value)


def test_matmul_runs_on_either_kernel_twin():
    rng = np.random.default_rng(3)
    a = _t((5, 4), rng)
    b = _t((4, 3), rng)
    y = a @ b
    with kernels.use_backend("reference"):
        y_ref = a @ b
        assert tg.gradcheck(lambda a, b: a @ b, [a, b])
    np.testing.assert_allclose(y.data, y_ref.data, rtol=1e-12)
    np.testing.assert_allclose(y.data, a.data @ b.data, rtol=1e-12)
