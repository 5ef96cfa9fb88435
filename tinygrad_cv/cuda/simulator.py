"""Two fixes that make Numba's CUDA simulator dependable for this project's tests and docs.

Applied once, the first time CUDA is used with ``NUMBA_ENABLE_CUDASIM=1``;
a real GPU never sees them.

1. Thread-safe ``cuda.shared.array``. The simulator gives each
   ``cuda.shared.array`` line of a launch one NumPy array, found by
   check-then-insert in a dict without a lock: when a thread switch falls
   between the check and the insert, two threads of a block each create their
   own "shared" array and values one writes never reach the other (seen as
   rare garbage in tiled matmul results). Same lookup, under a lock. Skipped
   if the simulator's internals look different.
2. Quicker thread switches. ``syncthreads()`` waits in a polling loop that
   competes for the GIL; switching threads every 0.1 ms instead of Python's
   default 5 ms makes kernels with barriers several times faster.
"""
from __future__ import annotations

import sys
import threading

import numpy as np

_done = []


def patch() -> None:
    if _done:
        return
    _done.append(True)
    sys.setswitchinterval(min(sys.getswitchinterval(), 1e-4))
    try:
        from numba.cuda.simulator import kernelapi

        cls, types, numpy_support = kernelapi.FakeCUDAShared, kernelapi.types, kernelapi.numpy_support
        original = cls.array
        if "_allocations" not in cls.__init__.__code__.co_names:
            return
    except (ImportError, AttributeError):
        return
    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:  # dynamic shared memory: left to the simulator
            return original(self, shape, dtype, alignment)
        frame = sys._getframe(1)  # the kernel line: the simulator's key for "this array"
        caller = (frame.f_code.co_filename, frame.f_lineno)
        with lock:
            res = self._allocations.get(caller)
            if res is None:
                res = np.empty(shape, numpy_support.as_dtype(dtype) if isinstance(dtype, types.Type) else dtype)
                self._allocations[caller] = res
        return res

    cls.array = array
