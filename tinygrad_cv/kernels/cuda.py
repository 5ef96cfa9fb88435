"""CUDA kernels (numba-cuda): same API as ``reference.py`` and ``cpu.py``, on the GPU.

Every public function has the name, the signature, the argument handling and
the error messages of its twin in ``cpu.py`` (shape checks go through the
same ``shapes`` functions), but takes and returns numba CUDA *device arrays*:
the data never leaves the GPU (nothing here copies to the host).  Without a
GPU, Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) runs the very same
kernels in Python threads, which is how the tests check them.

How the work maps onto threads
------------------------------
A GPU runs thousands of threads at once and has no cheap way to let two of
them add into the same memory cell (atomics serialise, and floating-point
addition in whatever order the threads happen to arrive is not reproducible).
So wherever the formula allows, a kernel is written as a **gather**: each
thread *owns* one output element, reads whatever inputs it needs, and writes
its element once.

* **conv2d forward, pooling forward** - one thread per output element
  ``(n, o, i, j)``; it loops over the taps of its window (and, for conv, the
  input channels of its group).  Taps that fall into the padding are skipped
  by computing the valid tap range up front (:func:`_tap_range`).
* **conv2d backward-input, avg-pool backward** - the textbook formula is a
  *scatter* ("every output sends ``gy * w`` back to the inputs its window
  read"), which would need atomics.  Turned around, it is a gather: one
  thread per *input* element ``(n, c, h, w)`` loops over the kernel taps
  ``(p, q)`` and keeps those for which ``h + pad - p*d`` is a multiple of the
  stride, i.e. the output positions whose window touched ``(h, w)``.  Each
  thread sums its contributions in a fixed order: deterministic, no atomics.
* **conv2d backward-weight** - one *block* per weight element
  ``(o, c, p, q)``; its threads split the ``N*OH*OW`` terms of the sum,
  then add their partial sums in a shared-memory tree (fixed order, so still
  deterministic).  A weight tensor has few elements, so "one thread per
  weight" would leave most of the GPU idle.
* **max-pool backward** - gets only the argmax indices, not the window
  geometry, so an input element cannot know which outputs chose it; one
  thread per ``(n, c)`` plane routes that plane's gradients (the thread owns
  the plane, so there are no races), in the same order as ``cpu.py``.
* **conv_transpose2d** - the adjoint of conv2d, so it reuses the conv2d
  kernels with roles swapped, exactly as ``cpu.py`` does.
* **matmul** - the classic shared-memory tiled kernel (see :func:`matmul`).

Elementwise and "one thread per output" kernels use a grid-stride loop (see
``tinygrad_cv.cuda.launch``), so any size works with a bounded grid.

Dtypes: accumulation happens in the array dtype (float32 or float64), like
``cpu.py``.  A bare Python float literal inside a kernel is a float64 and
would silently turn float32 arithmetic into (slow, on most GPUs) float64, so
constants are made with ``arr.dtype.type(value)``, which Numba types as the
array's own dtype.
"""
from __future__ import annotations

import math

import numpy as np

from .. import cuda as _gpu

# Fail at import with a message that says what is missing (numba-cuda, the
# driver, a GPU) rather than with an ImportError or on the first launch.
_gpu.require()

from numba import cuda  # noqa: E402

from . import shapes  # noqa: E402
from ..cuda.launch import MAX_BLOCKS, THREADS, grid_1d, tile_2d  # noqa: E402

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
    "relu_forward",
    "relu_backward",
]

# Under the simulator every GPU thread is a Python thread and every
# syncthreads() a round of thread switches, so the two kernels that
# synchronise get small blocks there (same code, same results, less waiting).

#: side of the square tiles of the matmul kernel (a block is TILE x TILE threads)
TILE = 8 if _gpu.is_simulator() else 16
#: threads per block of the weight-gradient reduction (a power of two: tree sum)
_RED = 8 if _gpu.is_simulator() else THREADS


# ==========================================================================
# Device helpers
# ==========================================================================

@cuda.jit(device=True)
def _tap_range(base, d, k, n):
    """Taps t in [lo, hi) of a window starting at ``base`` (step d, k taps) that land in [0, n).

    Computed once per window instead of testing every tap: the loops over
    the window then run without a bounds check per element.
    """
    lo = 0
    if base < 0:
        lo = (-base + d - 1) // d
    hi = k
    last = base + (k - 1) * d
    if last >= n:
        hi = k - (last - n) // d - 1
    return lo, hi


@cuda.jit(device=True)
def _avg_window(i, s, p, k, n):
    """Rows (or columns) [start, end) of pooling window i, and its size counting padding.

    The window may reach into the padding but not past it (PyTorch's
    ceil_mode overhang is not counted by count_include_pad).
    """
    start = i * s - p
    end = min(start + k, n + p)
    with_pad = end - start
    return max(start, 0), min(end, n), with_pad


@cuda.jit(device=True)
def _avg_divisor(h0, h1, hp, w0, w1, wp, count_include_pad, divisor_override):
    """PyTorch's divisor: the override (0 = none), else the padded or the real window size."""
    if divisor_override != 0:
        return divisor_override
    if count_include_pad:
        return hp * wp
    return (h1 - h0) * (w1 - w0)


# ==========================================================================
# Convolution kernels
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
        plo, phi = _tap_range(hb, dh, KH, H)
        qlo, qhi = _tap_range(wb, dw, KW, W)
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
        total = _block_tree_sum(partial, tid, acc)
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
        total = _block_tree_sum(partial, tid, acc)
        if tid == 0:
            gb[o] = total


@cuda.jit(device=True)
def _block_tree_sum(partial, tid, acc):
    """Sum of every thread's ``acc`` in a block of _RED threads: pairwise in shared memory, halving
    the active threads each step (a fixed order, so a deterministic result); all threads get it."""
    partial[tid] = acc
    cuda.syncthreads()
    s = _RED // 2
    while s > 0:
        if tid < s:
            partial[tid] += partial[tid + s]
        cuda.syncthreads()
        s //= 2
    total = partial[0]
    cuda.syncthreads()  # partial[0] is read before the next reduction overwrites it
    return total


# ==========================================================================
# Pooling kernels
# ==========================================================================

@cuda.jit
def _max_pool_fwd(x, y, idx, KH, KW, sh, sw, ph, pw, dh, dw):
    """y[n,c,i,j] = max over the window's in-range taps; idx = flat index h*W + w of the winner.

    One thread per output.  Rules as in cpu.py: the window is scanned
    row-major and only a strictly greater value replaces the best (first
    maximum wins); a NaN always replaces it (NaN propagates, last NaN's
    index); a window with no input element gives -inf and index -1.
    """
    N, C, OH, OW = y.shape
    H, W = x.shape[2], x.shape[3]
    for e in range(cuda.grid(1), N * C * OH * OW, cuda.gridsize(1)):
        j = e % OW
        t = e // OW
        i = t % OH
        t //= OH
        c = t % C
        n = t // C
        hb = i * sh - ph
        wb = j * sw - pw
        plo, phi = _tap_range(hb, dh, KH, H)
        qlo, qhi = _tap_range(wb, dw, KW, W)
        if plo >= phi or qlo >= qhi:
            y[n, c, i, j] = y.dtype.type(-math.inf)
            idx[n, c, i, j] = -1
            continue
        # start from the first in-range element (not -inf): a window of -inf
        # values still points at a real element, as in PyTorch
        h = hb + plo * dh
        v = wb + qlo * dw
        best = x[n, c, h, v]
        arg = h * W + v
        for p in range(plo, phi):
            h = hb + p * dh
            for q in range(qlo, qhi):
                v = wb + q * dw
                val = x[n, c, h, v]
                if val > best or val != val:  # val != val: NaN
                    best = val
                    arg = h * W + v
        y[n, c, i, j] = best
        idx[n, c, i, j] = arg


@cuda.jit
def _max_pool_bwd(gy, idx, gx):
    """gx[n, c].flat[idx[n,c,i,j]] += gy[n,c,i,j], one thread per (n, c) plane.

    gx must be zero on entry.  The indices say where each gradient goes but
    not which window an element belongs to, so the gather form is not
    available; a thread per plane owns every element it adds to (no races)
    and adds in (i, j) order, like cpu.py.  Index -1 (a window that missed
    the input) routes nowhere.
    """
    N, C, H, W = gx.shape
    OH, OW = gy.shape[2], gy.shape[3]
    for t in range(cuda.grid(1), N * C, cuda.gridsize(1)):
        n = t // C
        c = t % C
        for i in range(OH):
            for j in range(OW):
                k = idx[n, c, i, j]
                if k >= 0 and k < H * W:
                    gx[n, c, k // W, k % W] += gy[n, c, i, j]


@cuda.jit
def _avg_pool_fwd(x, y, KH, KW, sh, sw, ph, pw, count_include_pad, divisor_override):
    """y[n,c,i,j] = (sum of the window's real elements) / divisor; one thread per output.

    divisor_override = 0 means "none".  A window with no real element
    (possible only under ceil_mode) gives 0.
    """
    N, C, OH, OW = y.shape
    H, W = x.shape[2], x.shape[3]
    zero = y.dtype.type(0)
    for e in range(cuda.grid(1), N * C * OH * OW, cuda.gridsize(1)):
        j = e % OW
        t = e // OW
        i = t % OH
        t //= OH
        c = t % C
        n = t // C
        h0, h1, hp = _avg_window(i, sh, ph, KH, H)
        w0, w1, wp = _avg_window(j, sw, pw, KW, W)
        if h0 >= h1 or w0 >= w1:
            y[n, c, i, j] = zero
            continue
        s = zero
        for h in range(h0, h1):
            for v in range(w0, w1):
                s += x[n, c, h, v]
        div = _avg_divisor(h0, h1, hp, w0, w1, wp, count_include_pad, divisor_override)
        y[n, c, i, j] = s / y.dtype.type(div)  # the int divisor cast to the array dtype


@cuda.jit
def _avg_pool_bwd(gy, gx, KH, KW, sh, sw, ph, pw, count_include_pad, divisor_override):
    """gx[n,c,h,v] = sum over the windows (i, j) containing (h, v) of gy[n,c,i,j] / divisor(i, j).

    The gather form of "each window hands gy / divisor to its elements": the
    thread owning (h, v) visits the output rows i with
    ``i*sh - ph <= h < i*sh - ph + KH`` (and likewise columns), in (i, j)
    order like cpu.py.  Such a window contains a real element, so its
    divisor is never 0.
    """
    N, C, H, W = gx.shape
    OH, OW = gy.shape[2], gy.shape[3]
    zero = gx.dtype.type(0)
    for e in range(cuda.grid(1), N * C * H * W, cuda.gridsize(1)):
        v = e % W
        t = e // W
        h = t % H
        t //= H
        c = t % C
        n = t // C
        # first/last window index covering h: ceil((h + ph - KH + 1) / sh) .. floor((h + ph) / sh)
        a = h + ph - KH + 1
        ilo = (a + sh - 1) // sh if a > 0 else 0
        ihi = min((h + ph) // sh, OH - 1)
        a = v + pw - KW + 1
        jlo = (a + sw - 1) // sw if a > 0 else 0
        jhi = min((v + pw) // sw, OW - 1)
        acc = zero
        for i in range(ilo, ihi + 1):
            h0, h1, hp = _avg_window(i, sh, ph, KH, H)
            for j in range(jlo, jhi + 1):
                w0, w1, wp = _avg_window(j, sw, pw, KW, W)
                div = _avg_divisor(h0, h1, hp, w0, w1, wp, count_include_pad, divisor_override)
                acc += gy[n, c, i, j] / gx.dtype.type(div)
        gx[n, c, h, v] = acc


# ==========================================================================
# Matrix product, elementwise kernels, copies
# ==========================================================================

@cuda.jit
def _matmul_tiled(a, b, c):
    """c = a @ b with TILE x TILE shared-memory tiles; one thread per element of c.

    See :func:`matmul` for the step-by-step description.
    """
    M, K = a.shape
    N = b.shape[1]
    sa = cuda.shared.array((TILE, TILE), dtype=a.dtype)  # a[row block, k tile]
    sb = cuda.shared.array((TILE, TILE), dtype=a.dtype)  # b[k tile, column block]
    tx = cuda.threadIdx.x  # column inside the tile: neighbouring threads read neighbouring addresses
    ty = cuda.threadIdx.y
    row = cuda.blockIdx.y * TILE + ty
    col = cuda.blockIdx.x * TILE + tx
    zero = c.dtype.type(0)
    acc = zero
    for k0 in range(0, K, TILE):
        # every thread loads one element of each tile; outside the matrices
        # it loads 0, so the partial last tiles need no special case
        sa[ty, tx] = a[row, k0 + tx] if row < M and k0 + tx < K else zero
        sb[ty, tx] = b[k0 + ty, col] if k0 + ty < K and col < N else zero
        cuda.syncthreads()  # the tiles are complete before anyone reads them
        for kk in range(TILE):
            acc += sa[ty, kk] * sb[kk, tx]
        cuda.syncthreads()  # everyone is done reading before the next load overwrites them
    if row < M and col < N:
        c[row, col] = acc


@cuda.jit
def _fill(out, value):
    """out[k] = value (flat)."""
    for k in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[k] = value


@cuda.jit
def _relu_fwd(x, y):
    """y = max(x, 0) (flat); NaN stays NaN, like NumPy's maximum and PyTorch."""
    zero = x.dtype.type(0)
    for k in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        val = x[k]
        y[k] = zero if val < zero else val


@cuda.jit
def _relu_bwd(gy, y, gx):
    """gx = gy where y > 0, else 0 (flat)."""
    zero = gx.dtype.type(0)
    for k in range(cuda.grid(1), gy.size, cuda.gridsize(1)):
        gx[k] = gy[k] if y[k] > 0 else zero


# Copies into a fresh C-contiguous array, converting the dtype on the store.
# One kernel per rank: a strided source can only be indexed with its own
# number of subscripts (a non-contiguous device array cannot be reshaped).

@cuda.jit
def _copy_1d(src, dst):
    for k in range(cuda.grid(1), dst.size, cuda.gridsize(1)):
        dst[k] = src[k]


@cuda.jit
def _copy_2d(src, dst):
    B = dst.shape[1]
    for k in range(cuda.grid(1), dst.size, cuda.gridsize(1)):
        dst[k // B, k % B] = src[k // B, k % B]


@cuda.jit
def _copy_3d(src, dst):
    B, D = dst.shape[1], dst.shape[2]
    for k in range(cuda.grid(1), dst.size, cuda.gridsize(1)):
        t = k // D
        dst[t // B, t % B, k % D] = src[t // B, t % B, k % D]


@cuda.jit
def _copy_4d(src, dst):
    B, D, E = dst.shape[1], dst.shape[2], dst.shape[3]
    for k in range(cuda.grid(1), dst.size, cuda.gridsize(1)):
        u = k % E
        t = k // E
        v = t % D
        t //= D
        dst[t // B, t % B, v, u] = src[t // B, t % B, v, u]


_COPY = {1: _copy_1d, 2: _copy_2d, 3: _copy_3d, 4: _copy_4d}


# ==========================================================================
# Python-level helpers (host side: shapes and launches only, no data)
# ==========================================================================

_FLOATS = (np.float32, np.float64)


def _device(a, name: str):
    """``a`` as a numba device array; TypeError naming the argument otherwise."""
    if cuda.devicearray.is_cuda_ndarray(a):
        return a
    if hasattr(a, "__cuda_array_interface__"):  # CuPy, PyTorch CUDA tensors, ...: zero-copy view
        return cuda.as_cuda_array(a)
    raise TypeError(
        f"{name} must be a CUDA device array (numba.cuda.to_device / cuda.device_array, or an "
        f"object with __cuda_array_interface__), got {type(a).__name__}"
    )


def _contiguous(a, dtype):
    """``a`` itself if it is C-contiguous of ``dtype``, else a converted copy made on the GPU."""
    dtype = np.dtype(dtype)
    if a.dtype == dtype and a.is_c_contiguous():
        return a
    out = cuda.device_array(a.shape, dtype=dtype)
    if a.size == 0:
        return out
    if a.is_c_contiguous():
        _copy_1d[grid_1d(a.size)](a.reshape(a.size), out.reshape(out.size))
    elif a.ndim in _COPY:
        _COPY[a.ndim][grid_1d(a.size)](a, out)
    else:
        raise ValueError(f"non-contiguous device arrays of {a.ndim} dimensions are not supported, got shape {a.shape}")
    return out


def _float_c(a, name: str, dtype=None):
    """C-contiguous float32/float64 device array (mirrors cpu._float_c, messages included).

    ``dtype=None``: ``a`` must already be float32/float64 (TypeError naming
    ``name`` otherwise).  Given a dtype, ``a`` is converted to it on the GPU
    if needed, as cpu.py converts a second operand to the first's dtype.
    """
    a = _device(a, name)
    if dtype is None:
        if a.dtype.type not in _FLOATS:
            raise TypeError(f"{name} must be float32 or float64, got {a.dtype}")
        dtype = a.dtype
    return _contiguous(a, dtype)


def _zeros(shape, dtype):
    out = cuda.device_array(shape, dtype=dtype)
    if out.size:
        _fill[grid_1d(out.size)](out.reshape(out.size), out.dtype.type(0))
    return out


def _no_bias(dtype):
    """An empty array standing for "no bias" (kernel arguments cannot be None)."""
    return cuda.device_array(0, dtype=dtype)


def _conv_fwd(x, w, b, stride, pad4, dilation, groups, OH, OW):
    y = cuda.device_array((x.shape[0], w.shape[0], OH, OW), dtype=x.dtype)
    _conv2d_fwd[grid_1d(y.size)](
        x, w, _no_bias(x.dtype) if b is None else b, y,
        stride[0], stride[1], pad4[0], pad4[2], dilation[0], dilation[1], groups)
    return y


def _conv_bwd_input(gy, w, b, x_shape, stride, pad4, dilation, groups):
    gx = cuda.device_array(tuple(x_shape), dtype=gy.dtype)
    _conv2d_bwd_input[grid_1d(gx.size)](
        gy, w, _no_bias(gy.dtype) if b is None else b, gx,
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
# Public API (mirrors cpu.py)
# ==========================================================================

def conv2d_forward(x, w, b, stride, padding, dilation, groups):
    """2-D cross-correlation; see ``reference.conv2d_forward`` for the formula.

    x (N, C, H, W), w (O, C/groups, KH, KW), b (O,) or None -> y (N, O, OH, OW),
    one GPU thread per element of y.
    """
    x = _float_c(x, "x")
    w = _float_c(w, "w", x.dtype)
    b = None if b is None else _float_c(b, "b", x.dtype)
    stride, pad4, dilation = shapes.conv_args(stride, padding, dilation)
    OH, OW = shapes.check_conv2d(x.shape, w.shape, None if b is None else b.shape, stride, pad4, dilation, groups)
    return _conv_fwd(x, w, b, stride, pad4, dilation, groups, OH, OW)


def conv2d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    """Gradient of conv2d w.r.t. its input (= conv_transpose2d's forward).

    gy (N, O, OH, OW) -> gx of shape ``x_shape``, one thread per element of gx
    (gather, no atomics).
    """
    gy = _float_c(gy, "gy")
    w = _float_c(w, "w", gy.dtype)
    stride, pad4, dilation = shapes.check_conv2d_grad(
        x_shape, w.shape, gy.shape, stride, padding, dilation, groups)
    return _conv_bwd_input(gy, w, None, tuple(x_shape), stride, pad4, dilation, groups)


def conv2d_backward_weight(x, gy, w_shape, stride, padding, dilation, groups):
    """Gradient of conv2d w.r.t. its weight: (N,C,H,W), (N,O,OH,OW) -> ``w_shape``.

    One block per weight element, shared-memory reduction over N*OH*OW.
    """
    x = _float_c(x, "x")
    gy = _float_c(gy, "gy", x.dtype)
    stride, pad4, dilation = shapes.check_conv2d_grad(
        x.shape, w_shape, gy.shape, stride, padding, dilation, groups)
    return _conv_bwd_weight(x, gy, tuple(w_shape), stride, pad4, dilation, groups)


def conv2d_backward(x, gy, w, stride, padding, dilation, groups, need_input=True, need_weight=True,
                    need_bias=True):
    """All gradients of conv2d in one call: (gx, gw, gb), None for those not asked for.

    On the GPU the input and weight kernels run one after the other, and the
    bias gradient sum_{n,i,j} gy[n, o, i, j] is one block per channel.
    """
    x = _float_c(x, "x")
    gy = _float_c(gy, "gy", x.dtype)
    w = _float_c(w, "w", x.dtype)
    stride, pad4, dilation = shapes.check_conv2d_grad(x.shape, w.shape, gy.shape, stride, padding, dilation, groups)
    gx = _conv_bwd_input(gy, w, None, tuple(x.shape), stride, pad4, dilation, groups) if need_input else None
    gw = _conv_bwd_weight(x, gy, tuple(w.shape), stride, pad4, dilation, groups) if need_weight else None
    gb = _conv_bwd_bias(gy) if need_bias else None
    return gx, gw, gb


def conv_transpose2d_forward(x, w, b, stride, padding, output_padding, groups, dilation):
    """Transposed convolution = conv2d_backward_input with x in the role of gy (bias added last).

    x (N, C_in, H, W), w (C_in, C_out/groups, KH, KW), b (C_out,) or None.
    """
    x = _float_c(x, "x")
    w = _float_c(w, "w", x.dtype)
    b = None if b is None else _float_c(b, "b", x.dtype)
    stride, pad4, dilation = shapes.conv_args(stride, padding, dilation)
    oh, ow = shapes.check_conv_transpose2d(
        x.shape, w.shape, None if b is None else b.shape, stride, pad4, output_padding, groups, dilation
    )
    return _conv_bwd_input(x, w, b, (x.shape[0], w.shape[1] * groups, oh, ow), stride, pad4, dilation, groups)


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

    x (N, C, H, W) -> (y, indices), both (N, C, OH, OW); ``indices`` holds
    ``h*W + w`` inside the (n, c) plane.  A window that contains no input
    element (only possible with dilation) gives -inf and index -1; the
    backward pass ignores such indices.
    """
    x = _float_c(x, "x")
    (KH, KW), (sh, sw), (ph, pw), (dh, dw) = shapes.pool_args(kernel_size, stride, padding, dilation)
    OH, OW = shapes.check_pool2d(x.shape, (KH, KW), (sh, sw), (ph, pw), (dh, dw), ceil_mode, "max_pool2d")
    N, C = x.shape[:2]
    y = cuda.device_array((N, C, OH, OW), dtype=x.dtype)
    idx = cuda.device_array((N, C, OH, OW), dtype=np.int64)
    _max_pool_fwd[grid_1d(y.size)](x, y, idx, KH, KW, sh, sw, ph, pw, dh, dw)
    return y, idx


def max_pool2d_backward(gy, indices, x_shape):
    """Add gy to the argmax positions: gx[n, c].flat[indices[n,c,i,j]] += gy[n,c,i,j].

    Race-free: one thread per (n, c) plane (see :func:`_max_pool_bwd`).
    """
    gy = _float_c(gy, "gy")
    indices = _contiguous(_device(indices, "indices"), np.int64)
    N, C, H, W = shapes.check_4d(x_shape, "x_shape")
    if tuple(indices.shape) != tuple(gy.shape) or tuple(gy.shape[:2]) != (N, C):
        raise ValueError(
            f"gy {tuple(gy.shape)} and indices {tuple(indices.shape)} must have the same shape (N={N}, C={C}, OH, OW)")
    gx = _zeros((N, C, H, W), gy.dtype)
    _max_pool_bwd[grid_1d(N * C)](gy, indices, gx)
    return gx


def _avg_args(kernel_size, stride, padding, divisor_override):
    k, s, p, _ = shapes.pool_args(kernel_size, stride, padding)
    if divisor_override is not None and divisor_override == 0:
        raise ValueError("divisor_override must be non-zero, got 0")
    return k, s, p, 0 if divisor_override is None else int(divisor_override)


def avg_pool2d_forward(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override=None):
    """Average pooling with PyTorch's divisor rule; see ``reference.avg_pool2d_forward``.

    Divisor: ``divisor_override`` if given; else with ``count_include_pad``
    the window size clipped to the padded input; else the number of real
    elements in the window.  One thread per output.
    """
    x = _float_c(x, "x")
    (KH, KW), (sh, sw), (ph, pw), div = _avg_args(kernel_size, stride, padding, divisor_override)
    OH, OW = shapes.check_pool2d(x.shape, (KH, KW), (sh, sw), (ph, pw), 1, ceil_mode, "avg_pool2d")
    y = cuda.device_array(tuple(x.shape[:2]) + (OH, OW), dtype=x.dtype)
    _avg_pool_fwd[grid_1d(y.size)](x, y, KH, KW, sh, sw, ph, pw, bool(count_include_pad), div)
    return y


def avg_pool2d_backward(gy, x_shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override=None):
    """Adjoint of average pooling (each window's elements get gy / divisor); one thread per element of gx."""
    gy = _float_c(gy, "gy")
    (KH, KW), (sh, sw), (ph, pw), div = _avg_args(kernel_size, stride, padding, divisor_override)
    OH, OW = shapes.check_pool2d(x_shape, (KH, KW), (sh, sw), (ph, pw), 1, ceil_mode, "avg_pool2d")
    shapes.check_grad_shape(gy.shape, tuple(x_shape[:2]) + (OH, OW), "gy")
    gx = cuda.device_array(tuple(x_shape), dtype=gy.dtype)
    _avg_pool_bwd[grid_1d(gx.size)](gy, gx, KH, KW, sh, sw, ph, pw, bool(count_include_pad), div)
    return gx


def matmul(a, b):
    """c = a @ b for 2-D a (M, K), b (K, N), with the shared-memory tiled kernel.

    Why tiles: computed naively, every thread (one per c[i, j]) reads a whole
    row of a and a whole column of b from global memory, so each element of
    a is read N times and each element of b M times.  Global memory is slow
    (hundreds of cycles); shared memory is a small on-chip scratchpad that
    the threads of one block share at close to register speed.  Tiling makes
    the threads of a block *cooperate* so that each global element is loaded
    once per block instead of once per thread:

    1. The output c is cut into TILE x TILE squares (TILE = 16 on a GPU, 8
       under the simulator); one block of
       TILE x TILE threads computes one square, one thread per element
       (thread (ty, tx) owns c[row, col], row = block_y*TILE + ty,
       col = block_x*TILE + tx).
    2. The sum over k is cut into chunks of TILE.  For each chunk k0:
       a. every thread copies ONE element of a (a[row, k0 + tx]) and ONE
          element of b (b[k0 + ty, col]) into the shared tiles ``sa`` and
          ``sb``; together the block has loaded a TILE x TILE piece of each.
          Positions outside the matrices load 0, which adds nothing, so
          ragged edges need no special code;
       b. ``cuda.syncthreads()``: wait until the whole block has stored its
          elements, since each thread is about to read elements others loaded;
       c. every thread does TILE multiply-adds from shared memory:
          acc += sa[ty, kk] * sb[kk, tx] for kk in 0..TILE-1;
       d. ``cuda.syncthreads()`` again: nobody may overwrite the tiles with
          the next chunk while a slower thread is still reading them.
    3. After the last chunk each thread in range writes its acc to c.

    Each element loaded from global memory is now used TILE times (16x less
    global traffic), and threads with neighbouring tx read neighbouring
    addresses, so each load is one wide (coalesced) memory transaction.  The
    sum over k runs in order in one accumulator, so the result is
    deterministic (it is not bit-identical to BLAS, which sums differently).
    """
    a = _device(a, "a")
    if a.dtype.type not in _FLOATS:
        raise TypeError(f"a must be float32 or float64, got {a.dtype}")
    a = _contiguous(a, a.dtype)
    b = _float_c(b, "b", a.dtype)
    M, N = shapes.check_matmul(a.shape, b.shape)
    c = cuda.device_array((M, N), dtype=a.dtype)
    if M and N:
        blocks, threads = tile_2d(M, N, TILE)
        _matmul_tiled[blocks, threads](a, b, c)
    return c


def relu_forward(x):
    """y = max(x, 0), elementwise (see ``reference.relu_forward``); NaN propagates."""
    x = _device(x, "x")
    x = _contiguous(x, x.dtype)
    y = cuda.device_array(x.shape, dtype=x.dtype)
    if x.size:
        _relu_fwd[grid_1d(x.size)](x.reshape(x.size), y.reshape(y.size))
    return y


def relu_backward(gy, y):
    """gx = gy where the ReLU's output y is positive, else 0 (see ``reference.relu_backward``)."""
    gy = _device(gy, "gy")
    gy = _contiguous(gy, gy.dtype)
    y = _device(y, "y")
    y = _contiguous(y, y.dtype)
    shapes.check_grad_shape(gy.shape, y.shape, "gy")
    gx = cuda.device_array(gy.shape, dtype=gy.dtype)
    if gy.size:
        _relu_bwd[grid_1d(gy.size)](gy.reshape(gy.size), y.reshape(y.size), gx.reshape(gx.size))
    return gx
