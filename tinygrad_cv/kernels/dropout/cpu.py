"""Dropout masks, CPU twin: NumPy's generator, exactly as ``F.dropout`` drew them.

One ``Generator.random(shape)`` call per mask, compared with p; the code is
what ``functional.dropout`` ran before the kernel boundary existed, so a
seeded run draws the same masks as before (the same bits). With
``tinygrad_cv.random``'s generator as ``seed``, ``manual_seed`` controls it.
"""
from __future__ import annotations

import numpy as np


def dropout_mask(shape, p, dtype, seed):
    """A new mask of ``shape`` and ``dtype`` (see the contract); ``seed`` an int or a NumPy Generator."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    keep = rng.random(shape) >= p  # P(keep) = 1 - p
    return np.where(keep, 0.0 if p == 1.0 else 1.0 / (1.0 - p), 0.0).astype(dtype)
