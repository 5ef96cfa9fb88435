"""The kernel boundary: array-level kernels behind the autograd engine, one module per device.

Every kernel function is declared once in :mod:`tinygrad_cv.kernels.contract`
(name, signature, formula, shapes, argument rules) and implemented by three
*twins*, each a module with exactly the contract's functions:

* ``"reference"`` - :mod:`tinygrad_cv.kernels.reference`, readable NumPy that
  spells out the formulas; the test oracle.
* ``"cpu"`` - :mod:`tinygrad_cv.kernels.cpu`, Numba-parallel loops, BLAS, NumPy.
* ``"cuda"`` - :mod:`tinygrad_cv.kernels.cuda`, ``numba.cuda`` kernels on GPU
  arrays. It is picked per call by :func:`backend_for` when the data lives on
  the GPU (a tensor's device decides, not a global switch), so it cannot be
  made the active backend for host arrays.

The code is organised by operation family, the three twins side by side:
``kernels/<family>/{reference,cpu,cuda}.py`` for conv, pool, matmul,
elementwise, softmax_loss, norm, dropout, optim and indexing; the twin
modules above only gather them. Shared pieces: ``shapes.py`` (size formulas
and validators), ``host.py`` (host-array normalisation), ``jit.py`` (Numba
options and the compile cache), ``cuda_common.py`` (device arrays, block
reductions).

Usage::

    from tinygrad_cv import kernels
    k = kernels.get_backend()            # the active backend module (default "cpu")
    y = k.conv2d_forward(x, w, b, (1, 1), (0, 0), (1, 1), 1)   # arguments checked first

    with kernels.use_backend("reference"):
        ...                              # same code, run on the oracle

``set_backend(name)`` switches permanently. The active choice is process
wide (not per thread), which is what tests and docs need. The operations call
``backend_for(x)``: the CUDA twin for GPU arrays, else the active one - as
the same functions without the argument check, because the public API
(``functional``, ``Tensor`` methods) has validated the arguments already.

Importing this package loads no twin and no Numba: a twin is imported the
first time it is asked for.
"""
from __future__ import annotations

import contextlib
from types import ModuleType
from typing import Iterator

from .. import cuda as _cuda
from . import contract, shapes  # noqa: F401  (re-exported: kernels.contract, kernels.shapes)

__all__ = ["BACKENDS", "get_backend", "set_backend", "use_backend", "active_backend_name", "backend_for", "Twin",
           "contract", "shapes"]


def _import_reference() -> ModuleType:
    from . import reference

    return reference


def _import_cpu() -> ModuleType:
    from . import cpu

    return cpu


def _import_cuda() -> ModuleType:
    _cuda.require()  # a clear error naming what is missing, before numba-cuda is touched
    from . import cuda

    return cuda


#: backend name -> how to import its twin module (imported on first use: Numba loads only when needed)
BACKENDS = {"reference": _import_reference, "cpu": _import_cpu, "cuda": _import_cuda}

_active = "cpu"
_MODULES: dict[str, ModuleType] = {}


def _load(name: str) -> ModuleType:
    module = _MODULES.get(name)
    if module is None:
        if name not in BACKENDS:
            raise ValueError(f"unknown kernel backend {name!r}; choose one of {sorted(BACKENDS)}")
        module = _MODULES[name] = BACKENDS[name]()
    return module


class Twin:
    """One twin as the operations call it: the contract's functions, without the argument check.

    Built once per backend from its module: ``Twin(cpu).conv2d_forward`` is
    ``cpu.conv2d_forward.unchecked``.
    """

    def __init__(self, name: str, module: ModuleType):
        self.name = name
        for fn in contract.KERNELS:
            setattr(self, fn, getattr(module, fn).unchecked)

    def __repr__(self):
        return f"<kernel twin {self.name!r} (unchecked)>"


_TWINS: dict[str, Twin] = {}


def _twin(name: str) -> Twin:
    twin = _TWINS.get(name)
    if twin is None:
        twin = _TWINS[name] = Twin(name, _load(name))
    return twin


def backend_for(array) -> Twin:
    """The kernels for ``array``: the CUDA twin for GPU data, else the active one (unchecked: see the module doc)."""
    name = "cuda" if _cuda.is_cuda_array(array) else _active
    twin = _TWINS.get(name)  # every operation asks: a dict lookup once the twin is built
    return twin if twin is not None else _twin(name)


def _check_host_backend(name):
    if name == "cuda":
        raise ValueError(
            "the 'cuda' kernels run on GPU data and are chosen per tensor: move tensors with .to('cuda') "
            "instead of switching the host backend"
        )


def get_backend(name: str | None = None) -> ModuleType:
    """The twin module ``name`` (its functions check their arguments), or the active one when ``name`` is None."""
    return _load(_active if name is None else name)


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
