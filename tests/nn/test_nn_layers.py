"""Layers without running state: values against NumPy, gradients against finite differences (float64)."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import as_tensor, floats_array, tensors

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import gradcheck, nn


def check_layer(layer, *inputs):
    """gradcheck of ``layer(*inputs)`` with respect to the inputs and every parameter of the layer."""
    params = list(layer.parameters())
    n = len(inputs)
    assert gradcheck(lambda *args: layer(*args[:n]), tuple(inputs) + tuple(params))


# --- Linear --------------------------------------------------------------------------------
@settings(max_examples=15)
@given(data=st.data(), lead=st.lists(st.integers(1, 3), max_size=2), fin=st.integers(1, 4),
       fout=st.integers(1, 4), bias=st.booleans())
def test_linear_values_and_gradients(data, lead, fin, fout, bias):
    layer = nn.Linear(fin, fout, bias=bias, dtype=tg.float64)
    x = data.draw(tensors(floats_array(tuple(lead) + (fin,))))
    y = layer(x)
    expected = x.data @ layer.weight.data.T + (layer.bias.data if bias else 0)
    assert y.shape == tuple(lead) + (fout,)
    np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-12)
    check_layer(layer, x)


def test_linear_default_init_and_shape_errors():
    tg.manual_seed(0)
    layer = nn.Linear(50, 40)
    bound = 1 / math.sqrt(50)
    assert layer.weight.shape == (40, 50) and layer.bias.shape == (40,)
    assert layer.weight.dtype == np.float32
    for t in (layer.weight, layer.bias):
        assert np.abs(t.data).max() <= bound and np.abs(t.data).max() > 0.8 * bound
    # U(-b, b) has std b / √3
    assert abs(layer.weight.data.std() - bound / math.sqrt(3)) < 0.1 * bound
    with pytest.raises(ValueError, match="in_features=50"):
        layer(tg.zeros(3, 49))


# --- activations -----------------------------------------------------------------------------
ACTIVATIONS = [
    (nn.ReLU(), lambda x: np.maximum(x, 0), (0.0,)),
    (nn.LeakyReLU(0.2), lambda x: np.where(x > 0, x, 0.2 * x), (0.0,)),
    (nn.Sigmoid(), lambda x: 1 / (1 + np.exp(-x)), ()),
    (nn.Tanh(), np.tanh, ()),
    (nn.Identity(), lambda x: x, ()),
    (nn.Flatten(), lambda x: x.reshape(x.shape[0], -1), ()),
    (nn.Flatten(0, 1), lambda x: x.reshape((-1,) + x.shape[2:]), ()),
]


@pytest.mark.parametrize("layer,ref,kinks", ACTIVATIONS, ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else "")
@settings(max_examples=10)
@given(data=st.data())
def test_elementwise_and_shape_layers(data, layer, ref, kinks):
    shape = data.draw(st.lists(st.integers(1, 3), min_size=2, max_size=4).map(tuple))
    x = data.draw(tensors(floats_array(shape, avoid=kinks)))
    np.testing.assert_allclose(layer(x).data, ref(np.asarray(x.data)), rtol=1e-12, atol=1e-15)
    check_layer(layer, x)


@pytest.mark.parametrize("cls", [nn.Softmax, nn.LogSoftmax])
@settings(max_examples=10)
@given(data=st.data())
def test_softmax_layers(data, cls):
    shape = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple))
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = data.draw(tensors(floats_array(shape, -5, 5)))
    layer = cls(dim=dim)
    a = np.asarray(x.data)
    e = np.exp(a - a.max(axis=dim, keepdims=True))
    p = e / e.sum(axis=dim, keepdims=True)
    np.testing.assert_allclose(layer(x).data, p if cls is nn.Softmax else np.log(p), rtol=1e-10, atol=1e-12)
    check_layer(layer, x)


# --- adaptive average pooling -------------------------------------------------------------------
def adaptive_avg_pool_loops(x, oh, ow):
    """The definition, one window at a time: rows [⌊iH/oh⌋, ⌈(i+1)H/oh⌉), columns likewise."""
    h, w = x.shape[-2:]
    out = np.zeros(x.shape[:-2] + (oh, ow))
    for i in range(oh):
        r0, r1 = (i * h) // oh, -(-((i + 1) * h) // oh)
        for j in range(ow):
            c0, c1 = (j * w) // ow, -(-((j + 1) * w) // ow)
            out[..., i, j] = x[..., r0:r1, c0:c1].mean(axis=(-2, -1))
    return out


@settings(max_examples=20)
@given(data=st.data(), h=st.integers(1, 6), w=st.integers(1, 6), oh=st.integers(1, 5), ow=st.integers(1, 5),
       batched=st.booleans())
def test_adaptive_avg_pool2d(data, h, w, oh, ow, batched):
    shape = ((2,) if batched else ()) + (2, h, w)
    x = data.draw(tensors(floats_array(shape)))
    layer = nn.AdaptiveAvgPool2d((oh, ow))
    y = layer(x)
    assert y.shape == shape[:-2] + (oh, ow)
    np.testing.assert_allclose(y.data, adaptive_avg_pool_loops(np.asarray(x.data), oh, ow), rtol=1e-12, atol=1e-14)
    check_layer(layer, x)


def test_adaptive_avg_pool2d_global_and_none():
    x = tg.randn(2, 3, 5, 7)
    np.testing.assert_allclose(nn.AdaptiveAvgPool2d(1)(x).data, x.data.mean(axis=(2, 3), keepdims=True), rtol=1e-6)
    assert nn.AdaptiveAvgPool2d((None, 2))(x).shape == (2, 3, 5, 2)
    with pytest.raises(ValueError, match="3-D or 4-D"):
        nn.AdaptiveAvgPool2d(1)(tg.zeros(5, 7))


# --- losses ------------------------------------------------------------------------------------
@settings(max_examples=20)
@given(data=st.data(), n=st.integers(1, 4), c=st.integers(2, 4), spatial=st.sampled_from([(), (2,), (2, 1)]),
       reduction=st.sampled_from(["mean", "sum", "none"]), weighted=st.booleans(),
       smoothing=st.sampled_from([0.0, 0.2]), ignore=st.booleans())
def test_cross_entropy_loss(data, n, c, spatial, reduction, weighted, smoothing, ignore):
    x = data.draw(tensors(floats_array((n, c) + spatial, -3, 3)))
    t = np.asarray(data.draw(st.lists(st.integers(0, c - 1), min_size=n * int(np.prod(spatial)),
                                      max_size=n * int(np.prod(spatial))))).reshape((n,) + spatial)
    if ignore:
        t.flat[0] = -100
    w = tg.tensor(np.linspace(0.5, 1.5, c)) if weighted else None
    loss_fn = nn.CrossEntropyLoss(weight=w, reduction=reduction, label_smoothing=smoothing)
    loss = loss_fn(x, tg.tensor(t))
    # reference: the definition with the smoothed target distribution
    a = np.moveaxis(np.asarray(x.data), 1, -1).reshape(-1, c)
    logp = a - a.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    tf = t.reshape(-1)
    keep = tf != -100
    wv = np.linspace(0.5, 1.5, c) if weighted else np.ones(c)
    safe = np.where(keep, tf, 0)
    nll = -wv[safe] * logp[np.arange(tf.size), safe] * keep
    smooth = -(wv * logp).sum(1) * keep
    per = (1 - smoothing) * nll + smoothing / c * smooth
    if reduction == "none":
        expected = per.reshape((n,) + spatial)
    elif reduction == "sum":
        expected = per.sum()
    else:
        expected = per.sum() / (wv[safe] * keep).sum() if keep.any() else np.nan
    np.testing.assert_allclose(loss.data, expected, rtol=1e-10, atol=1e-12)
    if keep.any():
        gradcheck(lambda x: loss_fn(x, tg.tensor(t)), (x,))


@settings(max_examples=10)
@given(data=st.data(), n=st.integers(1, 4), c=st.integers(1, 4), reduction=st.sampled_from(["mean", "sum", "none"]))
def test_nll_loss(data, n, c, reduction):
    x = data.draw(tensors(floats_array((n, c), -3, 0)))
    t = np.asarray(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    loss_fn = nn.NLLLoss(reduction=reduction)
    per = -np.asarray(x.data)[np.arange(n), t]
    expected = {"none": per, "sum": per.sum(), "mean": per.mean()}[reduction]
    np.testing.assert_allclose(loss_fn(x, tg.tensor(t)).data, expected, rtol=1e-12)
    gradcheck(lambda x: loss_fn(x, tg.tensor(t)), (x,))


@settings(max_examples=10)
@given(data=st.data(), reduction=st.sampled_from(["mean", "sum", "none"]))
def test_mse_loss(data, reduction):
    shape = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple))
    x = data.draw(tensors(floats_array(shape)))
    y = data.draw(tensors(floats_array(shape)))
    loss_fn = nn.MSELoss(reduction=reduction)
    sq = (np.asarray(x.data) - np.asarray(y.data)) ** 2
    expected = {"none": sq, "sum": sq.sum(), "mean": sq.mean()}[reduction]
    np.testing.assert_allclose(loss_fn(x, y).data, expected, rtol=1e-12)
    gradcheck(lambda x, y: loss_fn(x, y), (x, y))


def test_loss_weight_is_a_buffer_and_options_are_keyword_only():
    loss = nn.CrossEntropyLoss(weight=tg.tensor([1.0, 2.0]))
    assert list(loss.state_dict()) == ["weight"]
    with pytest.raises(TypeError):
        nn.CrossEntropyLoss(None, None, -100)  # PyTorch's deprecated positional size_average/reduce
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")


def test_linear_functional_matches_layer():
    layer = nn.Linear(3, 2)
    x = tg.randn(4, 3)
    assert np.array_equal(F.linear(x, layer.weight, layer.bias).data, layer(x).data)
    assert F.linear(x, layer.weight).shape == (4, 2)
    g = as_tensor(np.ones(3))
    assert F.linear(g, as_tensor(np.ones((2, 3)))).shape == (2,)
