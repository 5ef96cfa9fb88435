"""Convolution, CPU twin, direct method: register-blocked stride-1 loops and per-plane strided loops.

(The stride-1 loops also run strided convolutions on phase-split planes:
:func:`forward_phases`, :func:`backward_weight_phases`.)

The input is copied once into a zero-padded buffer whose rows are ``Wp``
wide (``cpu_layout.py``), and for stride 1 the output is computed on that
same ``Wp``-wide grid.  Then "shift the input by tap (p, q)" is a constant
offset into a flat array and every tap is one long unit-stride
``acc[j] += w * x[j + off]`` loop (~900 elements for LeNet's first layer)
that LLVM vectorises (AVX-512 here), instead of 28 short rows with bounds
checks; the junk columns (``Wp - OW`` per row) are cropped at the end, and
the loops are rounded up to whole vectors.  Such a loop alone is bound by
loads and stores, not arithmetic, so the stride-1 kernels are
*register-blocked* like a GEMM micro-kernel: 4 output channels x 4 taps per
pass (forward), 4 input channels x 4 output channels (backward-input, a
scatter over (n, c) planes), and 4 x 4 dot products held in registers
(backward-weight, over chunks of 16 images): each loaded vector feeds 4
fused multiply-adds.  Strided convolutions use simpler per-plane loops.

Race freedom and determinism: forward work items own (n, output-channel
block) planes, backward-input items own (n, c) planes (all scatter-adds into
one plane happen in one thread, in a fixed order), backward-weight items own
(image chunk, channel block) pairs whose partial sums are then added in batch
order.  Results do not depend on thread timing.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from .. import jit
from ..jit import njit
from .cpu_layout import (_crop_phases, _crop_plane, _largest, _phase_tap_offsets, _rows_needed, _spread_planes, _tap_offsets,
                         _whole_vectors)

_PAR, _SEQ = jit.PAR, jit.SEQ
_PAR_FMA, _SEQ_DOT, _SEQ_FMA = jit.PAR_FMA, jit.SEQ_DOT, jit.SEQ_FMA

# Images per work item of the stride-1 backward-weight kernel: a fixed number
# (not "batch / threads"), so the partial sums - and the result - are the same
# on any machine.  16 LeNet images of both layers fit in L2; longer chunks
# also mean fewer horizontal sums of the vector accumulators (LeNet's second
# layer: 8% faster than chunks of 8 at batch 64).
_WEIGHT_CHUNK = 16


# ==========================================================================
# The three passes (Python: pick the stride-1 or the strided kernel)
# ==========================================================================

def forward(xp, Wp, w, b, y, stride, dilation, groups):
    """y = conv(x, w) + b into ``y``; xp is the padded input as (N, C, R*Wp)."""
    C = xp.shape[1]
    sh, sw = stride
    dh, dw = dilation
    if sh == 1 and sw == 1:
        _conv_fwd_unit(xp.reshape(-1), C * xp.shape[2], xp.shape[2], Wp, w, b, y, 1, 1, dh, dw, groups)
    else:
        _conv_fwd_strided(xp, Wp, w, b, y, sh, sw, dh, dw, groups)


def backward_input(gy, w, gx, R, Wp, pad4, stride, dilation, groups, spread=None):
    """gx = convᵀ(gy, w) into ``gx``; ``spread`` = (gyf, G), gy already re-laid for this Wp (stride 1)."""
    N, O, OH, OW = gy.shape
    sh, sw = stride
    dh, dw = dilation
    pt, pb, pl, pr = pad4
    if sh == 1 and sw == 1:
        L = (OH - 1) * Wp + OW
        gyf, G = spread if spread is not None else _spread_planes(gy, Wp, L)
        _conv_bwd_input_unit(gyf, G, L, w, gx, R, Wp, pt, pl, None, dh, dw, groups)
    else:
        gys = gy.reshape(N, O, OH * OW)
        _conv_bwd_input_direct(gys, OW, w, gx, R, Wp, pt, pl, OH, OW, sh, sw, dh, dw, groups)


def backward_weight(xp, Wp, gy, gw, stride, dilation, groups, spread=None):
    """gw = corr(x, gy) into ``gw``; xp as in :func:`forward`, ``spread`` as in :func:`backward_input`."""
    N, C = xp.shape[0], xp.shape[1]
    O, Cg, KH, KW = gw.shape
    OH, OW = gy.shape[2], gy.shape[3]
    sh, sw = stride
    dh, dw = dilation
    if sh == 1 and sw == 1:
        L = (OH - 1) * Wp + OW
        gyf, G = spread if spread is not None else _spread_planes(gy, Wp, L)
        part = np.empty((-(-N // _WEIGHT_CHUNK), O, Cg * KH * KW), dtype=gw.dtype)
        _conv_bwd_weight_unit(xp.reshape(-1), C * xp.shape[2], xp.shape[2], Wp, gyf, G, L, part,
                              KH, KW, 1, 1, dh, dw, groups, _WEIGHT_CHUNK)
        np.add.reduce(part, axis=0, out=gw.reshape(O, -1))  # chunk partial sums, in batch order
    else:
        _conv_bwd_weight_strided(xp, Wp, gy.reshape(N, O, OH * OW), gw, OH, OW, sh, sw, dh, dw, groups)


def forward_phases(xph, W2, RW2, w, b, y, stride, dilation, groups):
    """Strided y = conv(x, w) + b by the stride-1 kernel on phase-split planes.

    ``xph`` is ``cpu_layout._phased_input``: per channel sh*sw phase planes
    of RW2 elements, rows W2 wide.  Tap (c, p, q) is a constant offset into
    them (``_phase_tap_offsets``), so a strided convolution runs the
    register-blocked stride-1 loops over an OH x W2 grid; nothing is
    computed for the skipped positions.
    """
    C = xph.shape[1]
    _conv_fwd_unit(xph.reshape(-1), C * xph.shape[2], RW2, W2, w, b, y, stride[0], stride[1],
                   dilation[0], dilation[1], groups)


def backward_input_phases(gy, w, gx, pad4, stride, dilation, groups):
    """Strided gx = convᵀ(gy, w) by the stride-1 scatter kernel into phase planes, then interleaved into gx.

    The adjoint of :func:`forward_phases`: gy (re-laid on the phase grid,
    rows W2 wide) is scattered into each input channel's sh*sw phase planes
    at the taps' phase offsets, and the planes are written back into the
    image (``cpu_layout._crop_phases``).
    """
    N, O, OH, OW = gy.shape
    KH, KW = w.shape[2], w.shape[3]
    sh, sw = stride
    R2 = -(-_rows_needed(OH, KH, sh, dilation[0]) // sh)
    W2 = -(-_rows_needed(OW, KW, sw, dilation[1]) // sw)
    L = (OH - 1) * W2 + OW
    gyf, G = _spread_planes(gy, W2, L)
    _conv_bwd_input_unit(gyf, G, L, w, gx, R2, W2, pad4[0], pad4[2], (sh, sw), dilation[0], dilation[1], groups)


def backward_weight_phases(xph, W2, RW2, gy, gw, stride, dilation, groups):
    """Strided gw = corr(x, gy) by the stride-1 weight kernel on phase-split planes (see :func:`forward_phases`)."""
    N, C = xph.shape[0], xph.shape[1]
    O, Cg, KH, KW = gw.shape
    OH, OW = gy.shape[2], gy.shape[3]
    L = (OH - 1) * W2 + OW
    gyf, G = _spread_planes(gy, W2, L)
    part = np.empty((-(-N // _WEIGHT_CHUNK), O, Cg * KH * KW), dtype=gw.dtype)
    _conv_bwd_weight_unit(xph.reshape(-1), C * xph.shape[2], RW2, W2, gyf, G, L, part,
                          KH, KW, stride[0], stride[1], dilation[0], dilation[1], groups, _WEIGHT_CHUNK)
    np.add.reduce(part, axis=0, out=gw.reshape(O, -1))


# ==========================================================================
# Numba kernels.  Arrays arrive C-contiguous and all of one float dtype.
# ==========================================================================

@njit(**_PAR_FMA)
def _conv_fwd_unit(xf, CR, RWp, Wp, w, b, y, sh, sw, dh, dw, groups):
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

    Strides: xf holds sh*sw phase planes of RWp elements per channel
    (:func:`forward_phases`), and the taps are their phase offsets.
    """
    N, O, OH, OW = y.shape
    Cg, KH, KW = w.shape[1], w.shape[2], w.shape[3]
    T = Cg * KH * KW
    Og = O // groups
    L = (OH - 1) * Wp + OW
    Lv = _whole_vectors(L)
    offs = _phase_tap_offsets(Cg, RWp, Wp, KH, KW, sh, sw, dh, dw, False)
    off_max = _largest(offs)
    CS = sh * sw * RWp  # channel stride
    wt = w.reshape(O, T)
    NOB = (Og + 3) // 4
    # the crop's offsets, 0 as a plain integer: a constant argument would make Numba compile a
    # second _crop_plane, specialised to it, next to the input gradient's (0.15 s of a cold start)
    top = OH - OH
    for t in prange(N * groups * NOB):
        n = t // (groups * NOB)
        r = t - n * (groups * NOB)
        g = r // NOB
        o0 = g * Og + (r - g * NOB) * 4
        last = g * Og + Og - 1
        i0, i1, i2, i3 = o0, min(o0 + 1, last), min(o0 + 2, last), min(o0 + 3, last)
        base = n * CR + g * Cg * CS
        Lr = Lv if base + off_max + Lv <= xf.shape[0] else L
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
            _crop_plane(acc[i], Wp, OH, top, top, y[n, o0 + i])


@njit(**_PAR_FMA)
def _conv_bwd_input_unit(gyf, G, L, w, gx, R, Wp, pt, pl, phases, dh, dw, groups):
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

    Strides (:func:`backward_input_phases`, ``phases`` = (sh, sw); None for
    stride 1): the accumulators hold a channel's sh*sw phase planes of
    R x Wp, the taps are their phase offsets, and the planes are
    interleaved into gx at the end.  ``phases`` is None or a tuple so that
    the two are compiled apart (Numba drops an ``is None`` branch by type):
    a network without strided convolutions never compiles the interleave
    (0.4 s of LeNet-5's cold start).
    """
    N, C, H, W = gx.shape
    O, Cg, KH, KW = w.shape
    Og = O // groups
    Lv = _whole_vectors(L)
    if phases is None:
        sh, sw = 1, 1
    else:
        sh, sw = phases
    offs = _phase_tap_offsets(1, R * Wp, Wp, KH, KW, sh, sw, dh, dw, False)
    NCB = (Cg + 3) // 4
    for t in prange(N * groups * NCB):
        n = t // (groups * NCB)
        r = t - n * (groups * NCB)
        g = r // NCB
        c0 = (r - g * NCB) * 4  # within the group
        i0, i1, i2, i3 = c0, min(c0 + 1, Cg - 1), min(c0 + 2, Cg - 1), min(c0 + 3, Cg - 1)
        acc = np.zeros((4, sh * sw * R * Wp + Lv), dtype=gx.dtype)
        a0, a1, a2, a3 = acc[0], acc[1], acc[2], acc[3]
        gb = (n * O + g * Og) * G
        if c0 + 2 >= Cg:
            # a tail of 1 or 2 channels (LeNet's 6 = 4 + 2): a 4-wide pass would spend
            # half its FMAs on copies of the last channel
            _scatter_pair(gyf, gb, G, Lv, w, g * Og, Og, i0, i1, KW, offs, a0, a1)
        else:
            _scatter_quad(gyf, gb, G, Lv, w, g * Og, Og, i0, i1, i2, i3, KW, offs, a0, a1, a2, a3)
        for i in range(min(4, Cg - c0)):
            if phases is None:
                _crop_plane(acc[i], Wp, R, pt, pl, gx[n, g * Cg + c0 + i])
            else:
                _crop_phases(acc[i], R, Wp, sh, sw, pt, pl, gx[n, g * Cg + c0 + i])


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
def _conv_bwd_weight_unit(xf, CR, RWp, Wp, gyf, G, L, part, KH, KW, sh, sw, dh, dw, groups, NB):
    """Stride 1: part[ch, o, (c,p,q)] = sum_{n in chunk ch} sum_j gy[n, o].flat[j] * xf[n*CR + offs(c,p,q) + j].

    gyf holds gy planes flat with rows Wp wide (zero in the gap columns, so
    the junk positions of the Wp-wide grid contribute nothing), plane
    stride G >= the loop length rounded up to whole vectors.  xf is the
    padded input as in :func:`_conv_fwd_unit`.

    A work item owns one chunk of NB images and a block of 4 output channels
    of one group; it walks the taps 4 at a time, and :func:`_dot_block_4x4`
    keeps the 16 dot products of each 4 x 4 block in registers ("reassoc"
    lets each one be split over the lanes of a vector), so each loaded
    vector of gy or x feeds 4 FMAs.  A last block of 1 to 3 channels
    computes copies of its last channel and keeps only its own rows: a 2 x 4
    form for LeNet's 6 = 4 + 2 channels saved no measurable time in a LeNet
    step and cost 0.6 s of its cold start (compiling it, and the branch).
    The chunks are summed afterwards in order, so the result does not depend
    on how work items are scheduled.
    """
    NCH, O, T = part.shape
    Cg = T // (KH * KW)
    Og = O // groups
    N = gyf.shape[0] // (O * G)
    Lv = _whole_vectors(L)
    offs = _phase_tap_offsets(Cg, RWp, Wp, KH, KW, sh, sw, dh, dw, True)
    off_max = _largest(offs)
    CS = sh * sw * RWp  # channel stride (phase planes: see _conv_fwd_unit)
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
            _dot_block_4x4(xf, gyf, offs[k:k + 4], ch * NB, min(N, (ch + 1) * NB), CR, g * Cg * CS,
                           off_max, O, G, L, Lv, o0, last, blk)
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
