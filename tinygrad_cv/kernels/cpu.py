"""Fast CPU kernels: Numba-parallel loops plus BLAS, same API as ``reference.py``.

Every public function here has the signature and the semantics of its twin in
``reference.py`` (which is the readable definition and the test oracle); this
module only differs in *how* the numbers are computed.

Strategy per kernel
-------------------
Two ways to compute a convolution are implemented; :func:`_use_gemm` picks
one per pass:

* **direct** - the input is copied once into a zero-padded buffer whose rows
  are ``Wp`` wide, and for stride 1 the output is computed on that same
  ``Wp``-wide grid.  Then "shift the input by tap (p, q)" is a constant
  offset into a flat array and every tap is one long unit-stride
  ``acc[j] += w * x[j + off]`` loop (~900 elements for LeNet's first layer)
  that LLVM vectorises (AVX-512 here), instead of 28 short rows with bounds
  checks; the junk columns (``Wp - OW`` per row) are cropped at the end, and
  the loops are rounded up to whole vectors.  Such a loop alone is bound by
  loads and stores, not arithmetic, so the stride-1 kernels are
  *register-blocked* like a GEMM micro-kernel: 4 output channels x 4 taps
  per pass (forward), 4 input channels x 4 output channels (backward-input,
  a scatter over (n, c) planes), and 4 x 4 dot products held in registers
  (backward-weight, over chunks of 16 images): each loaded vector feeds 4
  fused multiply-adds.  Strided convolutions use simpler per-plane loops.
* **gemm** - im2col into a ``(C*KH*KW, n*OH*OW)`` matrix for a chunk of images
  (Numba, parallel), one BLAS GEMM per group (``np.dot`` from Python, so the
  BLAS library's own threads run it), and a parallel copy back to NCHW.
  Backward-input is GEMM + col2im, backward-weight is im2col + GEMM.

Measured with both paths forced (ms, min of 5-20 runs; float32, batch 64,
2 cores, PyTorch 2.13 on the same box for scale):

=========================  ==========  ========  =========  =======
layer                      pass        direct    gemm       PyTorch
=========================  ==========  ========  =========  =======
conv 6->16 5x5, 14x14      fwd         0.49      1.0        0.24
(K = 150, 15 M MAC)        bwd_input   0.77      1.1        0.48
                           bwd_weight  0.47      1.1        0.38
conv 64->64 3x3 p1, 32x32  fwd         40        51         44
(K = 576, 2.4 G MAC)       bwd_input   44        57         45
                           bwd_weight  34        59         44
conv 64->128 3x3 s2 p1     fwd         785       47
(strided, 1.2 G MAC)       bwd_input   689       44
                           bwd_weight  828       36
=========================  ==========  ========  =========  =======

So: direct for every stride-1 convolution; for strided ones, direct for
short reductions (K < 64) and many groups, GEMM for the weight gradient once
K >= 64, and GEMM for forward and backward-input when there is also enough
work (>= 2**27 multiply-adds) to pay for handing the cores from Numba's
thread pool to BLAS's and back.

Pooling is direct (``prange`` over (n, c) planes; there is no arithmetic to
give to BLAS), with branch-free max selection (1.5x faster than ``if``) and
an unrolled 2 x 2 window.  ``matmul`` is ``np.dot`` (BLAS); ``matmul_blocked``
is the hand-written cache-blocked teaching version (3-30x slower than BLAS,
see bench).

Race freedom and determinism
----------------------------
Every parallel loop gives each work item exclusive ownership of the output
elements it writes: forward over (n, output-channel block) planes,
backward-input and col2im over (n, c) planes (all scatter-adds into one plane
happen in one thread, in a fixed order), backward-weight over (image chunk,
channel block) pairs whose partial sums are then added in batch order,
max-pool backward over (n, c) planes.  The GEMM path accumulates weight
gradients chunk by chunk in batch order.  So results do not depend on thread
timing: two runs are bit-identical (tested).

Accumulation happens in the input dtype (float32 or float64), like PyTorch.

Threading
---------
Two thread pools share the two cores: Numba's OpenMP workers (the kernels
here) and OpenBLAS's (every ``np.dot``).  Each kind of worker spins for a
while after its work ends, waiting for more, and a spinning worker steals
the core that the other pool's next call needs: a 0.3 ms GEMM took 8 ms.

* OpenBLAS's workers spin longest (about 0.1 s), and an FC layer's GEMM runs
  in every step, so they fought every Numba kernel of a LeNet step.
  :func:`matmul` therefore runs products below ``_BLAS_ONE_THREAD_WORK``
  multiply-adds on one BLAS thread, switched per call through threadpoolctl
  (~2 us): there are then no BLAS workers to spin.
* OpenMP's workers sleep after ``GOMP_SPINCOUNT`` spins (set below, unless
  the user chose ``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY``).  Waking a
  sleeping worker costs ~0.1 ms here, and a LeNet step makes about 17
  parallel calls; spinning forever (``OMP_WAIT_POLICY=ACTIVE``) would starve
  any other work.  Measured, LeNet-5 training step with one-thread BLAS
  (ms per step, min of 3 runs; batch 1 / 64 / 256): sleeping at once
  (``OMP_WAIT_POLICY=PASSIVE``) 4.3 / 8.3 / 22.4; ``GOMP_SPINCOUNT=20000``
  1.9-3.1 / 5.5-6.0 / 19.3-19.4; 10000 and 50000 within the noise of 20000.
  Before the BLAS change: 4.9 / 10.9 / 30.3 with PASSIVE.

The variables must be in the environment before the OpenMP runtime starts,
i.e. before the first parallel Numba call in the process - and before
``import torch``, whose libgomp has the same soname and is then the one Numba
uses.
"""
from __future__ import annotations

import itertools
import os
import threading

if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "20000")

import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from . import numba_cache, shapes  # noqa: E402

__all__ = [
    "conv2d_forward",
    "conv2d_backward_input",
    "conv2d_backward_weight",
    "conv2d_backward",
    "conv_transpose2d_forward",
    "conv_transpose2d_backward_input",
    "conv_transpose2d_backward_weight",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "matmul",
    "matmul_blocked",
]

# One set of options for every parallel kernel.  fastmath stays off: results
# must be reproducible and comparable to the reference to ~1e-10 in float64.
# error_model="numpy": a division by zero gives inf/NaN as in NumPy instead of
# raising, so no zero-divisor branch keeps a loop from being vectorised (the
# arguments are validated before any kernel runs).
# cache: compiled kernels are kept on disk where a writable folder exists (see numba_cache).
_CACHE = numba_cache.enabled()
_PAR = dict(parallel=True, cache=_CACHE, fastmath=False, nogil=True, error_model="numpy")
_SEQ = dict(cache=_CACHE, fastmath=False, nogil=True, error_model="numpy")
# The register-blocked convolution kernels allow two rewrites, and only these:
# "contract" fuses a*b + c into one FMA instruction (one rounding instead of
# two: a different, not a worse, result; PyTorch's kernels do the same), and
# "reassoc" (backward-weight only) lets LLVM split each dot product over the
# 16 lanes of a vector register.  No "nnan"/"ninf": NaN and inf propagate as
# in the reference.  The order of operations is fixed by the code and the
# fixed work split, so repeated runs stay bit-identical.
_PAR_FMA = dict(_PAR, fastmath={"contract"})
_SEQ_DOT = dict(_SEQ, fastmath={"contract", "reassoc"})
_SEQ_FMA = dict(_SEQ, fastmath={"contract"})

# Vector width (float32 lanes of an AVX-512 register) that the flat stride-1
# loops are rounded up to, so no loop ends in a scalar remainder.
_LANES = 16

# Test hook: None = heuristic, "direct" or "gemm" forces a convolution path.
_FORCE_STRATEGY: str | None = None

# Upper bound on the im2col buffer, in elements (1 Mi = 4 MiB in float32).
# LeNet's layers fit in one chunk; the 64-channel 32x32 layer is cut into
# chunks of ~2 images so that the column block the GEMM streams through stays
# cache-resident (measured on that layer: 1 Mi elements was the best of
# 0.5/1/2/4/8/16 Mi, by 10-40 %, though this box's timing noise is of that order).
_COL_BUDGET = 1 << 20


# ==========================================================================
# Numba kernels.  Arrays arrive C-contiguous and all of one float dtype.
# ==========================================================================

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


@njit(**_PAR_FMA)
def _conv_fwd_unit(xf, CR, RWp, Wp, w, b, y, dh, dw, groups):
    """Stride-1 convolution: y[n, o] = b[o] + sum_{c,p,q} w[o,c,p,q] * xp[n, c, p*d:, q*d:].

    xf is the zero-padded input, flat: image n, channel c starts at
    n*CR + c*RWp and its rows are Wp wide.  The output is computed on that
    Wp-wide grid, so tap k is a constant offset offs[k] and one output plane
    is a long unit-stride loop ``acc[j] += w * xf[offs[k] + j]``.

    Register blocking: a work item computes 4 output channels of one image
    and applies 4 taps per pass, so each loaded input vector feeds 4 FMAs
    and each accumulator load/store is shared by 4 taps (16 FMAs per 8
    loads and 4 stores; a one-channel, one-tap loop does 1 FMA per 2 loads
    and a store).  A last block of 1 or 2 channels takes a 2-wide pass
    (:func:`_correlate_pair`) instead of computing copies.  The passes are
    sequential functions of their own: inside the parallel loop the same
    code compiled ~15 % slower.  The loop length is rounded up to whole vectors (the extra
    columns are junk that the crop drops) wherever the read stays inside xf.
    """
    N, O, OH, OW = y.shape
    Cg, KH, KW = w.shape[1], w.shape[2], w.shape[3]
    T = Cg * KH * KW
    Og = O // groups
    L = (OH - 1) * Wp + OW
    Lv = _whole_vectors(L)
    offs = _tap_offsets(Cg, RWp, Wp, KH, KW, dh, dw, False)
    wt = w.reshape(O, T)
    NOB = (Og + 3) // 4
    for t in prange(N * groups * NOB):
        n = t // (groups * NOB)
        r = t - n * (groups * NOB)
        g = r // NOB
        o0 = g * Og + (r - g * NOB) * 4
        last = g * Og + Og - 1
        i0, i1, i2, i3 = o0, min(o0 + 1, last), min(o0 + 2, last), min(o0 + 3, last)
        base = n * CR + g * Cg * RWp
        Lr = Lv if base + offs[T - 1] + Lv <= xf.shape[0] else L
        xs = xf[base:]
        acc = np.empty((4, Lv), dtype=y.dtype)
        a0, a1, a2, a3 = acc[0], acc[1], acc[2], acc[3]
        a0[:] = b[i0]
        a1[:] = b[i1]
        a2[:] = b[i2]
        a3[:] = b[i3]
        if o0 + 2 > last:
            # a tail of 1 or 2 channels (LeNet's 6 = 4 + 2): a 4-wide pass would spend
            # half its FMAs on copies of the last channel
            _correlate_pair(xs, offs, T, Lr, wt, i0, i1, a0, a1)
        else:
            _correlate_quad(xs, offs, T, Lr, wt, i0, i1, i2, i3, a0, a1, a2, a3)
        for i in range(min(4, last + 1 - o0)):
            _crop_plane(acc[i], Wp, OH, 0, 0, y[n, o0 + i])


@njit(**_PAR_FMA)
def _conv_bwd_input_unit(gyf, G, L, w, gx, R, Wp, pt, pl, dh, dw, groups):
    """Stride 1: gx[n, c] = crop( sum_{o,p,q} w[o,c,p,q] * gy[n, o] placed at tap (p, q) ).

    The scatter form, on the padded Wp-wide grid: with gyf holding gy planes
    flat with rows Wp wide (zero in the gap columns and past row OH, plane
    stride G), tap k adds ``w[o, c, k] * gy[n, o, j]`` to ``acc_c[offs[k] + j]``
    for j < L, one long unit-stride loop.  (The gather form - the forward
    kernel on gy padded by d*(k-1) - p - also multiplies all that padding;
    for LeNet's second layer it does 3.4x the necessary work.)

    Register blocking as in :func:`_conv_fwd_unit`: a work item owns 4 input
    channels of one image (one plane each, so no two items write the same
    element), and each pass applies 4 output channels' gy to all 4, so every
    loaded gy vector feeds 4 FMAs (:func:`_scatter_quad`); a last block of 1
    or 2 channels takes the 2-wide :func:`_scatter_pair`.  The last Og % 4
    output channels go one at a time.
    """
    N, C, H, W = gx.shape
    O, Cg, KH, KW = w.shape
    Og = O // groups
    Lv = _whole_vectors(L)
    offs = _tap_offsets(1, 0, Wp, KH, KW, dh, dw, False)
    NCB = (Cg + 3) // 4
    for t in prange(N * groups * NCB):
        n = t // (groups * NCB)
        r = t - n * (groups * NCB)
        g = r // NCB
        c0 = (r - g * NCB) * 4  # within the group
        i0, i1, i2, i3 = c0, min(c0 + 1, Cg - 1), min(c0 + 2, Cg - 1), min(c0 + 3, Cg - 1)
        acc = np.zeros((4, R * Wp + Lv), dtype=gx.dtype)
        a0, a1, a2, a3 = acc[0], acc[1], acc[2], acc[3]
        gb = (n * O + g * Og) * G
        if c0 + 2 >= Cg:
            # a tail of 1 or 2 channels (LeNet's 6 = 4 + 2): a 4-wide pass would spend
            # half its FMAs on copies of the last channel
            _scatter_pair(gyf, gb, G, Lv, w, g * Og, Og, i0, i1, KW, offs, a0, a1)
        else:
            _scatter_quad(gyf, gb, G, Lv, w, g * Og, Og, i0, i1, i2, i3, KW, offs, a0, a1, a2, a3)
        for i in range(min(4, Cg - c0)):
            _crop_plane(acc[i], Wp, R, pt, pl, gx[n, g * Cg + c0 + i])


@njit(**_SEQ_FMA)
def _correlate_quad(xs, offs, T, Lr, wt, i0, i1, i2, i3, a0, a1, a2, a3):
    """One pass of :func:`_conv_fwd_unit`: a0..a3 += the correlation for output channels i0..i3.

    4 taps at a time: each loaded input vector feeds 4 FMAs and each
    accumulator load/store is shared by 4 taps.
    """
    T4 = T - T % 4
    for k in range(0, T4, 4):
        s0 = xs[offs[k]:offs[k] + Lr]
        s1 = xs[offs[k + 1]:offs[k + 1] + Lr]
        s2 = xs[offs[k + 2]:offs[k + 2] + Lr]
        s3 = xs[offs[k + 3]:offs[k + 3] + Lr]
        u0, u1, u2, u3 = wt[i0, k], wt[i0, k + 1], wt[i0, k + 2], wt[i0, k + 3]
        v0, v1, v2, v3 = wt[i1, k], wt[i1, k + 1], wt[i1, k + 2], wt[i1, k + 3]
        x0, x1, x2, x3 = wt[i2, k], wt[i2, k + 1], wt[i2, k + 2], wt[i2, k + 3]
        z0, z1, z2, z3 = wt[i3, k], wt[i3, k + 1], wt[i3, k + 2], wt[i3, k + 3]
        for j in range(Lr):
            e0 = s0[j]
            e1 = s1[j]
            e2 = s2[j]
            e3 = s3[j]
            a0[j] = a0[j] + u0 * e0 + u1 * e1 + u2 * e2 + u3 * e3
            a1[j] = a1[j] + v0 * e0 + v1 * e1 + v2 * e2 + v3 * e3
            a2[j] = a2[j] + x0 * e0 + x1 * e1 + x2 * e2 + x3 * e3
            a3[j] = a3[j] + z0 * e0 + z1 * e1 + z2 * e2 + z3 * e3
    for k in range(T4, T):  # the last T % 4 taps, one at a time
        s0 = xs[offs[k]:offs[k] + Lr]
        u0, v0, x0, z0 = wt[i0, k], wt[i1, k], wt[i2, k], wt[i3, k]
        for j in range(Lr):
            e0 = s0[j]
            a0[j] = a0[j] + u0 * e0
            a1[j] = a1[j] + v0 * e0
            a2[j] = a2[j] + x0 * e0
            a3[j] = a3[j] + z0 * e0


@njit(**_SEQ_FMA)
def _correlate_pair(xs, offs, T, Lr, wt, i0, i1, a0, a1):
    """The 2-channel form of :func:`_conv_fwd_unit`'s pass: a0, a1 += the correlation for channels i0, i1.

    Same expressions, so the same roundings, as the 4-channel pass; each
    loaded input vector feeds 2 FMAs instead of 4.
    """
    T4 = T - T % 4
    for k in range(0, T4, 4):
        s0 = xs[offs[k]:offs[k] + Lr]
        s1 = xs[offs[k + 1]:offs[k + 1] + Lr]
        s2 = xs[offs[k + 2]:offs[k + 2] + Lr]
        s3 = xs[offs[k + 3]:offs[k + 3] + Lr]
        u0, u1, u2, u3 = wt[i0, k], wt[i0, k + 1], wt[i0, k + 2], wt[i0, k + 3]
        v0, v1, v2, v3 = wt[i1, k], wt[i1, k + 1], wt[i1, k + 2], wt[i1, k + 3]
        for j in range(Lr):
            e0 = s0[j]
            e1 = s1[j]
            e2 = s2[j]
            e3 = s3[j]
            a0[j] = a0[j] + u0 * e0 + u1 * e1 + u2 * e2 + u3 * e3
            a1[j] = a1[j] + v0 * e0 + v1 * e1 + v2 * e2 + v3 * e3
    for k in range(T4, T):
        s0 = xs[offs[k]:offs[k] + Lr]
        u0, v0 = wt[i0, k], wt[i1, k]
        for j in range(Lr):
            e0 = s0[j]
            a0[j] = a0[j] + u0 * e0
            a1[j] = a1[j] + v0 * e0


@njit(**_SEQ_FMA)
def _scatter_quad(gyf, gb, G, Lv, w, o_start, Og, i0, i1, i2, i3, KW, offs, a0, a1, a2, a3):
    """One pass of :func:`_conv_bwd_input_unit`: a0..a3 += the scatter for input channels i0..i3.

    4 output channels' gy at a time: each loaded gy vector feeds 4 FMAs; the
    last Og % 4 output channels go one at a time.
    """
    O4 = Og - Og % 4
    for k in range(offs.shape[0]):
        p = k // KW
        q = k - p * KW
        d0 = a0[offs[k]:offs[k] + Lv]
        d1 = a1[offs[k]:offs[k] + Lv]
        d2 = a2[offs[k]:offs[k] + Lv]
        d3 = a3[offs[k]:offs[k] + Lv]
        for ob in range(0, O4, 4):
            o = o_start + ob
            g0 = gyf[gb + ob * G:gb + ob * G + Lv]
            g1 = gyf[gb + (ob + 1) * G:gb + (ob + 1) * G + Lv]
            g2 = gyf[gb + (ob + 2) * G:gb + (ob + 2) * G + Lv]
            g3 = gyf[gb + (ob + 3) * G:gb + (ob + 3) * G + Lv]
            u0, u1, u2, u3 = w[o, i0, p, q], w[o + 1, i0, p, q], w[o + 2, i0, p, q], w[o + 3, i0, p, q]
            v0, v1, v2, v3 = w[o, i1, p, q], w[o + 1, i1, p, q], w[o + 2, i1, p, q], w[o + 3, i1, p, q]
            x0, x1, x2, x3 = w[o, i2, p, q], w[o + 1, i2, p, q], w[o + 2, i2, p, q], w[o + 3, i2, p, q]
            z0, z1, z2, z3 = w[o, i3, p, q], w[o + 1, i3, p, q], w[o + 2, i3, p, q], w[o + 3, i3, p, q]
            for j in range(Lv):
                e0 = g0[j]
                e1 = g1[j]
                e2 = g2[j]
                e3 = g3[j]
                d0[j] = d0[j] + u0 * e0 + u1 * e1 + u2 * e2 + u3 * e3
                d1[j] = d1[j] + v0 * e0 + v1 * e1 + v2 * e2 + v3 * e3
                d2[j] = d2[j] + x0 * e0 + x1 * e1 + x2 * e2 + x3 * e3
                d3[j] = d3[j] + z0 * e0 + z1 * e1 + z2 * e2 + z3 * e3
        for ob in range(O4, Og):
            o = o_start + ob
            g0 = gyf[gb + ob * G:gb + ob * G + Lv]
            u0, v0, x0, z0 = w[o, i0, p, q], w[o, i1, p, q], w[o, i2, p, q], w[o, i3, p, q]
            for j in range(Lv):
                e0 = g0[j]
                d0[j] = d0[j] + u0 * e0
                d1[j] = d1[j] + v0 * e0
                d2[j] = d2[j] + x0 * e0
                d3[j] = d3[j] + z0 * e0


@njit(**_SEQ_FMA)
def _scatter_pair(gyf, gb, G, Lv, w, o_start, Og, ca, cb, KW, offs, a0, a1):
    """The 2-channel form of :func:`_conv_bwd_input_unit`'s pass: a0, a1 += the scatter for channels ca, cb.

    Same expressions, so the same roundings, as the 4-channel pass; each
    loaded gy vector feeds 2 FMAs instead of 4.
    """
    O4 = Og - Og % 4
    for k in range(offs.shape[0]):
        p = k // KW
        q = k - p * KW
        d0 = a0[offs[k]:offs[k] + Lv]
        d1 = a1[offs[k]:offs[k] + Lv]
        for ob in range(0, O4, 4):
            o = o_start + ob
            g0 = gyf[gb + ob * G:gb + ob * G + Lv]
            g1 = gyf[gb + (ob + 1) * G:gb + (ob + 1) * G + Lv]
            g2 = gyf[gb + (ob + 2) * G:gb + (ob + 2) * G + Lv]
            g3 = gyf[gb + (ob + 3) * G:gb + (ob + 3) * G + Lv]
            u0, u1, u2, u3 = w[o, ca, p, q], w[o + 1, ca, p, q], w[o + 2, ca, p, q], w[o + 3, ca, p, q]
            v0, v1, v2, v3 = w[o, cb, p, q], w[o + 1, cb, p, q], w[o + 2, cb, p, q], w[o + 3, cb, p, q]
            for j in range(Lv):
                e0 = g0[j]
                e1 = g1[j]
                e2 = g2[j]
                e3 = g3[j]
                d0[j] = d0[j] + u0 * e0 + u1 * e1 + u2 * e2 + u3 * e3
                d1[j] = d1[j] + v0 * e0 + v1 * e1 + v2 * e2 + v3 * e3
        for ob in range(O4, Og):
            o = o_start + ob
            g0 = gyf[gb + ob * G:gb + ob * G + Lv]
            u0, v0 = w[o, ca, p, q], w[o, cb, p, q]
            for j in range(Lv):
                e0 = g0[j]
                d0[j] = d0[j] + u0 * e0
                d1[j] = d1[j] + v0 * e0


@njit(**_PAR)
def _conv_fwd_strided(xp, Wp, w, b, y, sh, sw, dh, dw, groups):
    """Strided convolution, one (n, o) output plane per work item, row by row.

    xp is (N, C, R*Wp): zero-padded planes, rows Wp wide; tap (c, p, q)
    starts at c*R*Wp + p*d*Wp + q*d.
    """
    N, O, OH, OW = y.shape
    C = xp.shape[1]
    RWp = xp.shape[2]
    Cg, KH, KW = w.shape[1], w.shape[2], w.shape[3]
    T = Cg * KH * KW
    Og = O // groups
    offs = _tap_offsets(Cg, RWp, Wp, KH, KW, dh, dw, False)
    for t in prange(N * O):
        n = t // O
        o = t - n * O
        xs = xp[n].reshape(C * RWp)[(o // Og) * Cg * RWp:]
        wo = w[o].reshape(T)
        acc = np.empty(OH * OW, dtype=y.dtype)
        acc[:] = b[o]
        for k in range(T):
            wv = wo[k]
            for i in range(OH):
                src = xs[offs[k] + i * sh * Wp:]
                row = acc[i * OW:(i + 1) * OW]
                for v in range(OW):
                    row[v] += wv * src[v * sw]
        _crop_plane(acc, OW, OH, 0, 0, y[n, o])


@njit(**_PAR)
def _conv_bwd_input_direct(gys, gs, w, gx, R, Wp, pt, pl, OH, OW, sh, sw, dh, dw, groups):
    """Strided convolutions: gx[n, c] = crop( sum_o sum_{p,q} w[o,c,p,q] * gy[n, o] scattered to tap (p, q) ).

    (Stride 1 uses the register-blocked :func:`_conv_bwd_input_unit` instead.)
    One work item per (n, c) plane, so the scatter-adds never race.  gys holds
    gy planes flat with row stride gs.
    """
    N, C, H, W = gx.shape
    O, Cg, KH, KW = w.shape
    Og = O // groups
    for t in prange(N * C):
        n = t // C
        c = t - n * C
        g = c // Cg
        cl = c - g * Cg
        acc = np.zeros(R * Wp, dtype=gx.dtype)
        for o in range(g * Og, (g + 1) * Og):
            gplane = gys[n, o]
            for p in range(KH):
                for q in range(KW):
                    wv = w[o, cl, p, q]
                    off = p * dh * Wp + q * dw
                    for i in range(OH):
                        dst = acc[off + i * sh * Wp:]
                        src = gplane[i * gs:i * gs + OW]
                        for v in range(OW):
                            dst[v * sw] += wv * src[v]
        _crop_plane(acc, Wp, R, pt, pl, gx[n, c])


@njit(**_PAR)
def _conv_bwd_weight_unit(xf, CR, RWp, Wp, gyf, G, L, part, KH, KW, dh, dw, groups, NB):
    """Stride 1: part[ch, o, (c,p,q)] = sum_{n in chunk ch} sum_j gy[n, o].flat[j] * xf[n*CR + offs(c,p,q) + j].

    gyf holds gy planes flat with rows Wp wide (zero in the gap columns, so
    the junk positions of the Wp-wide grid contribute nothing), plane
    stride G >= the loop length rounded up to whole vectors.  xf is the
    padded input as in :func:`_conv_fwd_unit`.

    A work item owns one chunk of NB images and a block of 4 output channels
    of one group; it walks the taps 4 at a time, and :func:`_dot_block_4x4`
    keeps the 16 dot products of each 4 x 4 block in registers ("reassoc"
    lets each one be split over the lanes of a vector), so each loaded
    vector of gy or x feeds 4 FMAs (a last block of 1 or 2 channels uses
    the 2 x 4 :func:`_dot_block_2x4`).
    The chunks are summed afterwards in order, so the result does not depend
    on how work items are scheduled.
    """
    NCH, O, T = part.shape
    Cg = T // (KH * KW)
    Og = O // groups
    N = gyf.shape[0] // (O * G)
    Lv = _whole_vectors(L)
    offs = _tap_offsets(Cg, RWp, Wp, KH, KW, dh, dw, True)
    T4 = offs.shape[0]
    NOB = (Og + 3) // 4
    for t in prange(NCH * groups * NOB):
        ch = t // (groups * NOB)
        r = t - ch * (groups * NOB)
        g = r // NOB
        o0 = g * Og + (r - g * NOB) * 4
        last = g * Og + Og - 1
        nv = min(4, last + 1 - o0)
        blk = np.empty((4, 4), dtype=part.dtype)
        for k in range(0, T4, 4):
            if nv <= 2:  # a tail of 1 or 2 channels (LeNet's 6 = 4 + 2): half the dot products
                _dot_block_2x4(xf, gyf, offs[k:k + 4], ch * NB, min(N, (ch + 1) * NB), CR, g * Cg * RWp,
                               offs[T4 - 1], O, G, L, Lv, o0, last, blk)
            else:
                _dot_block_4x4(xf, gyf, offs[k:k + 4], ch * NB, min(N, (ch + 1) * NB), CR, g * Cg * RWp,
                               offs[T4 - 1], O, G, L, Lv, o0, last, blk)
            for i in range(nv):
                for c in range(min(4, T - k)):
                    part[ch, o0 + i, k + c] = blk[i, c]


@njit(**_SEQ_DOT)
def _dot_block_4x4(xf, gyf, offs4, n0, n1, CR, xoff, off_max, O, G, L, Lv, o0, last, blk):
    """blk[i, c] = sum_{n0 <= n < n1} sum_j gy[n, o0 + i].flat[j] * xf[n*CR + xoff + offs4[c] + j].

    The micro-kernel of :func:`_conv_bwd_weight_unit`: the 16 dot products
    of a 4 x 4 block live in registers.  Channels past ``last`` repeat it.
    A sequential function of its own, so Numba's parallel-loop passes never
    see (and never rewrite) the register accumulators.
    """
    i0, i1, i2, i3 = o0, min(o0 + 1, last), min(o0 + 2, last), min(o0 + 3, last)
    zero = np.zeros(1, dtype=blk.dtype)[0]
    a00 = a01 = a02 = a03 = zero
    a10 = a11 = a12 = a13 = zero
    a20 = a21 = a22 = a23 = zero
    a30 = a31 = a32 = a33 = zero
    for n in range(n0, n1):
        xb = n * CR + xoff
        # whole vectors wherever the longest tap's read stays inside xf
        Lr = Lv if xb + off_max + Lv <= xf.shape[0] else L
        gb = n * O * G
        g0 = gyf[gb + i0 * G:gb + i0 * G + Lr]
        g1 = gyf[gb + i1 * G:gb + i1 * G + Lr]
        g2 = gyf[gb + i2 * G:gb + i2 * G + Lr]
        g3 = gyf[gb + i3 * G:gb + i3 * G + Lr]
        s0 = xf[xb + offs4[0]:xb + offs4[0] + Lr]
        s1 = xf[xb + offs4[1]:xb + offs4[1] + Lr]
        s2 = xf[xb + offs4[2]:xb + offs4[2] + Lr]
        s3 = xf[xb + offs4[3]:xb + offs4[3] + Lr]
        for j in range(Lr):
            e0 = s0[j]
            e1 = s1[j]
            e2 = s2[j]
            e3 = s3[j]
            h = g0[j]
            a00 += h * e0
            a01 += h * e1
            a02 += h * e2
            a03 += h * e3
            h = g1[j]
            a10 += h * e0
            a11 += h * e1
            a12 += h * e2
            a13 += h * e3
            h = g2[j]
            a20 += h * e0
            a21 += h * e1
            a22 += h * e2
            a23 += h * e3
            h = g3[j]
            a30 += h * e0
            a31 += h * e1
            a32 += h * e2
            a33 += h * e3
    blk[0, 0], blk[0, 1], blk[0, 2], blk[0, 3] = a00, a01, a02, a03
    blk[1, 0], blk[1, 1], blk[1, 2], blk[1, 3] = a10, a11, a12, a13
    blk[2, 0], blk[2, 1], blk[2, 2], blk[2, 3] = a20, a21, a22, a23
    blk[3, 0], blk[3, 1], blk[3, 2], blk[3, 3] = a30, a31, a32, a33


@njit(**_SEQ_DOT)
def _dot_block_2x4(xf, gyf, offs4, n0, n1, CR, xoff, off_max, O, G, L, Lv, o0, last, blk):
    """:func:`_dot_block_4x4` for the rows o0 and min(o0 + 1, last) only (blk rows 0 and 1)."""
    i0, i1 = o0, min(o0 + 1, last)
    zero = np.zeros(1, dtype=blk.dtype)[0]
    a00 = a01 = a02 = a03 = zero
    a10 = a11 = a12 = a13 = zero
    for n in range(n0, n1):
        xb = n * CR + xoff
        Lr = Lv if xb + off_max + Lv <= xf.shape[0] else L
        gb = n * O * G
        g0 = gyf[gb + i0 * G:gb + i0 * G + Lr]
        g1 = gyf[gb + i1 * G:gb + i1 * G + Lr]
        s0 = xf[xb + offs4[0]:xb + offs4[0] + Lr]
        s1 = xf[xb + offs4[1]:xb + offs4[1] + Lr]
        s2 = xf[xb + offs4[2]:xb + offs4[2] + Lr]
        s3 = xf[xb + offs4[3]:xb + offs4[3] + Lr]
        for j in range(Lr):
            e0 = s0[j]
            e1 = s1[j]
            e2 = s2[j]
            e3 = s3[j]
            h = g0[j]
            a00 += h * e0
            a01 += h * e1
            a02 += h * e2
            a03 += h * e3
            h = g1[j]
            a10 += h * e0
            a11 += h * e1
            a12 += h * e2
            a13 += h * e3
    blk[0, 0], blk[0, 1], blk[0, 2], blk[0, 3] = a00, a01, a02, a03
    blk[1, 0], blk[1, 1], blk[1, 2], blk[1, 3] = a10, a11, a12, a13


@njit(**_PAR)
def _conv_bwd_weight_strided(xp, Wp, gys, gw, OH, OW, sh, sw, dh, dw, groups):
    """Strided convolutions: gw[o, c, p, q] = sum_n sum_{i,j} gy[n, o, i, j] * xp[n, c, i*s + p*d, j*s + q*d].

    One work item per (o, c) pair owns gw[o, c, :, :].  The sum over output
    positions is first done elementwise into a row buffer (vectorises without
    reassociating anything), then the buffer is summed in index order.
    """
    N = xp.shape[0]
    O, Cg, KH, KW = gw.shape
    T = KH * KW
    Og = O // groups
    for t in prange(O * Cg):
        o = t // Cg
        cl = t - o * Cg
        c = (o // Og) * Cg + cl
        tmp1 = np.empty(OW, dtype=gw.dtype)
        for k in range(T):
            off = (k // KW) * dh * Wp + (k % KW) * dw
            tmp1[:] = 0
            for n in range(N):
                gplane = gys[n, o]
                xplane = xp[n, c]
                for i in range(OH):
                    a = gplane[i * OW:(i + 1) * OW]
                    bb = xplane[off + i * sh * Wp:]
                    for v in range(OW):
                        tmp1[v] += a[v] * bb[v * sw]
            sk = np.zeros(1, dtype=gw.dtype)[0]
            for v in range(OW):
                sk += tmp1[v]
            gw[o, cl, k // KW, k % KW] = sk


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
def _max_pool_fwd_inside(x, y, idx, KH, KW, sh, sw):
    """_max_pool_fwd for the common case: no padding, no dilation, every window inside x.

    Same rules (first max wins, NaN wins and the last NaN's index is kept),
    without the per-window clipping.  The 2 x 2 window (LeNet's, VGG's) is
    written out tap by tap, with the stride 2 as a literal: with no inner
    loops and a known stride the compiler vectorises the row (2x faster).
    Positions are indexed as unsigned integers (``_U``): a signed computed
    index makes Numba handle negative indices (wrap around) on every load and
    store, which here cost more than the maxima themselves (2x).
    """
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    xf = x.reshape(N * C * H * W)
    yf = y.reshape(N * C * OH * OW)
    idf = idx.reshape(N * C * OH * OW)
    two = KH == 2 and KW == 2 and sh == 2 and sw == 2
    for t in prange(N * C):
        xb = t * H * W
        for i in range(OH):
            r0 = i * sh * W
            o = (t * OH + i) * OW
            if two:
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
            else:
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


@njit(**_PAR)
def _matmul_blocked(a, b, c, MB, NB, KB):
    """c = a @ b, tiled: each work item owns one (MB x NB) tile of c.

    Within a tile, k is walked in KB-sized panels so the panel of b
    (KB x NB) stays in L1/L2 while every row of the a-panel is applied to it;
    the innermost loop is an axpy over a row of the tile (unit stride,
    vectorised).  No two tiles share output elements, so there are no races,
    and each c[i, j] is summed over k in order, so the result is
    deterministic.
    """
    M, K = a.shape
    N = b.shape[1]
    nti = (M + MB - 1) // MB
    ntj = (N + NB - 1) // NB
    for t in prange(nti * ntj):
        ti = t // ntj
        tj = t - ti * ntj
        i0 = ti * MB
        i1 = min(M, i0 + MB)
        j0 = tj * NB
        j1 = min(N, j0 + NB)
        for i in range(i0, i1):
            c[i, j0:j1] = 0
        for k0 in range(0, K, KB):
            k1 = min(K, k0 + KB)
            for i in range(i0, i1):
                crow = c[i, j0:j1]
                for k in range(k0, k1):
                    aik = a[i, k]
                    brow = b[k, j0:j1]
                    for j in range(j1 - j0):
                        crow[j] += aik * brow[j]


# ==========================================================================
# Python-level orchestration
# ==========================================================================

_FLOATS = (np.float32, np.float64)


def _float_c(a, name: str, dtype=None) -> np.ndarray:
    """C-contiguous float32/float64 array (kernels index raw memory)."""
    a = np.asarray(a)
    if dtype is None:
        if a.dtype.type not in _FLOATS:
            raise TypeError(f"{name} must be float32 or float64, got {a.dtype}")
        dtype = a.dtype
    return np.ascontiguousarray(a, dtype=dtype)


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


def _use_gemm(kind, N, O, Cg, KH, KW, groups, P, unit) -> bool:
    """Pick the convolution path for one pass (see the module docstring for the numbers).

    kind is "forward" / "input" / "weight"; unit means stride 1, where the
    register-blocked direct kernels beat im2col+GEMM at every measured size.
    For strided convolutions im2col+GEMM needs a long reduction per group
    (K = C/g*KH*KW) for BLAS to beat the direct loops, few groups (one GEMM
    each), and - forward and backward-input - enough total work to amortise
    the hand-over between the Numba and the BLAS thread pools (about 0.5 ms
    per switch on two cores).  The strided backward-weight kernel is a plain
    reduction per (o, c) pair and loses to BLAS whenever K is long.
    """
    if _FORCE_STRATEGY is not None:
        return _FORCE_STRATEGY == "gemm"
    K = Cg * KH * KW
    if unit or groups > 4 or K < _GEMM_MIN_K:
        return False
    return kind == "weight" or N * O * P * K >= _GEMM_MIN_WORK


# Thresholds of _use_gemm (measured on the bench shapes; see module docstring).
_GEMM_MIN_K = 64
_GEMM_MIN_WORK = 1 << 27

# Images per work item of the stride-1 backward-weight kernel: a fixed number
# (not "batch / threads"), so the partial sums - and the result - are the same
# on any machine.  16 LeNet images of both layers fit in L2; longer chunks
# also mean fewer horizontal sums of the vector accumulators (LeNet's second
# layer: 8% faster than chunks of 8 at batch 64).
_WEIGHT_CHUNK = 16


def _chunk(N, rows, P):
    """Images per im2col chunk so that the column buffer stays within budget."""
    return max(1, min(N, _COL_BUDGET // max(1, rows * P)))


def _conv_fwd(x, w, b, stride, pad4, dilation, groups, OH, OW):
    N, C, H, W = x.shape
    O, Cg, KH, KW = w.shape
    sh, sw = stride
    dh, dw = dilation
    xp, Wp, R = _padded_input(x, pad4, KH, OH, sh, dh)
    y = np.empty((N, O, OH, OW), dtype=x.dtype)
    if b is None:
        b = np.zeros(O, dtype=x.dtype)
    unit = sh == 1 and sw == 1
    if not _use_gemm("forward", N, O, Cg, KH, KW, groups, OH * OW, unit):
        if unit:
            _conv_fwd_unit(xp.reshape(-1), C * xp.shape[2], xp.shape[2], Wp, w, b, y, dh, dw, groups)
        else:
            _conv_fwd_strided(xp, Wp, w, b, y, sh, sw, dh, dw, groups)
        return y
    P = OH * OW
    K = Cg * KH * KW
    Og = O // groups
    w2 = w.reshape(O, K)
    nb = _chunk(N, C * KH * KW, P)
    for n0 in range(0, N, nb):
        m = min(nb, N - n0)
        col = np.empty((C * KH * KW, m * P), dtype=x.dtype)
        ym = np.empty((O, m * P), dtype=x.dtype)
        _im2col(xp, Wp, col, n0, KH, KW, OH, OW, sh, sw, dh, dw)
        for g in range(groups):
            np.dot(w2[g * Og:(g + 1) * Og], col[g * K:(g + 1) * K], out=ym[g * Og:(g + 1) * Og])
        _onp_to_nchw(ym, b, y, n0)
    return y


def _conv_bwd_input(gy, w, x_shape, stride, pad4, dilation, groups, spread=None):
    """gx; ``spread`` = (gyf, G), gy already re-laid by _spread_planes for this Wp (stride 1)."""
    N, C, H, W = x_shape
    O, Cg, KH, KW = w.shape
    OH, OW = gy.shape[2], gy.shape[3]
    sh, sw = stride
    dh, dw = dilation
    pt, pb, pl, pr = pad4
    R = _rows_needed(OH, KH, sh, dh)
    Wp = W + pl + pr
    gx = np.empty((N, C, H, W), dtype=gy.dtype)
    unit = sh == 1 and sw == 1
    if not _use_gemm("input", N, O, Cg, KH, KW, groups, OH * OW, unit):
        if unit:
            L = (OH - 1) * Wp + OW
            gyf, G = spread if spread is not None else _spread_planes(gy, Wp, L)
            _conv_bwd_input_unit(gyf, G, L, w, gx, R, Wp, pt, pl, dh, dw, groups)
        else:
            gys = gy.reshape(N, O, OH * OW)
            _conv_bwd_input_direct(gys, OW, w, gx, R, Wp, pt, pl, OH, OW, sh, sw, dh, dw, groups)
        return gx
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
    return gx


def _conv_bwd_weight(x, gy, w_shape, stride, pad4, dilation, groups, spread=None):
    """gw; ``spread`` as in :func:`_conv_bwd_input`."""
    N, C, H, W = x.shape
    O, Cg, KH, KW = w_shape
    OH, OW = gy.shape[2], gy.shape[3]
    sh, sw = stride
    dh, dw = dilation
    xp, Wp, R = _padded_input(x, pad4, KH, OH, sh, dh)
    gw = np.empty((O, Cg, KH, KW), dtype=x.dtype)
    unit = sh == 1 and sw == 1
    if not _use_gemm("weight", N, O, Cg, KH, KW, groups, OH * OW, unit):
        if unit:
            L = (OH - 1) * Wp + OW
            gyf, G = spread if spread is not None else _spread_planes(gy, Wp, L)
            part = np.empty((-(-N // _WEIGHT_CHUNK), O, Cg * KH * KW), dtype=x.dtype)
            _conv_bwd_weight_unit(xp.reshape(-1), C * xp.shape[2], xp.shape[2], Wp, gyf, G, L, part,
                                  KH, KW, dh, dw, groups, _WEIGHT_CHUNK)
            np.add.reduce(part, axis=0, out=gw.reshape(O, -1))  # chunk partial sums, in batch order
        else:
            _conv_bwd_weight_strided(xp, Wp, gy.reshape(N, O, OH * OW), gw, OH, OW, sh, sw, dh, dw, groups)
        return gw
    P = OH * OW
    K = Cg * KH * KW
    Og = O // groups
    gw2 = gw.reshape(O, K)
    nb = _chunk(N, C * KH * KW, P)
    for n0 in range(0, N, nb):
        m = min(nb, N - n0)
        col = np.empty((C * KH * KW, m * P), dtype=x.dtype)
        gym = np.empty((O, m * P), dtype=x.dtype)
        _im2col(xp, Wp, col, n0, KH, KW, OH, OW, sh, sw, dh, dw)
        _nchw_to_onp(gy, gym, n0)
        for g in range(groups):
            part = np.dot(gym[g * Og:(g + 1) * Og], col[g * K:(g + 1) * K].T)
            if n0 == 0:
                gw2[g * Og:(g + 1) * Og] = part
            else:
                gw2[g * Og:(g + 1) * Og] += part  # chunks added in batch order
    return gw


# ==========================================================================
# Public API (mirrors reference.py)
# ==========================================================================

def conv2d_forward(x, w, b, stride, padding, dilation, groups):
    """2-D cross-correlation; see ``reference.conv2d_forward`` for the formula."""
    x = _float_c(x, "x")
    w = _float_c(w, "w", x.dtype)
    b = None if b is None else _float_c(b, "b", x.dtype)
    stride, pad4, dilation = shapes.conv_args(stride, padding, dilation)
    OH, OW = shapes.check_conv2d(x.shape, w.shape, None if b is None else b.shape, stride, pad4, dilation, groups)
    return _conv_fwd(x, w, b, stride, pad4, dilation, groups, OH, OW)


def conv2d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    """Gradient of conv2d w.r.t. its input (= conv_transpose2d's forward)."""
    gy = _float_c(gy, "gy")
    w = _float_c(w, "w", gy.dtype)
    stride, pad4, dilation = shapes.check_conv2d_grad(
        x_shape, w.shape, gy.shape, stride, padding, dilation, groups)
    return _conv_bwd_input(gy, w, tuple(x_shape), stride, pad4, dilation, groups)


def conv2d_backward_weight(x, gy, w_shape, stride, padding, dilation, groups):
    """Gradient of conv2d w.r.t. its weight."""
    x = _float_c(x, "x")
    gy = _float_c(gy, "gy", x.dtype)
    stride, pad4, dilation = shapes.check_conv2d_grad(
        x.shape, w_shape, gy.shape, stride, padding, dilation, groups)
    return _conv_bwd_weight(x, gy, tuple(w_shape), stride, pad4, dilation, groups)


def conv2d_backward(x, gy, w, stride, padding, dilation, groups, need_input=True, need_weight=True,
                    need_bias=True):
    """All gradients of conv2d in one call: (gx, gw, gb), None for those not asked for.

    The same numbers as ``conv2d_backward_input``, ``conv2d_backward_weight``
    and ``gy.sum((0, 2, 3))``, with less memory traffic: at stride 1 both
    direct kernels read gy re-laid on the padded grid, so it is re-laid once,
    and the bias gradient is summed in that same pass (in float64, per plane,
    then over the batch in order).
    """
    x = _float_c(x, "x")
    gy = _float_c(gy, "gy", x.dtype)
    w = _float_c(w, "w", x.dtype)
    stride, pad4, dilation = shapes.check_conv2d_grad(x.shape, w.shape, gy.shape, stride, padding, dilation, groups)
    N, C, H, W = x.shape
    O, Cg, KH, KW = w.shape
    OH, OW = gy.shape[2], gy.shape[3]
    unit = stride == (1, 1)
    passes = [kind for kind, need in (("input", need_input), ("weight", need_weight)) if need]
    spread = sums = None
    if unit and any(not _use_gemm(kind, N, O, Cg, KH, KW, groups, OH * OW, unit) for kind in passes):
        Wp = W + pad4[2] + pad4[3]
        sums = np.empty((N, O)) if need_bias else None
        spread = _spread_planes(gy, Wp, (OH - 1) * Wp + OW, sums)
    gx = _conv_bwd_input(gy, w, x.shape, stride, pad4, dilation, groups, spread) if need_input else None
    gw = _conv_bwd_weight(x, gy, w.shape, stride, pad4, dilation, groups, spread) if need_weight else None
    gb = None
    if need_bias:
        gb = (sums.sum(axis=0) if sums is not None else gy.sum(axis=(0, 2, 3), dtype=np.float64)).astype(x.dtype)
    return gx, gw, gb


def conv_transpose2d_forward(x, w, b, stride, padding, output_padding, groups, dilation):
    """Transposed convolution = conv2d_backward_input with x in the role of gy."""
    x = _float_c(x, "x")
    w = _float_c(w, "w", x.dtype)
    b = None if b is None else _float_c(b, "b", x.dtype)
    stride, pad4, dilation = shapes.conv_args(stride, padding, dilation)
    oh, ow = shapes.check_conv_transpose2d(
        x.shape, w.shape, None if b is None else b.shape, stride, pad4, output_padding, groups, dilation
    )
    y = _conv_bwd_input(x, w, (x.shape[0], w.shape[1] * groups, oh, ow), stride, pad4, dilation, groups)
    if b is not None:
        y += b[None, :, None, None]
    return y


def conv_transpose2d_backward_input(gy, w, stride, padding, dilation, groups, x_shape=None):
    """Gradient of conv_transpose2d w.r.t. x = conv2d_forward(gy, w), cropped to x_shape."""
    gy = _float_c(gy, "gy")
    w = _float_c(w, "w", gy.dtype)
    stride, pad4, dilation, (OH, OW) = shapes.check_conv_transpose2d_grad(
        gy.shape, w.shape, x_shape, stride, padding, dilation, groups)
    return _conv_fwd(gy, w, None, stride, pad4, dilation, groups, OH, OW)


def conv_transpose2d_backward_weight(x, gy, w_shape, stride, padding, dilation, groups):
    """Gradient of conv_transpose2d w.r.t. w = conv2d_backward_weight with (gy, x) as (input, grad)."""
    x = _float_c(x, "x")
    gy = _float_c(gy, "gy", x.dtype)
    stride, pad4, dilation, _ = shapes.check_conv_transpose2d_grad(
        gy.shape, w_shape, x.shape, stride, padding, dilation, groups)
    return _conv_bwd_weight(gy, x, tuple(w_shape), stride, pad4, dilation, groups)


def max_pool2d_forward(x, kernel_size, stride, padding, dilation, ceil_mode):
    """Max pooling with int64 flat indices (first max wins; NaN propagates, last NaN's index).

    A window that contains no input element (only possible with dilation)
    gives -inf and an index outside the plane, as in PyTorch; the backward
    pass ignores such indices.
    """
    x = _float_c(x, "x")
    (KH, KW), (sh, sw), (ph, pw), (dh, dw) = shapes.pool_args(kernel_size, stride, padding, dilation)
    OH, OW = shapes.check_pool2d(x.shape, (KH, KW), (sh, sw), (ph, pw), (dh, dw), ceil_mode, "max_pool2d")
    N, C = x.shape[:2]
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    idx = np.empty((N, C, OH, OW), dtype=np.int64)
    H, W = x.shape[2], x.shape[3]
    if ph == pw == 0 and dh == dw == 1 and (OH - 1) * sh + KH <= H and (OW - 1) * sw + KW <= W:
        _max_pool_fwd_inside(x, y, idx, KH, KW, sh, sw)
    else:
        _max_pool_fwd(x, y, idx, KH, KW, sh, sw, ph, pw, dh, dw)
    return y, idx


def max_pool2d_backward(gy, indices, x_shape):
    """Scatter-add gy to the argmax positions; race-free (one thread per (n, c) plane)."""
    gy = _float_c(gy, "gy")
    indices = np.ascontiguousarray(indices, dtype=np.int64)
    N, C, H, W = shapes.check_4d(x_shape, "x_shape")
    if indices.shape != gy.shape or gy.shape[:2] != (N, C):
        raise ValueError(f"gy {gy.shape} and indices {indices.shape} must have the same shape (N={N}, C={C}, OH, OW)")
    gx = np.empty((N, C, H, W), dtype=gy.dtype)
    _max_pool_bwd(gy, indices, gx)
    return gx


def _avg_args(kernel_size, stride, padding, divisor_override):
    k, s, p, _ = shapes.pool_args(kernel_size, stride, padding)
    if divisor_override is not None and divisor_override == 0:
        raise ValueError("divisor_override must be non-zero, got 0")
    return k, s, p, 0 if divisor_override is None else int(divisor_override)


def avg_pool2d_forward(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override=None):
    """Average pooling with PyTorch's divisor rule; see ``reference.avg_pool2d_forward``."""
    x = _float_c(x, "x")
    (KH, KW), (sh, sw), (ph, pw), div = _avg_args(kernel_size, stride, padding, divisor_override)
    OH, OW = shapes.check_pool2d(x.shape, (KH, KW), (sh, sw), (ph, pw), 1, ceil_mode, "avg_pool2d")
    y = np.empty(x.shape[:2] + (OH, OW), dtype=x.dtype)
    _avg_pool(x, y, y, x, KH, KW, sh, sw, ph, pw, bool(count_include_pad), div, False)
    return y


def avg_pool2d_backward(gy, x_shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override=None):
    """Adjoint of average pooling (each window's elements get gy / divisor)."""
    gy = _float_c(gy, "gy")
    (KH, KW), (sh, sw), (ph, pw), div = _avg_args(kernel_size, stride, padding, divisor_override)
    OH, OW = shapes.check_pool2d(x_shape, (KH, KW), (sh, sw), (ph, pw), 1, ceil_mode, "avg_pool2d")
    shapes.check_grad_shape(gy.shape, tuple(x_shape[:2]) + (OH, OW), "gy")
    gx = np.empty(tuple(x_shape), dtype=gy.dtype)
    _avg_pool(gx, gy, gy, gx, KH, KW, sh, sw, ph, pw, bool(count_include_pad), div, True)
    return gx


def matmul(a, b):
    """c = a @ b for 2-D a (M, K), b (K, N) via BLAS.

    Plain ``np.dot``: BLAS reads transposed views (``W.T``) through its
    transpose flags without a copy, and calling it from Python avoids a Numba
    dispatch on top of an already-tiny FC-layer GEMM.  Products below
    ``_BLAS_ONE_THREAD_WORK`` multiply-adds run BLAS on one thread (see
    "Threading" in the module docstring).
    """
    a = np.asarray(a)
    if a.dtype.type not in _FLOATS:
        raise TypeError(f"a must be float32 or float64, got {a.dtype}")
    b = np.asarray(b, dtype=a.dtype)
    M, N = shapes.check_matmul(a.shape, b.shape)
    if M * N * a.shape[1] < _BLAS_ONE_THREAD_WORK:
        return _dot_one_thread(a, b)
    return np.dot(a, b)


# Below this many multiply-adds a matrix product runs BLAS on one thread:
# LeNet's FC layers (12 M at batch 256) take well under a millisecond that way.
_BLAS_ONE_THREAD_WORK = 1 << 26
_BLAS_LIBS = None
# The BLAS thread count is one setting for the whole process, but several Python threads may
# multiply at once (a training thread beside an evaluation thread). Saving the count and
# restoring it per call would let two overlapping calls restore each other's "1" for good,
# so the calls inside a one-thread product are counted: the first to enter saves the count
# and sets 1, the last to leave restores it.
_BLAS_LOCK = threading.Lock()
_BLAS_SAVED = None
_BLAS_ONE_THREAD_CALLS = 0


def _blas_libs():
    """(get_num_threads, set_num_threads) of each BLAS library NumPy loaded (found once, ~2 ms).

    threadpoolctl finds the libraries; for OpenBLAS the two C functions are
    then called directly through ctypes (threadpoolctl's own per-call methods
    do bookkeeping that allocates on every call, and matmul runs in every
    training step).
    """
    global _BLAS_LIBS
    if _BLAS_LIBS is not None:
        return _BLAS_LIBS
    with _BLAS_LOCK:
        if _BLAS_LIBS is not None:  # another thread found them meanwhile
            return _BLAS_LIBS
        from threadpoolctl import ThreadpoolController

        found = []
        for lib in ThreadpoolController().select(user_api="blas").lib_controllers:
            pair = None
            if lib.internal_api == "openblas":
                for prefix, suffix in itertools.product(("", "scipy_"), ("", "64_", "_64")):
                    get = getattr(lib.dynlib, f"{prefix}openblas_get_num_threads{suffix}", None)
                    put = getattr(lib.dynlib, f"{prefix}openblas_set_num_threads{suffix}", None)
                    if get is not None and put is not None:
                        pair = (get, put)
                        break
            found.append(pair or (lib.get_num_threads, lib.set_num_threads))
        _BLAS_LIBS = found
    return _BLAS_LIBS


def _dot_one_thread(a, b):
    """np.dot with BLAS limited to one thread for this call (about 2 us to switch and back).

    Thread-safe: overlapping calls from several threads share one switch (see
    ``_BLAS_LOCK``), and the count in force before the first of them is restored
    after the last.
    """
    global _BLAS_SAVED, _BLAS_ONE_THREAD_CALLS
    libs = _blas_libs()
    with _BLAS_LOCK:
        if _BLAS_ONE_THREAD_CALLS == 0:
            _BLAS_SAVED = [get() for get, _ in libs]
            for _, put in libs:
                put(1)
        _BLAS_ONE_THREAD_CALLS += 1
    try:
        return np.dot(a, b)
    finally:
        with _BLAS_LOCK:
            _BLAS_ONE_THREAD_CALLS -= 1
            if _BLAS_ONE_THREAD_CALLS == 0:
                for (_, put), n in zip(libs, _BLAS_SAVED):
                    put(n)


def matmul_blocked(a, b, block=(64, 128, 128)):
    """c = a @ b with the hand-written cache-blocked parallel kernel (teaching version).

    ``block`` = (rows, columns, k-panel) of a tile.
    """
    a = _float_c(a, "a")
    b = _float_c(b, "b", a.dtype)
    M, N = shapes.check_matmul(a.shape, b.shape)
    c = np.empty((M, N), dtype=a.dtype)
    MB, NB, KB = block
    _matmul_blocked(a, b, c, MB, NB, KB)
    return c


# ==========================================================================
# ReLU: the most frequent elementwise pair in a CNN, parallel and in one pass
# (NumPy's maximum / where run on one core and the backward needs a mask)
# ==========================================================================

@njit(**_PAR)
def _relu_fwd(x, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = v if v > 0 else 0


@njit(**_PAR)
def _relu_bwd(gy, y, gx):
    for i in prange(gy.size):
        gx[i] = gy[i] if y[i] > 0 else 0


def _contiguous(a):
    # np.ascontiguousarray turns a 0-d array into shape (1,); 0-d arrays are contiguous anyway
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


# Below this many elements ReLU runs in NumPy on the calling thread: waking the
# kernel threads costs more than the pass itself.
_RELU_PARALLEL_MIN = 4096


def relu_forward(x):
    """y = max(x, 0) (see ``reference.relu_forward``)."""
    x = _contiguous(x)
    if x.dtype.type not in _FLOATS or x.size < _RELU_PARALLEL_MIN:
        return np.maximum(x, 0, dtype=x.dtype)
    y = np.empty_like(x)
    _relu_fwd(x.reshape(-1), y.reshape(-1))
    return y


def relu_backward(gy, y):
    """gx = gy * (y > 0) (see ``reference.relu_backward``)."""
    gy = _contiguous(gy)
    y = _contiguous(y.astype(gy.dtype, copy=False))
    if gy.dtype.type not in _FLOATS or gy.size < _RELU_PARALLEL_MIN:
        return np.where(y > 0, gy, np.zeros((), gy.dtype))
    gx = np.empty_like(gy)
    _relu_bwd(gy.reshape(-1), y.reshape(-1), gx.reshape(-1))
    return gx
