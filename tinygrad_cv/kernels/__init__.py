"""Array-level kernels behind the autograd engine: plain ndarrays in, ndarrays out.

Each backend ("twin") is a module exposing the same functions with the same
signatures (``conv2d_forward``, ``conv2d_backward_input``, ...,
``max_pool2d_forward``, ``matmul``):

* ``"reference"`` - :mod:`tinygrad_cv.kernels.reference`, readable NumPy that
  spells out the formulas; the test oracle.
* ``"cpu"`` - :mod:`tinygrad_cv.kernels.cpu`, Numba-parallel loops and BLAS.
* ``"cuda"`` - :mod:`tinygrad_cv.kernels.cuda`, ``numba.cuda`` kernels on
  device arrays. It is picked per call by :func:`backend_for` when the data
  lives on the GPU (a tensor's device decides, not a global switch), so it
  cannot be made the active backend for host arrays.

Usage::

    from tinygrad_cv import kernels
    k = kernels.get_backend()            # the active backend (default "cpu")
    y = k.conv2d_forward(x, w, b, (1, 1), (0, 0), (1, 1), 1)

    with kernels.use_backend("reference"):
        ...                              # same code, run on the oracle

``set_backend(name)`` switches permanently.  The active choice is process
wide (not per thread), which is what tests and docs need.  The operations
call ``backend_for(x)``: the CUDA twin for GPU arrays, else the active one.
"""
from __future__ import annotations

import contextlib
import importlib
from types import ModuleType
from typing import Iterator

import numpy as np

from . import shapes  # noqa: F401  (re-exported: kernels.shapes)

__all__ = ["BACKENDS", "get_backend", "set_backend", "use_backend", "active_backend_name", "backend_for", "shapes"]

#: Known backend names -> module that implements them (None = not available yet).
BACKENDS: dict[str, str | None] = {
    "reference": "tinygrad_cv.kernels.reference",
    "cpu": "tinygrad_cv.kernels.cpu",
    "cuda": "tinygrad_cv.cuda.twin",
}

_active = "cpu"


def _load(name: str) -> ModuleType:
    if name not in BACKENDS:
        raise ValueError(f"unknown kernel backend {name!r}; choose one of {sorted(BACKENDS)}")
    module = BACKENDS[name]
    if name == "cuda":
        from .. import cuda

        cuda.require()
    # imported lazily: the reference twin must not pay Numba's import/compile cost
    return importlib.import_module(module)


def _check_host_backend(name):
    if name == "cuda":
        raise ValueError(
            "the 'cuda' kernels run on GPU data and are chosen per tensor: move tensors with .to('cuda') "
            "instead of switching the host backend"
        )


def get_backend(name: str | None = None) -> ModuleType:
    """Return the kernel module ``name``, or the active one when ``name`` is None."""
    return _load(_active if name is None else name)


def backend_for(array) -> ModuleType:
    """The kernels for ``array``: the CUDA twin for GPU data, else the active (CPU) backend."""
    on_gpu = type(array) is not np.ndarray and getattr(array, "device", "cpu") == "cuda" and not hasattr(
        array, "__array_interface__")
    name = "cuda" if on_gpu else _active
    # every operation asks, so a loaded twin is kept (importlib's lookup costs ~3 us)
    loaded = _LOADED.get(name)
    if loaded is None:
        loaded = _LOADED[name] = _load(name)
    return loaded


_LOADED: dict[str, ModuleType] = {}


def active_backend_name() -> str:
    """Name of the backend ``get_backend()`` currently returns."""
    return _active


def set_backend(name: str) -> None:
    """Make ``name`` the active backend (validated: it must be importable)."""
    global _active
    _check_host_backend(name)
    _load(name)
    _active = name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[ModuleType]:
    """Temporarily switch the active backend; yields the backend module."""
    global _active
    _check_host_backend(name)
    module = _load(name)
    previous = _active
    _active = name
    try:
        yield module
    finally:
        _active = previous
