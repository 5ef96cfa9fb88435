r"""Scatter-add along an axis, reference twin: the adjoint of ``np.take_along_axis``, with ``np.add.at``.

For an index array of src's shape and an axis k::

    out = zeros(shape);   out[i_0, ..., index[i_0, ..., i_n], ..., i_n] += src[i_0, ..., i_n]   for every i

(the coordinate k of each element is replaced by its index). Repeated
indices add up: that is why it is ``np.add.at`` (unbuffered), not
``out[idx] += src``, which would keep only one of them.
"""
from __future__ import annotations

import numpy as np


def _along_axis(index, axis):
    """The full advanced-index tuple that ``take_along_axis(a, index, axis)`` uses."""
    # np.indices, not np.ogrid: NumPy 2's ogrid returns a tuple, which cannot be assigned to
    grids = list(np.indices(index.shape, sparse=True))
    grids[axis] = index
    return tuple(grids)


def scatter_add_along_axis(src, index, axis, shape):
    """zeros(shape) of src's dtype with src added at index along axis; index has src's shape."""
    out = np.zeros(shape, dtype=src.dtype)
    np.add.at(out, _along_axis(index, axis), src)
    return out
