"""Convolution, CUDA twin: one thread per output element, gathers instead of scatters.

* **forward** - one thread per output element ``(n, o, i, j)``; it loops
  over the taps of its window and the input channels of its group. Taps
  that fall into the padding are skipped by computing the valid tap range up
  front (``tap_range``).
* **backward-input** - the textbook formula is a *scatter* ("every output
  sends ``gy * w`` back to the inputs its window read"), which would need
  atomics. Turned around, it is a gather: one thread per *input* element
  ``(n, c, h, w)`` loops over the kernel taps ``(p, q)`` and keeps those for
  which ``h + pad - p*d`` is a multiple of the stride, i.e. the output
  positions whose window touched ``(h, w)``. Each thread sums its
  contributions in a fixed order: deterministic, no atomics.
* **backward-weight** - one *block* per weight element ``(o, c, p, q)``; its
  threads split the ``N*OH*OW`` terms of the sum, then add their partial sums
  with ``block_sum`` (fixed order, so still deterministic). A weight tensor
  has few elements, so "one thread per weight" would leave most of the GPU idle.
* **conv_transpose2d** - the adjoint of conv2d, so it reuses the conv2d
  kernels with roles swapped, exactly as the CPU twin does.

Arguments are checked by the caller (``kernels/contract.py``); inputs are
made C-contiguous floats of the first operand's dtype here, on the GPU.
"""
from __future__ import annotations

from numba import cuda

from .. import shapes
from ..cuda_common import MAX_BLOCKS, THREADS, block_sum, float_c, grid_1d, is_simulator, no_bias, tap_range

#: threads per block of the weight-gradient reduction (a power of two: tree sum). Under the
#: simulator every syncthreads() is a round of thread switches, so blocks are small there.
_RED = 8 if is_simulator() else THREADS


# ==========================================================================
# Kernels
# ==========================================================================

@cuda.jit
def _conv2d_fwd(x, w, b, y, sh, sw, pt, pl, dh, dw, groups):
    """y[n,o,i,j] = b[o] + sum_{c in group(o)} sum_{p,q} w[o,c,p,q] * x[n, c, i*sh + p*dh - pt, j*sw + q*dw - pl].

    x (N, C, H, W), w (O, C/groups, KH, KW), b (O,) or empty for "no bias",
    y (N, O, OH, OW).  One thread per output element; x outside the input is
    the zero padding, so those taps are simply not visited.  y may have fewer
    rows/columns than the natural output (conv_transpose2d's backward crops).
    """
    N, O, OH, OW = y.shape
    H, W = x.shape[2], x.shape[3]
    Cg, KH, KW = w.shape[1], w.shape[2], w.shape[3]
    Og = O // groups
    zero = y.dtype.type(0)
    has_bias = b.shape[0] > 0
    for e in range(cuda.grid(1), N * O * OH * OW, cuda.gridsize(1)):
        j = e % OW
        t = e // OW
        i = t % OH
        t //= OH
        o = t % O
        n = t // O
        hb = i * sh - pt  # top-left tap of this window, in input coordinates
        wb = j * sw - pl
        plo, phi = tap_range(hb, dh, KH, H)
        qlo, qhi = tap_range(wb, dw, KW, W)
        c0 = (o // Og) * Cg  # first input channel of o's group
        acc = b[o] if has_bias else zero  # bias first, like cpu.py
        for cl in range(Cg):
            for p in range(plo, phi):
                h = hb + p * dh
                for q in range(qlo, qhi):
                    acc += w[o, cl, p, q] * x[n, c0 + cl, h, wb + q * dw]
        y[n, o, i, j] = acc


@cuda.jit
def _conv2d_bwd_input(gy, w, b, gx, sh, sw, pt, pl, dh, dw, groups):
    """gx[n,c,h,v] = sum over (o, p, q, i, j) with i*sh + p*dh - pt = h and j*sw + q*dw - pl = v
    of gy[n,o,i,j] * w[o, c - g*Cg, p, q]   (+ b[c] when b is not empty).

    gy (N, O, OH, OW), w (O, C/groups, KH, KW), gx (N, C, H, W).  The adjoint
    of conv2d in x, written as a gather: the thread that owns gx[n,c,h,v]
    visits each tap (p, q) and keeps it when ``h + pt - p*dh`` is a
    non-negative multiple of the stride (then the output row i it came from
    is that multiple / sh) inside the output.  No two threads write the same
    element, so no atomics and a fixed summation order.  With the bias this
    is conv_transpose2d's forward (bias added last, like cpu.py).
    """
    N, C, H, W = gx.shape
    O, OH, OW = gy.shape[1], gy.shape[2], gy.shape[3]
    Cg, KH, KW = w.shape[1], w.shape[2], w.shape[3]
    Og = O // groups
    zero = gx.dtype.type(0)
    has_bias = b.shape[0] > 0
    for e in range(cuda.grid(1), N * C * H * W, cuda.gridsize(1)):
        v = e % W
        t = e // W
        h = t % H
        t //= H
        c = t % C
        n = t // C
        g = c // Cg
        cl = c - g * Cg
        acc = zero
        for p in range(KH):
            ti = h + pt - p * dh  # = i*sh if output row i reached row h through tap p
            if ti < 0:
                break  # ti only decreases with p
            if ti % sh != 0:
                continue
            i = ti // sh
            if i >= OH:
                continue
            for q in range(KW):
                tj = v + pl - q * dw
                if tj < 0:
                    break
                if tj % sw != 0:
                    continue
                j = tj // sw
                if j >= OW:
                    continue
                for o in range(g * Og, (g + 1) * Og):
                    acc += gy[n, o, i, j] * w[o, cl, p, q]
        if has_bias:
            acc += b[c]
        gx[n, c, h, v] = acc


@cuda.jit
def _conv2d_bwd_weight(x, gy, gw, sh, sw, pt, pl, dh, dw, groups):
    """gw[o,c,p,q] = sum_{n,i,j} gy[n,o,i,j] * x[n, g*Cg + c, i*sh + p*dh - pt, j*sw + q*dw - pl].

    x (N, C, H, W), gy (N, O, OH, OW), gw (O, C/groups, KH, KW).  One block
    per weight element (blocks stride over the elements when there are more
    of them than blocks).  Thread t of the block sums the terms t, t + _RED,
    t + 2*_RED, ... of the N*OH*OW-term sum; then the block adds the _RED
    partial sums pairwise in shared memory (a tree: _RED/2 additions, then
    _RED/4, ...), halving the active threads each step.  The order of every
    addition is fixed, so the result is deterministic.
    """
    O, Cg, KH, KW = gw.shape
    N, OH, OW = gy.shape[0], gy.shape[2], gy.shape[3]
    H, W = x.shape[2], x.shape[3]
    Og = O // groups
    partial = cuda.shared.array(_RED, dtype=gw.dtype)
    tid = cuda.threadIdx.x
    zero = gw.dtype.type(0)
    M = N * OH * OW
    # the loop bounds are the same for every thread of a block, so all of
    # them reach each syncthreads() below (a requirement: else deadlock)
    for e in range(cuda.blockIdx.x, O * Cg * KH * KW, cuda.gridDim.x):
        q = e % KW
        t = e // KW
        p = t % KH
        t //= KH
        cl = t % Cg
        o = t // Cg
        c = (o // Og) * Cg + cl
        acc = zero
        for m in range(tid, M, _RED):
            j = m % OW
            t2 = m // OW
            i = t2 % OH
            n = t2 // OH
            h = i * sh + p * dh - pt
            v = j * sw + q * dw - pl
            if h >= 0 and h < H and v >= 0 and v < W:  # else x is padding: term is 0
                acc += gy[n, o, i, j] * x[n, c, h, v]
        total = block_sum(partial, acc)
        if tid == 0:
            gw[o, cl, p, q] = total


@cuda.jit
def _conv2d_bwd_bias(gy, gb):
    """gb[o] = sum_{n,i,j} gy[n,o,i,j]: one block per channel, the same fixed-order tree as the weight kernel."""
    N, O, OH, OW = gy.shape
    partial = cuda.shared.array(_RED, dtype=gb.dtype)
    tid = cuda.threadIdx.x
    zero = gb.dtype.type(0)
    P = OH * OW
    for o in range(cuda.blockIdx.x, O, cuda.gridDim.x):  # the same bounds for every thread of a block
        acc = zero
        for m in range(tid, N * P, _RED):
            n = m // P
            r = m - n * P
            acc += gy[n, o, r // OW, r % OW]
        total = block_sum(partial, acc)
        if tid == 0:
            gb[o] = total


# ==========================================================================
# Launches (host side: shapes and launches only, no data)
# ==========================================================================

def _conv_fwd(x, w, b, stride, pad4, dilation, groups, OH, OW):
    y = cuda.device_array((x.shape[0], w.shape[0], OH, OW), dtype=x.dtype)
    _conv2d_fwd[grid_1d(y.size)](
        x, w, no_bias(x.dtype) if b is None else b, y,
        stride[0], stride[1], pad4[0], pad4[2], dilation[0], dilation[1], groups)
    return y


def _conv_bwd_input(gy, w, b, x_shape, stride, pad4, dilation, groups):
    gx = cuda.device_array(tuple(x_shape), dtype=gy.dtype)
    _conv2d_bwd_input[grid_1d(gx.size)](
        gy, w, no_bias(gy.dtype) if b is None else b, gx,
        stride[0], stride[1], pad4[0], pad4[2], dilation[0], dilation[1], groups)
    return gx


def _conv_bwd_weight(x, gy, w_shape, stride, pad4, dilation, groups):
    gw = cuda.device_array(tuple(w_shape), dtype=x.dtype)
    blocks = max(1, min(gw.size, MAX_BLOCKS))
    _conv2d_bwd_weight[blocks, _RED](
        x, gy, gw, stride[0], stride[1], pad4[0], pad4[2], dilation[0], dilation[1], groups)
    return gw


def _conv_bwd_bias(gy):
    gb = cuda.device_array((gy.shape[1],), dtype=gy.dtype)
    _conv2d_bwd_bias[max(1, min(gy.shape[1], MAX_BLOCKS)), _RED](gy, gb)
    return gb


# ==========================================================================
# Entry points (the contract's functions)
# ==========================================================================

def conv2d_forward(x, w, b, stride, padding, dilation, groups):
    """2-D cross-correlation; see ``reference.conv2d_forward`` for the formula.

    x (N, C, H, W), w (O, C/groups, KH, KW), b (O,) or None -> y (N, O, OH, OW),
    one GPU thread per element of y.
    """
    x = float_c(x, "x")
    w = float_c(w, "w", x.dtype)
    b = None if b is None else float_c(b, "b", x.dtype)
    stride, pad4, dilation = shapes.conv_args(stride, padding, dilation)
    OH, OW = shapes.conv_out_hw(x.shape[2:], w.shape[2:], stride, pad4, dilation)
    return _conv_fwd(x, w, b, stride, pad4, dilation, groups, OH, OW)


def conv2d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    """Gradient of conv2d w.r.t. its input (= conv_transpose2d's forward).

    gy (N, O, OH, OW) -> gx of shape ``x_shape``, one thread per element of gx
    (gather, no atomics).
    """
    gy = float_c(gy, "gy")
    w = float_c(w, "w", gy.dtype)
    stride, pad4, dilation = shapes.conv_args(stride, padding, dilation)
    return _conv_bwd_input(gy, w, None, tuple(x_shape), stride, pad4, dilation, groups)


def conv2d_backward_weight(x, gy, w_shape, stride, padding, dilation, groups):
    """Gradient of conv2d w.r.t. its weight: (N,C,H,W), (N,O,OH,OW) -> ``w_shape``.

    One block per weight element, shared-memory reduction over N*OH*OW.
    """
    x = float_c(x, "x")
    gy = float_c(gy, "gy", x.dtype)
    stride, pad4, dilation = shapes.conv_args(stride, padding, dilation)
    return _conv_bwd_weight(x, gy, tuple(w_shape), stride, pad4, dilation, groups)


def conv2d_backward(x, gy, w, stride, padding, dilation, groups, need_input=True, need_weight=True,
                    need_bias=True):
    """All gradients of conv2d in one call: (gx, gw, gb), None for those not asked for.

    On the GPU the input and weight kernels run one after the other, and the
    bias gradient sum_{n,i,j} gy[n, o, i, j] is one block per channel.
    """
    x = float_c(x, "x")
    gy = float_c(gy, "gy", x.dtype)
    w = float_c(w, "w", x.dtype)
    stride, pad4, dilation = shapes.conv_args(stride, padding, dilation)
    gx = _conv_bwd_input(gy, w, None, tuple(x.shape), stride, pad4, dilation, groups) if need_input else None
    gw = _conv_bwd_weight(x, gy, tuple(w.shape), stride, pad4, dilation, groups) if need_weight else None
    gb = _conv_bwd_bias(gy) if need_bias else None
    return gx, gw, gb


def conv_transpose2d_forward(x, w, b, stride, padding, output_padding, groups, dilation):
    """Transposed convolution = conv2d_backward_input with x in the role of gy (bias added last).

    x (N, C_in, H, W), w (C_in, C_out/groups, KH, KW), b (C_out,) or None.
    """
    x = float_c(x, "x")
    w = float_c(w, "w", x.dtype)
    b = None if b is None else float_c(b, "b", x.dtype)
    stride, pad4, dilation = shapes.conv_args(stride, padding, dilation)
    oh, ow = shapes.conv_transpose_out_hw(x.shape[2:], w.shape[2:], stride, pad4, output_padding, dilation)
    return _conv_bwd_input(x, w, b, (x.shape[0], w.shape[1] * groups, oh, ow), stride, pad4, dilation, groups)


def conv_transpose2d_backward_input(gy, w, stride, padding, dilation, groups, x_shape=None):
    """Gradient of conv_transpose2d w.r.t. x = conv2d_forward(gy, w), cropped to x_shape."""
    gy = float_c(gy, "gy")
    w = float_c(w, "w", gy.dtype)
    stride, pad4, dilation = shapes.conv_args(stride, padding, dilation)
    OH, OW = (tuple(x_shape)[2:] if x_shape is not None
              else shapes.conv_out_hw(gy.shape[2:], w.shape[2:], stride, pad4, dilation))
    return _conv_fwd(gy, w, None, stride, pad4, dilation, groups, OH, OW)


def conv_transpose2d_backward_weight(x, gy, w_shape, stride, padding, dilation, groups):
    """Gradient of conv_transpose2d w.r.t. w = conv2d_backward_weight with (gy, x) as (input, grad)."""
    x = float_c(x, "x")
    gy = float_c(gy, "gy", x.dtype)
    stride, pad4, dilation = shapes.conv_args(stride, padding, dilation)
    return _conv_bwd_weight(gy, x, tuple(w_shape), stride, pad4, dilation, groups)
