"""Convolution, CPU twin, Winograd method: 3x3 stride-1 convolutions in F(2x2, 3x3) (Lavin & Gray 2016).

The idea
--------
A 2x2 block of outputs of a 3x3 correlation reads a 4x4 tile ``d`` of the
(padded) input.  Written out, the 2x2 block costs 2*2*9 = 36 multiplies per
channel pair; Winograd's minimal filtering algorithm gets it with 16::

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A

        Bᵀ = [1  0 -1  0]    G = [1    0    0 ]    Aᵀ = [1  1  1  0]
             [0  1  1  0]        [1/2  1/2  1/2]         [0  1 -1 -1]
             [0 -1  1  0]        [1/2 -1/2  1/2]
             [0  1  0 -1]        [0    0    1 ]

``Bᵀ d B`` (the input transform) and ``Aᵀ · A`` (the output transform) are
only additions; ``G g Gᵀ`` is computed once per call.  Summed over the input
channels, the elementwise product becomes, for each of the 16 positions
``ξ`` of the 4x4 tile, one matrix product over all tiles at once::

    M[ξ] (tiles x O) = U[ξ]ᵀ (tiles x C) @ V[ξ] (C x O)

so the convolution is 16 GEMMs with 2.25x fewer multiply-adds than im2col's
one, plus the two transforms (a few additions per element).  The GEMMs are
short in C, which BLAS handles better in this orientation: with the tiles as
the long dimension they ran at 130-150 GFLOP/s on 2 cores, against 85-90 the
other way round.

Backward-input is a Winograd convolution too: the full correlation of gy
with the weight flipped in both spatial axes and its two channel axes
swapped, padded by 2 - p.  The weight gradient stays with im2col + GEMM: its
Winograd form (``dg = Gᵀ [Σ_tiles (A dY Aᵀ) ⊙ (Bᵀ d B)] G``) needs both
transforms per chunk and measured slower (64->64, 8x8, batch 128: 8.1 ms
against 7.5).

Where it wins, and why only there: the transforms move 16 values per tile
through memory for each channel, as much traffic as the GEMM's arithmetic
takes time when C is small - at 16 channels Winograd was slower than the
direct kernels, at 32 it won only the input gradient (``cpu.py`` has the
table); with 64-128 channels the GEMMs dominate and the 2.25x fewer
multiply-adds show.  At 256 channels ``V`` (16 * C * O values) no longer
fits in cache and it loses again.

Rounding: the transforms add and subtract up to 4 terms and scale by 1/2, so
the result differs from the direct sum by a few units in the last place
more than im2col (float32: ~1e-6 relative to the sum of |terms|; tested
against the reference twin at the same tolerance as the other methods).

Work split and determinism: as in ``cpu_gemm.py`` - chunks of images, each
chunk transformed, multiplied (one BLAS thread) and written back by one
thread, which owns that chunk's outputs; nothing depends on the thread count.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from .. import jit
from ..jit import njit
from ..matmul.cpu import blas_one_thread
from .cpu_layout import _NO_SUMS, _pad_planes

_PAR, _SEQ = jit.PAR, jit.SEQ

# Elements of a chunk's transformed input (16 * C * tiles). Measured (64->64 3x3 on 8x8 and
# 7x7, batch 128, forward): 2**15 15-25 % slower, 2**17 to 2**19 within the noise.
_U_BUDGET = 1 << 18


def eligible(KH, KW, stride, dilation, groups, pad4) -> bool:
    """Winograd F(2x2, 3x3) covers 3x3 kernels at stride 1, dilation 1, one group, padding 0-2 per side."""
    return (KH == 3 and KW == 3 and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1) and groups == 1
            and all(0 <= p <= 2 for p in pad4))


@njit(**_SEQ)
def _skew(L):
    """L rounded up to a multiple of 16 elements that is an odd multiple of 16: the 16 planes of a
    transformed chunk then never sit a power of two apart, where their same-index elements would all
    map to the same cache sets (a 32x32 layer ran 3x slower with planes 64 KiB apart)."""
    L = (L + 15) // 16 * 16
    return L if (L // 16) % 2 == 1 else L + 16


def _chunk(N, C, tiles, lanes=1):
    """Images per chunk: the transformed input within budget, and at least ``lanes`` chunks when N allows."""
    nb = max(1, min(N, _U_BUDGET // max(1, 16 * C * tiles)))
    return max(1, min(nb, -(-N // lanes)))


def _tiled_input(x, pt, pl, OH, OW):
    """x zero-padded to (N, C, 2*th + 2, 2*tw + 2): every 4x4 tile of the 2x2 output blocks lies inside."""
    N, C, H, W = x.shape
    th, tw = -(-OH // 2), -(-OW // 2)
    R, Wp = 2 * th + 2, 2 * tw + 2
    xp = np.empty((N, C, R * Wp), dtype=x.dtype)
    _pad_planes(x, xp, R, Wp, pt, pl, _NO_SUMS)
    return xp, Wp, th, tw


def _weight_transform(w):
    """V[ξ, c, o] = (G w[o, c] Gᵀ)[ξ] for w of shape (O, C, 3, 3); in w's dtype."""
    O, C = w.shape[0], w.shape[1]
    G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=w.dtype)
    # G w Gᵀ as two plain matrix products over all (o, c) at once: w Gᵀ on the columns, then G on the
    # rows. (The three-operand einsum took 0.57 ms for 64 x 64 filters, called once per pass: 3x longer.)
    wg = np.ascontiguousarray(w).reshape(O * C * 3, 3) @ G.T                    # rows (o, c, p), columns j
    gwg = wg.reshape(O * C, 3, 4).transpose(0, 2, 1).reshape(O * C * 4, 3) @ G.T  # rows (o, c, j), columns i
    return np.ascontiguousarray(gwg.reshape(O, C, 4, 4).transpose(3, 2, 1, 0)).reshape(16, C, O)


# ==========================================================================
# The two passes
# ==========================================================================

def forward(x, w, b, pad4, OH, OW):
    """y = conv(x, w) + b for a 3x3 stride-1 convolution; x (N, C, H, W) C-contiguous."""
    N, C = x.shape[0], x.shape[1]
    O = w.shape[0]
    xp, Wp, th, tw = _tiled_input(x, pad4[0], pad4[2], OH, OW)
    y = np.empty((N, O, OH, OW), dtype=x.dtype)
    nb = _chunk(N, C, th * tw, 2)
    with blas_one_thread():
        _forward(xp, Wp, th, tw, _weight_transform(w), b, y, nb)
    return y


def backward_input(gy, w, x_shape, pad4):
    """gx = the full correlation of gy with w flipped and its channel axes swapped (padding 2 - p)."""
    H, W = x_shape[2], x_shape[3]
    wf = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    pt, pb, pl, pr = pad4
    b = np.zeros(wf.shape[0], dtype=gy.dtype)
    return forward(gy, wf, b, (2 - pt, 2 - pb, 2 - pl, 2 - pr), H, W)


# ==========================================================================
# Numba kernels
# ==========================================================================

@njit(**_SEQ)
def _input_transform(xp, Wp, th, tw, n0, m, Uf, SU, T):
    """Uf[ξ*SU + c*T + t] = (Bᵀ d B)[ξ] for the 4x4 tile d of tile t (image n0 + t // (th*tw)) of channel c."""
    C = xp.shape[1]
    T1 = th * tw
    for nl in range(m):
        for c in range(C):
            plane = xp[n0 + nl, c]
            for ti in range(th):
                r0 = plane[(2 * ti) * Wp:]
                r1 = plane[(2 * ti + 1) * Wp:]
                r2 = plane[(2 * ti + 2) * Wp:]
                r3 = plane[(2 * ti + 3) * Wp:]
                base = nl * T1 + ti * tw
                for tj in range(tw):
                    j = 2 * tj
                    # rows of Bᵀ d: t0 = d0 - d2, t1 = d1 + d2, t2 = d2 - d1, t3 = d1 - d3 (per column k)
                    a0 = r0[j] - r2[j]
                    a1 = r0[j + 1] - r2[j + 1]
                    a2 = r0[j + 2] - r2[j + 2]
                    a3 = r0[j + 3] - r2[j + 3]
                    b0 = r1[j] + r2[j]
                    b1 = r1[j + 1] + r2[j + 1]
                    b2 = r1[j + 2] + r2[j + 2]
                    b3 = r1[j + 3] + r2[j + 3]
                    e0 = r2[j] - r1[j]
                    e1 = r2[j + 1] - r1[j + 1]
                    e2 = r2[j + 2] - r1[j + 2]
                    e3 = r2[j + 3] - r1[j + 3]
                    f0 = r1[j] - r3[j]
                    f1 = r1[j + 1] - r3[j + 1]
                    f2 = r1[j + 2] - r3[j + 2]
                    f3 = r1[j + 3] - r3[j + 3]
                    ct = c * T + base + tj
                    # then · B on each row: (u0 - u2, u1 + u2, u2 - u1, u1 - u3)
                    Uf[ct] = a0 - a2
                    Uf[1 * SU + ct] = a1 + a2
                    Uf[2 * SU + ct] = a2 - a1
                    Uf[3 * SU + ct] = a1 - a3
                    Uf[4 * SU + ct] = b0 - b2
                    Uf[5 * SU + ct] = b1 + b2
                    Uf[6 * SU + ct] = b2 - b1
                    Uf[7 * SU + ct] = b1 - b3
                    Uf[8 * SU + ct] = e0 - e2
                    Uf[9 * SU + ct] = e1 + e2
                    Uf[10 * SU + ct] = e2 - e1
                    Uf[11 * SU + ct] = e1 - e3
                    Uf[12 * SU + ct] = f0 - f2
                    Uf[13 * SU + ct] = f1 + f2
                    Uf[14 * SU + ct] = f2 - f1
                    Uf[15 * SU + ct] = f1 - f3


@njit(**_SEQ)
def _sum3(a, b, c, out):
    """out = a + b + c elementwise: one vectorisable loop over four pointers."""
    for u in range(out.shape[0]):
        out[u] = a[u] + b[u] + c[u]


@njit(**_SEQ)
def _diff3(a, b, c, out):
    """out = a - b - c elementwise."""
    for u in range(out.shape[0]):
        out[u] = a[u] - b[u] - c[u]


@njit(**_SEQ)
def _output_transform(Mf, SM, T, O, b, y, n0, th, tw):
    """y[n0 + t // (th*tw), o, 2x2 block of tile t] = (Aᵀ M A)[t, o] + b[o], cropped to OH x OW.

    Aᵀ Z A in two passes over all (t, o) at once, each a few long elementwise loops (vectorised), then
    the 2x2 blocks are written into the NCHW planes (the transpose from tile-major order).
    """
    OH, OW = y.shape[2], y.shape[3]
    T1 = th * tw
    L = T * O
    S = np.empty((8, L), dtype=Mf.dtype)
    # rows of Aᵀ: s0 = z0 + z1 + z2, s1 = z1 - z2 - z3 (z_i the rows of the 4x4 Z, Z[i, j] = Mf[(4i + j)*SM])
    for j in range(4):
        _sum3(Mf[j * SM:j * SM + L], Mf[(4 + j) * SM:(4 + j) * SM + L], Mf[(8 + j) * SM:(8 + j) * SM + L], S[j])
        _diff3(Mf[(4 + j) * SM:(4 + j) * SM + L], Mf[(8 + j) * SM:(8 + j) * SM + L],
               Mf[(12 + j) * SM:(12 + j) * SM + L], S[4 + j])
    Y = np.empty((4, L), dtype=Mf.dtype)
    for a in range(2):
        # the same on the columns: y0 = s0 + s1 + s2, y1 = s1 - s2 - s3
        _sum3(S[4 * a], S[4 * a + 1], S[4 * a + 2], Y[2 * a])
        _diff3(S[4 * a + 1], S[4 * a + 2], S[4 * a + 3], Y[2 * a + 1])
    for t in range(T):
        nl = t // T1
        tt = t - nl * T1
        ti = tt // tw
        tj = tt - ti * tw
        i0 = 2 * ti
        j0 = 2 * tj
        two_rows = i0 + 1 < OH
        two_cols = j0 + 1 < OW
        yn = y[n0 + nl]
        for o in range(O):
            to = t * O + o
            bo = b[o]
            yn[o, i0, j0] = Y[0, to] + bo
            if two_cols:
                yn[o, i0, j0 + 1] = Y[1, to] + bo
            if two_rows:
                yn[o, i0 + 1, j0] = Y[2, to] + bo
                if two_cols:
                    yn[o, i0 + 1, j0 + 1] = Y[3, to] + bo


@njit(**_PAR)
def _forward(xp, Wp, th, tw, V, b, y, nb):
    """Per chunk: U = input transform; M[ξ] = U[ξ]ᵀ @ V[ξ]; y[chunk] = Aᵀ M A + b, cropped to OH x OW."""
    N, C = xp.shape[0], xp.shape[1]
    O = V.shape[2]
    T1 = th * tw
    for ci in prange((N + nb - 1) // nb):
        n0 = ci * nb
        m = min(nb, N - n0)
        T = m * T1
        SU = _skew(C * T)
        Uf = np.empty(16 * SU, dtype=y.dtype)
        _input_transform(xp, Wp, th, tw, n0, m, Uf, SU, T)
        SM = _skew(T * O)
        Mf = np.empty(16 * SM, dtype=y.dtype)
        for k in range(16):
            np.dot(Uf[k * SU:k * SU + C * T].reshape(C, T).T, V[k], Mf[k * SM:k * SM + T * O].reshape(T, O))
        _output_transform(Mf, SM, T, O, b, y, n0, th, tw)
