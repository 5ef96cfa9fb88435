"""Matrix multiplication, batched with broadcasting over leading axes.

For C = A B (A: m×k, B: k×n), each C_ij = sum_k A_ik B_kj, so

    dL/dA = dL/dC · Bᵀ        dL/dB = Aᵀ · dL/dC

and, when leading (batch) axes were broadcast, the gradient is summed back
over them like any other broadcast. 1-D operands are handled by the caller,
which adds and removes the unit axis (as NumPy and PyTorch do).
"""
from __future__ import annotations

import numpy as np

from .. import kernels
from ..autograd import Function
from .elementwise import unbroadcast


class MatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        if a.ndim == 2 and b.ndim == 2 and a.dtype == b.dtype and a.dtype.kind == "f" and a.dtype != np.float16:
            # the fully connected layers' case goes through the kernel twins (BLAS, or the reference loops)
            return kernels.backend_for(a).matmul(a, b)
        return np.matmul(a, b)  # batched or integer operands: NumPy's own loop over BLAS calls

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        ga = unbroadcast(grad @ b.mT, a.shape) if ctx.needs_input_grad[0] else None
        gb = unbroadcast(a.mT @ grad, b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb
