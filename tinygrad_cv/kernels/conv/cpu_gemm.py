"""Convolution, CPU twin, GEMM method: im2col / col2im (Numba, parallel) around BLAS matrix products.

im2col copies every receptive field of a chunk of images into a column of a
``(C*KH*KW, n*OH*OW)`` matrix; the convolution is then one BLAS GEMM per
group (``np.dot`` from Python, so the BLAS library's own threads run it),
and a parallel copy puts the result back in NCHW.  Backward-input is GEMM +
col2im, backward-weight is im2col + GEMM.  It costs memory (KH*KW copies of
the input) and a hand-over between Numba's thread pool and BLAS's; when it
pays is decided in ``cpu.py``.

col2im works on (n, c) planes (its scatter-adds happen in one thread, in a
fixed order) and the weight gradient is accumulated chunk by chunk in batch
order, so results do not depend on thread timing.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .. import jit
from .cpu_layout import _crop_plane

_PAR = jit.PAR

# Upper bound on the im2col buffer, in elements (1 Mi = 4 MiB in float32).
# LeNet's layers fit in one chunk; the 64-channel 32x32 layer is cut into
# chunks of ~2 images so that the column block the GEMM streams through stays
# cache-resident (measured on that layer: 1 Mi elements was the best of
# 0.5/1/2/4/8/16 Mi, by 10-40 %, though this box's timing noise is of that order).
_COL_BUDGET = 1 << 20


def _chunk(N, rows, P):
    """Images per im2col chunk so that the column buffer stays within budget."""
    return max(1, min(N, _COL_BUDGET // max(1, rows * P)))


# ==========================================================================
# The three passes (Python: chunks of images, one GEMM per group each)
# ==========================================================================

def forward(xp, Wp, w, b, y, stride, dilation, groups):
    """y = conv(x, w) + b into ``y``; xp is the padded input as (N, C, R*Wp)."""
    N, C = xp.shape[0], xp.shape[1]
    O, Cg, KH, KW = w.shape
    OH, OW = y.shape[2], y.shape[3]
    sh, sw = stride
    dh, dw = dilation
    P = OH * OW
    K = Cg * KH * KW
    Og = O // groups
    w2 = w.reshape(O, K)
    nb = _chunk(N, C * KH * KW, P)
    for n0 in range(0, N, nb):
        m = min(nb, N - n0)
        col = np.empty((C * KH * KW, m * P), dtype=y.dtype)
        ym = np.empty((O, m * P), dtype=y.dtype)
        _im2col(xp, Wp, col, n0, KH, KW, OH, OW, sh, sw, dh, dw)
        for g in range(groups):
            np.dot(w2[g * Og:(g + 1) * Og], col[g * K:(g + 1) * K], out=ym[g * Og:(g + 1) * Og])
        _onp_to_nchw(ym, b, y, n0)


def backward_input(gy, w, gx, R, Wp, pad4, stride, dilation, groups):
    """gx = convᵀ(gy, w) into ``gx``: GEMM with the weight's transpose, then col2im and the crop."""
    N, C = gx.shape[0], gx.shape[1]
    O, Cg, KH, KW = w.shape
    OH, OW = gy.shape[2], gy.shape[3]
    sh, sw = stride
    dh, dw = dilation
    pt, pb, pl, pr = pad4
    P = OH * OW
    K = Cg * KH * KW
    Og = O // groups
    w2 = w.reshape(O, K)
    nb = _chunk(N, C * KH * KW, P)
    for n0 in range(0, N, nb):
        m = min(nb, N - n0)
        gym = np.empty((O, m * P), dtype=gy.dtype)
        gcol = np.empty((C * KH * KW, m * P), dtype=gy.dtype)
        _nchw_to_onp(gy, gym, n0)
        for g in range(groups):
            np.dot(w2[g * Og:(g + 1) * Og].T, gym[g * Og:(g + 1) * Og], out=gcol[g * K:(g + 1) * K])
        _col2im(gcol, gx, n0, R, Wp, pt, pl, KH, KW, OH, OW, sh, sw, dh, dw)


def backward_weight(xp, Wp, gy, gw, stride, dilation, groups):
    """gw = corr(x, gy) into ``gw``: im2col, then one GEMM per group and chunk, added in batch order."""
    N, C = xp.shape[0], xp.shape[1]
    O, Cg, KH, KW = gw.shape
    OH, OW = gy.shape[2], gy.shape[3]
    sh, sw = stride
    dh, dw = dilation
    P = OH * OW
    K = Cg * KH * KW
    Og = O // groups
    gw2 = gw.reshape(O, K)
    nb = _chunk(N, C * KH * KW, P)
    for n0 in range(0, N, nb):
        m = min(nb, N - n0)
        col = np.empty((C * KH * KW, m * P), dtype=gw.dtype)
        gym = np.empty((O, m * P), dtype=gw.dtype)
        _im2col(xp, Wp, col, n0, KH, KW, OH, OW, sh, sw, dh, dw)
        _nchw_to_onp(gy, gym, n0)
        for g in range(groups):
            part = np.dot(gym[g * Og:(g + 1) * Og], col[g * K:(g + 1) * K].T)
            if n0 == 0:
                gw2[g * Og:(g + 1) * Og] = part
            else:
                gw2[g * Og:(g + 1) * Og] += part  # chunks added in batch order


# ==========================================================================
# Numba kernels: layout changes around the GEMM
# ==========================================================================

@njit(**_PAR)
def _im2col(xp, Wp, col, n0, KH, KW, OH, OW, sh, sw, dh, dw):
    """col[(c, p, q), (n - n0, i, j)] = xp[n, c, i*s + p*d, j*s + q*d] for a chunk of images."""
    P = OH * OW
    K = col.shape[0]
    nb = col.shape[1] // P
    KK = KH * KW
    for t in prange(K * nb):
        r = t // nb
        nl = t - r * nb
        c = r // KK
        pq = r - c * KK
        p = pq // KW
        q = pq - p * KW
        plane = xp[n0 + nl, c]
        dst = col[r, nl * P:(nl + 1) * P]
        for i in range(OH):
            src = plane[(i * sh + p * dh) * Wp + q * dw:]
            drow = dst[i * OW:(i + 1) * OW]
            if sw == 1:
                for v in range(OW):
                    drow[v] = src[v]
            else:
                for v in range(OW):
                    drow[v] = src[v * sw]


@njit(**_PAR)
def _col2im(gcol, gx, n0, R, Wp, pt, pl, KH, KW, OH, OW, sh, sw, dh, dw):
    """Adjoint of _im2col followed by the crop: one work item per (n, c) plane."""
    N, C, H, W = gx.shape
    P = OH * OW
    nb = gcol.shape[1] // P
    KK = KH * KW
    for t in prange(nb * C):
        nl = t // C
        c = t - nl * C
        acc = np.zeros(R * Wp, dtype=gx.dtype)
        for p in range(KH):
            for q in range(KW):
                src = gcol[c * KK + p * KW + q, nl * P:(nl + 1) * P]
                for i in range(OH):
                    dst = acc[(i * sh + p * dh) * Wp + q * dw:]
                    srow = src[i * OW:(i + 1) * OW]
                    if sw == 1:
                        for v in range(OW):
                            dst[v] += srow[v]
                    else:
                        for v in range(OW):
                            dst[v * sw] += srow[v]
        _crop_plane(acc, Wp, R, pt, pl, gx[n0 + nl, c])


@njit(**_PAR)
def _onp_to_nchw(ym, b, y, n0):
    """y[n0 + n, o] = ym[o, n*P:(n+1)*P] + b[o]  (GEMM output back to NCHW)."""
    O = y.shape[1]
    P = y.shape[2] * y.shape[3]
    nb = ym.shape[1] // P
    for t in prange(nb * O):
        nl = t // O
        o = t - nl * O
        src = ym[o, nl * P:(nl + 1) * P]
        dst = y[n0 + nl, o].reshape(P)
        bo = b[o]
        for j in range(P):
            dst[j] = src[j] + bo


@njit(**_PAR)
def _nchw_to_onp(gy, gym, n0):
    """gym[o, n*P:(n+1)*P] = gy[n0 + n, o]  (NCHW to the GEMM's (O, n*P) layout)."""
    O = gy.shape[1]
    P = gy.shape[2] * gy.shape[3]
    nb = gym.shape[1] // P
    for t in prange(nb * O):
        nl = t // O
        o = t - nl * O
        src = gy[n0 + nl, o].reshape(P)
        dst = gym[o, nl * P:(nl + 1) * P]
        for j in range(P):
            dst[j] = src[j]
