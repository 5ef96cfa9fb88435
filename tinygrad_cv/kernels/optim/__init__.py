r"""Optimiser updates: SGD (momentum, Nesterov, weight decay) and Adam / AdamW (amsgrad), in place.

``optim.SGD`` and ``optim.Adam`` keep the hyper-parameters and the state
tensors; the arithmetic of one step on one parameter is here, in three twins
of ``sgd_step`` and ``adam_step`` (formulas and shapes: ``kernels/contract.py``):

* ``reference.py`` - the formulas as NumPy expressions, the oracle;
* ``cpu.py`` - Adam as one compiled pass per parameter (bit-identical to the
  NumPy expressions, which it falls back to for unusual layouts); SGD as
  NumPy, a few whole-array operations;
* ``cuda.py`` - each step one fused launch.

Adagrad and RMSprop are not here yet: their steps are array expressions in
``tinygrad_cv/optim`` that run unchanged on either device.
"""
from __future__ import annotations

import numbers


def check_step(step):
    """Adam's step count t must be an int >= 1: a wrong one silently corrupts the bias corrections."""
    if not isinstance(step, numbers.Integral) or step < 1:
        raise ValueError(f"step must be an int >= 1 (the number of this update), got {step!r}")
