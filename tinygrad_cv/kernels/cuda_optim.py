r"""Fused CUDA optimizer steps: SGD (momentum, Nesterov) and Adam / AdamW, in place.

Written as array expressions, one Adam step is about a dozen elementwise
operations (negate, decay, two moment updates, square, sqrt, divide, add,
scale, subtract), each a kernel launch that reads and writes whole arrays and
most of them allocating a temporary. Here each step is **one** grid-stride
launch: every thread loads its parameter, gradient and state values once,
does the whole update in registers and stores the results once, with no
temporaries. The formulas are exactly those of ``optim/sgd.py`` and
``optim/adam.py`` (operation for operation, so float32 results agree with the
CPU optimizers up to rounding of fused multiply-adds).

All arrays are numba CUDA device arrays of one dtype (float32 or float64),
C-contiguous and of one shape; they are updated in place and nothing is
copied to the host. Hyper-parameters are validated by the optimizer classes;
here only arrays are checked. Scalars reach the kernel typed as the arrays'
dtype (bias corrections are computed on the host in float64 first).
"""
from __future__ import annotations

import math
import numbers

from numba import cuda

from ..cuda.launch import grid_1d
from .cuda_nn import _float_array, _placeholder, _same_shape, _sqrt

__all__ = ["sgd_step", "adam_step"]


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


@cuda.jit
def _adam_kernel(p, g, m, v, vmax, wd, decay, has_wd, decoupled, amsgrad, maximize,
                 beta1, one_minus_beta1, beta2, one_minus_beta2, step_size, bc2_sqrt, eps):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        d = g[i]
        if maximize:
            d = -d
        pi = p[i]
        if has_wd:
            if decoupled:
                pi = pi * decay  # AdamW: shrink the weights, the gradient is left alone
            else:
                d = d + wd * pi  # Adam: L2 penalty folded into the gradient
        mi = beta1 * m[i] + one_minus_beta1 * d
        vi = beta2 * v[i] + one_minus_beta2 * (d * d)
        m[i] = mi
        v[i] = vi
        if amsgrad:
            vm = vmax[i]
            if vi > vm or vi != vi:  # np.maximum: NaN wins
                vm = vi
            vmax[i] = vm
            vi = vm
        # PyTorch's arrangement: eps is added after sqrt(v) is divided by sqrt(1 - beta2^t)
        denom = _sqrt(vi) / bc2_sqrt + eps
        p[i] = pi - step_size * (mi / denom)


def _flat(a):
    return a.reshape(a.size)


def _check_like(param, others):
    """``param`` a float device array; each of ``others`` (name, array) the same dtype and shape."""
    param = _float_array(param, "param")
    out = []
    for name, a in others:
        a = _float_array(a, name, param.dtype)
        _same_shape(a, name, param.shape)
        out.append(a)
    return param, out


def sgd_step(param, grad, buf, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
             maximize=False, first_step=False):
    r"""One SGD step on ``param`` in place (``optim.SGD``); ``buf`` (momentum buffer) updated in place.

    With γ = lr, μ = momentum, τ = dampening, λ = weight_decay:

        g ← -grad if maximize else grad
        g ← g + λ θ                                   (if λ ≠ 0)
        if μ ≠ 0:
            b ← g  (first_step)   or   b ← μ b + (1 - τ) g
            g ← g + μ b  (nesterov)   or   g ← b
        θ ← θ - γ g

    ``param``, ``grad``, ``buf``: device arrays of one shape and dtype; ``buf``
    may be None when momentum == 0 (it is then ignored). On the first step the
    buffer's old contents are never read, so it can be uninitialised
    (``cuda.device_array_like(param)``). Returns None. One launch.
    """
    has_mom = momentum != 0
    if has_mom and buf is None:
        raise ValueError("buf (the momentum buffer) is required when momentum != 0")
    others = [("grad", grad)] + ([("buf", buf)] if has_mom else [])
    param, checked = _check_like(param, others)
    grad = checked[0]
    t = param.dtype.type
    buf = checked[1] if has_mom else _placeholder(param.dtype)
    n = param.size
    if n == 0:
        return
    _sgd_kernel[grid_1d(n)](
        _flat(param), _flat(grad), _flat(buf), t(lr), t(momentum), t(1 - dampening), t(weight_decay),
        bool(weight_decay != 0), bool(has_mom), bool(nesterov), bool(maximize), bool(first_step),
    )


def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr=1e-3, beta1=0.9, beta2=0.999,
              eps=1e-8, weight_decay=0.0, decoupled=False, amsgrad=False, maximize=False):
    r"""One Adam / AdamW step on ``param`` in place (``optim.Adam`` / ``optim.AdamW``).

    ``step`` is the 1-based number of this update (t), i.e. the optimizer's step
    count *after* incrementing it. With λ = weight_decay:

        g ← -grad if maximize else grad
        g ← g + λ θ            (Adam, λ ≠ 0)      θ ← θ (1 - lr λ)   (AdamW: decoupled=True)
        m ← β₁ m + (1 - β₁) g                     (exp_avg, in place)
        v ← β₂ v + (1 - β₂) g²                    (exp_avg_sq, in place)
        v ← v̂max ← max(v̂max, v)                   (amsgrad: max_exp_avg_sq, in place)
        θ ← θ - lr / (1 - β₁ᵗ) · m / (√v / √(1 - β₂ᵗ) + ε)

    The bias corrections lr / (1 - β₁ᵗ) and √(1 - β₂ᵗ) are computed on the host
    in float64. ``max_exp_avg_sq`` is required with ``amsgrad`` and ignored
    (may be None) otherwise. Returns None. One launch.
    """
    if not isinstance(step, numbers.Integral) or step < 1:
        raise ValueError(f"step must be an int >= 1 (the number of this update), got {step!r}")
    if amsgrad and max_exp_avg_sq is None:
        raise ValueError("max_exp_avg_sq is required when amsgrad=True")
    others = [("grad", grad), ("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)]
    if amsgrad:
        others.append(("max_exp_avg_sq", max_exp_avg_sq))
    param, checked = _check_like(param, others)
    grad, exp_avg, exp_avg_sq = checked[:3]
    vmax = checked[3] if amsgrad else _placeholder(param.dtype)
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
