"""Max and average pooling, forward and backward (chapter 9).

The twins (formulas and shapes: ``kernels/contract.py``, family "pool"):
``reference.py`` (window loops in NumPy, the oracle), ``cpu.py`` (Numba,
parallel over (n, c) planes), ``cuda.py`` (one GPU thread per output, or per
plane for max-pool's scatter). All follow PyTorch's rules: first maximum
wins, NaN propagates, PyTorch's divisor and ceil_mode.
"""
