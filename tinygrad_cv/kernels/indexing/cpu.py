"""Scatter-add along an axis, CPU twin: ``np.add.at``, as ``ops/movement.py`` ran it.

``np.add.at`` is NumPy's unbuffered scatter-add, in C; it walks the elements
in order, so repeated indices add up in a fixed order (bit-identical runs).
This is the reference's code: for this operation the formula and the fast
way are the same NumPy call.
"""
from __future__ import annotations

import numpy as np

from .reference import _along_axis


def scatter_add_along_axis(src, index, axis, shape):
    """zeros(shape) with src added at index along axis (see the contract)."""
    out = np.zeros(shape, dtype=src.dtype)
    np.add.at(out, _along_axis(index, axis), src)
    return out
