"""Matrix products: ``matmul`` (2-D) and the fully connected layer ``linear_forward`` / ``linear_backward``.

The twins (formulas and shapes: ``kernels/contract.py``, family "matmul"):
``reference.py`` (one dot product per output element), ``cpu.py`` (BLAS, on
one thread for small products; and ``matmul_blocked``, the cache-blocked
teaching kernel), ``cuda.py`` (the tiled shared-memory kernel of
``tinygrad_cv/cuda/matmul.py``). Batched and integer products stay with
NumPy's (and ``CudaArray``'s) own ``@``.
"""
