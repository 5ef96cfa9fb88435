r"""Optimiser steps, CPU twin: Adam / AdamW in one compiled pass; SGD in NumPy.

Written with NumPy, one Adam step is about a dozen whole-array operations
(decay, two moment updates, square, sqrt, divide, add, scale, subtract), each
reading and writing the arrays and most allocating a temporary; for LeNet-5's
ten small parameters that is ~40 us each, mostly call overhead. Here one
sequential loop loads each element once, updates it in registers and stores
it once.

The per-element formula is ``formulas.adam_update``, which the CUDA twin
compiles too. Its arithmetic is the NumPy expressions' (in :func:`adam_step`'s
fallback), operation for operation and in the array's dtype (the scalars are
cast to it first, as NumPy casts Python floats next to a float32 array), and
compiled without fused multiply-add, so the result is bit-identical to the
NumPy path (tested). ``error_model="numpy"`` (division by zero gives inf/NaN, as in
NumPy, instead of raising) lets LLVM vectorise the loop: 6x faster on a
48,000-element parameter. The fallback runs for arrays the loop cannot take
(another layout or dtype, a read-only view).

SGD is a few whole-array operations, moved verbatim from ``optim/sgd.py``.
Arguments are checked by the caller (``kernels/contract.py``).
"""
from __future__ import annotations

import math

import numpy as np

from .. import jit
from ..jit import njit
from . import check_step as _check_step
from .formulas import adam_update


# inlined into the loop by Numba itself (not left to LLVM), so that LLVM vectorises the loop as it did the
# formula written out in it: called as a function, the same pass runs ~10x slower
_adam_update = njit(inline="always", **jit.SEQ)(adam_update(np.sqrt))


@njit(**jit.SEQ)
def _adam(p, g, m, v, vmax, wd, decay, has_wd, decoupled, amsgrad, maximize,
          beta1, one_minus_beta1, beta2, one_minus_beta2, step_size, bc2_sqrt, eps):
    for i in range(p.shape[0]):
        vm = vmax[i] if amsgrad else v[i]  # vmax is v itself unless amsgrad: left alone then (so is the speed)
        p[i], m[i], v[i], vm = _adam_update(p[i], g[i], m[i], v[i], vm, wd, decay, has_wd, decoupled, amsgrad,
                                            maximize, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size,
                                            bc2_sqrt, eps)
        if amsgrad:
            vmax[i] = vm


def can_fuse(param, *arrays):
    """True when every array is a C-contiguous, writeable float ndarray of param's dtype and shape."""
    arrays = (param,) + arrays
    return all(
        type(a) is np.ndarray and a.dtype == param.dtype and a.shape == param.shape and a.flags.c_contiguous
        for a in arrays
    ) and param.dtype.type in (np.float32, np.float64) and all(a.flags.writeable for a in arrays)


def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr=1e-3, beta1=0.9, beta2=0.999,
              eps=1e-8, weight_decay=0.0, decoupled=False, amsgrad=False, maximize=False):
    """One Adam / AdamW step in place (formula: the contract); the compiled pass when :func:`can_fuse`."""
    _check_step(step)
    vmax = max_exp_avg_sq if amsgrad else exp_avg_sq  # not read unless amsgrad
    if can_fuse(param, grad, exp_avg, exp_avg_sq, vmax):
        t = param.dtype.type
        step_size = lr / (1 - beta1 ** step)
        bc2_sqrt = math.sqrt(1 - beta2 ** step)
        flat = [a.reshape(-1) for a in (param, grad, exp_avg, exp_avg_sq, vmax)]
        _adam(*flat, t(weight_decay), t(1 - lr * weight_decay), weight_decay != 0, bool(decoupled),
              bool(amsgrad), bool(maximize), t(beta1), t(1 - beta1), t(beta2), t(1 - beta2), t(step_size),
              t(bc2_sqrt), t(eps))
        return
    # the NumPy expressions (as optim/adam.py ran them): any layout, the same bits
    m, v = exp_avg, exp_avg_sq
    g = -grad if maximize else grad
    if weight_decay != 0:
        if decoupled:
            param *= 1 - lr * weight_decay
        else:
            g = g + weight_decay * param
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * (g * g)
    if amsgrad:
        v = np.maximum(max_exp_avg_sq, v, out=max_exp_avg_sq)
    step_size = lr / (1 - beta1**step)
    denom = np.sqrt(v) / math.sqrt(1 - beta2**step) + eps
    param -= step_size * (m / denom)


def sgd_step(param, grad, buf, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
             maximize=False, first_step=False):
    """One SGD step in place (formula: the contract), as NumPy expressions."""
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + weight_decay * param
    if momentum != 0:
        if first_step:
            buf[...] = g  # the first step starts the buffer at g, undamped
        else:
            buf *= momentum
            buf += (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    param -= lr * g
