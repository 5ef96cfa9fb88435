r"""Check analytic gradients against central finite differences.

For f: R^n -> R^m and a random upstream gradient v, backpropagation computes
vᵀJ. The central difference

    (f(x + ε e_j) - f(x - ε e_j)) / 2ε  =  J e_j + O(ε²)

estimates one column of the Jacobian J from two evaluations of f. In float64
with ε = 1e-6 the truncation error (~ε²) and the rounding error (~1e-16/ε)
are both around 1e-10 — far below any real bug. In float32 rounding alone is
~1e-7/ε: finite differences there are noise, so checks run in float64.

Small problems compare the whole Jacobian, entry by entry. Large ones compare
random projections vᵀJu (one backward pass and two forward passes each).
"""
from __future__ import annotations

import numpy as np

from .autograd import grad as _grad
from .tensor import Tensor

__all__ = ["gradcheck", "numerical_grad", "GradcheckError"]


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with finite differences."""


def _as_inputs(inputs):
    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    inputs = tuple(inputs)
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor):
            raise TypeError(f"input {i} is a {type(x).__name__}, expected a Tensor")
    return inputs


def _eval(fn, inputs):
    # graph recording stays on: fn may itself call grad() (checking a gradient of a gradient)
    out = fn(*inputs)
    return np.array(out.data, dtype=np.float64)


def numerical_grad(fn, inputs, grad_output=None, eps=1e-6, wrt=None):
    """Finite-difference vᵀJ for every input that requires grad (``None`` for the others).

    ``grad_output`` is the upstream gradient v (ones when omitted); ``wrt``
    optionally limits the work to some input positions. The input data are
    perturbed in place and restored.
    """
    inputs = _as_inputs(inputs)
    out0 = _eval(fn, inputs)
    v = np.ones_like(out0) if grad_output is None else np.asarray(getattr(grad_output, "data", grad_output), np.float64)
    grads = []
    for i, x in enumerate(inputs):
        if not x.requires_grad or (wrt is not None and i not in wrt):
            grads.append(None)
            continue
        g = np.zeros(x.shape, dtype=np.float64)
        original = x.data
        # perturb a private C-ordered copy: reshape(-1) below must be a view of it
        # (np.array(..., copy=True) keeps a transposed input's Fortran order)
        x.data = np.array(original, copy=True, order="C")
        flat = x.data.reshape(-1)
        try:
            for j in range(flat.size):
                old = flat[j]
                flat[j] = old + eps
                fp = _eval(fn, inputs)
                flat[j] = old - eps
                fm = _eval(fn, inputs)
                flat[j] = old
                g.reshape(-1)[j] = np.sum(v * (fp - fm)) / (2 * eps)
        finally:
            x.data = original
        grads.append(g)
    return grads


def _close(a, n, atol, rtol):
    return abs(a - n) <= atol + rtol * abs(n)


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, *, grad_output=None, max_full=512,
              directions=8, seed=0, raise_exception=True):
    """Compare ``fn``'s analytic gradients with central finite differences.

    ``inputs`` are float64 tensors; those with ``requires_grad`` are checked.
    The upstream gradient is random (so every output element matters), unless
    ``grad_output`` is given. When an input has at most ``max_full`` elements
    every entry of vᵀJ is checked; larger inputs are checked along
    ``directions`` random directions u (vᵀJu). Raises :class:`GradcheckError`
    naming the input, the index and both values; returns True when all agree.
    """
    inputs = _as_inputs(inputs)
    for i, x in enumerate(inputs):
        if x.requires_grad and x.dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} is {x.dtype}; finite differences need float64 inputs")
    wanted = [x for x in inputs if x.requires_grad]
    if not wanted:
        raise ValueError("gradcheck: no input requires grad")
    rng = np.random.default_rng(seed)
    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    v = rng.standard_normal(out.shape) if grad_output is None else np.asarray(getattr(grad_output, "data", grad_output))
    v = v.astype(np.float64)
    if not out.requires_grad:
        analytic = [None] * len(wanted)
    else:
        analytic = _grad(out, wanted, grad_outputs=Tensor(v, dtype=np.float64), allow_unused=True)
    k = 0
    for i, x in enumerate(inputs):
        if not x.requires_grad:
            continue
        a = analytic[k]
        k += 1
        a = np.zeros(x.shape) if a is None else np.asarray(a.data, dtype=np.float64)
        if a.shape != x.shape:
            return _fail(raise_exception, f"input {i}: analytic gradient has shape {a.shape}, input has {x.shape}")
        if x.numel() <= max_full:
            n = numerical_grad(fn, inputs, v, eps, wrt=(i,))[i]
            bad = ~_close(a, n, atol, rtol)
            if np.any(bad):
                idx = tuple(int(j) for j in np.argwhere(bad)[0])
                return _fail(raise_exception, f"input {i} (shape {x.shape}) at index {idx}: analytic {float(a[idx])!r} "
                             f"vs numerical {float(n[idx])!r} (|diff| {abs(a[idx] - n[idx]):.3g}, atol {atol}, rtol {rtol})")
        else:
            for d in range(directions):
                u = rng.standard_normal(x.shape)
                n = _directional(fn, inputs, x, u, v, eps)
                an = float(np.sum(a * u))
                if not _close(an, n, atol * np.sqrt(x.numel()), rtol):
                    return _fail(raise_exception, f"input {i} (shape {x.shape}) along random direction {d}: "
                                 f"analytic vᵀJu {an!r} vs numerical {n!r}")
    return True


def _directional(fn, inputs, x, u, v, eps):
    base = x.data
    try:
        x.data = base + eps * u
        fp = _eval(fn, inputs)
        x.data = base - eps * u
        fm = _eval(fn, inputs)
    finally:
        x.data = base
    return float(np.sum(v * (fp - fm)) / (2 * eps))


def _fail(raise_exception, msg):
    if raise_exception:
        raise GradcheckError("gradcheck failed: " + msg)
    return False
