"""Batch normalisation in training mode: batch statistics, forward, and the closed-form backward (chapter 12).

The twins (formulas and shapes: ``kernels/contract.py``, family "norm"):
``reference.py`` (the formulas), ``cpu.py`` (NumPy as the operations ran
it: the same bits), ``cuda.py`` (one launch each; a block per channel for
the reductions). Evaluation mode is a per-channel affine map built from
tensor operations in ``functional.batch_norm``.
"""
