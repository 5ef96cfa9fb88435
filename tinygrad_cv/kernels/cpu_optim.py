r"""Fused CPU optimizer step: Adam / AdamW in one pass, in place (the twin of ``cuda_optim.adam_step``).

Written with NumPy, one Adam step is about a dozen whole-array operations
(decay, two moment updates, square, sqrt, divide, add, scale, subtract), each
reading and writing the arrays and most allocating a temporary; for LeNet-5's
ten small parameters that is ~40 us each, mostly call overhead. Here one
sequential loop loads each element once, updates it in registers and stores
it once.

The arithmetic is ``optim/adam.py``'s, operation for operation and in the
array's dtype (the scalars are cast to it first, as NumPy casts Python floats
next to a float32 array), and compiled without fused multiply-add, so the
result is bit-identical to the NumPy path (tested). ``error_model="numpy"``
(division by zero gives inf/NaN, as in NumPy, instead of raising) lets LLVM
vectorise the loop: 6x faster on a 48,000-element parameter.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
from numba import njit

from . import numba_cache

__all__ = ["adam_step", "can_fuse"]


@njit(cache=numba_cache.enabled(), fastmath=False, nogil=True, error_model="numpy")
def _adam(p, g, m, v, vmax, wd, decay, has_wd, decoupled, amsgrad, maximize,
          beta1, one_minus_beta1, beta2, one_minus_beta2, step_size, bc2_sqrt, eps):
    for i in range(p.shape[0]):
        d = g[i]
        if maximize:
            d = -d
        pi = p[i]
        if has_wd:
            if decoupled:
                pi = pi * decay  # AdamW: shrink the weights, the gradient is left alone
            else:
                d = d + wd * pi  # Adam: L2 penalty folded into the gradient
        mi = m[i] * beta1 + one_minus_beta1 * d
        vi = v[i] * beta2 + one_minus_beta2 * (d * d)
        m[i] = mi
        v[i] = vi
        if amsgrad:
            vm = vmax[i]
            if vi > vm or vi != vi:  # np.maximum: NaN wins
                vm = vi
            vmax[i] = vm
            vi = vm
        # PyTorch's arrangement: eps is added after sqrt(v) is divided by sqrt(1 - beta2^t)
        denom = np.sqrt(vi) / bc2_sqrt + eps
        p[i] = pi - step_size * (mi / denom)


def can_fuse(param, *arrays):
    """True when every array is a C-contiguous, writeable float ndarray of param's dtype and shape."""
    arrays = (param,) + arrays
    return all(
        type(a) is np.ndarray and a.dtype == param.dtype and a.shape == param.shape and a.flags.c_contiguous
        for a in arrays
    ) and param.dtype.type in (np.float32, np.float64) and all(a.flags.writeable for a in arrays)


def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr=1e-3, beta1=0.9, beta2=0.999,
              eps=1e-8, weight_decay=0.0, decoupled=False, amsgrad=False, maximize=False):
    r"""One Adam / AdamW step on ``param`` in place; same signature and formula as ``cuda_optim.adam_step``.

    All arrays: C-contiguous ndarrays of one float dtype and shape (check with
    :func:`can_fuse`); ``max_exp_avg_sq`` may be None unless ``amsgrad``.
    """
    if not isinstance(step, numbers.Integral) or step < 1:
        raise ValueError(f"step must be an int >= 1 (the number of this update), got {step!r}")
    if amsgrad and max_exp_avg_sq is None:
        raise ValueError("max_exp_avg_sq is required when amsgrad=True")
    vmax = max_exp_avg_sq if amsgrad else exp_avg_sq  # not read unless amsgrad
    if not can_fuse(param, grad, exp_avg, exp_avg_sq, vmax):
        raise ValueError("adam_step needs C-contiguous, writeable float arrays of one dtype and shape")
    t = param.dtype.type
    step_size = lr / (1 - beta1 ** step)
    bc2_sqrt = math.sqrt(1 - beta2 ** step)
    flat = [a.reshape(-1) for a in (param, grad, exp_avg, exp_avg_sq, vmax)]
    _adam(*flat, t(weight_decay), t(1 - lr * weight_decay), weight_decay != 0, bool(decoupled), bool(amsgrad),
          bool(maximize), t(beta1), t(1 - beta1), t(beta2), t(1 - beta2), t(step_size), t(bc2_sqrt), t(eps))
