"""What every family's CUDA twin shares: device-array handling, launch sizes, block reductions.

The CUDA twins take and return numba CUDA *device arrays* and never copy
anything to the host. (``kernels/cuda.py`` puts the ``CudaArray``s of GPU
tensors in and takes them back out.) Without a GPU, Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``) runs the very same kernels in Python threads,
which is how the tests check them.

Why gathers, and fixed orders
-----------------------------
A GPU runs thousands of threads at once and has no cheap way to let two of
them add into the same memory cell (atomics serialise, and floating-point
addition in whatever order the threads happen to arrive is not
reproducible). So wherever the formula allows, a kernel is written as a
**gather**: each thread *owns* one output element, reads whatever inputs it
needs, and writes its element once. Sums that many threads share go through
the block reductions below: each thread folds its share into a register,
then the block adds the partial sums pairwise in shared memory (a tree,
halving the active threads each step). The order of every addition is
fixed, so the results are the same on every run.

Elementwise and "one thread per output" kernels use a grid-stride loop (see
``tinygrad_cv.cuda.launch``), so any size works with a bounded grid;
row-wise kernels (softmax, batch-norm statistics) use one block per row or
channel, the block's threads striding over it, blocks striding over rows.

Dtypes: accumulation happens in the array dtype (float32 or float64), like
the CPU twins. A bare Python float literal inside a kernel is a float64 and
would silently turn float32 arithmetic into (slow, on most GPUs) float64, so
constants are made with ``arr.dtype.type(value)``, which Numba types as the
array's own dtype, and scalars from the host are passed as ``dtype.type(v)``.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from .. import cuda as _gpu

# Fail at import with a message that says what is missing (numba-cuda, the
# driver, a GPU) rather than with an ImportError or on the first launch.
_gpu.require()

from numba import cuda  # noqa: E402

from ..cuda.launch import MAX_BLOCKS, THREADS, grid_1d  # noqa: E402,F401  (re-exported for the families)

FLOATS = (np.float32, np.float64)
is_simulator = _gpu.is_simulator

#: largest block a row-wise kernel uses; shared-memory scratch arrays are sized for it
MAX_THREADS = 256
#: most blocks a row-wise launch uses; blocks stride over the remaining rows (tests lower it)
_MAX_ROW_BLOCKS = MAX_BLOCKS

# Under the simulator the kernels run as Python, where math.exp overflows with
# an exception and math.log(0) raises, while the GPU returns inf / -inf; NumPy's
# versions follow IEEE like the GPU (and keep float32 scalars float32).
if _gpu.is_simulator():
    exp, log, sqrt = np.exp, np.log, np.sqrt
else:
    exp, log, sqrt = math.exp, math.log, math.sqrt


# ==========================================================================
# Device arrays in
# ==========================================================================

def device(a, name: str):
    """``a`` as a numba device array; TypeError naming the argument otherwise (host arrays are refused)."""
    if cuda.devicearray.is_cuda_ndarray(a):
        return a
    if hasattr(a, "__cuda_array_interface__"):  # CuPy, PyTorch CUDA tensors, ...: zero-copy view
        return cuda.as_cuda_array(a)
    raise TypeError(
        f"{name} must be a CUDA device array (numba.cuda.to_device / cuda.device_array, or an "
        f"object with __cuda_array_interface__), got {type(a).__name__}"
    )


def contiguous(a, dtype):
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


def float_c(a, name: str, dtype=None):
    """C-contiguous float32/float64 device array (mirrors ``host.float_c``, messages included).

    ``dtype=None``: ``a`` must already be float32/float64 (TypeError naming
    ``name`` otherwise). Given a dtype, ``a`` is converted to it on the GPU
    if needed, as the CPU twin converts a second operand to the first's dtype.
    """
    a = device(a, name)
    if dtype is None:
        if a.dtype.type not in FLOATS:
            raise TypeError(f"{name} must be float32 or float64, got {a.dtype}")
        dtype = a.dtype
    return contiguous(a, dtype)


def float_array(x, name: str, dtype=None):
    """``x`` as a C-contiguous float32/float64 device array of ``dtype`` (when given); no conversion.

    The fused kernels (softmax, loss, batch norm, optimiser steps) refuse to
    convert: a mismatched dtype there is a bug in the caller, not a convenience.
    """
    x = device(x, name)
    if x.dtype not in FLOATS:
        raise TypeError(f"{name} must be float32 or float64, got {x.dtype}")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{name} has dtype {x.dtype}, expected {np.dtype(dtype)} (the dtype of the other inputs)")
    if not x.is_c_contiguous():
        raise ValueError(f"{name} must be C-contiguous, got shape {x.shape} with strides {x.strides}")
    return x


# ==========================================================================
# Device arrays out
# ==========================================================================

def empty(shape, dtype):
    return cuda.device_array(tuple(int(s) for s in shape), dtype=dtype)


def zeros(shape, dtype):
    out = cuda.device_array(shape, dtype=dtype)
    if out.size:
        _fill[grid_1d(out.size)](out.reshape(out.size), out.dtype.type(0))
    return out


@functools.lru_cache(maxsize=None)
def placeholder(dtype, ndim=1):
    """A 1-element device array passed where an optional array is None (kernel arguments cannot be None).

    The kernel never touches it. Cached, so an absent argument costs no
    allocation (one per dtype and rank, ever).
    """
    return cuda.device_array((1,) * ndim, dtype=np.dtype(dtype))


def no_bias(dtype):
    """An empty array standing for "no bias" (the convolution kernels test ``b.shape[0] > 0``)."""
    return cuda.device_array(0, dtype=dtype)


# ==========================================================================
# Launch sizes of row-wise kernels
# ==========================================================================

def row_threads(n: int) -> int:
    """Threads per block for a row of ``n`` values: a power of two (the tree reduction halves it).

    32 under the simulator (every thread is a Python thread); on a GPU the
    smallest power of two covering the row, between 32 (one warp) and 256.
    """
    if _gpu.is_simulator():
        return 32
    t = 32
    while t < n and t < MAX_THREADS:
        t *= 2
    return t


def row_blocks(rows: int) -> int:
    return max(1, min(rows, _MAX_ROW_BLOCKS))


# ==========================================================================
# Block reductions (device functions, any dtype; blockDim.x a power of two)
# ==========================================================================

@cuda.jit(device=True)
def block_sum(sh, v):
    """Sum of every thread's ``v`` over the block, pairwise in shared memory ``sh``; every thread gets it.

    Halving the active threads each step fixes the order of every addition,
    so the result is deterministic. Every thread of the block must call it
    (it contains barriers).
    """
    tid = cuda.threadIdx.x
    sh[tid] = v
    cuda.syncthreads()
    s = cuda.blockDim.x // 2
    while s > 0:
        if tid < s:
            sh[tid] += sh[tid + s]
        cuda.syncthreads()
        s //= 2
    total = sh[0]
    cuda.syncthreads()  # everyone has read sh[0] before the next reduction overwrites it
    return total


@cuda.jit(device=True)
def block_sum2(sh_a, sh_b, a, b):
    """Two block sums in one tree (half the barriers of two :func:`block_sum` calls)."""
    tid = cuda.threadIdx.x
    sh_a[tid] = a
    sh_b[tid] = b
    cuda.syncthreads()
    s = cuda.blockDim.x // 2
    while s > 0:
        if tid < s:
            sh_a[tid] += sh_a[tid + s]
            sh_b[tid] += sh_b[tid + s]
        cuda.syncthreads()
        s //= 2
    ta = sh_a[0]
    tb = sh_b[0]
    cuda.syncthreads()
    return ta, tb


@cuda.jit(device=True)
def block_max(sh, v):
    """Max of ``v`` over the block, NaN-propagating like ``np.max``."""
    tid = cuda.threadIdx.x
    sh[tid] = v
    cuda.syncthreads()
    s = cuda.blockDim.x // 2
    while s > 0:
        if tid < s:
            o = sh[tid + s]
            if o > sh[tid] or o != o:
                sh[tid] = o
        cuda.syncthreads()
        s //= 2
    m = sh[0]
    cuda.syncthreads()
    return m


# ==========================================================================
# Windows
# ==========================================================================

@cuda.jit(device=True)
def tap_range(base, d, k, n):
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


# ==========================================================================
# Fill and copy kernels
# ==========================================================================

@cuda.jit
def _fill(out, value):
    """out[k] = value (flat)."""
    for k in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[k] = value


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
