"""Convolution, CPU twin: the padded-plane layout that both methods read.

The direct kernels (``cpu_direct.py``) and im2col (``cpu_gemm.py``) both read
the input as a zero-padded copy whose rows are ``Wp`` wide, flattened per
(n, c) plane, and write outputs computed on that grid back through a crop.
With that layout "shift the input by tap (p, q)" is a constant offset into a
flat array (:func:`_tap_offsets`), so every tap is one long unit-stride loop
that LLVM vectorises.  Everything here is a copy or index arithmetic.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .. import jit

_PAR, _SEQ = jit.PAR, jit.SEQ
_LANES = jit.LANES

@njit(**_SEQ)
def _crop_plane(acc, Wp, R, pt, pl, out):
    """out[h, w] = acc[(h + pt) * Wp + w + pl]; rows past the R computed rows are 0."""
    H, W = out.shape
    for h in range(H):
        r = h + pt
        if r < R:
            src = acc[r * Wp + pl:r * Wp + pl + W]
            for v in range(W):
                out[h, v] = src[v]
        else:
            for v in range(W):
                out[h, v] = 0


@njit(**_PAR)
def _pad_planes(x, out, R, Wp, pt, pl, sums):
    """out[n, c] (flat R x Wp) = x[n, c] shifted down by pt rows and right by pl columns.

    Zeros everywhere else.  Negative shifts crop x instead.  Used for the
    zero-padded input copy and to re-lay gy with a row stride of Wp.  If
    ``sums`` has N rows, sums[n, c] also receives the sum of the copied part
    of x[n, c] (the conv bias gradient, in the same pass over gy): column
    sums first, elementwise so the loop stays vectorised, then those in order,
    in float64.
    """
    N, C, H, W = x.shape
    v0 = max(pl, 0)
    v1 = min(Wp, pl + W)
    want_sums = sums.shape[0] == N
    for t in prange(N * C):
        n = t // C
        c = t - n * C
        plane = out[n, c]
        src = x[n, c]
        for r in range(R):
            row = plane[r * Wp:(r + 1) * Wp]
            h = r - pt
            if h >= 0 and h < H and v0 < v1:
                for v in range(v0):
                    row[v] = 0
                s = src[h, v0 - pl:v1 - pl]
                dst = row[v0:v1]
                for v in range(v1 - v0):
                    dst[v] = s[v]
                for v in range(v1, Wp):
                    row[v] = 0
            else:
                for v in range(Wp):
                    row[v] = 0
        if want_sums:  # re-read the plane just written (still in L1): a branch in the copy loop costs 20 %
            col = np.zeros(Wp, dtype=x.dtype)
            for r in range(max(pt, 0), min(R, pt + H)):
                row = plane[r * Wp:(r + 1) * Wp]
                for v in range(Wp):
                    col[v] += row[v]
            total = 0.0
            for v in range(Wp):
                total += col[v]
            sums[n, c] = total


@njit(**_SEQ)
def _whole_vectors(L):
    """L rounded up to a multiple of the vector width."""
    return (L + _LANES - 1) // _LANES * _LANES


@njit(**_SEQ)
def _tap_offsets(Cg, RWp, Wp, KH, KW, dh, dw, pad4):
    """Flat offset of tap (c, p, q) in a stack of planes RWp apart with rows Wp wide.

    With pad4 the array is padded to a multiple of 4 by repeating the last
    tap, for kernels that compute such extra taps into accumulators of their
    own and throw them away (never into a real output: a zero weight times an
    inf input would still be NaN).
    """
    T = Cg * KH * KW
    offs = np.empty((T + 3) // 4 * 4 if pad4 else T, dtype=np.int64)
    for cl in range(Cg):
        for p in range(KH):
            for q in range(KW):
                offs[(cl * KH + p) * KW + q] = cl * RWp + p * dh * Wp + q * dw
    for k in range(T, offs.shape[0]):
        offs[k] = offs[T - 1]
    return offs


def _rows_needed(OH, KH, sh, dh):
    """Rows of the padded input that any output row reads."""
    return (OH - 1) * sh + (KH - 1) * dh + 1


def _padded_input(x, pad4, KH, OH, sh, dh):
    """Zero-padded copy of x as (N, C, R*Wp), or x itself when no padding is read."""
    N, C, H, W = x.shape
    pt, pb, pl, pr = pad4
    R = _rows_needed(OH, KH, sh, dh)
    Wp = W + pl + pr
    if pt == 0 and pl == 0 and pr == 0 and R <= H:
        return x.reshape(N, C, H * W), Wp, R
    xp = np.empty((N, C, R * Wp), dtype=x.dtype)
    _pad_planes(x, xp, R, Wp, pt, pl, _NO_SUMS)
    return xp, Wp, R


def _spread_planes(gy, Wp, L, sums=None):
    """gy planes re-laid with row stride Wp (zero gaps) for the flat stride-1 loops.

    Returns (flat array, plane stride G).  G is whole rows and at least the
    loop length L rounded up to whole vectors; the rows past OH are zero.
    With ``sums`` (float64, (N, O)) each plane's sum is written there too.
    """
    N, O, OH, OW = gy.shape
    Lv = _whole_vectors(L)
    rows = max(OH, -(-Lv // Wp))
    out = np.empty((N, O, rows * Wp), dtype=gy.dtype)
    _pad_planes(gy, out, rows, Wp, 0, 0, _NO_SUMS if sums is None else sums)
    return out.reshape(-1), rows * Wp


# "no plane sums wanted" for _pad_planes (a 0 x 0 array: one compiled signature either way)
_NO_SUMS = np.zeros((0, 0))
