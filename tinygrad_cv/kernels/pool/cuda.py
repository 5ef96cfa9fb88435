"""Pooling, CUDA twin: one thread per output (forward), gathers or one thread per plane (backward).

* **forward** (max and average) - one thread per output element; the valid
  tap range of its window is computed up front (``tap_range``).
* **average backward** - the gather form of "each window hands gy / divisor
  to its elements": one thread per input element visits the windows that
  contain it, in (i, j) order like the CPU twin.
* **max backward** - gets only the argmax indices, not the window geometry,
  so an input element cannot know which outputs chose it; one thread per
  ``(n, c)`` plane routes that plane's gradients (the thread owns the plane,
  so there are no races), in the same order as the CPU twin.

Same rules as ``reference.py`` (first maximum wins, NaN wins with its last
index, a window missing the input gives -inf and index -1; PyTorch's
divisor). Arguments are checked by the caller (``kernels/contract.py``).
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from .. import shapes
from ..cuda_common import contiguous, device, float_c, grid_1d, tap_range, zeros


@cuda.jit(device=True)
def _avg_window(i, s, p, k, n):
    """Rows (or columns) [start, end) of pooling window i, and its size counting padding.

    The window may reach into the padding but not past it (PyTorch's
    ceil_mode overhang is not counted by count_include_pad).
    """
    start = i * s - p
    end = min(start + k, n + p)
    with_pad = end - start
    return max(start, 0), min(end, n), with_pad


@cuda.jit(device=True)
def _avg_divisor(h0, h1, hp, w0, w1, wp, count_include_pad, divisor_override):
    """PyTorch's divisor: the override (0 = none), else the padded or the real window size."""
    if divisor_override != 0:
        return divisor_override
    if count_include_pad:
        return hp * wp
    return (h1 - h0) * (w1 - w0)


@cuda.jit
def _max_pool_fwd(x, y, idx, KH, KW, sh, sw, ph, pw, dh, dw):
    """y[n,c,i,j] = max over the window's in-range taps; idx = flat index h*W + w of the winner.

    One thread per output.  Rules as in cpu.py: the window is scanned
    row-major and only a strictly greater value replaces the best (first
    maximum wins); a NaN always replaces it (NaN propagates, last NaN's
    index); a window with no input element gives -inf and index -1.
    """
    N, C, OH, OW = y.shape
    H, W = x.shape[2], x.shape[3]
    for e in range(cuda.grid(1), N * C * OH * OW, cuda.gridsize(1)):
        j = e % OW
        t = e // OW
        i = t % OH
        t //= OH
        c = t % C
        n = t // C
        hb = i * sh - ph
        wb = j * sw - pw
        plo, phi = tap_range(hb, dh, KH, H)
        qlo, qhi = tap_range(wb, dw, KW, W)
        if plo >= phi or qlo >= qhi:
            y[n, c, i, j] = y.dtype.type(-math.inf)
            idx[n, c, i, j] = -1
            continue
        # start from the first in-range element (not -inf): a window of -inf
        # values still points at a real element, as in PyTorch
        h = hb + plo * dh
        v = wb + qlo * dw
        best = x[n, c, h, v]
        arg = h * W + v
        for p in range(plo, phi):
            h = hb + p * dh
            for q in range(qlo, qhi):
                v = wb + q * dw
                val = x[n, c, h, v]
                if val > best or val != val:  # val != val: NaN
                    best = val
                    arg = h * W + v
        y[n, c, i, j] = best
        idx[n, c, i, j] = arg


@cuda.jit
def _max_pool_bwd(gy, idx, gx):
    """gx[n, c].flat[idx[n,c,i,j]] += gy[n,c,i,j], one thread per (n, c) plane.

    gx must be zero on entry.  The indices say where each gradient goes but
    not which window an element belongs to, so the gather form is not
    available; a thread per plane owns every element it adds to (no races)
    and adds in (i, j) order, like cpu.py.  Index -1 (a window that missed
    the input) routes nowhere.
    """
    N, C, H, W = gx.shape
    OH, OW = gy.shape[2], gy.shape[3]
    for t in range(cuda.grid(1), N * C, cuda.gridsize(1)):
        n = t // C
        c = t % C
        for i in range(OH):
            for j in range(OW):
                k = idx[n, c, i, j]
                if k >= 0 and k < H * W:
                    gx[n, c, k // W, k % W] += gy[n, c, i, j]


@cuda.jit
def _avg_pool_fwd(x, y, KH, KW, sh, sw, ph, pw, count_include_pad, divisor_override):
    """y[n,c,i,j] = (sum of the window's real elements) / divisor; one thread per output.

    divisor_override = 0 means "none".  A window with no real element
    (possible only under ceil_mode) gives 0.
    """
    N, C, OH, OW = y.shape
    H, W = x.shape[2], x.shape[3]
    zero = y.dtype.type(0)
    for e in range(cuda.grid(1), N * C * OH * OW, cuda.gridsize(1)):
        j = e % OW
        t = e // OW
        i = t % OH
        t //= OH
        c = t % C
        n = t // C
        h0, h1, hp = _avg_window(i, sh, ph, KH, H)
        w0, w1, wp = _avg_window(j, sw, pw, KW, W)
        if h0 >= h1 or w0 >= w1:
            y[n, c, i, j] = zero
            continue
        s = zero
        for h in range(h0, h1):
            for v in range(w0, w1):
                s += x[n, c, h, v]
        div = _avg_divisor(h0, h1, hp, w0, w1, wp, count_include_pad, divisor_override)
        y[n, c, i, j] = s / y.dtype.type(div)  # the int divisor cast to the array dtype


@cuda.jit
def _avg_pool_bwd(gy, gx, KH, KW, sh, sw, ph, pw, count_include_pad, divisor_override):
    """gx[n,c,h,v] = sum over the windows (i, j) containing (h, v) of gy[n,c,i,j] / divisor(i, j).

    The gather form of "each window hands gy / divisor to its elements": the
    thread owning (h, v) visits the output rows i with
    ``i*sh - ph <= h < i*sh - ph + KH`` (and likewise columns), in (i, j)
    order like cpu.py.  Such a window contains a real element, so its
    divisor is never 0.
    """
    N, C, H, W = gx.shape
    OH, OW = gy.shape[2], gy.shape[3]
    zero = gx.dtype.type(0)
    for e in range(cuda.grid(1), N * C * H * W, cuda.gridsize(1)):
        v = e % W
        t = e // W
        h = t % H
        t //= H
        c = t % C
        n = t // C
        # first/last window index covering h: ceil((h + ph - KH + 1) / sh) .. floor((h + ph) / sh)
        a = h + ph - KH + 1
        ilo = (a + sh - 1) // sh if a > 0 else 0
        ihi = min((h + ph) // sh, OH - 1)
        a = v + pw - KW + 1
        jlo = (a + sw - 1) // sw if a > 0 else 0
        jhi = min((v + pw) // sw, OW - 1)
        acc = zero
        for i in range(ilo, ihi + 1):
            h0, h1, hp = _avg_window(i, sh, ph, KH, H)
            for j in range(jlo, jhi + 1):
                w0, w1, wp = _avg_window(j, sw, pw, KW, W)
                div = _avg_divisor(h0, h1, hp, w0, w1, wp, count_include_pad, divisor_override)
                acc += gy[n, c, i, j] / gx.dtype.type(div)
        gx[n, c, h, v] = acc


# ==========================================================================
# Entry points (the contract's functions)
# ==========================================================================

def max_pool2d_forward(x, kernel_size, stride, padding, dilation, ceil_mode):
    """Max pooling with int64 flat indices (first max wins; NaN propagates, last NaN's index).

    x (N, C, H, W) -> (y, indices), both (N, C, OH, OW); ``indices`` holds
    ``h*W + w`` inside the (n, c) plane.  A window that contains no input
    element (only possible with dilation) gives -inf and index -1; the
    backward pass ignores such indices.
    """
    x = float_c(x, "x")
    (KH, KW), (sh, sw), (ph, pw), (dh, dw) = shapes.pool_args(kernel_size, stride, padding, dilation)
    OH, OW = shapes.pool_out_hw(x.shape[2:], (KH, KW), (sh, sw), (ph, pw), (dh, dw), ceil_mode)
    N, C = x.shape[:2]
    y = cuda.device_array((N, C, OH, OW), dtype=x.dtype)
    idx = cuda.device_array((N, C, OH, OW), dtype=np.int64)
    _max_pool_fwd[grid_1d(y.size)](x, y, idx, KH, KW, sh, sw, ph, pw, dh, dw)
    return y, idx


def max_pool2d_backward(gy, indices, x_shape):
    """Add gy to the argmax positions: gx[n, c].flat[indices[n,c,i,j]] += gy[n,c,i,j].

    Race-free: one thread per (n, c) plane (see :func:`_max_pool_bwd`).
    """
    gy = float_c(gy, "gy")
    indices = contiguous(device(indices, "indices"), np.int64)
    N, C, H, W = x_shape
    gx = zeros((N, C, H, W), gy.dtype)
    _max_pool_bwd[grid_1d(N * C)](gy, indices, gx)
    return gx


def _avg_args(kernel_size, stride, padding, divisor_override):
    k, s, p, _ = shapes.pool_args(kernel_size, stride, padding)
    return k, s, p, 0 if divisor_override is None else int(divisor_override)  # 0: no override


def avg_pool2d_forward(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override=None):
    """Average pooling with PyTorch's divisor rule; see ``reference.avg_pool2d_forward``.

    Divisor: ``divisor_override`` if given; else with ``count_include_pad``
    the window size clipped to the padded input; else the number of real
    elements in the window.  One thread per output.
    """
    x = float_c(x, "x")
    (KH, KW), (sh, sw), (ph, pw), div = _avg_args(kernel_size, stride, padding, divisor_override)
    OH, OW = shapes.pool_out_hw(x.shape[2:], (KH, KW), (sh, sw), (ph, pw), (1, 1), ceil_mode)
    y = cuda.device_array(tuple(x.shape[:2]) + (OH, OW), dtype=x.dtype)
    _avg_pool_fwd[grid_1d(y.size)](x, y, KH, KW, sh, sw, ph, pw, bool(count_include_pad), div)
    return y


def avg_pool2d_backward(gy, x_shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override=None):
    """Adjoint of average pooling (each window's elements get gy / divisor); one thread per element of gx."""
    gy = float_c(gy, "gy")
    (KH, KW), (sh, sw), (ph, pw), div = _avg_args(kernel_size, stride, padding, divisor_override)
    gx = cuda.device_array(tuple(x_shape), dtype=gy.dtype)
    _avg_pool_bwd[grid_1d(gx.size)](gy, gx, KH, KW, sh, sw, ph, pw, bool(count_include_pad), div)
    return gx
