"""Elementwise kernels that earn a twin of their own: ReLU and its derivative.

Most elementwise arithmetic runs through the array's own operators (NumPy on
the CPU, ``CudaArray``'s kernels on the GPU). ReLU is the most frequent pair
in a CNN, so it has twins (family "elementwise" in ``kernels/contract.py``):
``reference.py`` (one NumPy expression), ``cpu.py`` (a parallel loop),
``cuda.py`` (a grid-stride launch).
"""
