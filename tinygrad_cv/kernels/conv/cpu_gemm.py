"""Convolution, CPU twin, GEMM method: chunked im2col, each chunk's GEMM on its own core.

im2col copies every receptive field of a few images into a column of a
``(C*KH*KW, n*OH*OW)`` matrix; the convolution of those images is then one
matrix product per group.  Backward-input is the product with the weight's
transpose followed by col2im (the adjoint of im2col), backward-weight is
im2col followed by the product with the output gradient.

How the work is split
---------------------
The batch is cut into *chunks* of ``nb`` images, small enough that a chunk's
column matrix (``_COL_BUDGET`` elements) stays in the core's L2 cache, and
one Numba ``prange`` runs the chunks on all cores.  (On small images with
many channels the budget would leave one image per chunk and a product of a
few columns: chunks then hold at least ``_MIN_COLS`` columns.)  Each chunk is handled by
one thread from start to end: its im2col, its GEMM (``np.dot`` compiled by
Numba, which calls the same BLAS through SciPy's ``cython_blas``, on one BLAS
thread: :func:`..matmul.cpu.blas_one_thread`), and the copy of its result into
NCHW.  So the column matrix is written and read while it is still in cache,
and the cores never wait for each other or hand work between Numba's and
BLAS's thread pools.  That hand-over was what made the earlier version (one
big multi-threaded GEMM per chunk, called from Python) slow: on the 64->64
3x3 7x7 layer at batch 128 its forward took 15.9 ms where the GEMM alone
takes 2.8 ms; this version takes ~4.7 ms.

Deterministic results
---------------------
Forward and backward-input: each chunk owns its images' outputs.
Backward-weight sums over the batch: chunk ``i`` is added into lane
``i % _LANES`` in chunk order, the lanes run in parallel, and the ``_LANES``
partial sums are then added in lane order.  Neither the chunking nor the lane
count depends on the number of threads, so two runs give the same bits.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from .. import jit
from ..jit import njit
from ..matmul.cpu import blas_one_thread
from .cpu_layout import _crop_plane

_PAR, _SEQ = jit.PAR, jit.SEQ

# A chunk's column matrix holds at most this many elements (512 KiB in float32): it then
# stays in a core's L2 cache between im2col and the GEMM that reads it.
# Measured (batch 128, 3x3 convolutions of 16-256 channels): 2**16 to 2**18 within 10 %,
# 2**20 (the old single-GEMM budget) 20-40 % slower.
_COL_BUDGET = 1 << 17
# ... but each chunk's GEMM gets at least this many columns (images x output pixels), whatever
# the budget: on small images with many channels (ResNet-18's 512 -> 512 on 4x4) a budget-sized
# chunk is one image, and every chunk streams the whole weight (9 MiB) through the cache for a
# 16-column product; its weight gradient adds a rank-16 update into 8 partial sums of that size.
# Measured, batch 128, ms forward / input / weight, minimum 0 -> 256 (weight: 512) columns:
# 512 -> 512 4x4 84 / 111 / 289 -> 64 / 76 / 97; 256 -> 256 8x8 67 / 72 / 91 -> 63 / 65 / 67;
# 128 -> 256 8x8 34 / 37 / 47 -> 32 / 33 / 33; 192 -> 192 8x8 40 / 42 / 52 -> 38 / 39 / 39;
# 64 -> 64 8x8 and 16x16 outputs unchanged (within 5 %).
_MIN_COLS = 256
_MIN_COLS_WEIGHT = 512
# Fixed number of partial weight-gradient sums (see the module docstring): 8 keeps two to
# eight cores busy whatever the thread count, and costs 8 * O * K additions at the end.
_LANES = 8


def _chunk(N, rows, P, lanes=1, min_cols=_MIN_COLS):
    """Images per chunk: the column matrix within budget, or ``min_cols`` columns if that is more;
    and at least ``lanes`` chunks when N allows."""
    nb = max(1, min(N, _COL_BUDGET // max(1, rows * P)))
    nb = max(nb, min(N, -(-min_cols // max(1, P))))
    return max(1, min(nb, -(-N // lanes)))


# ==========================================================================
# The three passes
# ==========================================================================

def forward(xp, Wp, w, b, y, stride, dilation, groups):
    """y = conv(x, w) + b into ``y``; xp is the padded input as (N, C, R*Wp)."""
    N, C = xp.shape[0], xp.shape[1]
    O, Cg, KH, KW = w.shape
    nb = _chunk(N, C * KH * KW, y.shape[2] * y.shape[3], 2)
    with blas_one_thread():
        _forward(xp, Wp, w.reshape(O, Cg * KH * KW), b, y, KH, KW, stride[0], stride[1],
                 dilation[0], dilation[1], groups, nb)


def backward_input(gy, w, gx, R, Wp, pad4, stride, dilation, groups):
    """gx = convᵀ(gy, w) into ``gx``: GEMM with the weight's transpose, then col2im and the crop."""
    N, C = gx.shape[0], gx.shape[1]
    O, Cg, KH, KW = w.shape
    nb = _chunk(N, C * KH * KW, gy.shape[2] * gy.shape[3], 2)
    with blas_one_thread():
        _backward_input(gy, w.reshape(O, Cg * KH * KW), gx, R, Wp, pad4[0], pad4[2], KH, KW,
                        stride[0], stride[1], dilation[0], dilation[1], groups, nb)


def backward_weight(xp, Wp, gy, gw, stride, dilation, groups):
    """gw = corr(x, gy) into ``gw``: im2col and one GEMM per chunk and group, summed in a fixed order."""
    N, C = xp.shape[0], xp.shape[1]
    O, Cg, KH, KW = gw.shape
    nb = _chunk(N, C * KH * KW, gy.shape[2] * gy.shape[3], _LANES, _MIN_COLS_WEIGHT)
    # per lane and group the transposed gradient (K x O/groups): see _backward_weight
    part = np.empty((_LANES, groups, Cg * KH * KW, O // groups), dtype=gw.dtype)
    with blas_one_thread():
        _backward_weight(xp, Wp, gy, part, KH, KW, stride[0], stride[1], dilation[0], dilation[1], groups, nb)
    _sum_lanes(part, gw.reshape(groups, O // groups, Cg * KH * KW))


# ==========================================================================
# Numba kernels: one work item per chunk of images
# ==========================================================================

@njit(**_PAR)
def _forward(xp, Wp, w2, b, y, KH, KW, sh, sw, dh, dw, groups, nb):
    """Per chunk: col = im2col(x[chunk]); per group ym = w2[g] @ col[g]; y[chunk] = ym + b."""
    N, C = xp.shape[0], xp.shape[1]
    O, K = w2.shape
    OH, OW = y.shape[2], y.shape[3]
    P = OH * OW
    Og = O // groups
    for ci in prange((N + nb - 1) // nb):
        n0 = ci * nb
        m = min(nb, N - n0)
        col = np.empty((C * KH * KW, m * P), dtype=y.dtype)
        _im2col(xp, Wp, col, n0, KH, KW, OH, OW, sh, sw, dh, dw)
        for g in range(groups):
            ym = np.dot(w2[g * Og:(g + 1) * Og], col[g * K:(g + 1) * K])
            for nl in range(m):
                for o in range(Og):
                    src = ym[o, nl * P:(nl + 1) * P]
                    dst = y[n0 + nl, g * Og + o].reshape(P)
                    bo = b[g * Og + o]
                    for j in range(P):
                        dst[j] = src[j] + bo


@njit(**_PAR)
def _backward_input(gy, w2, gx, R, Wp, pt, pl, KH, KW, sh, sw, dh, dw, groups, nb):
    """Per chunk: gcol[g] = w2[g]ᵀ @ gy[chunk, g]; gx[chunk] = crop(col2im(gcol))."""
    N, C = gx.shape[0], gx.shape[1]
    O, K = w2.shape
    OH, OW = gy.shape[2], gy.shape[3]
    P = OH * OW
    Og = O // groups
    for ci in prange((N + nb - 1) // nb):
        n0 = ci * nb
        m = min(nb, N - n0)
        gym = np.empty((O, m * P), dtype=gy.dtype)
        for nl in range(m):
            for o in range(O):
                src = gy[n0 + nl, o].reshape(P)
                dst = gym[o, nl * P:(nl + 1) * P]
                for j in range(P):
                    dst[j] = src[j]
        gcol = np.empty((C * KH * KW, m * P), dtype=gy.dtype)
        for g in range(groups):
            gcol[g * K:(g + 1) * K] = np.dot(w2[g * Og:(g + 1) * Og].T, gym[g * Og:(g + 1) * Og])
        _col2im(gcol, gx, n0, R, Wp, pt, pl, KH, KW, OH, OW, sh, sw, dh, dw)


@njit(**_PAR)
def _backward_weight(xp, Wp, gy, part, KH, KW, sh, sw, dh, dw, groups, nb):
    """part[lane, g] = Σ over the chunks i ≡ lane (mod lanes), in order, of im2col(x[chunk])[g] @ gy[chunk, g]ᵀ.

    That is the transpose of the gradient (K x O/groups per group): BLAS runs
    this orientation, with K as the long side of the result, 25-80 % faster
    than gy @ colᵀ on ResNet-20's layers (32->32 14x14: 127 against 81
    GFLOP/s on 2 cores; 16->16 28x28: 122 against 68).
    """
    N, C = xp.shape[0], xp.shape[1]
    lanes, _, K, Og = part.shape
    O = Og * groups
    OH, OW = gy.shape[2], gy.shape[3]
    P = OH * OW
    nchunks = (N + nb - 1) // nb
    for lane in prange(lanes):
        acc = part[lane]
        acc[:] = 0
        for ci in range(lane, nchunks, lanes):
            n0 = ci * nb
            m = min(nb, N - n0)
            col = np.empty((C * KH * KW, m * P), dtype=xp.dtype)
            _im2col(xp, Wp, col, n0, KH, KW, OH, OW, sh, sw, dh, dw)
            gym = np.empty((O, m * P), dtype=gy.dtype)
            for nl in range(m):
                for o in range(O):
                    src = gy[n0 + nl, o].reshape(P)
                    dst = gym[o, nl * P:(nl + 1) * P]
                    for j in range(P):
                        dst[j] = src[j]
            for g in range(groups):
                acc[g] += np.dot(col[g * K:(g + 1) * K], gym[g * Og:(g + 1) * Og].T)


@njit(**_SEQ)
def _sum_lanes(part, out):
    """out[g, o, k] = part[0, g, k, o] + part[1, g, k, o] + ... in lane order (the end of backward-weight)."""
    lanes, groups, K, Og = part.shape
    for g in range(groups):
        tot = part[0, g].copy()
        for lane in range(1, lanes):
            tot += part[lane, g]
        out[g] = tot.T


@njit(**_SEQ)
def _im2col(xp, Wp, col, n0, KH, KW, OH, OW, sh, sw, dh, dw):
    """col[(c, p, q), (n - n0, i, j)] = xp[n, c, i*s + p*d, j*s + q*d] for one chunk of images.

    With a column stride ``sw`` > 1 and more than one tap, each plane is first
    split into its ``sw`` column phases (:func:`_column_phases`): tap column
    j*sw + q*d is then column j + (q*d) // sw of phase (q*d) % sw, so every
    tap's rows are unit-stride copies.  Gathering every sw-th element for each
    of the KH*KW taps instead took 0.8 ns per element against 0.16 for the
    unit-stride copy (3x3 stride 2, 16 channels, 32x32, one core).
    """
    P = OH * OW
    K = col.shape[0]
    nb = col.shape[1] // P
    KK = KH * KW
    if sw == 1 or KK == 1:
        for r in range(K):
            c = r // KK
            pq = r - c * KK
            p = pq // KW
            q = pq - p * KW
            for nl in range(nb):
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
        return
    R = (OH - 1) * sh + (KH - 1) * dh + 1  # rows any tap reads
    Wq = (Wp + sw - 1) // sw
    phases = np.empty((sw, R, Wq), dtype=col.dtype)
    C = K // KK
    for nl in range(nb):
        for c in range(C):
            _column_phases(xp[n0 + nl, c], Wp, R, sw, phases)
            for p in range(KH):
                for q in range(KW):
                    ph = phases[(q * dw) % sw]
                    j0 = (q * dw) // sw
                    dst = col[(c * KH + p) * KW + q, nl * P:(nl + 1) * P]
                    for i in range(OH):
                        src = ph[i * sh + p * dh, j0:j0 + OW]
                        drow = dst[i * OW:(i + 1) * OW]
                        for v in range(OW):
                            drow[v] = src[v]


@njit(**_SEQ)
def _column_phases(plane, Wp, R, sw, phases):
    """phases[a, r, j] = plane[r*Wp + j*sw + a] for the first R rows (the columns that exist)."""
    for r in range(R):
        row = plane[r * Wp:(r + 1) * Wp]
        for a in range(sw):
            dst = phases[a, r]
            for j in range((Wp - a + sw - 1) // sw):
                dst[j] = row[j * sw + a]


@njit(**_SEQ)
def _col2im(gcol, gx, n0, R, Wp, pt, pl, KH, KW, OH, OW, sh, sw, dh, dw):
    """Adjoint of _im2col followed by the crop, for one chunk: taps added in (p, q) order per plane.

    With a column stride > 1 and more than one tap, the taps are added into the
    plane's column phases (as in :func:`_im2col`: unit-stride instead of every
    sw-th element), which are then interleaved back; every element still
    receives its taps in (p, q) order, so the sums are the same bits.
    """
    C = gx.shape[1]
    P = OH * OW
    nb = gcol.shape[1] // P
    KK = KH * KW
    acc = np.empty(R * Wp, dtype=gx.dtype)
    phased = sw > 1 and KK > 1
    Wq = (Wp + sw - 1) // sw
    phases = np.empty((sw if phased else 0, R, Wq), dtype=gx.dtype)
    for nl in range(nb):
        for c in range(C):
            if phased:
                phases[:] = 0
                for p in range(KH):
                    for q in range(KW):
                        ph = phases[(q * dw) % sw]
                        j0 = (q * dw) // sw
                        src = gcol[c * KK + p * KW + q, nl * P:(nl + 1) * P]
                        for i in range(OH):
                            dst = ph[i * sh + p * dh, j0:j0 + OW]
                            srow = src[i * OW:(i + 1) * OW]
                            for v in range(OW):
                                dst[v] += srow[v]
                for r in range(R):
                    row = acc[r * Wp:(r + 1) * Wp]
                    for a in range(sw):
                        prow = phases[a, r]
                        for j in range((Wp - a + sw - 1) // sw):
                            row[j * sw + a] = prow[j]
            else:
                acc[:] = 0
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
