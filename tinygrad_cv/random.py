"""The global random generator behind ``rand``, ``randn``, initialisers and dropout.

``manual_seed(s)`` makes every later random draw reproducible, as in PyTorch.
"""
from __future__ import annotations

import numpy as np

_state = {"generator": np.random.default_rng(0)}


def manual_seed(seed: int):
    """Reseed the global generator; returns it."""
    _state["generator"] = np.random.default_rng(int(seed))
    return _state["generator"]


seed = manual_seed


def default_generator() -> np.random.Generator:
    return _state["generator"]
