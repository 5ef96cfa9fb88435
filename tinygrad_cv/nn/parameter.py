"""`Parameter`: a tensor that a `Module` owns and an optimiser updates.

Assigning a Parameter to a module attribute (``self.weight = Parameter(...)``)
is what registers it: ``module.parameters()`` finds exactly these tensors. A
Parameter is an ordinary leaf `Tensor` in every other respect. It requires
grad unless told otherwise.
"""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor, _to_array


class Parameter(Tensor):
    """``Parameter(data=None, requires_grad=True)`` — shares memory with ``data`` when it is a Tensor.

    Results of operations on a Parameter are plain Tensors (an activation is
    not a parameter), and so is ``detach()``.
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad=True):
        self._vc = [0]
        if data is None:
            array = np.zeros((0,), dtype=np.float32)
        elif isinstance(data, Tensor):
            array = data.data  # no copy, as torch.nn.Parameter(tensor)
            self._vc = data._vc  # same memory, so in-place changes through either are seen by both
        else:
            array = _to_array(data)
        self.data = array
        self._ctx = None
        self._out_index = 0
        self._grad = None
        self._retains_grad = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # Operations wrap their results with the class of their first input; a
    # Parameter must not make its activations look like parameters.
    @classmethod
    def _wrap(cls, data):
        return Tensor._wrap(data)

    _from_function = _wrap

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo):
        out = Parameter(Tensor._wrap(self.data.copy()), requires_grad=self.requires_grad)
        if self._grad is not None:
            out._grad = Tensor._wrap(self._grad.data.copy())
        memo[id(self)] = out
        return out
