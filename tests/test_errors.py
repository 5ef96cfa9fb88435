"""Bad input fails early, with the right exception type and the numbers at fault in the message.

And bad *values* do not fail at all: log of a negative number is NaN, as in
NumPy and PyTorch, without an exception or a warning leaking out.
"""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import Scalar, Tensor


def shapes_in(msg, *shapes):
    """Every shape appears in the message, written as Python writes a tuple."""
    return all(re.search(re.escape(str(tuple(s))), msg) for s in shapes)


# --- broadcasting ----------------------------------------------------------------------
@pytest.mark.parametrize("op", [
    lambda a, b: a + b,
    lambda a, b: a - b,
    lambda a, b: a * b,
    lambda a, b: a / b,
    lambda a, b: a**b,
    lambda a, b: tg.maximum(a, b),
    lambda a, b: tg.minimum(a, b),
    lambda a, b: b.__radd__(a),
])
@pytest.mark.parametrize("sa, sb", [((2, 3), (4,)), ((2, 3), (3, 2)), ((5, 1, 3), (2, 4, 3))])
def test_broadcast_mismatch_names_both_shapes(op, sa, sb):
    a, b = tg.ones(*sa, requires_grad=True), tg.ones(*sb)
    with pytest.raises(ValueError) as err:
        op(a, b)
    assert shapes_in(str(err.value), sa, sb), str(err.value)


def test_where_broadcast_mismatch_names_the_shapes():
    with pytest.raises(ValueError) as err:
        tg.where(Tensor([True, False, True]), tg.ones(2, 3), tg.ones(4))
    assert shapes_in(str(err.value), (3,), (2, 3), (4,))


# --- matmul ----------------------------------------------------------------------------
@pytest.mark.parametrize("sa, sb", [
    ((2, 3), (4, 5)),
    ((3,), (4,)),
    ((3,), (2, 5)),
    ((2, 3), (2,)),
    ((2, 2, 3), (3, 3, 4)),  # batch dims that do not broadcast
])
def test_matmul_mismatch_names_both_shapes(sa, sb):
    with pytest.raises(ValueError) as err:
        tg.ones(*sa) @ tg.ones(*sb)
    assert shapes_in(str(err.value), sa, sb), str(err.value)


def test_matmul_of_zero_dim_tensor_is_an_error():
    with pytest.raises(ValueError, match="matmul"):
        tg.ones(()) @ tg.ones(3)


# --- losses ----------------------------------------------------------------------------
@pytest.mark.parametrize("loss", [F.cross_entropy, F.nll_loss])
@pytest.mark.parametrize("input_shape, target_shape", [
    ((4, 3), (3,)),
    ((4, 3), (4, 1)),
    ((4, 3, 2), (4, 3)),
    ((4, 3, 2), (4,)),
])
def test_class_target_shape_mismatch_names_both_shapes(loss, input_shape, target_shape):
    with pytest.raises(ValueError) as err:
        loss(tg.ones(*input_shape), Tensor(np.zeros(target_shape, dtype=np.int64)))
    assert shapes_in(str(err.value), input_shape, target_shape), str(err.value)


def test_probability_target_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError) as err:
        F.cross_entropy(tg.ones(4, 3), tg.ones(4, 2))
    assert shapes_in(str(err.value), (4, 3), (4, 2))


def test_mse_loss_shape_mismatch_names_both_shapes():
    """(N, 1) against (N,) would silently broadcast to (N, N): refused."""
    with pytest.raises(ValueError) as err:
        F.mse_loss(tg.ones(4, 1), tg.ones(4))
    assert shapes_in(str(err.value), (4, 1), (4,))


@pytest.mark.parametrize("loss", [F.cross_entropy, F.nll_loss])
@pytest.mark.parametrize("bad", [3, 7, -2])
def test_out_of_range_class_index_names_the_value(loss, bad):
    with pytest.raises(IndexError, match=rf"(?<![\d-]){bad}(?!\d)"):
        loss(tg.ones(4, 3), Tensor([0, 1, bad, 2]))


def test_ignored_targets_may_be_out_of_range():
    loss = F.cross_entropy(tg.zeros(3, 3), Tensor([0, -100, 2]))
    assert np.isclose(loss.item(), np.log(3))
    loss = F.cross_entropy(tg.zeros(3, 3), Tensor([0, 9, 2]), ignore_index=9)
    assert np.isclose(loss.item(), np.log(3))


def test_float_class_indices_are_not_class_indices():
    with pytest.raises(TypeError, match="integer"):
        F.nll_loss(tg.ones(4, 3), Tensor([0.0, 1.0, 2.0, 0.0]))


def test_wrong_weight_shape():
    with pytest.raises(ValueError, match=r"\(2,\)"):
        F.cross_entropy(tg.ones(4, 3), Tensor([0, 1, 2, 0]), weight=np.ones(2))


@pytest.mark.parametrize("call", [
    lambda r: F.cross_entropy(tg.ones(4, 3), Tensor([0, 1, 2, 0]), reduction=r),
    lambda r: F.cross_entropy(tg.ones(4, 3), tg.ones(4, 3) / 3, reduction=r),
    lambda r: F.nll_loss(tg.ones(4, 3), Tensor([0, 1, 2, 0]), reduction=r),
    lambda r: F.mse_loss(tg.ones(4), tg.ones(4), reduction=r),
])
@pytest.mark.parametrize("name", ["avg", "Mean", "", None])
def test_bad_reduction_name(call, name):
    with pytest.raises(ValueError, match="reduction"):
        call(name)


def test_bad_label_smoothing():
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(tg.ones(4, 3), Tensor([0, 1, 2, 0]), label_smoothing=1.5)


# --- NaN, not exceptions ---------------------------------------------------------------
def test_log_of_negative_is_nan_without_exception_or_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning escaping would fail the test
        for dtype in (tg.float32, tg.float64):
            x = Tensor([-1.0, 0.0, 4.0], dtype=dtype, requires_grad=True)
            y = x.log()
            assert np.isnan(y.data[0]) and y.data[1] == -np.inf and np.isclose(y.data[2], np.log(4))
            y.backward(np.ones(3, dtype=dtype))
            np.testing.assert_array_equal(x.grad.data, np.array([-1.0, np.inf, 0.25], dtype=dtype))
            assert np.isnan(Tensor([-1.0], dtype=dtype).sqrt().data[0])
            assert (Tensor([1.0], dtype=dtype) / 0).data[0] == np.inf
            assert np.isnan((Tensor([0.0], dtype=dtype) / 0).data[0])
            assert np.isnan((Tensor([-8.0], dtype=dtype) ** 0.5).data[0])
            assert (Tensor([1000.0], dtype=dtype).exp()).data[0] == np.inf
        assert np.isnan(Scalar(-1.0).log().data)
        assert Scalar(0.0).log().data == -np.inf


def test_nan_propagates_through_reductions_and_softmax():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = Tensor([1.0, np.nan, 2.0])
        assert np.isnan(x.sum().item()) and np.isnan(x.amax().item())
        assert np.all(np.isnan(x.softmax(0).data))


def test_softmax_of_huge_logits_does_not_overflow():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = Tensor([1e4, 0.0, -1e4], dtype=tg.float64)
        np.testing.assert_allclose(x.softmax(0).data, [1.0, 0.0, 0.0])
        np.testing.assert_allclose(x.log_softmax(0).data, [0.0, -1e4, -2e4])
        assert np.isclose(F.cross_entropy(x.reshape(1, 3), Tensor([1])).item(), 1e4)


# --- reshape and friends ---------------------------------------------------------------
@pytest.mark.parametrize("target", [(4, 2), (7,), (4, -1), (-1, -1), (-2, 3), (0, -1)])
def test_reshape_to_an_impossible_shape(target):
    x = tg.ones(2, 3)
    with pytest.raises(ValueError) as err:
        x.reshape(target)
    assert "(2, 3)" in str(err.value) and str(target) in str(err.value)


def test_view_to_an_impossible_shape():
    with pytest.raises(ValueError, match="6 elements"):
        tg.ones(2, 3).view(5)


@pytest.mark.parametrize("call, exc", [
    (lambda x: x.permute(0, 0), ValueError),
    (lambda x: x.permute(0), ValueError),
    (lambda x: x.expand(3, 3), ValueError),
    (lambda x: x.expand(3), ValueError),
    (lambda x: x.unsqueeze(4), IndexError),
    (lambda x: x.sum(2), IndexError),
    (lambda x: x.mean(-3), IndexError),
    (lambda x: x.sum((0, 0)), ValueError),
    (lambda x: x.softmax(2), IndexError),
    (lambda x: x.flatten(1, 0), ValueError),
    (lambda x: tg.stack([x, tg.ones(3, 2)]), ValueError),
    (lambda x: tg.cat([x, tg.ones(2, 4)], 0), ValueError),
    (lambda x: tg.cat([]), ValueError),
    (lambda x: F.pad(x, (1,)), ValueError),
    (lambda x: F.pad(x, (1, 1, 1, 1, 1, 1)), ValueError),
    (lambda x: F.pad(x, (-2, -2)), ValueError),
    (lambda x: F.pad(x, (1, 1), mode="reflect"), ValueError),
    (lambda x: x.clip(), ValueError),
    (lambda x: x.gather(1, np.array([[3]])), IndexError),
    (lambda x: x.gather(1, np.array([0, 1])), ValueError),
    (lambda x: x.gather(1, np.array([[0.5]])), TypeError),
    (lambda x: x + "a", TypeError),
    (lambda x: tg.where(Tensor([1, 0, 1]), x, 0.0), TypeError),
    (lambda x: tg.ones(3, device="cuda:1"), ValueError),
    (lambda x: tg.ones(3, device="tpu"), ValueError),
    (lambda x: x.item(), ValueError),
    (lambda x: bool(x), ValueError),
])
def test_bad_arguments(call, exc):
    with pytest.raises(exc):
        call(tg.ones(2, 3))


def test_reduction_of_empty_tensor():
    with pytest.raises(ValueError, match=r"\(0, 3\)"):
        tg.ones(0, 3).amax()
    with pytest.raises(ValueError, match=r"\(0, 3\)"):
        tg.ones(0, 3).max(0)


# --- indexing --------------------------------------------------------------------------
@pytest.mark.parametrize("key", [2, -3, (0, 3), (0, 0, 0), [0, 5], np.array([-3])])
def test_out_of_range_index(key):
    x = tg.ones(2, 3, requires_grad=True)
    with pytest.raises(IndexError) as err:
        x[key]
    assert "(2, 3)" in str(err.value)


@pytest.mark.parametrize("key", [1.5, "a", Tensor([0.5]), np.array([0.0, 1.0]), np.array([True, False, True])])
def test_bad_index_type(key):
    with pytest.raises(IndexError):
        tg.ones(2, 3)[key]


def test_index_by_a_tensor_of_indices_works():
    x = Tensor(np.arange(6.0).reshape(2, 3), dtype=tg.float64, requires_grad=True)
    y = x[Tensor([1, 1, 0])]
    np.testing.assert_array_equal(y.data, x.data[[1, 1, 0]])
    y.backward(np.ones(y.shape))
    np.testing.assert_array_equal(x.grad.data, [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]])


# --- conv2d padding: PyTorch's public forms only ------------------------------------------
@pytest.mark.parametrize("padding", [(0, 1, 2, 3), (1, 1, 1), [1]])
def test_conv2d_refuses_padding_other_than_an_int_or_a_pair(padding):
    """A 4-tuple would be read in the kernels' (top, bottom, left, right) order, F.pad's is (left, right, ...)."""
    with pytest.raises(ValueError, match=re.escape(str(padding)) + r".*\d values|padding"):
        F.conv2d(tg.zeros(1, 1, 5, 5), tg.zeros(1, 1, 3, 3), padding=padding)
    assert F.conv2d(tg.zeros(1, 1, 5, 5), tg.zeros(1, 1, 3, 3), padding=(1, 2)).shape == (1, 1, 5, 7)
