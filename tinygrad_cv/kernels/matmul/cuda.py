"""Matrix products, CUDA twin: the tiled kernel, plus the fully connected layer's bias.

``matmul`` runs the GPU array's own shared-memory tiled product
(``tinygrad_cv/cuda/matmul.py``, where the tiling is explained), as the CPU
twin runs NumPy's BLAS. The sum over k runs in order in one accumulator, so
results are deterministic (not bit-identical to BLAS, which adds in another
order). The linear layer adds two small kernels: the bias added to every row
(a grid-stride loop) and its gradient, the column sums of g (one block per
column, ``block_sum``'s fixed-order tree). Arguments are checked by the
caller (``kernels/contract.py``); operands are made C-contiguous here.
"""
from __future__ import annotations

from numba import cuda

from ...cuda.matmul import TILE, tiled_matmul  # noqa: F401  (TILE: the tile side, for tests and docs)
from ..cuda_common import (FLOATS, MAX_BLOCKS, MAX_THREADS, block_sum, contiguous, device, empty, float_c, grid_1d,
                           row_threads)


@cuda.jit
def _add_row_vector(y, b):
    """y[m, n] += b[n] (flat grid-stride loop over y)."""
    n = b.shape[0]
    for k in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        y[k // n, k % n] += b[k % n]


@cuda.jit
def _column_sums(g, out):
    """out[n] = sum_m g[m, n]: one block per column, each thread a share of the rows, then a tree."""
    sh = cuda.shared.array(MAX_THREADS, dtype=g.dtype)
    rows, cols = g.shape
    for col in range(cuda.blockIdx.x, cols, cuda.gridDim.x):  # the same bounds for every thread of a block
        acc = g.dtype.type(0)
        for m in range(cuda.threadIdx.x, rows, cuda.blockDim.x):
            acc += g[m, col]
        total = block_sum(sh, acc)
        if cuda.threadIdx.x == 0:
            out[col] = total


def matmul(a, b):
    """c = a @ b for 2-D a (M, K), b (K, N), with the shared-memory tiled kernel (``cuda/matmul.py``)."""
    a = device(a, "a")
    if a.dtype.type not in FLOATS:
        raise TypeError(f"a must be float32 or float64, got {a.dtype}")
    a = contiguous(a, a.dtype)
    b = float_c(b, "b", a.dtype)
    return tiled_matmul(a, b)


def linear_forward(x, w, b):
    """y = x @ w.T + b for x (M, K), w (N, K), b (N,) or None: the tiled product, then the bias."""
    y = matmul(x, device(w, "w").T)
    if b is not None and y.size:
        _add_row_vector[grid_1d(y.size)](y, float_c(b, "b", y.dtype))
    return y


def linear_backward(grad, x, w, need_input=True, need_weight=True, need_bias=True):
    """(g @ w, g.T @ x, column sums of g) for g (M, N), each None unless asked for."""
    g = float_c(grad, "grad")
    gx = matmul(g, w) if need_input else None
    gw = matmul(g.T, x) if need_weight else None
    gb = None
    if need_bias:
        rows, cols = g.shape
        gb = empty((cols,), g.dtype)
        if cols:
            _column_sums[max(1, min(cols, MAX_BLOCKS)), row_threads(rows)](g, gb)
    return gx, gw, gb
