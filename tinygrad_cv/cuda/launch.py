"""Launch configuration shared by every CUDA kernel.

A kernel runs as a *grid* of *blocks* of *threads*.  Elementwise kernels use
a grid-stride loop: thread ``t`` handles elements ``t, t + T, t + 2T, ...``
with ``T`` the total number of threads, so any size works with a bounded grid.

Under the simulator every GPU thread is a Python thread, so blocks are kept
small there (32 threads): same results, far less waiting.
"""
from __future__ import annotations

from . import _probe, is_simulator

_probe()  # imported only by kernel modules: load numba-cuda once (and fix up the simulator)

#: threads per block for 1-D (elementwise) kernels
THREADS = 32 if is_simulator() else 256
#: most blocks one 1-D launch uses; the grid-stride loop covers the rest
MAX_BLOCKS = 64 if is_simulator() else 4096


def grid_1d(n: int, threads: int = THREADS) -> tuple[int, int]:
    """``(blocks, threads)`` for a grid-stride loop over ``n`` items."""
    blocks = max(1, min(MAX_BLOCKS, (n + threads - 1) // threads))
    return blocks, threads


def tile_2d(rows: int, cols: int, tile: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(blocks, threads)`` covering a ``rows x cols`` output with ``tile x tile`` blocks."""
    return ((cols + tile - 1) // tile, (rows + tile - 1) // tile), (tile, tile)
