"""Pooling, CPU twin: Numba-parallel loops over (n, c) planes.

Pooling is direct (``prange`` over (n, c) planes; there is no arithmetic to
give to BLAS), with branch-free max selection (1.5x faster than ``if``), an
unrolled 2 x 2 window, and unsigned computed indices (a signed index makes
Numba handle negative indices on every load: 2x slower). Same functions and
rules as ``reference.py``: the first maximum wins, NaN wins (the last NaN's
index), a window that misses the input gives -inf and index -1.

Max-pool's backward scatter-add (overlapping windows may route two gradients
to one input) runs one (n, c) plane per work item, and average pooling's both
directions likewise, so there are no races and two runs are bit-identical.
Arguments are checked by the caller (``kernels/contract.py``).
"""
from __future__ import annotations

import numpy as np
from numba import prange

from .. import jit, shapes
from ..jit import njit
from ..host import float_c as _float_c

_PAR, _SEQ = jit.PAR, jit.SEQ


# ==========================================================================
# Numba kernels.  Arrays arrive C-contiguous and all of one float dtype.
# ==========================================================================

@njit(**_SEQ)
def _tap_range(base, d, k, n):
    """Taps t in [lo, hi) of a window starting at `base` (step d, k taps) that land in [0, n)."""
    lo = 0
    if base < 0:
        lo = (-base + d - 1) // d
    hi = k
    last = base + (k - 1) * d
    if last >= n:
        hi = k - (last - n) // d - 1
    return lo, hi


# Index arrays with this when the index is computed (not a range() variable): an
# unsigned index cannot be negative, so Numba emits no wrap-around code for it.
_U = np.uint64


@njit(**_SEQ)
def _take(val, best):
    # branch-free "does val replace best": on random data "is it bigger" is a
    # coin flip, and a mispredicted branch costs more than computing both sides
    return (val > best) | (val != val)


@njit(**_PAR)
def _max_pool_fwd(x, y, idx, KH, KW, sh, sw, ph, pw, dh, dw):
    """Window max with PyTorch's index, tie (first max) and NaN (last NaN) rules.

    Starting from the window's first in-range element instead of -inf gives
    the same value and index (PyTorch seeds the index with that element) and
    keeps ``best`` in the input dtype.
    """
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    # the in-range taps of every window column, computed once, not per plane
    qr = np.empty((OW, 2), dtype=np.int64)
    for j in range(OW):
        qr[j, 0], qr[j, 1] = _tap_range(j * sw - pw, dw, KW, W)
    for t in prange(N * C):
        n = t // C
        c = t - n * C
        xs = x[n, c]
        ys = y[n, c]
        ids = idx[n, c]
        for i in range(OH):
            hb = i * sh - ph
            plo, phi = _tap_range(hb, dh, KH, H)
            for j in range(OW):
                wb = j * sw - pw
                qlo, qhi = qr[j, 0], qr[j, 1]
                h = hb + plo * dh
                v = wb + qlo * dw
                arg = h * W + v
                if plo >= phi or qlo >= qhi:
                    # a dilated window can miss the input entirely: -inf, and
                    # index -1 for "no element" (PyTorch's seed index there can
                    # alias a real element, which would receive a gradient)
                    ys[i, j] = -np.inf
                    ids[i, j] = -1
                    continue
                best = xs[h, v]
                for p in range(plo, phi):
                    h = hb + p * dh
                    row = xs[h]
                    for q in range(qlo, qhi):
                        v = wb + q * dw
                        val = row[v]
                        take = _take(val, best)
                        best = val if take else best
                        arg = h * W + v if take else arg
                ys[i, j] = best
                ids[i, j] = arg


@njit(**_PAR)
def _max_pool_fwd_2x2(x, y, idx):
    """_max_pool_fwd for 2 x 2 windows at stride 2, no padding or dilation, every window inside x.

    Same rules (first max wins, NaN wins and the last NaN's index is kept),
    without the per-window clipping, the window written out tap by tap and
    the stride 2 as a literal: with no inner loops and a known stride the
    compiler vectorises the row (2x faster). LeNet's and VGG's pool, so it
    is a kernel of its own: a network that uses only it compiles only it
    (0.7 s of LeNet-5's cold start, against 1.4 s with the general loop in
    the same kernel).  Positions are indexed as unsigned integers (``_U``):
    a signed computed index makes Numba handle negative indices (wrap
    around) on every load and store, which here cost more than the maxima
    themselves (2x).
    """
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    xf = x.reshape(N * C * H * W)
    yf = y.reshape(N * C * OH * OW)
    idf = idx.reshape(N * C * OH * OW)
    for t in prange(N * C):
        xb = t * H * W
        for i in range(OH):
            r0 = i * 2 * W
            o = (t * OH + i) * OW
            for j in range(OW):
                k = r0 + 2 * j  # a literal stride: the loop vectorises (2x)
                u = _U(xb + k)
                best = xf[u]
                arg = k
                val = xf[u + _U(1)]
                take = _take(val, best)
                best = val if take else best
                arg = k + 1 if take else arg
                val = xf[u + _U(W)]
                take = _take(val, best)
                best = val if take else best
                arg = k + W if take else arg
                val = xf[u + _U(W + 1)]
                take = _take(val, best)
                best = val if take else best
                arg = k + W + 1 if take else arg
                yf[_U(o + j)] = best
                idf[_U(o + j)] = arg


@njit(**_PAR)
def _max_pool_fwd_inside(x, y, idx, KH, KW, sh, sw):
    """_max_pool_fwd for any window with no padding or dilation, every window inside x.

    The rules of :func:`_max_pool_fwd_2x2`, with the window's taps as
    constant offsets from its corner and unsigned indices, as there.
    """
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    xf = x.reshape(N * C * H * W)
    yf = y.reshape(N * C * OH * OW)
    idf = idx.reshape(N * C * OH * OW)
    for t in prange(N * C):
        xb = t * H * W
        for i in range(OH):
            r0 = i * sh * W
            o = (t * OH + i) * OW
            for j in range(OW):
                k = r0 + j * sw
                u = _U(xb + k)
                best = xf[u]
                arg = k
                for p in range(KH):
                    for q in range(KW):
                        d = p * W + q
                        val = xf[u + _U(d)]
                        take = _take(val, best)
                        best = val if take else best
                        arg = k + d if take else arg
                yf[_U(o + j)] = best
                idf[_U(o + j)] = arg


@njit(**_PAR)
def _max_pool_fwd_padded(x, y, idx, KH, KW, sh, sw, ph, pw, Hb, Wb):
    """_max_pool_fwd without dilation: each plane copied into a buffer bordered with -inf (Hb x Wb).

    Every window then lies inside the buffer, and its taps are constant
    offsets as in :func:`_max_pool_fwd_inside`; the border never wins (-inf
    is neither greater than anything nor NaN). As in the general kernel,
    ``best`` starts at the window's first element inside x, so an all -inf
    window reports that element's index, as PyTorch does. The winning buffer
    tap (p, q) is mapped back to the plane's flat index at the end. (The
    general kernel clips every window to the plane and indexes with signed
    2-D positions: 93 ms here for NiN's 3x3 / 2 pool with padding 1 on 96 x
    32 x 32 at batch 128, where a copy of the input takes 7.)
    """
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    P = N * C
    OHW = OH * OW
    yf = y.reshape(P * OHW)
    idf = idx.reshape(P * OHW)
    per = max(1, P // 256)  # planes per work item: the buffer's border is written once per item
    for blk in prange((P + per - 1) // per):
        buf = np.full(Hb * Wb, -np.inf, dtype=x.dtype)
        for t in range(blk * per, min(P, (blk + 1) * per)):
            n = t // C
            xs = x[n, t - n * C]
            for h in range(H):
                dst = buf[(h + ph) * Wb + pw:(h + ph) * Wb + pw + W]
                src = xs[h]
                for v in range(W):
                    dst[v] = src[v]
            for i in range(OH):
                r0 = i * sh
                h0 = max(r0, ph)  # the window's first row and column inside x
                o = t * OHW + i * OW
                for j in range(OW):
                    c0 = j * sw
                    kp = h0 - r0  # the winner's tap (p, q): no division to map it back
                    kq = max(c0, pw) - c0
                    b0 = r0 * Wb + c0
                    best = buf[_U(b0 + kp * Wb + kq)]
                    for p in range(KH):
                        for q in range(KW):
                            val = buf[_U(b0 + p * Wb + q)]
                            take = _take(val, best)
                            best = val if take else best
                            kp = p if take else kp
                            kq = q if take else kq
                    yf[_U(o + j)] = best
                    idf[_U(o + j)] = (r0 + kp - ph) * W + (c0 + kq - pw)


@njit(**_PAR)
def _max_pool_bwd(gy, idx, gx):
    """gx[n, c].flat[idx] += gy: one (n, c) plane per work item, so no races (unsigned indices, see above)."""
    N, C = gx.shape[0], gx.shape[1]
    HW = gx.shape[2] * gx.shape[3]
    P = gy.shape[2] * gy.shape[3]
    gxf = gx.reshape(N * C * HW)
    gyf = gy.reshape(N * C * P)
    idf = idx.reshape(N * C * P)
    for t in prange(N * C):
        xb = t * HW
        for k in range(HW):
            gxf[_U(xb + k)] = 0
        for j in range(P):
            o = _U(t * P + j)
            k = idf[o]
            if k >= 0 and k < HW:  # windows that missed the input route nowhere
                gxf[_U(xb + k)] += gyf[o]


@njit(**_SEQ)
def _avg_window(i, s, p, k, n):
    start = i * s - p
    end = min(start + k, n + p)
    with_pad = end - start
    return max(start, 0), min(end, n), with_pad


@njit(**_PAR)
def _avg_pool(x, y, gy, gx, KH, KW, sh, sw, ph, pw, count_include_pad, divisor_override, backward):
    """Average pooling forward (x -> y) or its adjoint (gy -> gx), PyTorch's divisor rule.

    One kernel for both directions keeps compile time down; both run over
    (n, c) planes, so the backward scatter-add is race-free.
    """
    if backward:
        N, C, H, W = gx.shape
        OH, OW = gy.shape[2], gy.shape[3]
    else:
        N, C, H, W = x.shape
        OH, OW = y.shape[2], y.shape[3]
    for t in prange(N * C):
        n = t // C
        c = t - n * C
        if backward:
            gxs = gx[n, c]
            gxs[:, :] = 0
            gys = gy[n, c]
        else:
            xs = x[n, c]
            ys = y[n, c]
        for i in range(OH):
            h0, h1, hp = _avg_window(i, sh, ph, KH, H)
            for j in range(OW):
                w0, w1, wp = _avg_window(j, sw, pw, KW, W)
                if divisor_override != 0:
                    div = divisor_override
                elif count_include_pad:
                    div = hp * wp
                else:
                    div = (h1 - h0) * (w1 - w0)
                if h0 >= h1 or w0 >= w1:
                    if not backward:
                        ys[i, j] = 0
                    continue
                if backward:
                    g = gys[i, j] / div
                    for h in range(h0, h1):
                        row = gxs[h]
                        for v in range(w0, w1):
                            row[v] += g
                else:
                    s = xs[h0, w0] * 0
                    for h in range(h0, h1):
                        row = xs[h]
                        for v in range(w0, w1):
                            s += row[v]
                    ys[i, j] = s / div


# ==========================================================================
# Entry points (the contract's functions)
# ==========================================================================

def max_pool2d_forward(x, kernel_size, stride, padding, dilation, ceil_mode):
    """Max pooling with int64 flat indices (first max wins; NaN propagates, last NaN's index).

    A window that contains no input element (only possible with dilation)
    gives -inf and an index outside the plane, as in PyTorch; the backward
    pass ignores such indices.
    """
    x = _float_c(x, "x")
    (KH, KW), (sh, sw), (ph, pw), (dh, dw) = shapes.pool_args(kernel_size, stride, padding, dilation)
    OH, OW = shapes.pool_out_hw(x.shape[2:], (KH, KW), (sh, sw), (ph, pw), (dh, dw), ceil_mode)
    N, C = x.shape[:2]
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    idx = np.empty((N, C, OH, OW), dtype=np.int64)
    H, W = x.shape[2], x.shape[3]
    if ph == pw == 0 and dh == dw == 1 and (OH - 1) * sh + KH <= H and (OW - 1) * sw + KW <= W:
        if KH == KW == sh == sw == 2:
            _max_pool_fwd_2x2(x, y, idx)
        else:
            _max_pool_fwd_inside(x, y, idx, KH, KW, sh, sw)
    elif dh == dw == 1 and N * C > 0 and OH * OW > 0:
        Hb = max(H + 2 * ph, (OH - 1) * sh + KH)  # ceil_mode's last window may hang past the padding
        Wb = max(W + 2 * pw, (OW - 1) * sw + KW)
        _max_pool_fwd_padded(x, y, idx, KH, KW, sh, sw, ph, pw, Hb, Wb)
    else:
        _max_pool_fwd(x, y, idx, KH, KW, sh, sw, ph, pw, dh, dw)
    return y, idx


def max_pool2d_backward(gy, indices, x_shape):
    """Scatter-add gy to the argmax positions; race-free (one thread per (n, c) plane)."""
    gy = _float_c(gy, "gy")
    indices = np.ascontiguousarray(indices, dtype=np.int64)
    N, C, H, W = x_shape
    gx = np.empty((N, C, H, W), dtype=gy.dtype)
    _max_pool_bwd(gy, indices, gx)
    return gx


def _avg_args(kernel_size, stride, padding, divisor_override):
    k, s, p, _ = shapes.pool_args(kernel_size, stride, padding)
    return k, s, p, 0 if divisor_override is None else int(divisor_override)  # 0: no override


def avg_pool2d_forward(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override=None):
    """Average pooling with PyTorch's divisor rule; see ``reference.avg_pool2d_forward``."""
    x = _float_c(x, "x")
    (KH, KW), (sh, sw), (ph, pw), div = _avg_args(kernel_size, stride, padding, divisor_override)
    OH, OW = shapes.pool_out_hw(x.shape[2:], (KH, KW), (sh, sw), (ph, pw), (1, 1), ceil_mode)
    y = np.empty(x.shape[:2] + (OH, OW), dtype=x.dtype)
    _avg_pool(x, y, y, x, KH, KW, sh, sw, ph, pw, bool(count_include_pad), div, False)
    return y


def avg_pool2d_backward(gy, x_shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override=None):
    """Adjoint of average pooling (each window's elements get gy / divisor)."""
    gy = _float_c(gy, "gy")
    (KH, KW), (sh, sw), (ph, pw), div = _avg_args(kernel_size, stride, padding, divisor_override)
    gx = np.empty(tuple(x_shape), dtype=gy.dtype)
    _avg_pool(gx, gy, gy, gx, KH, KW, sh, sw, ph, pw, bool(count_include_pad), div, True)
    return gx
