"""CUDA kernel twin == CPU twin, on the GPU or on Numba's CUDA simulator.

Every public function of ``tinygrad_cv.kernels.cuda`` is run on device arrays
and compared, element by element, with ``tinygrad_cv.kernels.cpu`` on the
same host data.  Without a GPU the simulator runs each GPU thread as a Python
thread (tests/conftest.py switches it on), so the shapes are tiny and the
hypothesis budgets small.
"""
from __future__ import annotations

import inspect

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

cuda = pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")

from tinygrad_cv import cuda as tg_cuda  # noqa: E402

if not tg_cuda.is_available():  # e.g. a CUDA driver without a usable GPU, and no simulator
    pytest.skip("CUDA tensors are not available here", allow_module_level=True)

from tinygrad_cv.kernels import cpu, reference as ref, shapes  # noqa: E402
from tinygrad_cv.kernels import cuda as gpu  # noqa: E402
from tinygrad_cv.kernels.matmul.cuda import TILE  # noqa: E402

DTYPES = [np.float32, np.float64]
# relative to the same computation on |values| (the rounding-error yardstick)
RTOL = {np.float32: 1e-5, np.float64: 1e-12}


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def dev(a):
    return cuda.to_device(np.ascontiguousarray(a))


def host(d):
    """Device array -> NumPy, checking that the kernel really returned a device array."""
    assert cuda.devicearray.is_cuda_ndarray(d), type(d)
    return d.copy_to_host()


def check(actual_dev, expected, scale, dtype):
    """Every element: |actual - expected| <= rtol * scale (scale = same op on |inputs|)."""
    actual = host(actual_dev)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == expected.dtype == dtype, (actual.dtype, expected.dtype)
    tol = RTOL[dtype] * (np.abs(np.asarray(scale, np.float64)) + 1e-30)
    err = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    assert np.all(err <= tol), f"max err {err.max():.3e} (max tol {tol.max():.3e})"


@st.composite
def conv_configs(draw):
    """Tiny valid conv2d configurations: stride, dilation, groups, symmetric / asymmetric / 'same' padding."""
    groups = draw(st.integers(1, 2))
    cg, og, n = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    kind = draw(st.sampled_from(["pair", "four", "same"]))
    if kind == "same":  # PyTorch's "same": stride 1, the odd extra row/column at the bottom/right
        stride = (1, 1)
        padding = shapes.resolve_padding("same", (kh, kw), stride, dilation)
    else:
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        if kind == "pair":
            padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
        else:
            padding = tuple(draw(st.integers(0, 2)) for _ in range(4))
    pt, pb, pl, pr = shapes.normalize_padding(padding)
    hmin = max(1, dilation[0] * (kh - 1) + 1 - pt - pb)
    wmin = max(1, dilation[1] * (kw - 1) + 1 - pl - pr)
    h, w = draw(st.integers(hmin, hmin + 3)), draw(st.integers(wmin, wmin + 3))
    return dict(
        x_shape=(n, cg * groups, h, w), w_shape=(og * groups, cg, kh, kw),
        args=(stride, padding, dilation, groups), seed=draw(st.integers(0, 2**32 - 1)),
    )


@st.composite
def pool_configs(draw, with_dilation=True):
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if with_dilation else (1, 1)
    ceil_mode = draw(st.booleans())
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    try:
        shapes.check_pool2d((n, c, h, w), (kh, kw), stride, padding, dilation, ceil_mode)
    except ValueError:
        assume(False)
    return dict(
        x_shape=(n, c, h, w), kernel_size=(kh, kw), stride=stride, padding=padding, dilation=dilation,
        ceil_mode=ceil_mode, seed=draw(st.integers(0, 2**32 - 1)),
        values=draw(st.sampled_from(["normal", "ties", "nan", "inf"])),
    )


# --------------------------------------------------------------------------
# convolution
# --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=8)
@given(cfg=conv_configs(), with_bias=st.booleans())
def test_conv2d_matches_cpu(dtype, cfg, with_bias):
    rng = np.random.default_rng(cfg["seed"])
    x = rng.standard_normal(cfg["x_shape"]).astype(dtype)
    w = rng.standard_normal(cfg["w_shape"]).astype(dtype)
    b = rng.standard_normal(cfg["w_shape"][0]).astype(dtype) if with_bias else None
    args = cfg["args"]
    ax, aw, ab = np.abs(x), np.abs(w), None if b is None else np.abs(b)

    y = cpu.conv2d_forward(x, w, b, *args)
    y_gpu = gpu.conv2d_forward(dev(x), dev(w), None if b is None else dev(b), *args)
    check(y_gpu, y, cpu.conv2d_forward(ax, aw, ab, *args), dtype)

    gy = rng.standard_normal(y.shape).astype(dtype)
    gx = cpu.conv2d_backward_input(gy, w, x.shape, *args)
    check(gpu.conv2d_backward_input(dev(gy), dev(w), x.shape, *args), gx,
          cpu.conv2d_backward_input(np.abs(gy), aw, x.shape, *args), dtype)

    gw = cpu.conv2d_backward_weight(x, gy, w.shape, *args)
    check(gpu.conv2d_backward_weight(dev(x), dev(gy), w.shape, *args), gw,
          cpu.conv2d_backward_weight(ax, np.abs(gy), w.shape, *args), dtype)

    # all three in one call (the bias gradient has a kernel of its own)
    gx_all, gw_all, gb_all = gpu.conv2d_backward(dev(x), dev(gy), dev(w), *args)
    np.testing.assert_array_equal(host(gx_all), host(gpu.conv2d_backward_input(dev(gy), dev(w), x.shape, *args)))
    np.testing.assert_array_equal(host(gw_all), host(gpu.conv2d_backward_weight(dev(x), dev(gy), w.shape, *args)))
    check(gb_all, gy.astype(np.float64).sum(axis=(0, 2, 3)).astype(dtype), np.abs(gy).sum(axis=(0, 2, 3)), dtype)
    assert gpu.conv2d_backward(dev(x), dev(gy), dev(w), *args, need_input=False, need_weight=False)[:2] == (None, None)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=8)
@given(cfg=conv_configs(), with_bias=st.booleans(), data=st.data())
def test_conv_transpose2d_matches_cpu(dtype, cfg, with_bias, data):
    # read the conv2d config backwards: its output is the transposed conv's input
    stride, padding, dilation, groups = cfg["args"]
    cin = cfg["w_shape"][0]
    w_shape = (cin,) + cfg["w_shape"][1:]  # (C_in, C_out/groups, KH, KW)
    oh, ow = shapes.conv2d_output_size(cfg["x_shape"][2:], w_shape[2:], stride, padding, dilation)
    x_shape = (cfg["x_shape"][0], cin, oh, ow)
    # output_padding must be below the stride or the dilation
    op = tuple(data.draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    try:  # padding can eat the whole output of a 1-pixel input
        shapes.conv_transpose2d_output_size((oh, ow), w_shape[2:], stride, padding, op, dilation)
    except ValueError:
        assume(False)
    rng = np.random.default_rng(cfg["seed"])
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[1] * groups).astype(dtype) if with_bias else None
    ax, aw, ab = np.abs(x), np.abs(w), None if b is None else np.abs(b)

    y = cpu.conv_transpose2d_forward(x, w, b, stride, padding, op, groups, dilation)
    y_gpu = gpu.conv_transpose2d_forward(dev(x), dev(w), None if b is None else dev(b),
                                         stride, padding, op, groups, dilation)
    check(y_gpu, y, cpu.conv_transpose2d_forward(ax, aw, ab, stride, padding, op, groups, dilation), dtype)

    gy = rng.standard_normal(y.shape).astype(dtype)
    args = (stride, padding, dilation, groups)
    gx = cpu.conv_transpose2d_backward_input(gy, w, *args, x_shape=x.shape)
    check(gpu.conv_transpose2d_backward_input(dev(gy), dev(w), *args, x_shape=x.shape), gx,
          cpu.conv_transpose2d_backward_input(np.abs(gy), aw, *args, x_shape=x.shape), dtype)

    gw = cpu.conv_transpose2d_backward_weight(x, gy, w.shape, *args)
    check(gpu.conv_transpose2d_backward_weight(dev(x), dev(gy), w.shape, *args), gw,
          cpu.conv_transpose2d_backward_weight(ax, np.abs(gy), w.shape, *args), dtype)


def test_conv2d_same_padding_even_kernel_is_asymmetric():
    """padding='same' with a 2x2 kernel pads (0, 1, 0, 1): the bottom/right get the extra row."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 5, 4))
    w = rng.standard_normal((3, 2, 2, 2))
    pad = shapes.resolve_padding("same", (2, 2))
    assert pad == (0, 1, 0, 1)
    y = cpu.conv2d_forward(x, w, None, 1, pad, 1, 1)
    assert y.shape == (1, 3, 5, 4)
    check(gpu.conv2d_forward(dev(x), dev(w), None, 1, pad, 1, 1), y,
          cpu.conv2d_forward(np.abs(x), np.abs(w), None, 1, pad, 1, 1), np.float64)


def test_conv_backward_is_deterministic():
    """Gathers and fixed-order reductions: repeated runs are bit-identical."""
    rng = np.random.default_rng(2)
    x, w = dev(rng.standard_normal((2, 2, 6, 6))), dev(rng.standard_normal((2, 2, 3, 3)))
    gy = dev(rng.standard_normal((2, 2, 4, 4)))
    args = ((1, 1), (0, 0), (1, 1), 1)
    gx = host(gpu.conv2d_backward_input(gy, w, (2, 2, 6, 6), *args))
    gw = host(gpu.conv2d_backward_weight(x, gy, (2, 2, 3, 3), *args))
    np.testing.assert_array_equal(host(gpu.conv2d_backward_input(gy, w, (2, 2, 6, 6), *args)), gx)
    np.testing.assert_array_equal(host(gpu.conv2d_backward_weight(x, gy, (2, 2, 3, 3), *args)), gw)
    gb = host(gpu.conv2d_backward(x, gy, w, *args, need_input=False, need_weight=False)[2])
    np.testing.assert_array_equal(host(gpu.conv2d_backward(x, gy, w, *args, need_input=False, need_weight=False)[2]), gb)


# --------------------------------------------------------------------------
# pooling
# --------------------------------------------------------------------------

def _pool_input(cfg, dtype):
    rng = np.random.default_rng(cfg["seed"])
    x = rng.standard_normal(cfg["x_shape"]).astype(dtype)
    if cfg["values"] == "ties":  # few distinct values: many equal maxima
        x = np.floor(x * 1.5).astype(dtype)
    elif cfg["values"] == "nan":
        x = np.where(rng.random(x.shape) < 0.2, np.nan, x).astype(dtype)
    elif cfg["values"] == "inf":
        x = np.where(rng.random(x.shape) < 0.5, -np.inf, x).astype(dtype)
    return rng, x


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=8)
@given(cfg=pool_configs())
def test_max_pool2d_matches_cpu(dtype, cfg):
    rng, x = _pool_input(cfg, dtype)
    args = (cfg["kernel_size"], cfg["stride"], cfg["padding"], cfg["dilation"], cfg["ceil_mode"])
    y, idx = cpu.max_pool2d_forward(x, *args)
    y_gpu, idx_gpu = gpu.max_pool2d_forward(dev(x), *args)
    np.testing.assert_array_equal(host(y_gpu), y)  # a max is exact (NaN == NaN here)
    idx_host = host(idx_gpu)
    assert idx_host.dtype == np.int64
    np.testing.assert_array_equal(idx_host, idx)

    gy = rng.standard_normal(y.shape).astype(dtype)
    gx = cpu.max_pool2d_backward(gy, idx, x.shape)
    check(gpu.max_pool2d_backward(dev(gy), idx_gpu, x.shape), gx,
          cpu.max_pool2d_backward(np.abs(gy), idx, x.shape), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=8)
@given(cfg=pool_configs(with_dilation=False), count_include_pad=st.booleans(),
       divisor_override=st.sampled_from([None, None, 1, 3]))
def test_avg_pool2d_matches_cpu(dtype, cfg, count_include_pad, divisor_override):
    rng = np.random.default_rng(cfg["seed"])
    x = rng.standard_normal(cfg["x_shape"]).astype(dtype)
    args = (cfg["kernel_size"], cfg["stride"], cfg["padding"], cfg["ceil_mode"], count_include_pad, divisor_override)
    y = cpu.avg_pool2d_forward(x, *args)
    check(gpu.avg_pool2d_forward(dev(x), *args), y, cpu.avg_pool2d_forward(np.abs(x), *args), dtype)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx = cpu.avg_pool2d_backward(gy, x.shape, *args)
    check(gpu.avg_pool2d_backward(dev(gy), x.shape, *args), gx,
          cpu.avg_pool2d_backward(np.abs(gy), x.shape, *args), dtype)


def test_max_pool2d_tie_nan_and_empty_window_rules():
    x = np.array([[[[2.0, 2.0, 1.0, 2.0]]]])
    y, idx = gpu.max_pool2d_forward(dev(x), (1, 4), (1, 4), (0, 0), (1, 1), False)
    assert host(y).item() == 2.0 and host(idx).item() == 0  # first maximum wins
    xn = np.array([[[[1.0, np.nan, 3.0, np.nan]]]], np.float32)
    y, idx = gpu.max_pool2d_forward(dev(xn), (1, 4), (1, 4), (0, 0), (1, 1), False)
    assert np.isnan(host(y).item()) and host(idx).item() == 3  # NaN wins, the last NaN's index
    xi = np.full((1, 1, 1, 4), -np.inf)
    y, idx = gpu.max_pool2d_forward(dev(xi), (1, 2), (1, 2), (0, 1), (1, 1), False)
    np.testing.assert_array_equal(host(idx).ravel(), [0, 1, 3])  # padding never wins, not even over -inf
    # taps at columns -1 and +1 of a 1-pixel-wide input: the window misses the input
    x1 = np.array([[[[0.5], [-0.25]]]], np.float32)
    y, idx = gpu.max_pool2d_forward(dev(x1), (1, 2), (1, 1), (0, 1), (1, 2), False)
    assert np.all(np.isneginf(host(y))) and np.all(host(idx) == -1)
    gx = gpu.max_pool2d_backward(dev(np.ones((1, 1, 2, 1), np.float32)), idx, x1.shape)
    np.testing.assert_array_equal(host(gx), np.zeros_like(x1))


def test_max_pool2d_backward_overlapping_windows():
    """A constant image: every window's first element wins, so gradients collide; sums, not races."""
    xc = np.zeros((1, 2, 5, 5), np.float32)
    y, idx = gpu.max_pool2d_forward(dev(xc), (3, 3), (1, 1), (0, 0), (1, 1), False)
    g = gpu.max_pool2d_backward(dev(np.ones((1, 2, 3, 3), np.float32)), idx, xc.shape)
    gc = host(g)
    assert gc.sum() == 18
    yc, idc = cpu.max_pool2d_forward(xc, (3, 3), (1, 1), (0, 0), (1, 1), False)
    np.testing.assert_array_equal(gc, cpu.max_pool2d_backward(np.ones_like(yc), idc, xc.shape))


def test_avg_pool2d_divisor_rule_examples():
    """PyTorch's divisor: padding counts (count_include_pad), the ceil_mode overhang does not."""
    x = dev(np.ones((1, 1, 3, 3)))
    np.testing.assert_allclose(host(gpu.avg_pool2d_forward(x, (2, 2), (2, 2), (1, 1), False, True)),
                               [[[[0.25, 0.5], [0.5, 1.0]]]])
    np.testing.assert_allclose(host(gpu.avg_pool2d_forward(x, (2, 2), (2, 2), (1, 1), False, False)),
                               np.ones((1, 1, 2, 2)))
    np.testing.assert_allclose(host(gpu.avg_pool2d_forward(x, (2, 2), (2, 2), (0, 0), True, True)),
                               np.ones((1, 1, 2, 2)))
    np.testing.assert_allclose(host(gpu.avg_pool2d_forward(x, (2, 2), (2, 2), (0, 0), True, True, divisor_override=2)),
                               [[[[2.0, 1.0], [1.0, 0.5]]]])


# --------------------------------------------------------------------------
# matmul, relu
# --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=6)
@given(m=st.integers(1, 2 * TILE + 1), k=st.integers(0, 2 * TILE + 1),
       n=st.integers(1, 2 * TILE + 1), seed=st.integers(0, 2**32 - 1))
def test_matmul_matches_cpu(dtype, m, k, n, seed):
    """Shapes up to two tiles and a bit: full tiles, ragged edges, K = 0."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    check(gpu.matmul(dev(a), dev(b)), cpu.matmul(a, b), np.abs(a) @ np.abs(b), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_matches_cpu(dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 4, 5)).astype(dtype)
    x.flat[::7] = 0
    x.flat[3] = np.nan  # NaN propagates through the forward, like NumPy's maximum (reference, PyTorch)
    y = host(gpu.relu_forward(dev(x)))
    np.testing.assert_array_equal(y, ref.relu_forward(x))
    np.testing.assert_array_equal(y, cpu.relu_forward(x))
    gy = rng.standard_normal(x.shape).astype(dtype)
    gx = host(gpu.relu_backward(dev(gy), dev(y)))
    np.testing.assert_array_equal(gx, cpu.relu_backward(gy, y))
    assert gx.dtype == dtype


# --------------------------------------------------------------------------
# argument handling: same normalisation and errors as the cpu twin
# --------------------------------------------------------------------------

def test_signatures_match_cpu():
    for name in gpu.__all__:
        assert inspect.signature(getattr(gpu, name)) == inspect.signature(getattr(cpu, name)), name
    assert set(ref.__all__) <= set(gpu.__all__)


def test_dtype_conversion_and_layout():
    """A second operand is converted to the first's dtype (on the GPU), like cpu.py;
    non-contiguous device views are accepted."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    w = rng.standard_normal((2, 2, 3, 3))  # float64
    y = gpu.conv2d_forward(dev(x), dev(w), None, 1, 0, 1, 1)
    check(y, cpu.conv2d_forward(x, w, None, 1, 0, 1, 1),
          cpu.conv2d_forward(np.abs(x), np.abs(w), None, 1, 0, 1, 1), np.float32)
    big = rng.standard_normal((1, 2, 5, 10))
    view = dev(big)[:, :, :, ::2]  # strided device view
    assert not view.is_c_contiguous()
    xs = big[..., ::2]
    check(gpu.conv2d_forward(view, dev(w), None, 1, 0, 1, 1), cpu.conv2d_forward(xs, w, None, 1, 0, 1, 1),
          cpu.conv2d_forward(np.abs(xs), np.abs(w), None, 1, 0, 1, 1), np.float64)
    a = rng.standard_normal((4, 3))
    check(gpu.matmul(dev(a).T, dev(a)), cpu.matmul(a.T, a), np.abs(a.T) @ np.abs(a), np.float64)


def _bad_calls():
    """(name, call) pairs; call(k, a) runs a function of twin k, with a() wrapping each input array."""
    z, x4, w = np.zeros, np.zeros((1, 3, 4, 4)), np.zeros((2, 3, 3, 3))
    p4, i4 = z((1, 1, 4, 4)), (1, 1, 4, 4)
    return [
        ("int input", lambda k, a: k.conv2d_forward(a(p4.astype(np.int64)), a(z((1, 1, 3, 3))), None, 1, 0, 1, 1)),
        ("int gy", lambda k, a: k.max_pool2d_backward(a(z((1, 1, 2, 2), np.int32)), a(z((1, 1, 2, 2), np.int64)), i4)),
        ("int matmul", lambda k, a: k.matmul(a(z((2, 2), np.int64)), a(z((2, 2))))),
        ("kernel too big", lambda k, a: k.conv2d_forward(a(x4), a(z((2, 3, 5, 5))), None, 1, 0, 1, 1)),
        ("channels", lambda k, a: k.conv2d_forward(a(z((1, 4, 4, 4))), a(w), None, 1, 0, 1, 1)),
        ("groups", lambda k, a: k.conv2d_forward(a(x4), a(z((2, 1, 3, 3))), None, 1, 0, 1, 2)),
        ("stride 0", lambda k, a: k.conv2d_forward(a(x4), a(w), None, 0, 0, 1, 1)),
        ("negative padding", lambda k, a: k.conv2d_forward(a(x4), a(w), None, 1, (0, -1), 1, 1)),
        ("3-D input", lambda k, a: k.conv2d_forward(a(z((3, 4, 4))), a(w), None, 1, 0, 1, 1)),
        ("bias", lambda k, a: k.conv2d_forward(a(x4), a(w), a(z(3)), 1, 0, 1, 1)),
        ("gy shape", lambda k, a: k.conv2d_backward_input(a(z((1, 2, 3, 3))), a(w), x4.shape, 1, 0, 1, 1)),
        ("gy shape (weight)", lambda k, a: k.conv2d_backward_weight(a(x4), a(z((1, 2, 3, 3))), w.shape, 1, 0, 1, 1)),
        ("output padding",
         lambda k, a: k.conv_transpose2d_forward(a(z((1, 2, 4, 4))), a(z((2, 1, 3, 3))), None, 1, 0, 1, 1, 1)),
        ("transpose channels",
         lambda k, a: k.conv_transpose2d_forward(a(z((1, 2, 4, 4))), a(z((3, 1, 3, 3))), None, 1, 0, 0, 1, 1)),
        ("transpose x_shape",
         lambda k, a: k.conv_transpose2d_backward_input(a(z((1, 1, 6, 6))), a(z((2, 1, 3, 3))), 1, 0, 1, 1,
                                                        x_shape=(1, 2, 5, 5))),
        ("pool pad", lambda k, a: k.max_pool2d_forward(a(p4), 3, 1, 2, 1, False)),
        ("pool too small", lambda k, a: k.max_pool2d_forward(a(p4), 5, 1, 0, 1, False)),
        ("pool indices", lambda k, a: k.max_pool2d_backward(a(z((1, 1, 2, 2))), a(z((1, 1, 2, 3), np.int64)), i4)),
        ("avg divisor 0", lambda k, a: k.avg_pool2d_forward(a(p4), 2, 2, 0, False, True, 0)),
        ("avg gy shape", lambda k, a: k.avg_pool2d_backward(a(z((1, 1, 3, 3))), i4, 2, 2, 0, False, True)),
        ("matmul inner", lambda k, a: k.matmul(a(z((2, 3))), a(z((4, 5))))),
        ("matmul 2-D", lambda k, a: k.matmul(a(z((2, 3, 1))), a(z((3, 5))))),
    ]


@pytest.mark.parametrize("name, call", _bad_calls(), ids=[n for n, _ in _bad_calls()])
def test_bad_input_raises_like_cpu(name, call):
    with pytest.raises((TypeError, ValueError)) as cpu_err:
        call(cpu, np.asarray)
    with pytest.raises(cpu_err.type) as gpu_err:
        call(gpu, dev)
    assert str(gpu_err.value) == str(cpu_err.value)


def test_host_arrays_are_rejected_with_the_argument_name():
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(TypeError, match=r"^x must be a CUDA device array.*ndarray"):
        gpu.conv2d_forward(x, dev(np.zeros((1, 1, 3, 3))), None, 1, 0, 1, 1)
    with pytest.raises(TypeError, match=r"^w must be a CUDA device array"):
        gpu.conv2d_forward(dev(x), np.zeros((1, 1, 3, 3)), None, 1, 0, 1, 1)
    with pytest.raises(TypeError, match=r"^b must be a CUDA device array"):
        gpu.conv2d_forward(dev(x), dev(np.zeros((1, 1, 3, 3))), [0.0], 1, 0, 1, 1)
    with pytest.raises(TypeError, match=r"^indices must be a CUDA device array"):
        gpu.max_pool2d_backward(dev(np.zeros((1, 1, 2, 2))), np.zeros((1, 1, 2, 2), np.int64), (1, 1, 4, 4))
    with pytest.raises(TypeError, match=r"^b must be a CUDA device array"):
        gpu.matmul(dev(np.zeros((2, 2))), np.zeros((2, 2)))
    with pytest.raises(TypeError, match=r"^y must be a CUDA device array"):
        gpu.relu_backward(dev(np.zeros(3)), np.zeros(3))
    with pytest.raises(ValueError, match=r"gy has shape \(3,\), expected \(4,\)"):
        gpu.relu_backward(dev(np.zeros(3)), dev(np.zeros(4)))
