"""The kernels against PyTorch's CPU implementation (skipped when torch is not installed)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
F = torch.nn.functional

from kernel_test_utils import conv_configs, conv_strategy  # noqa: E402
from tinygrad_cv.kernels import cpu, reference as ref, shapes  # noqa: E402

TWINS = ["reference", "cpu-direct", "cpu-gemm", "cpu-phase"]


def _twin(name):
    base, _, strategy = name.partition("-")
    return (ref if base == "reference" else cpu), (strategy or None)


def _torch_pad(x, pad4):
    """PyTorch's conv2d only pads symmetrically; pad explicitly for (top, bottom, left, right)."""
    t, b, l, r = pad4
    return F.pad(x, (l, r, t, b))


@pytest.mark.parametrize("twin", TWINS)
@settings(deadline=None, max_examples=15)
@given(cfg=conv_configs())
def test_conv2d_and_gradients_match_torch(twin, cfg):
    k, strategy = _twin(twin)
    rng = np.random.default_rng(cfg["seed"])
    x = rng.standard_normal(cfg["x_shape"])
    w = rng.standard_normal(cfg["w_shape"])
    b = rng.standard_normal(cfg["w_shape"][0])
    s, p, d, g = cfg["stride"], cfg["padding"], cfg["dilation"], cfg["groups"]
    pad4 = shapes.normalize_padding(p)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = F.conv2d(_torch_pad(tx, pad4), tw, tb, stride=s, dilation=d, groups=g)
    gy = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(gy))
    with conv_strategy(strategy):
        y = k.conv2d_forward(x, w, b, s, p, d, g)
        gx = k.conv2d_backward_input(gy, w, x.shape, s, p, d, g)
        gw = k.conv2d_backward_weight(x, gy, w.shape, s, p, d, g)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(gw, tw.grad.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(gy.sum((0, 2, 3)), tb.grad.numpy(), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("x_shape, out_channels, pad4", [
    ((3, 5, 7, 6), 4, (1, 1, 1, 1)),
    ((2, 3, 4, 9), 6, (0, 2, 2, 0)),
    ((9, 64, 7, 7), 64, (1, 1, 1, 1)),  # a shape the rule itself sends to Winograd
])
def test_winograd_conv2d_matches_torch(dtype, x_shape, out_channels, pad4):
    """F(2x2, 3x3) forward and input gradient against PyTorch (float64 to 1e-9; float32 to its rounding)."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((out_channels, x_shape[1], 3, 3)).astype(dtype)
    b = rng.standard_normal(out_channels).astype(dtype)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = F.conv2d(_torch_pad(tx, pad4), tw, tb)
    gy = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.tensor(gy))
    with conv_strategy("winograd"):
        y = cpu.conv2d_forward(x, w, b, 1, pad4, 1, 1)
        gx = cpu.conv2d_backward_input(gy, w, x.shape, 1, pad4, 1, 1)
    tol = 1e-9 if dtype == np.float64 else 2e-4 * np.sqrt(9 * x_shape[1])
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("x_shape, kernel, pad4, dilation", [
    ((3, 5, 7, 6), (3, 3), (1, 1, 1, 1), (1, 1)),
    ((2, 4, 9, 5), (2, 3), (0, 1, 2, 0), (2, 1)),
    ((130, 256, 7, 7), (3, 3), (1, 1, 1, 1), (1, 1)),  # a shape the rule itself sends to the depthwise method
    ((2, 3, 11, 11), (7, 7), (3, 3, 3, 3), (1, 1)),    # 7x7: the method for the input gradient only
])
def test_depthwise_conv2d_matches_torch(dtype, x_shape, kernel, pad4, dilation):
    """The plane-buffer depthwise kernels (all three passes) against PyTorch (float64 to 1e-9; float32 to its rounding)."""
    rng = np.random.default_rng(12)
    C = x_shape[1]
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((C, 1) + kernel).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = F.conv2d(_torch_pad(tx, pad4), tw, tb, dilation=dilation, groups=C)
    gy = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.tensor(gy))
    with conv_strategy("depthwise"):
        y = cpu.conv2d_forward(x, w, b, 1, pad4, dilation, C)
        gx = cpu.conv2d_backward_input(gy, w, x.shape, 1, pad4, dilation, C)
        gw = cpu.conv2d_backward_weight(x, gy, w.shape, 1, pad4, dilation, C)
    reduction = x_shape[0] * x_shape[2] * x_shape[3]  # the weight gradient sums over batch and pixels
    for ours, theirs, n in ((y, ty, kernel[0] * kernel[1]), (gx, tx.grad, kernel[0] * kernel[1]), (gw, tw.grad, reduction)):
        tol = 1e-9 if dtype == np.float64 else 2e-5 * np.sqrt(n)
        theirs = theirs.detach().numpy()
        np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol * max(1.0, np.abs(theirs).max()))


@pytest.mark.parametrize("twin", ["reference", "cpu"])
@pytest.mark.parametrize(
    "x_shape, w_shape, stride, padding, output_padding, groups, dilation",
    [
        ((2, 4, 5, 5), (4, 3, 3, 3), (2, 2), (1, 1), (1, 1), 1, (1, 1)),
        ((1, 4, 4, 6), (4, 1, 2, 3), (3, 2), (0, 1), (2, 0), 2, (1, 1)),
        ((2, 2, 3, 3), (2, 1, 2, 2), (1, 1), (0, 0), (1, 1), 1, (2, 2)),  # output_padding >= stride
        ((1, 3, 6, 5), (3, 2, 3, 3), (1, 1), (2, 1), (0, 0), 1, (2, 1)),
    ],
)
def test_conv_transpose2d_matches_torch(twin, x_shape, w_shape, stride, padding, output_padding, groups, dilation):
    k = ref if twin == "reference" else cpu
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[1] * groups)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = F.conv_transpose2d(tx, tw, tb, stride, padding, output_padding, groups, dilation)
    gy = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(gy))
    y = k.conv_transpose2d_forward(x, w, b, stride, padding, output_padding, groups, dilation)
    gx = k.conv_transpose2d_backward_input(gy, w, stride, padding, dilation, groups, x_shape=x.shape)
    gw = k.conv_transpose2d_backward_weight(x, gy, w.shape, stride, padding, dilation, groups)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(gw, tw.grad.numpy(), rtol=1e-9, atol=1e-9)


@st.composite
def pool_cases(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    case = dict(
        x_shape=(draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9))),
        kernel_size=(kh, kw),
        stride=(draw(st.integers(1, 4)), draw(st.integers(1, 4))),
        padding=(draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))),
        dilation=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
        ceil_mode=draw(st.booleans()),
        values=draw(st.sampled_from(["normal", "ties", "nan"])),
        seed=draw(st.integers(0, 2**32 - 1)),
    )
    return case


def _pool_x(case):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal(case["x_shape"])
    if case["values"] == "ties":
        x = np.floor(x)
    elif case["values"] == "nan":
        x[rng.random(x.shape) < 0.2] = np.nan
    return rng, x


@pytest.mark.parametrize("twin", ["reference", "cpu"])
@settings(deadline=None, max_examples=40)
@given(case=pool_cases())
def test_max_pool2d_with_indices_matches_torch(twin, case):
    k = ref if twin == "reference" else cpu
    rng, x = _pool_x(case)
    args = (case["kernel_size"], case["stride"], case["padding"], case["dilation"], case["ceil_mode"])
    try:
        tx = torch.tensor(x, requires_grad=True)
        ty, tidx = F.max_pool2d(tx, *args[:4], ceil_mode=case["ceil_mode"], return_indices=True)
    except RuntimeError:
        with pytest.raises(ValueError):
            k.max_pool2d_forward(x, *args)
        return
    y, idx = k.max_pool2d_forward(x, *args)
    assert y.shape == tuple(ty.shape)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    if (idx < 0).any():
        # a dilated window that misses the input: -inf and index -1 here;
        # PyTorch reports a seed index that can alias a real element and its
        # backward routes gradient there, so only the finite part is compared
        np.testing.assert_array_equal(idx[idx >= 0], tidx.numpy()[idx >= 0])
        return
    np.testing.assert_array_equal(idx, tidx.numpy())
    gy = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(k.max_pool2d_backward(gy, idx, x.shape), tx.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("twin", ["reference", "cpu"])
@settings(deadline=None, max_examples=40)
@given(case=pool_cases(), count_include_pad=st.booleans(), divisor_override=st.sampled_from([None, 2]))
def test_avg_pool2d_matches_torch(twin, case, count_include_pad, divisor_override):
    k = ref if twin == "reference" else cpu
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal(case["x_shape"])
    args = (case["kernel_size"], case["stride"], case["padding"], case["ceil_mode"], count_include_pad, divisor_override)
    try:
        tx = torch.tensor(x, requires_grad=True)
        ty = F.avg_pool2d(tx, *args)
    except RuntimeError:
        with pytest.raises(ValueError):
            k.avg_pool2d_forward(x, *args)
        return
    y = k.avg_pool2d_forward(x, *args)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    gy = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(k.avg_pool2d_backward(gy, x.shape, *args), tx.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lenet_shapes_match_torch(dtype):
    """LeNet-5's layers at batch 8, float32 and float64, fast twin vs PyTorch."""
    rng = np.random.default_rng(0)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    for c, o, h, p in [(1, 6, 28, 2), (6, 16, 14, 0)]:
        x = rng.standard_normal((8, c, h, h)).astype(dtype)
        w = (rng.standard_normal((o, c, 5, 5)) * 0.2).astype(dtype)
        tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
        ty = F.conv2d(tx, tw, padding=p)
        gy = rng.standard_normal(tuple(ty.shape)).astype(dtype)
        ty.backward(torch.tensor(gy))
        np.testing.assert_allclose(cpu.conv2d_forward(x, w, None, 1, p, 1, 1), ty.detach().numpy(), **tol)
        np.testing.assert_allclose(cpu.conv2d_backward_input(gy, w, x.shape, 1, p, 1, 1), tx.grad.numpy(), **tol)
        np.testing.assert_allclose(cpu.conv2d_backward_weight(x, gy, w.shape, 1, p, 1, 1), tw.grad.numpy(), **tol)
        y, idx = cpu.max_pool2d_forward(x, 2, 2, 0, 1, False)
        ty2, tidx = F.max_pool2d(tx.detach(), 2, return_indices=True)
        np.testing.assert_array_equal(y, ty2.numpy())
        np.testing.assert_array_equal(idx, tidx.numpy())
