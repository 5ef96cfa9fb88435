"""Pooling kernels: cpu twin == reference twin (values and indices), adjoints, edge rules."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kernel_test_utils import DTYPES, LAYOUTS, assert_close, make_array, vdot
from tinygrad_cv import kernels
from tinygrad_cv.kernels import cpu, reference as ref, shapes


# compile the Numba kernels once, before the first hypothesis example
pytestmark = pytest.mark.usefixtures("warm_kernels")


@st.composite
def pool_configs(draw, with_dilation=True):
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))  # includes stride > kernel
    padding = (draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if with_dilation else (1, 1)
    ceil_mode = draw(st.booleans())
    h = draw(st.integers(1, 9))
    w = draw(st.integers(1, 9))
    try:
        shapes.check_pool2d((n, c, h, w), (kh, kw), stride, padding, dilation, ceil_mode)
    except ValueError:
        assume(False)
    return dict(
        x_shape=(n, c, h, w), kernel_size=(kh, kw), stride=stride, padding=padding, dilation=dilation,
        ceil_mode=ceil_mode, layout=draw(st.sampled_from(LAYOUTS)), seed=draw(st.integers(0, 2**32 - 1)),
        values=draw(st.sampled_from(["normal", "ties", "nan", "inf"])),
    )


def _x(cfg, dtype):
    rng = np.random.default_rng(cfg["seed"])
    x = make_array(rng, cfg["x_shape"], dtype, cfg["layout"])
    if cfg["values"] == "ties":  # few distinct values: many equal maxima
        x = np.floor(x * 1.5)
    elif cfg["values"] == "nan":
        x = np.where(rng.random(x.shape) < 0.2, np.nan, x).astype(dtype)
    elif cfg["values"] == "inf":
        x = np.where(rng.random(x.shape) < 0.5, -np.inf, x).astype(dtype)
    return rng, x


def _max_args(cfg):
    return cfg["kernel_size"], cfg["stride"], cfg["padding"], cfg["dilation"], cfg["ceil_mode"]


@pytest.mark.parametrize("dtype", DTYPES)
@settings(deadline=None, max_examples=40)
@given(cfg=pool_configs())
def test_max_pool2d_cpu_matches_reference(dtype, cfg):
    rng, x = _x(cfg, dtype)
    y, idx = cpu.max_pool2d_forward(x, *_max_args(cfg))
    y_ref, idx_ref = ref.max_pool2d_forward(x, *_max_args(cfg))
    oh, ow = shapes.pool2d_output_size(x.shape[2:], *_max_args(cfg))
    assert y.shape == idx.shape == x.shape[:2] + (oh, ow)
    assert y.dtype == dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(y, y_ref)  # a max is exact: no tolerance
    np.testing.assert_array_equal(idx, idx_ref)
    # the index points at the value reported (windows that miss the input
    # entirely, possible with dilation, give -inf and index -1)
    hw = x.shape[2] * x.shape[3]
    assert np.all((idx >= -1) & (idx < hw))
    inside = idx >= 0
    assert np.all(np.isneginf(y[~inside]))
    planes = x.reshape(x.shape[0], x.shape[1], -1)
    picked = np.take_along_axis(planes, np.minimum(idx, hw - 1).reshape(idx.shape[0], idx.shape[1], -1), axis=2)
    np.testing.assert_array_equal(picked.reshape(y.shape)[inside], y[inside])

    gy = rng.standard_normal(y.shape).astype(dtype)
    gx = cpu.max_pool2d_backward(gy, idx, x.shape)
    gx_ref = ref.max_pool2d_backward(gy, idx_ref, x.shape)
    assert_close(gx, gx_ref, ref.max_pool2d_backward(np.abs(gy), idx_ref, x.shape), dtype)
    if dtype == np.float64 and np.isfinite(x).all() and inside.all():
        # for fixed indices max pooling is linear in x; backward is its adjoint
        assert abs(vdot(y, gy) - vdot(x, gx)) <= 1e-12 * (vdot(np.abs(y), np.abs(gy)) + 1e-300)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("values", ["normal", "ties", "nan", "inf"])
def test_max_pool2d_2x2_stride2_fast_path(dtype, values):
    """LeNet's and VGG's pooling has a kernel of its own (unrolled, vectorised): same values, indices, gradients."""
    for seed, shape in enumerate([(2, 3, 28, 28), (3, 2, 10, 10), (1, 1, 7, 9), (2, 5, 2, 2), (1, 2, 5, 33)]):
        rng, x = _x(dict(seed=seed, x_shape=shape, layout="contiguous", values=values), dtype)
        args = ((2, 2), (2, 2), (0, 0), (1, 1), False)
        y, idx = cpu.max_pool2d_forward(x, *args)
        y_ref, idx_ref = ref.max_pool2d_forward(x, *args)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(idx, idx_ref)
        gy = rng.standard_normal(y.shape).astype(dtype)
        np.testing.assert_array_equal(cpu.max_pool2d_backward(gy, idx, x.shape), ref.max_pool2d_backward(gy, idx_ref, x.shape))


def test_max_pool2d_tie_and_nan_rules():
    x = np.array([[[[2.0, 2.0, 1.0, 2.0]]]])
    for k in (cpu, ref):
        y, idx = k.max_pool2d_forward(x, (1, 4), (1, 4), (0, 0), (1, 1), False)
        assert y.item() == 2.0 and idx.item() == 0  # first maximum wins
        xn = np.array([[[[1.0, np.nan, 3.0, np.nan]]]])
        y, idx = k.max_pool2d_forward(xn, (1, 4), (1, 4), (0, 0), (1, 1), False)
        assert np.isnan(y.item()) and idx.item() == 3  # NaN wins; the last NaN's index (PyTorch)
        xi = np.full((1, 1, 1, 4), -np.inf)
        y, idx = k.max_pool2d_forward(xi, (1, 2), (1, 2), (0, 1), (1, 1), False)
        np.testing.assert_array_equal(idx.ravel(), [0, 1, 3])  # padding never wins, not even over -inf


@pytest.mark.parametrize("dtype", DTYPES)
@settings(deadline=None, max_examples=40)
@given(cfg=pool_configs(with_dilation=False), count_include_pad=st.booleans(),
       divisor_override=st.sampled_from([None, None, 1, 3]))
def test_avg_pool2d_cpu_matches_reference_and_adjoint(dtype, cfg, count_include_pad, divisor_override):
    rng = np.random.default_rng(cfg["seed"])
    x = make_array(rng, cfg["x_shape"], dtype, cfg["layout"])
    args = (cfg["kernel_size"], cfg["stride"], cfg["padding"], cfg["ceil_mode"], count_include_pad, divisor_override)
    y = cpu.avg_pool2d_forward(x, *args)
    y_ref = ref.avg_pool2d_forward(x, *args)
    oh, ow = shapes.pool2d_output_size(x.shape[2:], cfg["kernel_size"], cfg["stride"], cfg["padding"], 1, cfg["ceil_mode"])
    assert y.shape == x.shape[:2] + (oh, ow) and y.dtype == dtype
    assert_close(y, y_ref, ref.avg_pool2d_forward(np.abs(x), *args), dtype)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx = cpu.avg_pool2d_backward(gy, x.shape, *args)
    gx_ref = ref.avg_pool2d_backward(gy, x.shape, *args)
    assert_close(gx, gx_ref, ref.avg_pool2d_backward(np.abs(gy), x.shape, *args), dtype)
    if dtype == np.float64:
        assert abs(vdot(y, gy) - vdot(x, gx)) <= 1e-12 * (vdot(np.abs(y), np.abs(gy)) + 1e-300)


def test_avg_pool2d_divisor_rule_examples():
    """PyTorch's divisor: padding counts (count_include_pad), the ceil_mode overhang does not."""
    x = np.ones((1, 1, 3, 3))
    for k in (cpu, ref):
        # 2x2 windows, stride 2, padding 1: the top-left window holds 1 real
        # element and 3 padding cells, which count with count_include_pad
        y = k.avg_pool2d_forward(x, (2, 2), (2, 2), (1, 1), False, True)
        np.testing.assert_allclose(y, [[[[0.25, 0.5], [0.5, 1.0]]]])
        y = k.avg_pool2d_forward(x, (2, 2), (2, 2), (1, 1), False, False)
        np.testing.assert_allclose(y, np.ones((1, 1, 2, 2)))
        # 3x3 input, kernel 2, stride 2, ceil_mode: the last window hangs off the edge
        y = k.avg_pool2d_forward(x, (2, 2), (2, 2), (0, 0), True, True)
        np.testing.assert_allclose(y, np.ones((1, 1, 2, 2)))  # overhang not counted
        y = k.avg_pool2d_forward(x, (2, 2), (2, 2), (0, 0), True, True, divisor_override=2)
        np.testing.assert_allclose(y, [[[[2.0, 1.0], [1.0, 0.5]]]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool2d_backward_overlapping_windows_deterministic(dtype):
    """Overlapping windows route several gradients to one element: sums, not races."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 4, 12, 12)).astype(dtype)
    y, idx = cpu.max_pool2d_forward(x, (3, 3), (1, 1), (1, 1), (1, 1), False)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx = cpu.max_pool2d_backward(gy, idx, x.shape)
    assert_close(gx, ref.max_pool2d_backward(gy, idx, x.shape), ref.max_pool2d_backward(np.abs(gy), idx, x.shape), dtype)
    for _ in range(3):
        np.testing.assert_array_equal(cpu.max_pool2d_backward(gy, idx, x.shape), gx)
    # a constant image: every window's first element wins -> heavy collisions
    xc = np.zeros((2, 2, 5, 5), dtype)
    yc, idc = cpu.max_pool2d_forward(xc, (3, 3), (1, 1), (0, 0), (1, 1), False)
    gc = cpu.max_pool2d_backward(np.ones_like(yc), idc, xc.shape)
    assert gc.sum() == yc.size
    np.testing.assert_array_equal(gc, ref.max_pool2d_backward(np.ones_like(yc), idc, xc.shape))


@pytest.mark.parametrize("twin", ["reference", "cpu"])
def test_pool_impossible_configurations_raise(twin):
    k = kernels.get_backend(twin)
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"pad should be at most half of kernel size.*\(2, 2\).*\(3, 3\)"):
        k.max_pool2d_forward(x, (3, 3), (1, 1), (2, 2), (1, 1), False)
    with pytest.raises(ValueError, match=r"pad should be at most half of kernel size.*\(0, 2\).*\(3, 3\)"):
        k.avg_pool2d_forward(x, (3, 3), (1, 1), (0, 2), False, True)
    with pytest.raises(ValueError, match=r"too small.*\(4 x 4\).*\(5 x 5\)"):
        k.max_pool2d_forward(x, (5, 5), (1, 1), (0, 0), (1, 1), False)
    with pytest.raises(ValueError, match=r"stride must be >= 1.*\(0, 1\)"):
        k.max_pool2d_forward(x, (2, 2), (0, 1), (0, 0), (1, 1), False)
    with pytest.raises(ValueError, match=r"4-D.*\(4, 4\)"):
        k.max_pool2d_forward(np.zeros((4, 4)), (2, 2), (2, 2), (0, 0), (1, 1), False)
    with pytest.raises(ValueError, match="divisor_override"):
        k.avg_pool2d_forward(x, (2, 2), (2, 2), (0, 0), False, True, 0)


@pytest.mark.parametrize("twin", [ref, cpu])
def test_window_missing_the_input_has_no_element_and_gets_no_gradient(twin):
    # taps at columns -1 and +1 of a 1-pixel-wide input: both in the padding
    x = np.array([[[[0.5], [-0.25]]]])
    y, idx = twin.max_pool2d_forward(x, (1, 2), (1, 1), (0, 1), (1, 2), False)
    assert np.all(np.isneginf(y)) and np.all(idx == -1)
    gx = twin.max_pool2d_backward(np.ones_like(y), idx, x.shape)
    np.testing.assert_array_equal(gx, np.zeros_like(x))


@pytest.mark.parametrize("args, kernel", [
    (((2, 2), (2, 2), (0, 0), (1, 1), False), "_max_pool_fwd_2x2"),
    (((3, 3), (2, 2), (0, 0), (1, 1), False), "_max_pool_fwd_inside"),
    (((2, 2), (1, 1), (0, 0), (1, 1), False), "_max_pool_fwd_inside"),
    (((2, 2), (2, 2), (0, 0), (1, 1), True), "_max_pool_fwd_padded"),   # 7x7: ceil_mode's last window hangs out
    (((3, 3), (2, 2), (1, 1), (1, 1), False), "_max_pool_fwd_padded"),
    (((3, 3), (1, 1), (1, 1), (2, 2), False), "_max_pool_fwd"),
])
def test_max_pool2d_forward_picks_its_kernel(monkeypatch, args, kernel):
    """Each window kind runs the kernel written for it (and a network compiles only the kernels it uses)."""
    from tinygrad_cv.kernels.pool import cpu as pool_cpu

    called = []
    for name in ("_max_pool_fwd_2x2", "_max_pool_fwd_inside", "_max_pool_fwd_padded", "_max_pool_fwd"):
        monkeypatch.setattr(pool_cpu, name, lambda *a, _name=name: called.append(_name))
    pool_cpu.max_pool2d_forward(np.zeros((1, 1, 7, 7), np.float32), *args)
    assert called == [kernel]
