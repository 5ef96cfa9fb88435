"""Maxout and DropConnectLinear: values, shapes, train/eval behaviour, mask statistics, finite-difference gradients."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import distinct_array, floats_array, tensors

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import gradcheck, nn
from tinygrad_cv.nn.maxout import maxout


def maxout_reference(x, k, dim):
    """out[..., i, ...] = max_j x[..., i·k + j, ...], by explicit slicing of each group."""
    d = dim % x.ndim
    c = x.shape[d]
    groups = [np.take(x, np.arange(i * k, (i + 1) * k), axis=d).max(axis=d, keepdims=True) for i in range(c // k)]
    return np.concatenate(groups, axis=d)


# --- Maxout ------------------------------------------------------------------------------------

@st.composite
def maxout_case(draw):
    """(shape, pool_size, dim) with shape[dim] a multiple of pool_size, at most 48 elements."""
    k = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    ndim = draw(st.integers(1, 4))
    dim = draw(st.integers(-ndim, ndim - 1))
    shape = [draw(st.integers(1, 3)) for _ in range(ndim)]
    shape[dim] = k * groups
    while np.prod(shape) > 48:  # keep finite differences cheap: shrink the other axes
        j = int(np.argmax([s if i != dim % ndim else 0 for i, s in enumerate(shape)]))
        shape[j] = max(1, shape[j] // 2)
    return tuple(shape), k, dim


@settings(max_examples=25)
@given(data=st.data(), case=maxout_case())
def test_maxout_values_and_gradient(data, case):
    shape, k, dim = case
    x = data.draw(tensors(distinct_array(shape)))  # distinct values: no ties, the arg-max is stable under ±eps
    layer = nn.Maxout(k, dim=dim)
    y = layer(x)
    expected = maxout_reference(np.asarray(x.data), k, dim)
    assert y.shape == expected.shape
    np.testing.assert_array_equal(y.data, expected)
    assert gradcheck(layer, (x,), atol=1e-8, rtol=1e-6)


def test_maxout_gradient_goes_to_the_argmax_and_ties_to_the_first():
    x = tg.tensor([[1.0, 3.0, 2.0, 2.0, 5.0, 5.0]], dtype=tg.float64, requires_grad=True)
    y = nn.Maxout(2)(x)  # groups (1, 3), (2, 2), (5, 5)
    np.testing.assert_array_equal(y.data, [[3.0, 2.0, 5.0]])
    y.backward(tg.tensor([[10.0, 20.0, 30.0]], dtype=tg.float64))
    # the whole upstream gradient to one element per group; ties: the lower index
    np.testing.assert_array_equal(x.grad.data, [[0.0, 10.0, 20.0, 0.0, 30.0, 0.0]])


def test_maxout_channels_of_feature_maps_and_other_dims():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2, 6, 3, 4))
    x = tg.tensor(a)
    assert nn.Maxout(3)(x).shape == (2, 2, 3, 4)
    np.testing.assert_array_equal(nn.Maxout(3)(x).data, np.maximum(np.maximum(a[:, 0::3], a[:, 1::3]), a[:, 2::3]))
    assert nn.Maxout(2, dim=-1)(x).shape == (2, 6, 3, 2)
    np.testing.assert_array_equal(nn.Maxout(2, dim=-1)(x).data, np.maximum(a[..., 0::2], a[..., 1::2]))
    assert nn.Maxout(1)(x) is x  # pool_size 1: the identity


def test_maxout_same_in_train_and_eval_and_has_no_parameters():
    layer = nn.Maxout(2)
    x = tg.randn(3, 8)
    a = layer(x).data
    layer.eval()
    np.testing.assert_array_equal(layer(x).data, a)
    assert list(layer.parameters()) == [] and list(layer.state_dict()) == []
    assert repr(layer) == "Maxout(pool_size=2, dim=1)"


def test_maxout_errors_name_the_bad_value():
    with pytest.raises(ValueError, match=r"size 7 of dim 1 .* not divisible by pool_size=3"):
        nn.Maxout(3)(tg.randn(2, 7))
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="pool_size must be a positive int"):
            nn.Maxout(bad)
    with pytest.raises(IndexError, match="dim 2 is out of range"):
        maxout(tg.randn(2, 4), 2, dim=2)
    with pytest.raises(TypeError, match="dim must be an int"):
        nn.Maxout(2, dim=1.0)


def test_maxout_unit_gradients_through_the_pieces():
    """The paper's maxout unit: a Linear with k pieces per unit, then the max; gradcheck w.r.t. x, W, b."""
    tg.manual_seed(3)
    lin = nn.Linear(4, 3 * 2, dtype=tg.float64)
    net = nn.Sequential(lin, nn.Maxout(2))
    x = tg.tensor(np.random.default_rng(4).standard_normal((5, 4)), requires_grad=True)
    assert gradcheck(lambda x, w, b: net(x), (x, lin.weight, lin.bias), atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("shape,k,dim", [((4, 12), 3, 1), ((2, 6, 3, 3), 2, 1), ((2, 3, 4, 6), 3, -1)])
def test_maxout_matches_torch(shape, k, dim):
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(7).standard_normal(shape)
    g = np.random.default_rng(8).standard_normal(maxout_reference(a, k, dim).shape)
    x = tg.tensor(a, requires_grad=True)
    y = nn.Maxout(k, dim)(x)
    y.backward(tg.tensor(g))
    xt = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    d = dim % len(shape)
    yt = xt.reshape(*shape[:d], shape[d] // k, k, *shape[d + 1:]).max(d + 1).values  # the usual PyTorch idiom
    yt.backward(torch.tensor(g))
    np.testing.assert_array_equal(y.data, yt.detach().numpy())
    np.testing.assert_array_equal(x.grad.data, xt.grad.numpy())


# --- DropConnect --------------------------------------------------------------------------------

def test_dropconnect_eval_is_the_plain_linear():
    tg.manual_seed(0)
    layer = nn.DropConnectLinear(7, 5, p=0.5)
    x = tg.randn(4, 7)
    layer.eval()
    np.testing.assert_array_equal(layer(x).data, F.linear(x, layer.weight, layer.bias).data)
    layer.train()
    layer.p = 0.0  # p = 0 drops nothing, in training too
    np.testing.assert_array_equal(layer(x).data, F.linear(x, layer.weight, layer.bias).data)


def test_dropconnect_mask_statistics_over_a_big_layer():
    tg.manual_seed(1)
    p = 0.3
    layer = nn.DropConnectLinear(500, 400, bias=False, p=p)
    # identity input: row i of the output is column i of the masked weight, i.e. (M ⋆ W / (1-p))ᵀ
    masked = layer(tg.eye(500)).data.T
    w = layer.weight.data
    dropped = masked == 0
    # 200,000 Bernoulli(0.3) draws: std 0.001, so ±0.005 is 5 sigma
    assert abs(dropped.mean() - p) < 0.005
    np.testing.assert_allclose(masked[~dropped], w[~dropped] / (1 - p), rtol=1e-5)
    # no row or column is spared or wiped out: each of the 400 rows has a drop rate near p
    assert np.all(np.abs(dropped.mean(axis=1) - p) < 0.12)


@pytest.mark.parametrize("per_sample", [False, True])
def test_dropconnect_outputs_are_unbiased(per_sample):
    tg.manual_seed(2)
    p, trials = 0.5, 2000
    layer = nn.DropConnectLinear(20, 5, p=p, per_sample=per_sample, dtype=tg.float64)
    x = tg.tensor(np.random.default_rng(3).standard_normal((1, 20)))
    plain = F.linear(x, layer.weight, layer.bias).data[0]
    if per_sample:  # one forward: 2000 copies of x, each with its own mask
        draws = layer(tg.tensor(np.repeat(x.data, trials, axis=0))).data
    else:
        draws = np.concatenate([layer(x).data for _ in range(trials)])
    # Var[y_j] = p/(1-p) · Σ_i x_i² W_ji²: the mean of 2000 draws is within 5 standard errors of W x + b
    se = np.sqrt(p / (1 - p) * ((x.data[0] ** 2) * layer.weight.data ** 2).sum(axis=1) / trials)
    assert np.all(np.abs(draws.mean(axis=0) - plain) < 5 * se)
    assert np.all(draws.std(axis=0) > 0.5 * se * np.sqrt(trials))  # it does vary


def test_dropconnect_one_mask_per_call_or_per_sample():
    tg.manual_seed(4)
    x = tg.tensor(np.repeat(np.random.default_rng(5).standard_normal((1, 30)), 6, axis=0))  # 6 equal rows
    shared = nn.DropConnectLinear(30, 8, p=0.5)
    y = shared(x).data
    assert all(np.array_equal(y[0], y[i]) for i in range(6))  # the whole batch sees the same masked W
    own = nn.DropConnectLinear(30, 8, p=0.5, per_sample=True)
    y = own(x).data
    assert not any(np.array_equal(y[0], y[i]) for i in range(1, 6))  # a mask per example
    assert own(tg.randn(2, 3, 30)).shape == (2, 3, 8)  # leading axes are rows too


def test_dropconnect_same_seed_same_mask_fresh_mask_per_call():
    layer = nn.DropConnectLinear(10, 6, p=0.5)
    x = tg.randn(3, 10)
    tg.manual_seed(7)
    a = layer(x).data
    b = layer(x).data
    tg.manual_seed(7)
    np.testing.assert_array_equal(layer(x).data, a)
    assert not np.array_equal(a, b)


def test_dropconnect_gradient_only_through_kept_weights():
    p = 0.4
    layer = nn.DropConnectLinear(6, 5, p=p, dtype=tg.float64)
    x = tg.tensor(np.random.default_rng(8).standard_normal((4, 6)), requires_grad=True)
    g = np.random.default_rng(9).standard_normal((4, 5))
    tg.manual_seed(11)
    # the masked weight this seed draws: out[i, j] = Wm[j, i] + b[j] for the identity input (exact zeros where dropped)
    masked = layer(tg.eye(6, dtype=tg.float64)).data.T - layer.bias.data[:, None]
    kept = masked != 0
    tg.manual_seed(11)
    y = layer(x)
    y.backward(tg.tensor(g))
    dw = layer.weight.grad.data
    assert np.all(dw[~kept] == 0)
    np.testing.assert_allclose(dw, kept * (g.T @ x.data) / (1 - p), rtol=1e-12)
    np.testing.assert_allclose(x.grad.data, g @ masked, rtol=1e-12)
    np.testing.assert_allclose(layer.bias.grad.data, g.sum(axis=0), rtol=1e-12)  # the bias is not masked


@settings(max_examples=15)
@given(data=st.data(), p=st.sampled_from([0.25, 0.5]), per_sample=st.booleans(), mask_bias=st.booleans(),
       n=st.integers(1, 3), fin=st.integers(1, 4), fout=st.integers(1, 4))
def test_dropconnect_gradcheck_with_a_seeded_mask(data, p, per_sample, mask_bias, n, fin, fout):
    tg.manual_seed(0)
    layer = nn.DropConnectLinear(fin, fout, p=p, per_sample=per_sample, mask_bias=mask_bias, dtype=tg.float64)
    x = data.draw(tensors(floats_array((n, fin))))

    def f(x, w, b):
        tg.manual_seed(99)  # the same masks at every evaluation
        return layer(x)

    assert gradcheck(f, (x, layer.weight, layer.bias), atol=1e-8, rtol=1e-6)


def test_dropconnect_mask_bias():
    tg.manual_seed(12)
    layer = nn.DropConnectLinear(3, 2000, p=0.5, mask_bias=True)
    y = layer(tg.zeros(1, 3)).data[0]  # zero input: the output is the masked bias
    b = layer.bias.data
    dropped = y == 0
    assert abs(dropped.mean() - 0.5) < 0.06
    np.testing.assert_allclose(y[~dropped], 2 * b[~dropped], rtol=1e-6)


def test_dropconnect_is_a_linear_with_linear_keys():
    layer = nn.DropConnectLinear(4, 3, p=0.25)
    assert isinstance(layer, nn.Linear)
    assert list(layer.state_dict()) == ["weight", "bias"]
    plain = nn.Linear(4, 3)
    plain.load_state_dict(layer.state_dict())
    layer.eval()
    x = tg.randn(2, 4)
    np.testing.assert_array_equal(plain(x).data, layer(x).data)
    assert "p=0.25" in repr(layer)
    assert list(nn.DropConnectLinear(4, 3, bias=False).state_dict()) == ["weight"]


def test_dropconnect_from_linear_shares_parameters():
    lin = nn.Linear(5, 2)
    dc = nn.DropConnectLinear.from_linear(lin, p=0.5)
    assert dc.weight is lin.weight and dc.bias is lin.bias
    assert (dc.in_features, dc.out_features) == (5, 2)
    dc.train()
    dc(tg.randn(3, 5)).sum().backward()
    assert lin.weight.grad is not None
    with pytest.raises(TypeError, match="nn.Linear"):
        nn.DropConnectLinear.from_linear(nn.Conv2d(1, 1, 1))


def test_dropconnect_edges_and_errors():
    layer = nn.DropConnectLinear(4, 3, p=1.0)  # everything dropped: only the bias is left
    np.testing.assert_array_equal(layer(tg.randn(2, 4)).data, np.broadcast_to(layer.bias.data, (2, 3)))
    for bad in (-0.1, 1.5, "0.5", None):
        with pytest.raises(ValueError, match="between 0 and 1"):
            nn.DropConnectLinear(4, 3, p=bad)
    with pytest.raises(ValueError, match="in_features=4"):
        nn.DropConnectLinear(4, 3)(tg.randn(2, 5))
