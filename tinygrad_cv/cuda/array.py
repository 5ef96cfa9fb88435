"""``CudaArray``: an n-d array in GPU memory that NumPy code can use unchanged.

A ``Tensor`` on the GPU holds a ``CudaArray`` where a CPU tensor holds an
``ndarray``. The autograd operations are written with NumPy (``a + b``,
``np.exp(a)``, ``a.sum(axis)``, ``np.where(c, a, b)``); NumPy hands such calls
on to the array's own ``__array_ufunc__`` / ``__array_function__`` (NEP 13 and
NEP 18), which run CUDA kernels instead. So one ``Function`` serves both
devices, and a missing GPU operation fails loudly here rather than silently
copying to the host.

Layout is NumPy's: a flat device buffer, an ``offset`` and per-axis
``strides`` in elements. Transposes, broadcasts, reshapes of contiguous
arrays and basic slices are therefore free views; kernels read any layout.

Data crosses to the host only when asked: ``get()`` (``Tensor.numpy()``),
``item()``, ``tolist()``, printing, ``bool()``. Converting a ``CudaArray``
to NumPy implicitly (``np.asarray``) raises, so a host round trip can never
hide inside an operation.

This module is where ``CudaArray`` is imported from. The type (layout,
views, transfers) is in ``array_type.py``; the operations the protocols run
are in ``array_functions.py``, which imports the type and fills its dispatch
tables. Importing both here means that no CudaArray can be had before its
operations are registered, while neither of the two imports the other back.
"""
from __future__ import annotations

from . import is_cuda_array  # noqa: F401  (re-exported: the predicate is defined, import-free, in cuda/__init__.py)
from .array_functions import scatter_add_along_axis
from .array_type import CudaArray, empty, from_device_array, full, to_device

__all__ = ["CudaArray", "to_device", "empty", "full", "from_device_array", "scatter_add_along_axis", "is_cuda_array"]
