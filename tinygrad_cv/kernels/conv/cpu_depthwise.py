"""Convolution, CPU twin, depthwise method: each plane padded in a small buffer of its own.

A depthwise convolution (``groups == C == O``: one filter per channel, no sum
over channels) does only KH*KW multiply-adds per output value, so on small
images its time is memory traffic.  The direct method first writes a padded
copy of the whole batch (``cpu_layout._padded_input``: for 256 channels of
7x7 at batch 128, 1.4 ms of a 4.6 ms forward pass, where PyTorch takes
0.9 ms for everything) and gives every plane a work item of its own.  Here a
work item takes a block of planes; each plane is copied into a zero-bordered
buffer that stays in L1 and is reused for the next plane (only its interior
is written, so the border stays zero), the flat-offset correlation of
``cpu_direct`` runs on it, and the output plane is written straight from the
accumulator.

* forward: ``y[n, c] = b[c] + sum_{p,q} w[c, 0, p, q] * xpad[n, c, p*dh:, q*dw:]``;
* input gradient: the same kernel on gy, with the filter turned by 180
  degrees and the padding ``d*(k-1) - p`` on each side (a full correlation:
  every input pixel collects the outputs it fed);
* weight gradient: ``gw[c, 0, p, q] = sum_n sum_ij gy[n, c, i, j] * xpad[n, c, i + p*dh, j + q*dw]``,
  a work item per channel summing over the batch in order, one vector
  accumulator per tap (added up in a fixed order at the end).

Each output value is written by one work item in a fixed order of
operations, so results do not depend on the thread count.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from .. import jit
from ..jit import njit
from .cpu_layout import _crop_plane, _whole_vectors

_PAR_FMA, _SEQ, _SEQ_FMA = jit.PAR_FMA, jit.SEQ, jit.SEQ_FMA


def eligible(C, O, groups, stride, pad4, KH, KW, dilation, kind, hw=None) -> bool:
    """Depthwise with one filter per channel, stride 1.

    The input gradient runs the forward kernel on gy with padding
    :func:`_full_padding`, which must not be negative: p <= d*(k-1) at the
    top and left, and at the bottom and right the same unless x has rows or
    columns the convolution never reads (``conv_transpose2d``'s
    ``output_padding``), which ``hw`` = (H, W, OH, OW) tells.
    """
    if not (groups == C == O and tuple(stride) == (1, 1)):
        return False
    if kind == "input":
        return min(_full_padding(pad4, KH, KW, dilation, hw)) >= 0
    return True


def _full_padding(pad4, KH, KW, dilation, hw=None):
    """Padding of the full correlation of gy that gives gx: d*(k-1) - p at the top and left; at the bottom and
    right whatever makes the output H x W (d*(k-1) - p when x is exactly what the convolution reads)."""
    dh, dw = dilation
    pt, pb, pl, pr = pad4
    if hw is None:
        return dh * (KH - 1) - pt, dh * (KH - 1) - pb, dw * (KW - 1) - pl, dw * (KW - 1) - pr
    H, W, OH, OW = hw
    return dh * (KH - 1) - pt, H - OH + pt, dw * (KW - 1) - pl, W - OW + pl


def _planes_per_item(planes):
    # enough work items for any core count, few enough that each buffer is reused many times;
    # the blocks do not change any result (every plane is computed on its own)
    return max(1, planes // 256)


def forward(x, w, b, pad4, dilation, OH=None, OW=None):
    """y = depthwise conv(x, w) + b at stride 1; x (N, C, H, W), w (C, 1, KH, KW), b (C,).

    ``OH``, ``OW``: the output size, if smaller than the convolution's own
    (``conv_transpose2d``'s input gradient crops to its x).
    """
    N, C, H, W = x.shape
    KH, KW = w.shape[2], w.shape[3]
    pt, pb, pl, pr = pad4
    dh, dw = dilation
    OH = H + pt + pb - dh * (KH - 1) if OH is None else OH
    OW = W + pl + pr - dw * (KW - 1) if OW is None else OW
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    _forward(x, w.reshape(C, KH * KW), b, y, pt, pl, pt + H + pb, W + pl + pr, KH, KW, dh, dw,
             _planes_per_item(N * C))
    return y


def backward_input(gy, w, x_shape, pad4, dilation):
    """gx: the forward kernel on gy with w turned by 180 degrees and padding :func:`_full_padding`."""
    KH, KW = w.shape[2], w.shape[3]
    full = _full_padding(pad4, KH, KW, dilation, (x_shape[2], x_shape[3], gy.shape[2], gy.shape[3]))
    turned = np.ascontiguousarray(w[:, :, ::-1, ::-1])
    return forward(gy, turned, np.zeros(w.shape[0], dtype=gy.dtype), full, dilation, x_shape[2], x_shape[3])


def backward_weight(x, gy, w_shape, pad4, dilation):
    """gw (C, 1, KH, KW): per channel, the correlation of the padded input with gy, summed over the batch."""
    N, C, H, W = x.shape
    KH, KW = w_shape[2], w_shape[3]
    pt, pb, pl, pr = pad4
    gw = np.empty((C, KH * KW), dtype=x.dtype)
    _backward_weight(x, gy, gw, pt, pl, pt + H + pb, W + pl + pr, KH, KW, dilation[0], dilation[1])
    return gw.reshape(tuple(w_shape))


# ==========================================================================
# Numba kernels.  Arrays arrive C-contiguous and all of one float dtype.
# ==========================================================================

@njit(**_SEQ)
def _grid(R, Wp, OH, OW, KH, KW, dh, dw):
    """(offs, Lv, size): tap k's flat offset on the Wp-wide grid, the output loop length rounded up to whole
    vectors, and the buffer length (the rounded-up loops read up to offs[-1] + Lv)."""
    T = KH * KW
    Lv = _whole_vectors((OH - 1) * Wp + OW)
    offs = np.empty(T, dtype=np.int64)
    for p in range(KH):
        for q in range(KW):
            offs[p * KW + q] = p * dh * Wp + q * dw
    return offs, Lv, max(R * Wp, offs[T - 1] + Lv)


@njit(**_PAR_FMA)
def _forward(x, wt, b, y, pt, pl, R, Wp, KH, KW, dh, dw, per):
    """Per plane: copy x[n, c] into the buffer's interior (R x Wp grid), acc = b[c] + sum_k wt[c, k] * buf[offs[k]:],
    crop acc's Wp-wide rows into y[n, c]."""
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    offs, Lv, size = _grid(R, Wp, OH, OW, KH, KW, dh, dw)
    planes = N * C
    for blk in prange((planes + per - 1) // per):
        buf = np.zeros(size, dtype=y.dtype)
        acc = np.empty(Lv, dtype=y.dtype)
        for t in range(blk * per, min(planes, (blk + 1) * per)):
            n = t // C
            c = t - n * C
            _fill(x[n, c], buf, pt, pl, Wp)
            _correlate(buf, offs, wt[c], b[c], acc)
            _crop_plane(acc, Wp, OH, 0, 0, y[n, c])


@njit(**_SEQ)
def _fill(xs, buf, pt, pl, Wp):
    """buf's interior = the plane xs (H x W) at row pt, column pl of the Wp-wide grid; the border is left alone."""
    H, W = xs.shape
    for h in range(H):
        src = xs[h]
        dst = buf[(h + pt) * Wp + pl:(h + pt) * Wp + pl + W]
        for v in range(W):
            dst[v] = src[v]


@njit(**_SEQ_FMA)
def _correlate(buf, offs, wc, bc, acc):
    """acc = bc + sum_k wc[k] * buf[offs[k]:offs[k] + len(acc)], one tap at a time."""
    Lv = acc.shape[0]
    for j in range(Lv):
        acc[j] = bc
    for k in range(offs.shape[0]):
        wk = wc[k]
        src = buf[offs[k]:offs[k] + Lv]
        for j in range(Lv):
            acc[j] = acc[j] + wk * src[j]


@njit(**_SEQ_FMA)
def _accumulate_taps(buf, offs, g, acc):
    """acc[k] += g * buf[offs[k]:offs[k] + len(g)] for every tap k."""
    Lv = g.shape[0]
    for k in range(offs.shape[0]):
        ak = acc[k]
        src = buf[offs[k]:offs[k] + Lv]
        for j in range(Lv):
            ak[j] = ak[j] + g[j] * src[j]


@njit(**_PAR_FMA)
def _backward_weight(x, gy, gw, pt, pl, R, Wp, KH, KW, dh, dw):
    """Per channel c, over the batch in order: acc[k] += g * buf[offs[k]:] with g = gy[n, c] on the Wp-wide
    grid (zero in the gap columns); then gw[c, k] = sum of acc[k]'s lanes, in order."""
    N, C, H, W = x.shape
    OH, OW = gy.shape[2], gy.shape[3]
    T = KH * KW
    offs, Lv, size = _grid(R, Wp, OH, OW, KH, KW, dh, dw)
    for c in prange(C):
        buf = np.zeros(size, dtype=gw.dtype)
        g = np.zeros(Lv, dtype=gw.dtype)
        acc = np.zeros((T, Lv), dtype=gw.dtype)
        for n in range(N):
            _fill(x[n, c], buf, pt, pl, Wp)
            _fill(gy[n, c], g, 0, 0, Wp)  # gy on the Wp-wide grid; its gap columns stay zero
            _accumulate_taps(buf, offs, g, acc)
        for k in range(T):
            s = acc[k, 0]
            for j in range(1, Lv):
                s += acc[k, j]
            gw[c, k] = s
