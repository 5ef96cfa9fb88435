"""``once_differentiable``: first-order fast paths, composite fallbacks for ``create_graph``.

The fused operations (convolution, transposed convolution, linear, cross
entropy, batch norm, softmax, log-softmax) declare their kernel backward with
``@once_differentiable(fallback=composite_backward)``: a first-order walk runs
the kernels, ``create_graph=True`` runs the differentiable composite. These
tests check second derivatives through each of them against finite
differences of the first derivative, that first-order results agree with the
composite, and that a plain ``@once_differentiable`` backward refuses
``create_graph`` with a clear error.
"""
import numpy as np
import pytest

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import autograd
from tinygrad_cv.ops import conv, linear, loss, nn as nn_ops, softmax


def _t(rng, *shape):
    return tg.tensor(rng.standard_normal(shape), dtype=tg.float64, requires_grad=True)


def _cases():
    rng = np.random.default_rng(0)
    target = tg.tensor(np.array([0, 2, 1, 2]), dtype=tg.int64)
    return {
        "conv2d": (lambda x, w, b: F.conv2d(x, w, b, stride=1, padding=1), [_t(rng, 2, 2, 4, 4), _t(rng, 3, 2, 3, 3), _t(rng, 3)]),
        "conv2d_strided": (lambda x, w: F.conv2d(x, w, stride=2, padding=1, dilation=1), [_t(rng, 1, 2, 5, 5), _t(rng, 2, 2, 3, 3)]),
        "conv_transpose2d": (lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
                             [_t(rng, 1, 2, 3, 3), _t(rng, 2, 3, 3, 3), _t(rng, 3)]),
        "linear": (lambda x, w, b: F.linear(x, w, b), [_t(rng, 2, 3, 4), _t(rng, 5, 4), _t(rng, 5)]),
        "cross_entropy": (lambda x: F.cross_entropy(x, target), [_t(rng, 4, 3)]),
        "cross_entropy_none": (lambda x: F.cross_entropy(x, target, reduction="none"), [_t(rng, 4, 3)]),
        "batch_norm": (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [_t(rng, 4, 3, 2, 2), _t(rng, 3), _t(rng, 3)]),
        "softmax": (lambda x: F.softmax(x, dim=-1), [_t(rng, 3, 4)]),
        "softmax_axis0": (lambda x: F.softmax(x, dim=0), [_t(rng, 3, 4)]),
        "log_softmax": (lambda x: F.log_softmax(x, dim=-1), [_t(rng, 3, 4)]),
        "log_softmax_axis0": (lambda x: F.log_softmax(x, dim=0), [_t(rng, 3, 4)]),
    }


CASES = _cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_double_backward_through_fused_op(name):
    fn, inputs = CASES[name]
    rng = np.random.default_rng(1)
    v = tg.tensor(rng.standard_normal(fn(*inputs).shape), dtype=tg.float64)
    us = [tg.tensor(rng.standard_normal(x.shape), dtype=tg.float64) for x in inputs]

    def first_derivative_dot(*xs):
        # <u, d<v, f(x)>/dx>, itself a differentiable function of x: its gradient is a Hessian-vector product
        with tg.enable_grad():
            grads = tg.grad((fn(*xs) * v).sum(), list(xs), create_graph=True, allow_unused=True)
        out = None
        for g, u in zip(grads, us):
            if g is not None:
                term = (g * u).sum()
                out = term if out is None else out + term
        return out

    assert tg.gradcheck(first_derivative_dot, inputs, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("name", sorted(CASES))
def test_first_order_kernel_path_matches_composite(name):
    fn, inputs = CASES[name]
    v = tg.tensor(np.random.default_rng(2).standard_normal(fn(*inputs).shape), dtype=tg.float64)
    fast = tg.grad((fn(*inputs) * v).sum(), inputs)
    composite = tg.grad((fn(*inputs) * v).sum(), inputs, create_graph=True)
    for a, b in zip(fast, composite):
        assert not a.requires_grad
        np.testing.assert_allclose(a.data, b.data, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fn_cls", [conv.Conv2d, conv.ConvTranspose, linear.Linear, loss.CrossEntropy,
                                    nn_ops.BatchNormTrain, softmax.Softmax, softmax.LogSoftmax])
def test_fused_ops_declare_their_fast_path_once(fn_cls):
    backward = fn_cls.backward
    assert backward.once_differentiable
    assert backward.fallback is fn_cls.composite_backward


class _Cube(tg.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    @tg.once_differentiable
    def backward(ctx, grad):
        assert not tg.is_grad_enabled()
        (x,) = ctx.saved_tensors
        return grad.data * 3 * x.data ** 2  # raw values: wrapped by the decorator


def test_plain_once_differentiable_runs_first_order_on_raw_values():
    x = tg.tensor([1.0, 2.0, -3.0], requires_grad=True)
    _Cube.apply(x).sum().backward()
    np.testing.assert_allclose(x.grad.data, 3 * np.array([1.0, 2.0, -3.0]) ** 2)
    (g,) = tg.grad(_Cube.apply(x).sum(), [x])
    assert isinstance(g, tg.Tensor) and not g.requires_grad


def test_plain_once_differentiable_refuses_create_graph():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"once_differentiable.*create_graph=True"):
        tg.grad(_Cube.apply(x).sum(), [x], create_graph=True)
    with pytest.raises(RuntimeError, match="_Cube"):
        _Cube.apply(x).sum().backward(create_graph=True)


def test_once_differentiable_forms_and_exports():
    assert tg.once_differentiable is autograd.once_differentiable
    assert "once_differentiable" in autograd.__all__

    def composite(ctx, grad):
        return grad * 2

    @autograd.once_differentiable()
    def plain(ctx, grad):
        return grad

    @autograd.once_differentiable(fallback=composite)
    def fast(ctx, grad):
        return grad

    assert plain.fallback is None and fast.fallback is composite and fast.first_order.__name__ == "fast"
