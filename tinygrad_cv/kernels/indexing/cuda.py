"""Scatter-add along an axis, CUDA twin: one thread per source element, atomic additions.

The scatter is ``CudaArray``'s own kernel (``tinygrad_cv/cuda/elementwise.py``,
``_scatter_add_axis_kernel``): each thread adds its element into the output
with ``cuda.atomic.add``, so repeated indices add up. Atomics make the sum
correct but not its order: where an output element receives several values
the last bits may differ from run to run (unlike every other kernel here);
gather's gradient is the only user, and one element rarely collects many.
"""
from __future__ import annotations

import numpy as np

from ...cuda.array import from_device_array
from ...cuda.array import scatter_add_along_axis as _scatter
from ..cuda_common import contiguous, device


def scatter_add_along_axis(src, index, axis, shape):
    """zeros(shape) with src added at index along axis (see the contract); device arrays in and out."""
    src = device(src, "src")
    src = contiguous(src, src.dtype)
    index = contiguous(device(index, "index"), np.int64)
    out = _scatter(from_device_array(src), from_device_array(index), axis, tuple(shape))
    return out.device_array()
