r"""Optimiser steps, CUDA twin: SGD and Adam / AdamW, each one fused launch, in place.

Written as array expressions, one Adam step is about a dozen elementwise
operations (negate, decay, two moment updates, square, sqrt, divide, add,
scale, subtract), each a kernel launch that reads and writes whole arrays and
most of them allocating a temporary. Here each step is **one** grid-stride
launch: every thread loads its parameter, gradient and state values once,
does the whole update in registers and stores the results once, with no
temporaries. The formulas are the CPU twin's, operation for operation (so
float32 results agree with the CPU up to rounding of fused multiply-adds);
Adam's is the very same function, ``formulas.adam_update``, compiled here as
a device function.

All arrays are numba CUDA device arrays of one dtype (float32 or float64),
C-contiguous and of one shape; they are updated in place and nothing is
copied to the host. Arguments are checked by the caller
(``kernels/contract.py``). Scalars reach the kernel typed as the arrays'
dtype (bias corrections are computed on the host in float64 first).
"""
from __future__ import annotations

import math

from numba import cuda

from ..cuda_common import float_array, grid_1d, placeholder, sqrt
from . import check_step as _check_step
from .formulas import adam_update


@cuda.jit
def _sgd_kernel(p, g, buf, lr, mu, one_minus_damp, wd, has_wd, has_mom, nesterov, maximize, first):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        d = g[i]
        if maximize:
            d = -d
        if has_wd:
            d = d + wd * p[i]
        if has_mom:
            if first:
                b = d  # the first step starts the buffer at g, undamped
            else:
                b = mu * buf[i] + one_minus_damp * d
            buf[i] = b
            if nesterov:
                d = d + mu * b
            else:
                d = b
        p[i] = p[i] - lr * d


_adam_update = cuda.jit(device=True)(adam_update(sqrt))


@cuda.jit
def _adam_kernel(p, g, m, v, vmax, wd, decay, has_wd, decoupled, amsgrad, maximize,
                 beta1, one_minus_beta1, beta2, one_minus_beta2, step_size, bc2_sqrt, eps):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        vm = vmax[i] if amsgrad else v[i]  # vmax is a one-element placeholder unless amsgrad
        p[i], m[i], v[i], vm = _adam_update(p[i], g[i], m[i], v[i], vm, wd, decay, has_wd, decoupled, amsgrad,
                                            maximize, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size,
                                            bc2_sqrt, eps)
        if amsgrad:
            vmax[i] = vm


def _flat(a):
    return a.reshape(a.size)


def sgd_step(param, grad, buf, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
             maximize=False, first_step=False):
    """One SGD step in place (formula: the contract); one launch.

    On the first step the buffer's old contents are never read, so it can be
    uninitialised (``cuda.device_array_like(param)``).
    """
    has_mom = momentum != 0
    param = float_array(param, "param")
    grad = float_array(grad, "grad", param.dtype)
    buf = float_array(buf, "buf", param.dtype) if has_mom else placeholder(param.dtype)
    t = param.dtype.type
    n = param.size
    if n == 0:
        return
    _sgd_kernel[grid_1d(n)](
        _flat(param), _flat(grad), _flat(buf), t(lr), t(momentum), t(1 - dampening), t(weight_decay),
        bool(weight_decay != 0), bool(has_mom), bool(nesterov), bool(maximize), bool(first_step),
    )


def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr=1e-3, beta1=0.9, beta2=0.999,
              eps=1e-8, weight_decay=0.0, decoupled=False, amsgrad=False, maximize=False):
    """One Adam / AdamW step in place (formula: the contract); one launch.

    The bias corrections lr / (1 - β₁ᵗ) and √(1 - β₂ᵗ) are computed on the host
    in float64, then passed in the arrays' dtype.
    """
    _check_step(step)
    param = float_array(param, "param")
    grad = float_array(grad, "grad", param.dtype)
    exp_avg = float_array(exp_avg, "exp_avg", param.dtype)
    exp_avg_sq = float_array(exp_avg_sq, "exp_avg_sq", param.dtype)
    vmax = float_array(max_exp_avg_sq, "max_exp_avg_sq", param.dtype) if amsgrad else placeholder(param.dtype)
    t = param.dtype.type
    step_size = lr / (1.0 - beta1 ** step)
    bc2_sqrt = math.sqrt(1.0 - beta2 ** step)
    n = param.size
    if n == 0:
        return
    _adam_kernel[grid_1d(n)](
        _flat(param), _flat(grad), _flat(exp_avg), _flat(exp_avg_sq), _flat(vmax),
        t(weight_decay), t(1 - lr * weight_decay), bool(weight_decay != 0), bool(decoupled), bool(amsgrad),
        bool(maximize), t(beta1), t(1 - beta1), t(beta2), t(1 - beta2), t(step_size), t(bc2_sqrt), t(eps),
    )
