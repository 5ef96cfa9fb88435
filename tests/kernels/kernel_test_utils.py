"""Helpers shared by the kernel tests: array layouts, tolerances, strategies."""
from __future__ import annotations

import contextlib

import numpy as np
from hypothesis import strategies as st

from tinygrad_cv.kernels import shapes
from tinygrad_cv.kernels.conv import cpu as conv_cpu  # the method-choice hook lives with the convolution

DTYPES = [np.float64, np.float32]
# Relative tolerance against the scale of the summed terms (see assert_close).
RTOL = {np.float64: 1e-10, np.float32: 1e-4}
LAYOUTS = ["contiguous", "strided", "transposed"]


def make_array(rng, shape, dtype, layout="contiguous"):
    """Random array of ``shape`` that is C-contiguous, a strided slice, or a transposed view."""
    shape = tuple(shape)
    if layout == "contiguous" or len(shape) < 2:
        return rng.standard_normal(shape).astype(dtype)
    if layout == "strided":  # every other element of the last axis
        big = rng.standard_normal(shape[:-1] + (2 * shape[-1],)).astype(dtype)
        a = big[..., ::2]
    elif layout == "transposed":  # last two axes swapped in memory
        base = rng.standard_normal(shape[:-2] + (shape[-1], shape[-2])).astype(dtype)
        a = np.swapaxes(base, -1, -2)
    else:
        raise ValueError(layout)
    assert a.shape == shape
    return a


def assert_close(actual, expected, scale, dtype, factor=1.0):
    """|actual - expected| <= rtol * scale elementwise.

    ``scale`` is the same computation applied to absolute values (e.g.
    conv(|x|, |w|)): rounding error of a sum is bounded by a multiple of the
    sum of the absolute values of its terms, so this is the natural yardstick
    and does not blow up where the result happens to cancel to ~0.
    """
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    tol = RTOL[dtype] * factor * (np.asarray(scale, dtype=np.float64) + 1e-30)
    err = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    bad = err > tol
    assert not bad.any(), f"max err {err.max():.3e}, tol at worst element {tol[np.unravel_index(np.argmax(err - tol), err.shape)]:.3e}"


@contextlib.contextmanager
def conv_strategy(name):
    """Force the cpu twin's convolution path ("direct" / "gemm" / "phase" / "winograd" / None = heuristic)."""
    old = conv_cpu._FORCE_STRATEGY
    conv_cpu._FORCE_STRATEGY = name
    try:
        yield
    finally:
        conv_cpu._FORCE_STRATEGY = old


@st.composite
def conv_configs(draw, max_n=3, max_c=3, max_k=4, max_stride=3, max_dilation=2, max_pad=2, max_groups=3):
    """A valid conv2d configuration (incl. kernel == padded input size, stride > kernel, 1x1 kernels)."""
    groups = draw(st.integers(1, max_groups))
    cg = draw(st.integers(1, max_c))
    og = draw(st.integers(1, max_c))
    n = draw(st.integers(1, max_n))
    kh, kw = draw(st.integers(1, max_k)), draw(st.integers(1, max_k))
    stride = (draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride)))
    dilation = (draw(st.integers(1, max_dilation)), draw(st.integers(1, max_dilation)))
    if draw(st.booleans()):
        padding = (draw(st.integers(0, max_pad)), draw(st.integers(0, max_pad)))
    else:
        padding = tuple(draw(st.integers(0, max_pad)) for _ in range(4))
    pt, pb, pl, pr = shapes.normalize_padding(padding)
    # smallest input the dilated kernel fits in (then the kernel covers it exactly)
    hmin = max(1, dilation[0] * (kh - 1) + 1 - pt - pb)
    wmin = max(1, dilation[1] * (kw - 1) + 1 - pl - pr)
    h = draw(st.integers(hmin, hmin + 6))
    w = draw(st.integers(wmin, wmin + 6))
    return dict(
        x_shape=(n, cg * groups, h, w),
        w_shape=(og * groups, cg, kh, kw),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        layout=draw(st.sampled_from(LAYOUTS)),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def vdot(a, b):
    return float(np.vdot(np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()))
