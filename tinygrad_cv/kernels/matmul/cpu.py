"""Matrix products, CPU twin: BLAS, on one thread for small products.

``matmul`` is ``np.dot`` (BLAS), or for mid-sized products
``matmul_split``: BLAS calls on blocks of the result, one per core, in a
Numba parallel loop; ``matmul_blocked`` is the hand-written cache-blocked
teaching version (3-30x slower than BLAS, see bench), kept out of the
contract. ``linear_forward`` / ``linear_backward`` are the fully
connected layer's three products through ``matmul``.

Threads that wait for each other
--------------------------------
Two thread pools share the two cores: Numba's OpenMP workers (the other
kernels) and OpenBLAS's (every ``np.dot``). Each kind of worker spins for a
while after its work ends, waiting for more, and a spinning worker steals
the core that the other pool's next call needs: a 0.3 ms GEMM took 8 ms.
OpenBLAS's workers spin longest (about 0.1 s), and an FC layer's GEMM runs
in every step, so they fought every Numba kernel of a LeNet step.
:func:`matmul` therefore runs products below ``_BLAS_ONE_THREAD_WORK``
multiply-adds on one BLAS thread, switched per call through threadpoolctl
(~2 us): there are then no BLAS workers to spin. (OpenMP's side of the
story, ``GOMP_SPINCOUNT``, is in ``kernels/jit.py``.)

Arguments are checked by the caller (``kernels/contract.py``).
"""
from __future__ import annotations

import itertools
import threading

import numpy as np
from numba import prange

from .. import jit, shapes
from ..jit import njit
from ..host import FLOATS as _FLOATS
from ..host import float_c as _float_c

_PAR = jit.PAR


def _float_operands(a, b):
    """(a, b) as arrays of a's float dtype, views where possible (BLAS reads transposed views as they are)."""
    a = np.asarray(a)
    if a.dtype.type not in _FLOATS:
        raise TypeError(f"a must be float32 or float64, got {a.dtype}")
    return a, np.asarray(b, dtype=a.dtype)


def matmul(a, b):
    """c = a @ b for 2-D a (M, K), b (K, N) via BLAS.

    ``np.dot``: BLAS reads transposed views (``W.T``) through its
    transpose flags without a copy, and calling it from Python avoids a Numba
    dispatch on top of an already-tiny FC-layer GEMM.  Products below
    ``_BLAS_ONE_THREAD_WORK`` multiply-adds run BLAS on one thread per
    core: one call (below ``_SPLIT_WORK``) or :func:`matmul_split`'s blocks
    (see the module docstring and the measurements at the thresholds).
    """
    a, b = _float_operands(a, b)
    work = a.shape[0] * b.shape[1] * a.shape[1]
    if work >= _BLAS_ONE_THREAD_WORK:
        return np.dot(a, b)
    if work < _SPLIT_WORK:
        return _dot_one_thread(a, b)
    return matmul_split(a, b)


# Below _BLAS_ONE_THREAD_WORK multiply-adds a matrix product runs on one BLAS
# thread per core, as parallel blocks (matmul_split); below _SPLIT_WORK as one
# call on one thread in all: splitting costs ~8 us (a parallel launch, and each
# block packs the shared operand again). Measured, 2 cores, float32, median us,
# (M, K, N): one call on one thread / two blocks / OpenBLAS's own two threads:
# (128, 84, 10) 10 / 18 / 6; (128, 120, 84) 37 / 39 / 24; (256, 120, 84) 68 / 57 / 42;
# (64, 400, 120) 81 / 76 / 63; (128, 400, 120) 146 / 107 / 78;
# (128, 512, 1000) 1471 / 879 / 761. OpenBLAS's threads are quicker alone but
# spin after each call (module docstring); above _BLAS_ONE_THREAD_WORK that
# no longer matters and they run. The split starts at 4 M, not at the
# break-even near 2 M: below 4 M it saves a few microseconds a call, and
# compiling its kernel costs a first run about a second (LeNet-5 at batch 64,
# 3 M, then needs no extra kernel).
_BLAS_ONE_THREAD_WORK = 1 << 26
_SPLIT_WORK = 1 << 22
_SPLIT_PARTS = 2  # fixed, not the thread count: the blocks, and so the rounding, are the same on any machine
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
    """(get_num_threads, set_num_threads) of each BLAS library NumPy and SciPy load (found once, ~2 ms).

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
        # Numba's compiled np.dot calls the BLAS that SciPy bundles (through scipy.linalg.cython_blas),
        # a library of its own next to NumPy's: load it first so that it is found and switched too.
        import scipy.linalg.cython_blas  # noqa: F401
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


class blas_one_thread:
    """``with blas_one_thread():`` runs every BLAS library on one thread inside the block (~2 us in and out).

    Used around single products (:func:`matmul`) and around Numba kernels
    that call BLAS from each of their own threads (the chunked GEMM
    convolution): one BLAS thread per caller, no BLAS workers to wait for.
    Thread-safe and re-entrant: overlapping blocks from several threads share
    one switch (see ``_BLAS_LOCK``), and the count in force before the first
    of them is restored after the last.
    """

    __slots__ = ()

    def __enter__(self):
        global _BLAS_SAVED, _BLAS_ONE_THREAD_CALLS
        libs = _blas_libs()
        with _BLAS_LOCK:
            if _BLAS_ONE_THREAD_CALLS == 0:
                _BLAS_SAVED = [get() for get, _ in libs]
                for _, put in libs:
                    put(1)
            _BLAS_ONE_THREAD_CALLS += 1
        return self

    def __exit__(self, *exc):
        global _BLAS_ONE_THREAD_CALLS
        with _BLAS_LOCK:
            _BLAS_ONE_THREAD_CALLS -= 1
            if _BLAS_ONE_THREAD_CALLS == 0:
                for (_, put), n in zip(_blas_libs(), _BLAS_SAVED):
                    put(n)
        return False


def _dot_one_thread(a, b):
    """np.dot with BLAS limited to one thread for this call."""
    with blas_one_thread():
        return np.dot(a, b)


def _gemm_routine(dtype):
    """SciPy's BLAS ``sgemm`` / ``dgemm`` as a ctypes function (13 pointers: Fortran passes all by reference).

    It is handed to the kernel as an argument, not read as a global: Numba
    cannot cache a kernel that holds a ctypes pointer as a constant, and the
    address changes from process to process anyway.
    """
    fn = _GEMM.get(dtype)
    if fn is None:
        import ctypes

        from numba.extending import get_cython_function_address

        name = "sgemm" if dtype == np.float32 else "dgemm"
        address = get_cython_function_address("scipy.linalg.cython_blas", name)
        fn = _GEMM[dtype] = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * 13))(address)
    return fn


_GEMM = {}


def _storage(x):
    """(s, transposed): a C-contiguous array s with x == (s.T if transposed else s), copying only if needed."""
    if x.flags.c_contiguous:
        return x, False
    if x.T.flags.c_contiguous:  # a transposed view such as W.T: BLAS reads it through its flag
        return x.T, True
    return np.ascontiguousarray(x), False


def matmul_split(a, b, parts=None):
    """c = a @ b as ``parts`` BLAS calls on blocks of c, run in parallel, BLAS on one thread in each.

    c (M, N) is cut along its longer side into ``parts`` blocks (whole
    multiples of 16 rows or columns but the last); block p is
    op(a)[rows_p] @ op(b) or op(a) @ op(b)[:, cols_p], one ``gemm`` over the
    full inner dimension K, so every element is summed over K by a single
    call - and the blocks depend on ``parts``, not on the thread count, so
    neither does the result. Numba's threads run the blocks rather than
    BLAS's own, which are quicker alone but spin after the call, fighting
    the Numba workers of the next kernel (module docstring).
    """
    a, b = _float_operands(a, b)  # not a contract function: it checks its own arguments
    M, N = shapes.check_matmul(a.shape, b.shape)
    parts = _SPLIT_PARTS if parts is None else int(parts)
    if parts < 1:
        raise ValueError(f"parts must be at least 1, got {parts}")
    c = np.empty((M, N), dtype=a.dtype)
    if c.size == 0 or a.shape[1] == 0:
        c[...] = 0
        return c
    sa, ta = _storage(a)
    sb, tb = _storage(b)
    with blas_one_thread():
        _gemm_blocks(_gemm_routine(a.dtype.type), sa, ta, sb, tb, c, parts)
    return c


def matmul_blocked(a, b, block=(64, 128, 128)):
    """c = a @ b with the hand-written cache-blocked parallel kernel (teaching version).

    ``block`` = (rows, columns, k-panel) of a tile. Not a contract function
    (the library calls BLAS), so it checks its own arguments.
    """
    a = _float_c(a, "a")
    b = _float_c(b, "b", a.dtype)
    M, N = shapes.check_matmul(a.shape, b.shape)
    c = np.empty((M, N), dtype=a.dtype)
    MB, NB, KB = block
    _matmul_blocked(a, b, c, MB, NB, KB)
    return c


def linear_forward(x, w, b):
    """y = x @ w.T + b for x (M, K), w (N, K), b (N,) or None (see ``reference.linear_forward``).

    BLAS reads ``w.T`` through its transpose flag: no copy.
    """
    y = matmul(x, w.T)
    if b is not None:
        y += b  # y is a fresh array of our own
    return y


def linear_backward(grad, x, w, need_input=True, need_weight=True, need_bias=True):
    """(g @ w, g.T @ x, g.sum(0)) for g (M, N), each None unless asked for."""
    gx = matmul(grad, w) if need_input else None
    gw = matmul(grad.T, x) if need_weight else None
    gb = grad.sum(0) if need_bias else None
    return gx, gw, gb


# ==========================================================================
# Parallel blocks of one BLAS product
# ==========================================================================

@njit(**_PAR)
def _gemm_blocks(gemm, sa, ta, sb, tb, c, parts):
    """c = op(a) @ op(b), op(x) = x.T if its flag is set else x, in up to ``parts`` parallel gemm calls.

    ``sa``, ``sb`` are C-contiguous (row-major); BLAS is column-major, and a
    row-major matrix is its transpose in column-major order, so each block is
    computed as c_blk.T = op(b)_blk.T @ op(a)_blk.T: the operands swap places
    and keep their transpose flags. A block of c's rows starts at row d0 of
    op(a) (row d0 of sa, or column d0 when ta); a block of columns at column
    d0 of op(b). Leading dimensions are the storage row lengths.
    """
    M, N = c.shape
    K = sa.shape[0] if ta else sa.shape[1]
    lda = sa.shape[1]
    ldb = sb.shape[1]
    by_rows = M >= N
    D = M if by_rows else N
    step = (D + parts - 1) // parts
    step = min(D, (step + 15) // 16 * 16)
    blocks = (D + step - 1) // step
    fa = sa.ravel()
    fb = sb.ravel()
    fc = c.ravel()
    for p in prange(blocks):
        d0 = p * step
        d1 = min(D, d0 + step)
        ints = np.empty(6, np.int32)  # m, n, k, lda, ldb, ldc of the column-major call
        coef = np.zeros(2, c.dtype)   # alpha = 1, beta = 0
        coef[0] = 1
        flags = np.empty(2, np.uint8)
        flags[0] = 84 if tb else 78  # 'T' / 'N'
        flags[1] = 84 if ta else 78
        ints[2] = K
        ints[3] = ldb
        ints[4] = lda
        ints[5] = N
        if by_rows:
            ints[0] = N
            ints[1] = d1 - d0
            oa = d0 if ta else d0 * lda
            ob = 0
            oc = d0 * N
        else:
            ints[0] = d1 - d0
            ints[1] = M
            oa = 0
            ob = d0 * ldb if tb else d0
            oc = d0
        gemm(flags[0:].ctypes, flags[1:].ctypes, ints[0:].ctypes, ints[1:].ctypes, ints[2:].ctypes,
             coef[0:].ctypes, fb[ob:].ctypes, ints[3:].ctypes, fa[oa:].ctypes, ints[4:].ctypes,
             coef[1:].ctypes, fc[oc:].ctypes, ints[5:].ctypes)


# ==========================================================================
# The teaching kernel
# ==========================================================================

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
