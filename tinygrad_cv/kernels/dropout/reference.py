r"""Dropout masks, reference twin: the definition of inverted dropout.

    u ~ Uniform[0, 1) per element,      mask = 1/(1 - p) where u >= p (kept, probability 1 - p),  0 otherwise

so ``x * mask`` zeroes a fraction p of x and scales the survivors so that
E[x * mask] = x: nothing changes at evaluation time. ``p == 1`` gives zeros.
"""
from __future__ import annotations

import numpy as np


def dropout_mask(shape, p, dtype, seed):
    """A new mask of ``shape`` and ``dtype``; ``seed`` an int or a NumPy Generator to draw the uniforms from."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    u = rng.random(shape)
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    return np.where(u >= p, scale, 0.0).astype(dtype)
