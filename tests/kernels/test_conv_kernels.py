"""Convolution kernels: cpu twin == reference twin, shapes, adjoints, determinism, errors."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernel_test_utils import DTYPES, assert_close, conv_configs, conv_strategy, make_array, vdot
from tinygrad_cv import kernels
from tinygrad_cv.kernels import cpu, reference as ref, shapes
from tinygrad_cv.kernels.conv import cpu as conv_cpu, cpu_gemm, cpu_winograd

# compile the Numba kernels once, before the first hypothesis example
pytestmark = pytest.mark.usefixtures("warm_kernels")


STRATEGIES = ["direct", "gemm", "phase"]


def _data(cfg, dtype, with_bias=True, n_bias=None):
    rng = np.random.default_rng(cfg["seed"])
    x = make_array(rng, cfg["x_shape"], dtype, cfg["layout"])
    w = make_array(rng, cfg["w_shape"], dtype, cfg["layout"])
    n_bias = cfg["w_shape"][0] if n_bias is None else n_bias
    b = rng.standard_normal(n_bias).astype(dtype) if with_bias else None
    return rng, x, w, b


def _args(cfg):
    return cfg["stride"], cfg["padding"], cfg["dilation"], cfg["groups"]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("dtype", DTYPES)
@settings(deadline=None, max_examples=20)
@given(cfg=conv_configs())
def test_conv2d_cpu_matches_reference(strategy, dtype, cfg):
    rng, x, w, b = _data(cfg, dtype)
    s, p, d, g = _args(cfg)
    with conv_strategy(strategy):
        y = cpu.conv2d_forward(x, w, b, s, p, d, g)
        y_ref = ref.conv2d_forward(x, w, b, s, p, d, g)
        # output shape is PyTorch's formula
        oh, ow = shapes.conv2d_output_size(x.shape[2:], w.shape[2:], s, p, d)
        assert y.shape == (x.shape[0], w.shape[0], oh, ow)
        scale = ref.conv2d_forward(np.abs(x), np.abs(w), np.abs(b), s, p, d, g)
        assert_close(y, y_ref, scale, dtype)

        gy = make_array(rng, y.shape, dtype, cfg["layout"])
        gx = cpu.conv2d_backward_input(gy, w, x.shape, s, p, d, g)
        gx_ref = ref.conv2d_backward_input(gy, w, x.shape, s, p, d, g)
        assert_close(gx, gx_ref, ref.conv2d_backward_input(np.abs(gy), np.abs(w), x.shape, s, p, d, g), dtype)

        gw = cpu.conv2d_backward_weight(x, gy, w.shape, s, p, d, g)
        gw_ref = ref.conv2d_backward_weight(x, gy, w.shape, s, p, d, g)
        assert_close(gw, gw_ref, ref.conv2d_backward_weight(np.abs(x), np.abs(gy), w.shape, s, p, d, g), dtype)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("dtype", DTYPES)
@settings(deadline=None, max_examples=30)
# half of the examples at stride 1, where gy is re-laid once and the bias summed in that pass
@given(cfg=st.one_of(conv_configs(max_stride=1), conv_configs()), needs=st.tuples(st.booleans(), st.booleans(), st.booleans()))
def test_conv2d_backward_all_gradients_in_one_call(strategy, dtype, cfg, needs):
    """cpu.conv2d_backward (gy re-laid once, bias summed in that pass) = the reference's three gradients."""
    rng, x, w, _ = _data(cfg, dtype, with_bias=False)
    s, p, d, g = _args(cfg)
    gy = make_array(rng, ref.conv2d_forward(x, w, None, s, p, d, g).shape, dtype, cfg["layout"])
    with conv_strategy(strategy):
        gx, gw, gb = cpu.conv2d_backward(x, gy, w, s, p, d, g, *needs)
    assert [v is not None for v in (gx, gw, gb)] == list(needs)
    # the reference twin's one-call form is its three formulas
    assert [v is not None for v in ref.conv2d_backward(x, gy, w, s, p, d, g, *needs)] == list(needs)
    if gx is not None:
        assert gx.dtype == dtype
        assert_close(gx, ref.conv2d_backward_input(gy, w, x.shape, s, p, d, g),
                     ref.conv2d_backward_input(np.abs(gy), np.abs(w), x.shape, s, p, d, g), dtype)
    if gw is not None:
        assert gw.dtype == dtype
        assert_close(gw, ref.conv2d_backward_weight(x, gy, w.shape, s, p, d, g),
                     ref.conv2d_backward_weight(np.abs(x), np.abs(gy), w.shape, s, p, d, g), dtype)
    if gb is not None:
        assert gb.dtype == dtype and gb.shape == (w.shape[0],)
        exact = gy.astype(np.float64).sum(axis=(0, 2, 3)).astype(dtype)
        assert_close(gb, exact, np.abs(gy).sum(axis=(0, 2, 3)), dtype)
        assert_close(ref.conv2d_backward(x, gy, w, s, p, d, g, False, False, True)[2], exact,
                     np.abs(gy).sum(axis=(0, 2, 3)), dtype)


@pytest.mark.parametrize("twin", ["reference", "cpu-direct", "cpu-gemm", "cpu-phase"])
@settings(deadline=None, max_examples=20)
@given(cfg=conv_configs())
def test_conv2d_backward_kernels_are_adjoints(twin, cfg):
    """<conv(x), gy> == <x, backward_input(gy)> == <w, backward_weight(x, gy)> (bilinearity)."""
    name, _, strategy = twin.partition("-")
    k = kernels.get_backend(name)
    rng, x, w, _ = _data(cfg, np.float64, with_bias=False)
    s, p, d, g = _args(cfg)
    with conv_strategy(strategy or None):
        y = k.conv2d_forward(x, w, None, s, p, d, g)
        gy = rng.standard_normal(y.shape)
        lhs = vdot(y, gy)
        via_input = vdot(x, k.conv2d_backward_input(gy, w, x.shape, s, p, d, g))
        via_weight = vdot(w, k.conv2d_backward_weight(x, gy, w.shape, s, p, d, g))
    scale = vdot(ref.conv2d_forward(np.abs(x), np.abs(w), None, s, p, d, g), np.abs(gy)) + 1e-300
    assert abs(lhs - via_input) <= 1e-12 * scale
    assert abs(lhs - via_weight) <= 1e-12 * scale


@st.composite
def transpose_configs(draw):
    cfg = draw(conv_configs(max_pad=1))
    s, d = cfg["stride"], cfg["dilation"]
    # output_padding must be < stride or < dilation, per dimension
    op = tuple(draw(st.integers(0, max(s[i], d[i]) - 1)) for i in range(2))
    n, c, h, w = cfg["x_shape"]
    o, cg, kh, kw = cfg["w_shape"]
    # conv_transpose2d weight is (C_in, C_out/groups, KH, KW): reuse the conv
    # weight shape with C_in = o (the conv's output channels)
    cfg["x_shape"] = (n, o, h, w)
    cfg["output_padding"] = op
    try:
        shapes.conv_transpose2d_output_size((h, w), (kh, kw), s, cfg["padding"], op, d)
    except ValueError:
        cfg["output_padding"] = None
    return cfg


@pytest.mark.parametrize("dtype", DTYPES)
@settings(deadline=None, max_examples=20)
@given(cfg=transpose_configs())
def test_conv_transpose2d_cpu_matches_reference_and_adjoints(dtype, cfg):
    from hypothesis import assume

    assume(cfg["output_padding"] is not None)
    rng, x, w, b = _data(cfg, dtype, n_bias=cfg["w_shape"][1] * cfg["groups"])
    s, p, d, g = _args(cfg)
    op = cfg["output_padding"]
    y = cpu.conv_transpose2d_forward(x, w, b, s, p, op, g, d)
    y_ref = ref.conv_transpose2d_forward(x, w, b, s, p, op, g, d)
    oh, ow = shapes.conv_transpose2d_output_size(x.shape[2:], w.shape[2:], s, p, op, d)
    assert y.shape == (x.shape[0], w.shape[1] * g, oh, ow)
    scale = ref.conv_transpose2d_forward(np.abs(x), np.abs(w), np.abs(b), s, p, op, g, d)
    assert_close(y, y_ref, scale, dtype)

    gy = make_array(rng, y.shape, dtype, cfg["layout"])
    gx = cpu.conv_transpose2d_backward_input(gy, w, s, p, d, g, x_shape=x.shape)
    gx_ref = ref.conv_transpose2d_backward_input(gy, w, s, p, d, g, x_shape=x.shape)
    assert gx.shape == x.shape
    assert_close(gx, gx_ref, ref.conv_transpose2d_backward_input(np.abs(gy), np.abs(w), s, p, d, g, x_shape=x.shape), dtype)
    gw = cpu.conv_transpose2d_backward_weight(x, gy, w.shape, s, p, d, g)
    gw_ref = ref.conv_transpose2d_backward_weight(x, gy, w.shape, s, p, d, g)
    assert_close(gw, gw_ref, ref.conv_transpose2d_backward_weight(np.abs(x), np.abs(gy), w.shape, s, p, d, g), dtype)

    if dtype == np.float64:
        y0 = cpu.conv_transpose2d_forward(x, w, None, s, p, op, g, d)
        lhs = vdot(y0, gy)
        big = vdot(np.abs(y0), np.abs(gy)) + vdot(ref.conv_transpose2d_forward(np.abs(x), np.abs(w), None, s, p, op, g, d), np.abs(gy)) + 1e-300
        assert abs(lhs - vdot(x, gx)) <= 1e-12 * big
        assert abs(lhs - vdot(w, gw)) <= 1e-12 * big


def test_conv_transpose2d_output_padding_beyond_stride_crops():
    """output_padding >= stride (allowed when < dilation): conv2d of gy has an extra row."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, 3, 3))
    w = rng.standard_normal((2, 1, 2, 2))
    y = cpu.conv_transpose2d_forward(x, w, None, (1, 1), (0, 0), (1, 1), 1, (2, 2))
    assert y.shape == (1, 1, 6, 6)
    gy = rng.standard_normal(y.shape)
    full = cpu.conv_transpose2d_backward_input(gy, w, (1, 1), (0, 0), (2, 2), 1)
    assert full.shape == (1, 2, 4, 4)
    gx = cpu.conv_transpose2d_backward_input(gy, w, (1, 1), (0, 0), (2, 2), 1, x_shape=x.shape)
    np.testing.assert_array_equal(gx, full[:, :, :3, :3])
    assert abs(vdot(y, gy) - vdot(x, gx)) < 1e-10 * (1 + abs(vdot(y, gy)))
    gw = cpu.conv_transpose2d_backward_weight(x, gy, w.shape, (1, 1), (0, 0), (2, 2), 1)
    assert abs(vdot(y, gy) - vdot(w, gw)) < 1e-10 * (1 + abs(vdot(y, gy)))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_same_padding_even_kernel_is_asymmetric(strategy):
    """padding='same' with an even kernel pads one more on the bottom/right, like PyTorch."""
    pad = shapes.resolve_padding("same", (4, 2), 1, (1, 1))
    assert pad == (1, 2, 0, 1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, 4, 2))
    with conv_strategy(strategy):
        y = cpu.conv2d_forward(x, w, None, 1, pad, 1, 1)
    assert y.shape[2:] == x.shape[2:]
    # same as padding explicitly then a valid convolution
    xp = np.pad(x, ((0, 0), (0, 0), (1, 2), (0, 1)))
    np.testing.assert_allclose(y, ref.conv2d_forward(xp, w, None, 1, 0, 1, 1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_is_deterministic(strategy, dtype):
    """Two runs give bit-identical gradients (no races, fixed reduction order)."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((16, 6, 14, 14)).astype(dtype)
    w = rng.standard_normal((16, 6, 5, 5)).astype(dtype)
    gy = rng.standard_normal((16, 16, 12, 12)).astype(dtype)
    args = ((1, 1), (1, 1), (1, 1), 1)
    with conv_strategy(strategy):
        gx1 = cpu.conv2d_backward_input(gy, w, x.shape, *args)
        gw1 = cpu.conv2d_backward_weight(x, gy, w.shape, *args)
        for _ in range(3):
            np.testing.assert_array_equal(cpu.conv2d_backward_input(gy, w, x.shape, *args), gx1)
            np.testing.assert_array_equal(cpu.conv2d_backward_weight(x, gy, w.shape, *args), gw1)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_gradients_do_not_depend_on_the_thread_count(strategy):
    """Work is split by a fixed rule (chunks, lanes), not by the threads there are: 1 or 2 threads, same bits."""
    numba = pytest.importorskip("numba")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((37, 5, 11, 11)).astype(np.float32)
    w = rng.standard_normal((7, 5, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((37, 7, 6, 6)).astype(np.float32)
    args = ((2, 2), (1, 1), (1, 1), 1)
    with conv_strategy(strategy):
        want = (cpu.conv2d_backward_input(gy, w, x.shape, *args), cpu.conv2d_backward_weight(x, gy, w.shape, *args))
        before = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            got = (cpu.conv2d_backward_input(gy, w, x.shape, *args),
                   cpu.conv2d_backward_weight(x, gy, w.shape, *args))
        finally:
            numba.set_num_threads(before)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_gemm_path_chunks_over_the_batch(monkeypatch):
    """A small im2col budget forces several chunks; the result must not change."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 4, 9, 9))
    w = rng.standard_normal((6, 4, 3, 3))
    gy = rng.standard_normal((5, 6, 9, 9))
    args = ((1, 1), (1, 1), (1, 1), 1)
    with conv_strategy("gemm"):
        expected = (cpu.conv2d_forward(x, w, None, *args), cpu.conv2d_backward_input(gy, w, x.shape, *args),
                    cpu.conv2d_backward_weight(x, gy, w.shape, *args))
        monkeypatch.setattr(cpu_gemm, "_COL_BUDGET", 36 * 81 * 2)  # two images per chunk
        got = (cpu.conv2d_forward(x, w, None, *args), cpu.conv2d_backward_input(gy, w, x.shape, *args),
               cpu.conv2d_backward_weight(x, gy, w.shape, *args))
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@st.composite
def winograd_configs(draw):
    """3x3 stride-1 convolutions (Winograd's domain): odd and even output sizes, paddings 0-2 per side."""
    pad4 = tuple(draw(st.integers(0, 2)) for _ in range(4))
    h = draw(st.integers(max(1, 3 - pad4[0] - pad4[1]), 9))
    w = draw(st.integers(max(1, 3 - pad4[2] - pad4[3]), 9))
    return dict(x_shape=(draw(st.integers(1, 5)), draw(st.integers(1, 6)), h, w),
                w_shape=(draw(st.integers(1, 6)), None, 3, 3), padding=pad4,
                layout=draw(st.sampled_from(["contiguous", "strided", "transposed"])),
                seed=draw(st.integers(0, 2**32 - 1)))


@pytest.mark.parametrize("dtype", DTYPES)
@settings(deadline=None, max_examples=40)
@given(cfg=winograd_configs(), budget=st.sampled_from([None, 16 * 6 * 4]))
def test_winograd_matches_reference(dtype, cfg, budget):
    """Winograd F(2x2, 3x3) forward and backward-input == the reference twin (one chunk or many)."""
    cfg["w_shape"] = (cfg["w_shape"][0], cfg["x_shape"][1], 3, 3)
    rng, x, w, b = _data(cfg, dtype)
    p = cfg["padding"]
    old = cpu_winograd._U_BUDGET
    if budget is not None:  # a few tiles per chunk: many chunks of one image each
        cpu_winograd._U_BUDGET = budget
    try:
        _check_winograd(x, w, b, p, rng, dtype, cfg["layout"])
    finally:
        cpu_winograd._U_BUDGET = old


def _check_winograd(x, w, b, p, rng, dtype, layout):
    with conv_strategy("winograd"):
        assert conv_cpu._use_winograd("forward", x.shape[1], w.shape[0], 3, 3, (1, 1), (1, 1), 1, p, 1)
        y = cpu.conv2d_forward(x, w, b, 1, p, 1, 1)
        assert y.dtype == dtype
        assert_close(y, ref.conv2d_forward(x, w, b, 1, p, 1, 1),
                     ref.conv2d_forward(np.abs(x), np.abs(w), np.abs(b), 1, p, 1, 1), dtype)
        gy = make_array(rng, y.shape, dtype, layout)
        gx = cpu.conv2d_backward_input(gy, w, x.shape, 1, p, 1, 1)
        assert gx.shape == x.shape and gx.dtype == dtype
        assert_close(gx, ref.conv2d_backward_input(gy, w, x.shape, 1, p, 1, 1),
                     ref.conv2d_backward_input(np.abs(gy), np.abs(w), x.shape, 1, p, 1, 1), dtype)
        # the one-call backward (the weight gradient comes from the heuristic's method)
        gx1, gw1, gb1 = cpu.conv2d_backward(x, gy, w, 1, p, 1, 1)
        np.testing.assert_array_equal(gx1, gx)
        assert_close(gw1, ref.conv2d_backward_weight(x, gy, w.shape, 1, p, 1, 1),
                     ref.conv2d_backward_weight(np.abs(x), np.abs(gy), w.shape, 1, p, 1, 1), dtype)


def test_winograd_rule_and_its_domain():
    """The heuristic picks Winograd for 64-128 channels (input gradient: 32-128) up to 112x112, never the weight."""
    use = conv_cpu._use_winograd
    one, pad = (1, 1), (1, 1, 1, 1)
    assert use("forward", 64, 64, 3, 3, one, one, 1, pad, 64)
    assert use("input", 128, 128, 3, 3, one, one, 1, pad, 196)
    assert not use("weight", 64, 64, 3, 3, one, one, 1, pad, 64)  # measured slower: im2col + GEMM
    assert not use("forward", 32, 32, 3, 3, one, one, 1, pad, 256)  # transforms cost as much as they save
    assert use("input", 32, 32, 3, 3, one, one, 1, pad, 256)  # ... but the direct input gradient is slower
    assert not use("forward", 256, 256, 3, 3, one, one, 1, pad, 49)  # the transformed weight leaves the cache
    assert use("forward", 64, 64, 3, 3, one, one, 1, pad, 56 * 56)  # measured up to 112x112 ...
    assert not use("forward", 64, 64, 3, 3, one, one, 1, pad, 113 * 113)  # ... and not beyond
    # outside F(2x2, 3x3)'s domain, even when forced
    with conv_strategy("winograd"):
        assert not use("forward", 64, 64, 3, 3, (2, 2), one, 1, pad, 64)
        assert not use("forward", 64, 64, 3, 3, one, (2, 2), 1, pad, 64)
        assert not use("forward", 64, 64, 5, 5, one, one, 1, pad, 64)
        assert not use("forward", 64, 64, 3, 3, one, one, 2, pad, 64)
        assert not use("forward", 64, 64, 3, 3, one, one, 1, (3, 3, 3, 3), 64)


def test_phase_rule():
    """Strided passes on phase planes: forward (K x K) with <= 32 output channels per group or K <= 147,
    input with <= 32 output channels per group, weight (K x K) with K <= 72."""
    use = conv_cpu._use_phases
    s2 = (2, 2)
    assert use("forward", 32, 16, 3, 3, s2, 1)  # ResNet-20's 16->32 downsampling: a third faster than GEMM
    assert use("forward", 64, 3, 7, 7, s2, 1)  # ResNet-18's stem (K = 147)
    assert use("forward", 32, 1, 3, 3, s2, 32)  # depthwise
    assert use("forward", 16, 16, 7, 7, s2, 1)  # few output channels: a long reduction is no help to BLAS
    assert not use("forward", 64, 32, 3, 3, s2, 1)  # 64 output channels, K = 288: GEMM wins
    assert not use("forward", 32, 16, 1, 1, s2, 1)  # 1x1: one GEMM, no copies to save
    assert use("weight", 16, 8, 3, 3, s2, 1) and not use("weight", 32, 16, 3, 3, s2, 1)
    assert use("input", 32, 16, 3, 3, s2, 1) and use("input", 32, 16, 1, 1, s2, 1)
    assert not use("input", 64, 32, 3, 3, s2, 1) and not use("input", 64, 3, 7, 7, s2, 1)
    assert not use("forward", 32, 16, 3, 3, (1, 1), 1)  # stride 1 is the direct kernel itself
    with conv_strategy("phase"):
        assert use("forward", 256, 256, 3, 3, (1, 3), 1) and use("weight", 256, 256, 1, 1, s2, 1)
        assert use("input", 256, 256, 3, 3, s2, 1)
        assert not conv_cpu._use_gemm("forward", 8, 256, 256, 3, 3, 1, 49, False)


@pytest.mark.parametrize("dtype", DTYPES)
def test_winograd_is_deterministic_and_thread_independent(dtype):
    """Each chunk owns its outputs: repeated runs and 1 or 2 threads give the same bits."""
    numba = pytest.importorskip("numba")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((37, 64, 7, 7)).astype(dtype)
    w = rng.standard_normal((64, 64, 3, 3)).astype(dtype)
    gy = rng.standard_normal((37, 64, 7, 7)).astype(dtype)
    args = ((1, 1), (1, 1), (1, 1), 1)
    assert conv_cpu._use_winograd("forward", 64, 64, 3, 3, (1, 1), (1, 1), 1, (1, 1, 1, 1), 49)
    want = (cpu.conv2d_forward(x, w, None, *args), cpu.conv2d_backward_input(gy, w, x.shape, *args))
    np.testing.assert_array_equal(cpu.conv2d_forward(x, w, None, *args), want[0])
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        got = (cpu.conv2d_forward(x, w, None, *args), cpu.conv2d_backward_input(gy, w, x.shape, *args))
    finally:
        numba.set_num_threads(before)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    assert_close(want[0], ref.conv2d_forward(x, w, None, *args),
                 ref.conv2d_forward(np.abs(x), np.abs(w), None, *args), dtype)


@pytest.mark.parametrize("twin", ["reference", "cpu"])
def test_dtype_is_preserved_and_integers_rejected(twin):
    k = kernels.get_backend(twin)
    x = np.ones((1, 1, 4, 4), np.float32)
    w = np.ones((1, 1, 3, 3), np.float64)  # cast to x's dtype
    assert k.conv2d_forward(x, w, None, 1, 0, 1, 1).dtype == np.float32
    with pytest.raises(TypeError, match="float32 or float64"):
        k.conv2d_forward(np.ones((1, 1, 4, 4), np.int64), w, None, 1, 0, 1, 1)


@pytest.mark.parametrize("twin", ["reference", "cpu"])
@pytest.mark.parametrize(
    "x_shape, w_shape, kwargs, numbers",
    [
        ((1, 3, 4, 4), (2, 3, 5, 5), {}, ["4 x 4", "5 x 5"]),  # kernel larger than padded input
        ((1, 3, 4, 4), (2, 3, 3, 3), {"dilation": 2}, ["4 x 4", "5 x 5"]),  # dilated kernel too big
        ((1, 3, 4, 4), (2, 1, 3, 3), {"groups": 2}, ["in_channels=3", "groups=2"]),
        ((1, 4, 4, 4), (3, 2, 3, 3), {"groups": 2}, ["out_channels=3", "groups=2"]),
        ((1, 4, 4, 4), (2, 3, 3, 3), {}, ["(2, 3, 3, 3)", "3 channels", "4 channels"]),
        ((1, 3, 4, 4), (2, 3, 3, 3), {"stride": 0}, ["stride", "(0, 0)"]),
        ((1, 3, 4, 4), (2, 3, 3, 3), {"dilation": (1, 0)}, ["dilation", "(1, 0)"]),
        ((1, 3, 4, 4), (2, 3, 3, 3), {"padding": (0, -1)}, ["padding", "-1"]),
        ((3, 4, 4), (2, 3, 3, 3), {}, ["4-D", "(3, 4, 4)"]),
    ],
)
def test_conv2d_impossible_configurations_raise(twin, x_shape, w_shape, kwargs, numbers):
    k = kernels.get_backend(twin)
    args = dict(stride=1, padding=0, dilation=1, groups=1)
    args.update(kwargs)
    x = np.zeros(x_shape)
    w = np.zeros(w_shape)
    with pytest.raises(ValueError) as info:
        k.conv2d_forward(x, w, None, args["stride"], args["padding"], args["dilation"], args["groups"])
    for s in numbers:
        assert s in str(info.value), (s, str(info.value))


@pytest.mark.parametrize("twin", ["reference", "cpu"])
def test_conv_gradient_shape_mismatch_raises(twin):
    k = kernels.get_backend(twin)
    w = np.zeros((2, 3, 3, 3))
    with pytest.raises(ValueError, match=r"\(1, 2, 3, 3\).*\(1, 2, 2, 2\)"):
        k.conv2d_backward_input(np.zeros((1, 2, 3, 3)), w, (1, 3, 4, 4), 1, 0, 1, 1)
    with pytest.raises(ValueError, match="bias"):
        k.conv2d_forward(np.zeros((1, 3, 4, 4)), w, np.zeros(3), 1, 0, 1, 1)
    with pytest.raises(ValueError, match=r"\(1, 2, 3, 3\).*\(1, 2, 2, 2\)"):
        k.conv2d_backward(np.zeros((1, 3, 4, 4)), np.zeros((1, 2, 3, 3)), w, 1, 0, 1, 1)


@pytest.mark.parametrize("twin", ["reference", "cpu"])
def test_conv_transpose2d_impossible_configurations_raise(twin):
    k = kernels.get_backend(twin)
    x = np.zeros((1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"output padding must be smaller than either stride or dilation.*\(1, 1\)"):
        k.conv_transpose2d_forward(x, np.zeros((2, 1, 3, 3)), None, 1, 0, 1, 1, 1)
    with pytest.raises(ValueError, match="3 channels.*2 channels|expects input with 3"):
        k.conv_transpose2d_forward(x, np.zeros((3, 1, 3, 3)), None, 1, 0, 0, 1, 1)


def test_backend_dispatch():
    assert kernels.get_backend() is cpu
    assert kernels.get_backend("reference") is ref
    with kernels.use_backend("reference") as k:
        assert k is ref
        assert kernels.get_backend() is ref
        assert kernels.active_backend_name() == "reference"
    assert kernels.get_backend() is cpu
    with pytest.raises(ValueError, match="chosen per tensor"):
        kernels.set_backend("cuda")  # the CUDA twin is picked by the data's device, never globally
    with pytest.raises(ValueError, match="unknown kernel backend 'tpu'"):
        kernels.set_backend("tpu")
    # both twins expose the same functions with the same signatures
    import inspect

    for name in ref.__all__:
        assert inspect.signature(getattr(cpu, name)) == inspect.signature(getattr(ref, name)), name


def test_stride1_kernels_over_a_run_of_shapes():
    """60 stride-1 configurations in a row in one process, all three passes against the reference.

    Hypothesis draws few examples per test; this sweeps many shapes in
    sequence, which is how a parallel-loop miscompile in the weight-gradient
    kernel once showed (wrong values only after certain earlier calls).
    """
    rng = np.random.default_rng(1)
    for _ in range(60):
        g = int(rng.choice([1, 1, 2, 3]))
        Cg, Og = int(rng.integers(1, 8)), int(rng.integers(1, 8))  # 5, 6, 7: blocks of 4 with a tail
        KH, KW = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        dh, dw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        pad = tuple(int(v) for v in rng.integers(0, 3, 2))
        H = int(rng.integers((KH - 1) * dh + 1, 14))
        W = int(rng.integers((KW - 1) * dw + 1, 14))
        N = int(rng.integers(1, 19))
        x = rng.standard_normal((N, Cg * g, H, W))
        w = rng.standard_normal((Og * g, Cg, KH, KW))
        args = (1, pad, (dh, dw), g)
        y = cpu.conv2d_forward(x, w, None, *args)
        gy = rng.standard_normal(y.shape)
        for got, want in (
            (y, ref.conv2d_forward(x, w, None, *args)),
            (cpu.conv2d_backward_input(gy, w, x.shape, *args), ref.conv2d_backward_input(gy, w, x.shape, *args)),
            (cpu.conv2d_backward_weight(x, gy, w.shape, *args), ref.conv2d_backward_weight(x, gy, w.shape, *args)),
        ):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10, err_msg=f"{x.shape} {w.shape} {args}")


@st.composite
def depthwise_configs(draw):
    """Depthwise stride-1 convolutions (the depthwise method's domain): any filter up to 4x4, dilation,
    paddings 0-3 per side (beyond d*(k-1) the input gradient leaves the method)."""
    c = draw(st.integers(1, 6))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pad4 = tuple(draw(st.integers(0, 3)) for _ in range(4))
    h = draw(st.integers(max(1, dil[0] * (kh - 1) + 1 - pad4[0] - pad4[1]), 10))
    w = draw(st.integers(max(1, dil[1] * (kw - 1) + 1 - pad4[2] - pad4[3]), 10))
    return dict(x_shape=(draw(st.integers(1, 4)), c, h, w), w_shape=(c, 1, kh, kw), stride=(1, 1),
                padding=pad4, dilation=dil, groups=c,
                layout=draw(st.sampled_from(["contiguous", "strided", "transposed"])),
                seed=draw(st.integers(0, 2**32 - 1)))


@pytest.mark.parametrize("dtype", DTYPES)
@settings(deadline=None, max_examples=60)
@given(cfg=depthwise_configs())
def test_depthwise_matches_reference(dtype, cfg):
    """The plane-buffer depthwise kernels == the reference twin, all three passes and the one-call backward."""
    rng, x, w, b = _data(cfg, dtype)
    s, p, d, g = _args(cfg)
    C, (KH, KW) = x.shape[1], w.shape[2:]
    with conv_strategy("depthwise"):
        assert conv_cpu._use_depthwise("forward", C, C, KH, KW, s, d, g, p)
        assert conv_cpu._use_depthwise("input", C, C, KH, KW, s, d, g, p) == (
            max(p[:2]) <= d[0] * (KH - 1) and max(p[2:]) <= d[1] * (KW - 1))
        y = cpu.conv2d_forward(x, w, b, s, p, d, g)
        assert y.dtype == dtype
        assert_close(y, ref.conv2d_forward(x, w, b, s, p, d, g),
                     ref.conv2d_forward(np.abs(x), np.abs(w), np.abs(b), s, p, d, g), dtype)
        gy = make_array(rng, y.shape, dtype, cfg["layout"])
        gx = cpu.conv2d_backward_input(gy, w, x.shape, s, p, d, g)
        assert gx.shape == x.shape and gx.dtype == dtype
        assert_close(gx, ref.conv2d_backward_input(gy, w, x.shape, s, p, d, g),
                     ref.conv2d_backward_input(np.abs(gy), np.abs(w), x.shape, s, p, d, g), dtype)
        gw = cpu.conv2d_backward_weight(x, gy, w.shape, s, p, d, g)
        assert gw.shape == w.shape and gw.dtype == dtype
        assert_close(gw, ref.conv2d_backward_weight(x, gy, w.shape, s, p, d, g),
                     ref.conv2d_backward_weight(np.abs(x), np.abs(gy), w.shape, s, p, d, g), dtype)
        gx1, gw1, gb1 = cpu.conv2d_backward(x, gy, w, s, p, d, g)
        np.testing.assert_array_equal(gx1, gx)
        np.testing.assert_array_equal(gw1, gw)
    with conv_strategy(None):  # the rule's own choice, whichever method that is
        assert_close(cpu.conv2d_forward(x, w, b, s, p, d, g), y,
                     ref.conv2d_forward(np.abs(x), np.abs(w), np.abs(b), s, p, d, g), dtype)


def test_depthwise_rule():
    """3x3 and smaller depthwise filters: every pass; larger ones: the input gradient only; never strided or
    grouped with several channels per group."""
    use = conv_cpu._use_depthwise
    one, p1 = (1, 1), (1, 1, 1, 1)
    assert all(use(kind, 256, 256, 3, 3, one, one, 256, p1) for kind in ("forward", "input", "weight"))
    assert use("input", 64, 64, 7, 7, one, one, 64, (3,) * 4)
    assert not use("forward", 64, 64, 7, 7, one, one, 64, (3,) * 4)
    assert not use("weight", 64, 64, 7, 7, one, one, 64, (3,) * 4)
    assert not use("forward", 64, 64, 3, 3, (2, 2), one, 64, p1)      # strided: the phase split
    assert not use("forward", 64, 128, 3, 3, one, one, 64, p1)        # two filters per channel
    assert not use("forward", 64, 64, 3, 3, one, one, 32, p1)         # two channels per group
    assert not use("input", 8, 8, 3, 3, one, one, 8, (3, 0, 0, 0))     # p > d*(k-1): the full correlation would crop
    with conv_strategy("direct"):
        assert not use("forward", 256, 256, 3, 3, one, one, 256, p1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_depthwise_is_deterministic_and_thread_independent(dtype):
    """Each plane (forward, input) or channel (weight) is one work item's: repeated runs and 1 or 2 threads agree."""
    numba = pytest.importorskip("numba")
    rng = np.random.default_rng(9)
    x = rng.standard_normal((37, 300, 5, 6)).astype(dtype)  # 11,100 planes: blocks of 43
    w = rng.standard_normal((300, 1, 3, 3)).astype(dtype)
    gy = rng.standard_normal((37, 300, 5, 6)).astype(dtype)
    args = ((1, 1), (1, 1), (1, 1), 300)

    def run():
        return (cpu.conv2d_forward(x, w, None, *args), cpu.conv2d_backward_input(gy, w, x.shape, *args),
                cpu.conv2d_backward_weight(x, gy, w.shape, *args))

    assert conv_cpu._use_depthwise("weight", 300, 300, 3, 3, (1, 1), (1, 1), 300, (1, 1, 1, 1))
    want = run()
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        got = run()
    finally:
        numba.set_num_threads(before)
    for a, b in zip(got + run(), want + want):
        np.testing.assert_array_equal(a, b)
    assert_close(want[2], ref.conv2d_backward_weight(x, gy, w.shape, *args),
                 ref.conv2d_backward_weight(np.abs(x), np.abs(gy), w.shape, *args), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(deadline=None, max_examples=40)
@given(cfg=depthwise_configs(), extra=st.tuples(st.integers(0, 1), st.integers(0, 1)))
def test_depthwise_transposed_convolution_matches_reference(dtype, cfg, extra):
    """conv_transpose2d runs the input-gradient pass with an x larger than the convolution reads (output_padding,
    allowed below the dilation at stride 1): the depthwise method pads the bottom and right to fit, or steps aside."""
    (kh, kw), (dh, dw) = cfg["w_shape"][2:], cfg["dilation"]
    op = (min(extra[0], dh - 1), min(extra[1], dw - 1))
    pad = (cfg["padding"][0], cfg["padding"][2])  # conv_transpose2d's padding is symmetric
    rng, x, w, b = _data(cfg, dtype)
    try:
        shapes.conv_transpose2d_output_size(x.shape[2:], (kh, kw), (1, 1), pad, op, (dh, dw))
    except ValueError:  # padding that crops the output away entirely: none then
        pad = (0, 0)
    args = ((1, 1), pad, op, x.shape[1], (dh, dw))
    bargs = ((1, 1), pad, (dh, dw), x.shape[1])  # stride, padding, dilation, groups
    with conv_strategy("depthwise"):
        y = cpu.conv_transpose2d_forward(x, w, b, *args)
        assert_close(y, ref.conv_transpose2d_forward(x, w, b, *args),
                     ref.conv_transpose2d_forward(np.abs(x), np.abs(w), np.abs(b), *args), dtype)
        # its gradients: x's is a depthwise convolution of gy cropped to x, w's a correlation with x as the gradient
        gy = make_array(rng, y.shape, dtype, cfg["layout"])
        gx = cpu.conv_transpose2d_backward_input(gy, w, *bargs, x_shape=x.shape)
        assert gx.shape == x.shape
        assert_close(gx, ref.conv_transpose2d_backward_input(gy, w, *bargs, x_shape=x.shape),
                     ref.conv_transpose2d_backward_input(np.abs(gy), np.abs(w), *bargs, x_shape=x.shape), dtype)
        gw = cpu.conv_transpose2d_backward_weight(x, gy, w.shape, *bargs)
        assert_close(gw, ref.conv_transpose2d_backward_weight(x, gy, w.shape, *bargs),
                     ref.conv_transpose2d_backward_weight(np.abs(x), np.abs(gy), w.shape, *bargs), dtype)


def test_depthwise_input_gradient_of_a_larger_input():
    """The case CI found: a 1x1 filter, dilation (1, 2), output_padding 1 - x is one column wider than read."""
    x, w = np.array([[[[0.126]]]]), np.array([[[[-0.132]]]])
    for strategy in ("depthwise", None):
        with conv_strategy(strategy):
            y = cpu.conv_transpose2d_forward(x, w, None, (1, 1), (0, 0), (0, 1), 1, (1, 2))
            gx = cpu.conv_transpose2d_backward_input(y, w, (1, 1), (0, 0), (1, 2), 1, x_shape=x.shape)
        np.testing.assert_allclose(y, ref.conv_transpose2d_forward(x, w, None, (1, 1), (0, 0), (0, 1), 1, (1, 2)))
        assert y.shape == (1, 1, 1, 2) and gx.shape == x.shape
        np.testing.assert_allclose(gx, ref.conv_transpose2d_backward_input(y, w, (1, 1), (0, 0), (1, 2), 1,
                                                                            x_shape=x.shape))
    assert conv_cpu._use_depthwise("input", 1, 1, 1, 1, (1, 1), (1, 2), 1, (0, 0, 0, 0), (1, 2, 1, 1))
    assert not conv_cpu._use_depthwise("input", 1, 1, 1, 1, (1, 1), (1, 1), 1, (0, 2, 0, 0), (5, 1, 7, 1))
