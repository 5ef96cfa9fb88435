"""The GPU array's matrix product: the shared-memory tiled kernel.

NumPy's ``a @ b`` runs on BLAS; ``CudaArray``'s runs here. The matmul twin
of the kernel contract (``tinygrad_cv/kernels/matmul/cuda.py``) calls it too,
as the CPU twin calls BLAS.

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
from __future__ import annotations

from numba import cuda

from . import is_simulator
from .launch import tile_2d

#: side of the square tiles (a block is TILE x TILE threads). Under the simulator every
#: syncthreads() is a round of Python thread switches, so tiles are small there.
TILE = 8 if is_simulator() else 16


@cuda.jit
def _matmul_tiled(a, b, c):
    """c = a @ b with TILE x TILE shared-memory tiles; one thread per element of c.

    See the module docstring for the step-by-step description.
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


def tiled_matmul(a, b):
    """c = a @ b for C-contiguous 2-D device arrays a (M, K), b (K, N) of one float dtype -> new (M, N).

    K may be 0 (c is then zeros). Nothing is checked: callers hand over
    arrays of matching shapes (``CudaArray``'s ``@`` and the kernel twin do).
    """
    M, N = a.shape[0], b.shape[1]
    c = cuda.device_array((M, N), dtype=a.dtype)
    if M and N:
        blocks, threads = tile_2d(M, N, TILE)
        _matmul_tiled[blocks, threads](a, b, c)
    return c
