"""Reductions on the GPU: a tree in shared memory, any size.

The input is first arranged as rows, ``(M, R)``: the kept axes in front, the
reduced ones behind, made contiguous. Each *block* then reduces a chunk of
one row:

1. every thread walks its chunk with a stride of the block size, folding
   elements into a private accumulator (so a row of any length fits);
2. the threads write their accumulators to ``shared`` memory - fast on-chip
   memory that all threads of a block see - and halve the active set each
   step, ``sm[t] = op(sm[t], sm[t + s])``, with ``syncthreads()`` between
   steps so nobody reads a value before it is written;
3. thread 0 writes the block's result.

With many chunks per row the results are partial sums, and the same kernel
runs again on them: two or three launches reduce millions of elements.
``argmax``/``argmin`` carry (value, index) pairs through the same tree,
smaller index first on ties, like NumPy.
"""
from __future__ import annotations

import functools

import numpy as np
from numba import cuda

from . import is_simulator
from .launch import grid_1d  # noqa: F401  (importing launch loads numba-cuda once and fixes up the simulator)

# threads per reduction block: a power of two for the halving tree. Under the
# simulator every barrier synchronises Python threads, so blocks stay tiny there.
THREADS = 8 if is_simulator() else 256

_MAX_CHUNKS = 1024
_MAX_ROWS = 65535  # the grid's y dimension; more rows are covered by a stride loop


def _sum(a, b):
    return a + b


def _max(a, b):
    return a if (a > b or a != a) else b


def _min(a, b):
    return a if (a < b or a != a) else b


_OPS = {"sum": _sum, "max": _max, "min": _min}


@functools.cache
def _row_kernel(op, acc_type):
    fn = cuda.jit(device=True)(_OPS[op])
    T = THREADS

    @cuda.jit
    def k(x, M, R, chunk, ident, out):
        c = cuda.blockIdx.x
        t = cuda.threadIdx.x
        sm = cuda.shared.array(T, acc_type)
        row = cuda.blockIdx.y
        while row < M:
            acc = ident
            start = c * chunk
            end = min(start + chunk, R)
            j = start + t
            while j < end:
                acc = fn(acc, x[row * R + j])
                j += T
            sm[t] = acc
            cuda.syncthreads()
            s = T // 2
            while s > 0:
                if t < s:
                    sm[t] = fn(sm[t], sm[t + s])
                cuda.syncthreads()
                s //= 2
            if t == 0:
                out[row * cuda.gridDim.x + c] = sm[0]
            cuda.syncthreads()  # sm is reused by the next row
            row += cuda.gridDim.y

    return k


@functools.cache
def _arg_kernel(largest, val_type):
    T = THREADS

    @cuda.jit(device=True)
    def better(v, j, bv, bj):
        # NaN counts as the extreme (first NaN wins, as NumPy); ties go to the smaller index
        if bj < 0:
            return True
        if bv != bv:
            return v != v and j < bj
        if v != v:
            return True
        if largest:
            return v > bv or (v == bv and j < bj)
        return v < bv or (v == bv and j < bj)

    @cuda.jit
    def k(x, M, R, out):
        t = cuda.threadIdx.x
        sv = cuda.shared.array(T, val_type)
        si = cuda.shared.array(T, np.int64)
        row = cuda.blockIdx.x
        while row < M:
            bv = x[row * R]
            bj = -1
            j = t
            while j < R:
                v = x[row * R + j]
                if better(v, j, bv, bj):
                    bv = v
                    bj = j
                j += T
            sv[t] = bv
            si[t] = bj
            cuda.syncthreads()
            s = T // 2
            while s > 0:
                if t < s and si[t + s] >= 0 and better(sv[t + s], si[t + s], sv[t], si[t]):
                    sv[t] = sv[t + s]
                    si[t] = si[t + s]
                cuda.syncthreads()
                s //= 2
            if t == 0:
                out[row] = si[0]
            cuda.syncthreads()
            row += cuda.gridDim.x

    return k


def _identity(op, dtype):
    if op == "sum":
        return dtype.type(0)
    if dtype.kind == "f":
        return dtype.type(-np.inf if op == "max" else np.inf)
    info = np.iinfo(dtype)
    return dtype.type(info.min if op == "max" else info.max)


def reduce_rows(x, M, R, op, acc_dtype):
    """Reduce a contiguous flat device buffer seen as (M, R) along R; returns a flat (M,) buffer."""
    acc_dtype = np.dtype(acc_dtype)
    ident = _identity(op, acc_dtype)
    out = None
    while True:
        nchunks = max(1, min(_MAX_CHUNKS, -(-R // (THREADS * 8))))
        chunk = -(-R // nchunks) if R else 0
        out = cuda.device_array(M * nchunks, dtype=acc_dtype)
        if M:
            _row_kernel(op, acc_dtype.type)[(nchunks, min(M, _MAX_ROWS)), THREADS](x, M, R, chunk, ident, out)
        if nchunks == 1:
            return out
        x, R = out, nchunks


def arg_rows(x, M, R, largest):
    """Index of the max (``largest``) or min of each row of a contiguous (M, R) buffer; flat int64 (M,)."""
    out = cuda.device_array(M, dtype=np.int64)
    if M:
        _arg_kernel(bool(largest), x.dtype.type)[min(M, _MAX_ROWS), THREADS](x, M, R, out)
    return out
