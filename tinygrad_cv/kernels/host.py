"""Host-array normalisation shared by the reference and CPU twins (pure NumPy, no Numba).

A twin trusts its arguments' *values* (the shapes and settings were checked
before the call: by the public API, or by the contract's rules for a direct
call), but it still puts arrays into the form its loops need: a float dtype
(a second operand converted to the first's), and for compiled loops C order.
"""
from __future__ import annotations

import numpy as np

FLOATS = (np.float32, np.float64)


def float_array(a, name: str, dtype=None) -> np.ndarray:
    """``a`` as a float32/float64 ndarray; converted to ``dtype`` when given (TypeError names ``name``)."""
    a = np.asarray(a)
    if dtype is None:
        if a.dtype.type not in FLOATS:
            raise TypeError(f"{name} must be float32 or float64, got {a.dtype}")
        return a
    return a.astype(dtype, copy=False)


def float_c(a, name: str, dtype=None) -> np.ndarray:
    """C-contiguous float32/float64 array (compiled kernels index raw memory)."""
    a = np.asarray(a)
    if dtype is None:
        if a.dtype.type not in FLOATS:
            raise TypeError(f"{name} must be float32 or float64, got {a.dtype}")
        dtype = a.dtype
    return np.ascontiguousarray(a, dtype=dtype)
