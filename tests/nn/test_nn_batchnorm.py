"""BatchNorm1d/2d: PyTorch's statistics (biased to normalise, unbiased in the running estimate), modes, gradients."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import floats_array, tensors

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import gradcheck, nn


def reference_bn(x, mean, var, weight, bias, eps):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * weight.reshape(shape) + bias.reshape(shape)


def batch_stats(x):
    axes = (0,) + tuple(range(2, x.ndim))
    n = x.size // x.shape[1]
    mean = x.mean(axis=axes)
    biased = ((x - mean.reshape((1, -1) + (1,) * (x.ndim - 2))) ** 2).mean(axis=axes)
    return mean, biased, biased * n / (n - 1)


@pytest.mark.parametrize("cls,shape", [(nn.BatchNorm1d, (6, 3)), (nn.BatchNorm1d, (4, 3, 5)), (nn.BatchNorm2d, (3, 3, 4, 2))])
def test_train_then_eval(cls, shape):
    rng = np.random.default_rng(0)
    bn = cls(3, momentum=0.25, dtype=tg.float64)
    bn.weight.data[...] = rng.standard_normal(3)
    bn.bias.data[...] = rng.standard_normal(3)
    run_mean, run_var = np.zeros(3), np.ones(3)
    for step in range(3):
        x = rng.standard_normal(shape) * 2 + 1
        y = bn(tg.tensor(x))
        mean, biased, unbiased = batch_stats(x)
        np.testing.assert_allclose(y.data, reference_bn(x, mean, biased, bn.weight.data, bn.bias.data, 1e-5), rtol=1e-10)
        run_mean = 0.75 * run_mean + 0.25 * mean
        run_var = 0.75 * run_var + 0.25 * unbiased
        np.testing.assert_allclose(bn.running_mean.data, run_mean, rtol=1e-12)
        np.testing.assert_allclose(bn.running_var.data, run_var, rtol=1e-12)
        assert bn.num_batches_tracked.item() == step + 1 and bn.num_batches_tracked.dtype == np.int64
    bn.eval()
    x = rng.standard_normal(shape)
    y = bn(tg.tensor(x))
    np.testing.assert_allclose(y.data, reference_bn(x, run_mean, run_var, bn.weight.data, bn.bias.data, 1e-5), rtol=1e-10)
    # eval mode never touches the running statistics
    np.testing.assert_allclose(bn.running_mean.data, run_mean, rtol=1e-12)
    assert bn.num_batches_tracked.item() == 3


def test_momentum_none_is_cumulative_average():
    rng = np.random.default_rng(1)
    bn = nn.BatchNorm1d(2, momentum=None, affine=False, dtype=tg.float64)
    means, vars_ = [], []
    for _ in range(4):
        x = rng.standard_normal((5, 2)) * 3
        bn(tg.tensor(x))
        m, _, v = batch_stats(x)
        means.append(m)
        vars_.append(v)
    np.testing.assert_allclose(bn.running_mean.data, np.mean(means, axis=0), rtol=1e-12)
    # running_var starts at 1 and the first batch has weight 1: the initial value drops out
    np.testing.assert_allclose(bn.running_var.data, np.mean(vars_, axis=0), rtol=1e-12)


def test_without_running_stats_uses_batch_stats_in_eval():
    bn = nn.BatchNorm2d(2, track_running_stats=False)
    assert bn.running_mean is None and list(bn.state_dict()) == ["weight", "bias"]
    bn.eval()
    x = tg.randn(3, 2, 2, 2)
    out = bn(x).data
    assert np.allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    assert list(nn.BatchNorm2d(2, affine=False).state_dict()) == ["running_mean", "running_var", "num_batches_tracked"]


def test_errors():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(tg.randn(1, 3))
    nn.BatchNorm1d(3).eval()(tg.randn(1, 3))  # fine in eval mode
    with pytest.raises(ValueError, match="4D"):
        nn.BatchNorm2d(3)(tg.randn(2, 3))
    with pytest.raises(ValueError, match="channels"):
        nn.BatchNorm2d(3)(tg.randn(2, 4, 2, 2))


@settings(max_examples=12)
@given(data=st.data(), dims=st.sampled_from([(4, 2), (3, 2, 3), (2, 2, 2, 3), (2, 3, 1, 2)]), affine=st.booleans())
def test_gradients_train_mode(data, dims, affine):
    bn = (nn.BatchNorm1d if len(dims) < 4 else nn.BatchNorm2d)(dims[1], affine=affine, dtype=tg.float64)
    if affine:
        bn.weight.data[...] = data.draw(floats_array((dims[1],), 0.5, 2))
        bn.bias.data[...] = data.draw(floats_array((dims[1],)))
    x = data.draw(tensors(floats_array(dims)))
    # a batch whose values per channel are (nearly) equal has σ ≈ 0: ill-conditioned, skip it
    _, biased, _ = batch_stats(np.asarray(x.data))
    if biased.min() < 1e-2:
        return
    params = list(bn.parameters())
    # each evaluation of f also updates the running statistics; that does not change f's value
    assert gradcheck(lambda x, *p: bn(x), (x, *params))


@settings(max_examples=8)
@given(data=st.data())
def test_gradients_eval_mode(data):
    bn = nn.BatchNorm2d(2, dtype=tg.float64)
    bn.running_mean.data[...] = [0.5, -1]
    bn.running_var.data[...] = [2.0, 0.3]
    bn.eval()
    x = data.draw(tensors(floats_array((2, 2, 2, 2))))
    assert gradcheck(lambda x, *p: bn(x), (x, *bn.parameters()))


def test_functional_batch_norm_matches_module():
    x = tg.randn(4, 3, 2, 2)
    rm, rv = tg.zeros(3), tg.ones(3)
    bn = nn.BatchNorm2d(3)
    a = F.batch_norm(x, rm, rv, training=True)
    b = bn(x)
    np.testing.assert_allclose(a.data, b.data, rtol=1e-6)
    np.testing.assert_allclose(rm.data, bn.running_mean.data, rtol=1e-6)
    with pytest.raises(ValueError, match="running_mean has shape"):
        F.batch_norm(x, tg.zeros(2), rv)


# --- the fused training-mode operation against the composite definition ---------------------------
def composite_batch_norm(x, weight, bias, eps=1e-5):
    """Batch norm in training mode from elementary tensor operations: the oracle for the fused Function."""
    axes = (0,) + tuple(range(2, x.ndim))
    bshape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    mean = x.mean(axes, keepdim=True)
    centred = x - mean
    var = (centred * centred).mean(axes, keepdim=True)
    out = centred / (var + eps).sqrt()
    if weight is not None:
        out = out * weight.reshape(bshape)
    if bias is not None:
        out = out + bias.reshape(bshape)
    return out


def fused(x, w, b):
    return F.batch_norm(x, None, None, w, b, training=True)


@pytest.mark.parametrize("shape", [(5, 3), (3, 2, 4), (2, 3, 3, 2)])
@pytest.mark.parametrize("affine", [True, False])
def test_fused_matches_composite_including_double_backward(shape, affine):
    rng = np.random.default_rng(7)
    x = tg.tensor(rng.standard_normal(shape) * 2 + 0.5, requires_grad=True)
    c = shape[1]
    w = tg.tensor(rng.uniform(0.5, 2, c), requires_grad=True) if affine else None
    b = tg.tensor(rng.standard_normal(c), requires_grad=True) if affine else None
    inputs = [x] + ([w, b] if affine else [])
    v = tg.tensor(rng.standard_normal(shape))
    results = []
    for f in (fused, composite_batch_norm):
        y = f(x, w, b)
        first = tg.grad(y, inputs, grad_outputs=v, create_graph=True)
        # a scalar function of the first-order gradients, differentiated again
        s = sum((g * tg.tensor(np.cos(np.arange(g.numel()).reshape(g.shape)))).sum() for g in first)
        # (the bias's gradient is Σ v whatever the inputs: nothing depends on b in the second pass)
        second = tg.grad(s, inputs, allow_unused=True)
        zero = [np.zeros(t.shape) if g is None else g.data for t, g in zip(inputs, second)]
        results.append((y.data, [g.data for g in first], zero))
    (y1, g1, h1), (y2, g2, h2) = results
    np.testing.assert_allclose(y1, y2, rtol=1e-12, atol=1e-12)
    for a, b_ in zip(g1 + h1, g2 + h2):
        np.testing.assert_allclose(a, b_, rtol=1e-9, atol=1e-10)


def test_fused_first_order_without_graph_matches_composite_float32():
    rng = np.random.default_rng(8)
    x = tg.tensor(rng.standard_normal((8, 4, 3, 3)).astype(np.float32), requires_grad=True)
    w = tg.tensor(rng.uniform(0.5, 2, 4).astype(np.float32), requires_grad=True)
    b = tg.zeros(4, requires_grad=True)
    grads = []
    for f in (fused, composite_batch_norm):
        y = f(x, w, b)
        assert y.dtype == np.float32
        y.backward(tg.tensor(np.sin(np.arange(y.numel())).reshape(y.shape).astype(np.float32)))
        grads.append([t.grad.data.copy() for t in (x, w, b)])
        for t in (x, w, b):
            t.grad = None
    for a, b_ in zip(*grads):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b_, rtol=1e-4, atol=1e-5)
