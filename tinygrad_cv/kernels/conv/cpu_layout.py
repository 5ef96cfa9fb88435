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
from numba import prange

from .. import jit
from ..jit import njit

_PAR, _SEQ = jit.PAR, jit.SEQ
_LANES = jit.LANES
_U = np.uint64

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


@njit(**_SEQ)
def _crop_phases(acc, R2, W2, sh, sw, pt, pl, out):
    """out[h, w] = phase plane ((h+pt) % sh, (w+pl) % sw) of acc at ((h+pt) // sh, (w+pl) // sw).

    The inverse of :func:`_phase_planes` for one channel (acc: sh*sw planes
    of R2 x W2, flat), cropped by (pt, pl); positions past the planes are 0.
    """
    H, W = out.shape
    of = out.reshape(H * W)
    RW2 = R2 * W2
    h_end = min(H, R2 * sh - pt)  # rows past it lie beyond every phase plane
    w_end = max(0, min(W, W2 * sw - pl))
    for h in range(max(h_end, 0), H):
        for v in range(W):
            of[h * W + v] = 0
    for h in range(max(h_end, 0)):
        for v in range(w_end, W):
            of[h * W + v] = 0
    for a in range(sh):
        for b in range(sw):
            v0 = min(W2, max(0, (pl - b + sw - 1) // sw))
            v1 = max(v0, min(W2, (W + pl - b + sw - 1) // sw))
            for u in range(R2):
                h = u * sh + a - pt
                if h >= 0 and h < H:
                    s = _U((a * sw + b) * RW2 + u * W2 + v0)
                    d = _U(h * W + v0 * sw + b - pl)
                    if sw == 2:  # a literal stride (see _phase_planes)
                        for v in range(v1 - v0):
                            of[d + _U(2 * v)] = acc[s + _U(v)]
                    else:
                        for v in range(v1 - v0):
                            of[d + _U(v * sw)] = acc[s + _U(v)]


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
    return _phase_tap_offsets(Cg, RWp, Wp, KH, KW, 1, 1, dh, dw, pad4)


# One explicit signature (compiled when this module is imported): a kernel that
# passes a constant (pad4=True, Cg=1) would otherwise get a copy of this
# function specialised to that literal value, one more compilation each
# (0.2-0.3 s of a cold start).  Calls with other integer types convert.
_OFFSETS_SIG = "int64[::1](int64, int64, int64, int64, int64, int64, int64, int64, int64, boolean)"


@njit(_OFFSETS_SIG, **_SEQ)
def _phase_tap_offsets(Cg, RW2, W2, KH, KW, sh, sw, dh, dw, pad4):
    """:func:`_tap_offsets` for phase-split planes (:func:`_phase_planes`): stride (sh, sw).

    Tap (c, p, q) of a strided convolution reads padded row i*sh + p*dh,
    column j*sw + q*dw; that is row i + (p*dh)//sh, column j + (q*dw)//sw
    of phase ((p*dh) % sh, (q*dw) % sw) of channel c, whose planes are RW2
    apart (sh*sw of them per channel) with rows W2 wide.  Stride 1 is one
    phase per channel: the plain padded layout.
    """
    T = Cg * KH * KW
    offs = np.empty((T + 3) // 4 * 4 if pad4 else T, dtype=np.int64)
    for cl in range(Cg):
        for p in range(KH):
            a, u = (p * dh) % sh, (p * dh) // sh
            for q in range(KW):
                b, v = (q * dw) % sw, (q * dw) // sw
                offs[(cl * KH + p) * KW + q] = (cl * sh * sw + a * sw + b) * RW2 + u * W2 + v
    for k in range(T, offs.shape[0]):
        offs[k] = offs[T - 1]
    return offs


@njit("int64(int64[::1])", **_SEQ)
def _largest(offs):
    """max(offs), for tap offsets: ``offs.max()`` in a parallel kernel compiles NumPy's generic reduction (0.2-0.35 s)."""
    m = offs[0]
    for k in range(1, offs.shape[0]):
        m = max(m, offs[k])
    return m


@njit(**_PAR)
def _phase_planes(x, out, R2, W2, pt, pl, sh, sw):
    """out[n, c, a*sw + b] (flat R2 x W2) = xpad[n, c, a::sh, b::sw], xpad = x zero-padded by (pt, pl).

    The polyphase split of the padded input: a stride-(sh, sw) convolution
    becomes sh*sw stride-1 convolutions, one per phase, whose taps are
    constant offsets (:func:`_phase_tap_offsets`), so the stride-1 kernels
    run it.  Padding and split in one pass over x; everything outside x is 0.
    """
    N, C, H, W = x.shape
    xf = x.reshape(N * C * H * W)
    of = out.reshape(out.size)
    P = sh * sw * R2 * W2  # one channel's phase planes
    for t in prange(N * C):
        for a in range(sh):
            for b in range(sw):
                # columns v with 0 <= v*sw + b - pl < W
                v0 = min(W2, max(0, (pl - b + sw - 1) // sw))
                v1 = max(v0, min(W2, (W + pl - b + sw - 1) // sw))
                for u in range(R2):
                    o = t * P + ((a * sw + b) * R2 + u) * W2
                    h = u * sh + a - pt
                    if h >= 0 and h < H:
                        for v in range(v0):
                            of[o + v] = 0
                        # flat unsigned indices (no wrap-around test per element);
                        # a literal stride 2: the gather vectorises
                        i = _U(t * H * W + h * W + v0 * sw + b - pl)
                        d = _U(o + v0)
                        if sw == 2:
                            for v in range(v1 - v0):
                                of[d + _U(v)] = xf[i + _U(2 * v)]
                        else:
                            for v in range(v1 - v0):
                                of[d + _U(v)] = xf[i + _U(v * sw)]
                        for v in range(v1, W2):
                            of[o + v] = 0
                    else:
                        for v in range(W2):
                            of[o + v] = 0


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


def _phased_input(x, pad4, KH, KW, OH, OW, stride, dilation):
    """x zero-padded and split into phases (:func:`_phase_planes`): (N, C, sh*sw*R2*W2), W2, R2*W2."""
    N, C, H, W = x.shape
    sh, sw = stride
    R = _rows_needed(OH, KH, sh, dilation[0])
    Wp = _rows_needed(OW, KW, sw, dilation[1])  # columns any output reads
    R2, W2 = -(-R // sh), -(-Wp // sw)
    out = np.empty((N, C, sh * sw, R2 * W2), dtype=x.dtype)
    _phase_planes(x, out, R2, W2, pad4[0], pad4[2], sh, sw)
    return out.reshape(N, C, sh * sw * R2 * W2), W2, R2 * W2


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
