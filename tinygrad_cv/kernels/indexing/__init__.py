"""Scatter-add along an axis: the adjoint of gather (``np.take_along_axis``).

The twins (formula: ``kernels/contract.py``, family "indexing"):
``reference.py`` and ``cpu.py`` (``np.add.at``; for this operation the
formula and the fast way are the same NumPy call) and ``cuda.py`` (atomic
additions: correct sums, but not in a fixed order).
"""
