"""GPU support: tensors on an NVIDIA GPU through the ``numba-cuda`` package.

Nothing here imports ``numba.cuda`` until a CUDA tensor is asked for, so
CPU users pay nothing for it (``import tinygrad_cv`` never touches the GPU
stack).  Install the extra with ``pip install "tinygrad_cv[cuda]"``.

Without a GPU, Numba's CUDA *simulator* runs the very same kernels in Python
threads: set ``NUMBA_ENABLE_CUDASIM=1`` before anything imports Numba.  It is
slow (each GPU thread is a Python thread) but exact, which is how the test
suite checks every CUDA kernel on a machine without a GPU.

``is_available()``         True when CUDA tensors can be made (a GPU, or the simulator)
``is_simulator()``         True under ``NUMBA_ENABLE_CUDASIM=1``
``synchronize()``          wait for every queued kernel (needed before timing on the host)
``device_count()``         number of GPUs numba-cuda sees
``count_launches()``       context manager counting kernel launches (what fusion saves)
``is_cuda_array(a)``       THE test for "this array lives on the GPU" (imports nothing)
``move(a, device)``        the one place data crosses between host and GPU

The array type itself is ``cuda.array.CudaArray``; its own kernels (elementwise,
reductions, copies, the tiled matrix product) live next to it in this package.
The operation kernels (convolution, pooling, ...) are in ``tinygrad_cv.kernels``,
which builds on this package; nothing here imports ``tinygrad_cv.kernels``.
"""
from __future__ import annotations

import os
import sys

__all__ = ["is_available", "is_simulator", "synchronize", "device_count", "require", "CudaUnavailableError",
           "count_launches", "is_cuda_array", "move"]


def is_cuda_array(a) -> bool:
    """True when ``a`` is a ``CudaArray``: the data of a GPU tensor.

    The one predicate for "does this array live on the GPU" (the kernel
    dispatch, the tensor's ``device``, ``ops``' device moves all ask it).
    It imports nothing: until ``cuda.array_type`` (where the class is
    defined) has been imported no CudaArray can exist, so the answer is
    False without loading numba-cuda.
    """
    array_module = sys.modules.get(_ARRAY_MODULE)
    return array_module is not None and type(a) is array_module.CudaArray


_ARRAY_MODULE = __name__ + ".array_type"


def move(array, device: str):
    """``array`` on ``device`` ('cpu' or 'cuda'): the one place data crosses between host and GPU.

    An array already on ``device`` is returned as it is (no copy). Moving to
    'cuda' needs a usable GPU (or the simulator): see :func:`require`.
    """
    if device == "cuda":
        if is_cuda_array(array):
            return array
        require()
        from .array import to_device

        return to_device(array)
    return array.get() if is_cuda_array(array) else array


class CudaUnavailableError(RuntimeError):
    """Asked for ``device="cuda"`` where CUDA tensors cannot be made; the message says what is missing."""


_state: dict = {}


def is_simulator() -> bool:
    """True when Numba's CUDA simulator stands in for a GPU (``NUMBA_ENABLE_CUDASIM=1``)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def _probe() -> str | None:
    """Import numba's CUDA target once; return None if usable, else why not."""
    if "why_not" in _state:
        return _state["why_not"]
    why = None
    try:
        import importlib.util

        if not is_simulator() and importlib.util.find_spec("numba_cuda") is None:
            why = (
                "the numba-cuda package is not installed; install GPU support with "
                "pip install \"tinygrad_cv[cuda]\" (or run on the CUDA simulator: NUMBA_ENABLE_CUDASIM=1)"
            )
        else:
            from numba import cuda

            _quiet_numba_cuda()
            if is_simulator():
                from . import simulator

                simulator.patch()
            if not cuda.is_available():
                why = (
                    "numba-cuda found no usable CUDA GPU: no NVIDIA driver (libcuda) or no device is visible "
                    "to this process (check nvidia-smi and CUDA_VISIBLE_DEVICES); on a machine without a GPU, "
                    "set NUMBA_ENABLE_CUDASIM=1 before importing tinygrad_cv to use the CUDA simulator"
                )
    except Exception as e:  # a broken CUDA install: say what failed, don't hide it
        why = f"numba-cuda could not be loaded: {type(e).__name__}: {e}"
    _state["why_not"] = why
    return why


def is_available() -> bool:
    """True when ``device="cuda"`` works here (a GPU with its driver, or the simulator)."""
    return _probe() is None


def require() -> None:
    """Raise :class:`CudaUnavailableError` naming what is missing, unless CUDA tensors can be made."""
    why = _probe()
    if why is not None:
        raise CudaUnavailableError(f"device 'cuda' is not available: {why}")


def device_count() -> int:
    if not is_available():
        return 0
    from numba import cuda

    return 1 if is_simulator() else len(cuda.gpus)


def synchronize() -> None:
    """Block until every kernel queued so far has finished."""
    require()
    from numba import cuda

    cuda.synchronize()


def _quiet_numba_cuda():
    """Turn off numba-cuda's 'grid size < 128 blocks' warning: small layers launch small grids on purpose."""
    try:
        from numba.cuda.core import config
    except ImportError:  # an older numba-cuda, or the simulator: nothing to quieten
        return
    config.CUDA_LOW_OCCUPANCY_WARNINGS = False


class count_launches:
    """Context manager counting kernel launches (``with count_launches() as c: ...; c.count``).

    Every launch has a fixed cost of several microseconds on the host and the
    GPU, so for small batches the number of launches per training step, not
    the arithmetic, sets the pace. Works on a GPU and under the simulator.
    """

    def __init__(self):
        self.count = 0
        self._undo = None

    def __enter__(self):
        require()
        counter = self
        if is_simulator():
            from numba.cuda.simulator import kernel as sim

            cls, name = sim.FakeCUDAKernel, "__call__"
            original = cls.__call__

            def patched(self, *args):
                if not self._device:
                    counter.count += 1
                return original(self, *args)
        else:
            from numba.cuda import dispatcher

            cls, name = dispatcher._LaunchConfiguration, "__call__"
            original = cls.__call__

            def patched(self, *args):
                counter.count += 1
                return original(self, *args)
        setattr(cls, name, patched)
        self._undo = lambda: setattr(cls, name, original)
        return self

    def __exit__(self, *exc):
        self._undo()
        return False
