"""Softmax, log-softmax, negative log-likelihood and cross-entropy, forward and backward (chapter 5).

The twins (formulas and shapes: ``kernels/contract.py``, family "softmax_loss"):
``reference.py`` (the formulas in NumPy), ``cpu.py`` (NumPy as the
operations ran it: the same bits), ``cuda.py`` (one fused launch per
formula: a row's max and sum stay in shared memory). All work on rows
(M, C) along the last axis; the operations reshape to that.
"""
