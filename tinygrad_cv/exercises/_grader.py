"""The autograders' shared parts: the Report, running a solution safely, and the gradient check."""
from __future__ import annotations

import contextlib
import os
import traceback

import numpy as np

from ..autograd import grad as _grad
from ..gradcheck import numerical_grad
from ..scalar import Scalar
from ..tensor import Tensor, get_default_dtype, set_default_dtype

# =====================================================================================================
# The report and the runner
# =====================================================================================================
class Report:
    """The outcome of one checker: ``bool(report)`` is True when every property held.

    ``passed`` (bool), ``exercise`` (its name), ``checks`` (the properties that
    held, in order), ``message`` (why it failed, or a summary). ``str()`` is
    the readable form, one line for a pass, a few for a failure.
    """

    def __init__(self, exercise, passed, checks, message):
        self.exercise, self.passed, self.checks, self.message = exercise, bool(passed), list(checks), message

    def __bool__(self):
        return self.passed

    def __str__(self):
        if self.passed:
            n = len(self.checks)
            return f"✓ {self.exercise}: {n} check{'s' if n != 1 else ''} passed ({'; '.join(self.checks)})"
        done = f"\n  passed before it: {'; '.join(self.checks)}" if self.checks else ""
        return f"✗ {self.exercise}: {self.message}{done}"

    __repr__ = __str__


_HERE = os.path.dirname(os.path.abspath(__file__))


def _raised(exc):
    """'raised ValueError: ... (at file.py:12, in fn)', pointing into the learner's code where possible."""
    frames = traceback.extract_tb(exc.__traceback__)
    # the learner's frame: the last one outside this package and outside installed libraries
    theirs = [f for f in frames if not os.path.abspath(f.filename).startswith(_HERE) and "site-packages" not in f.filename]
    where = f" (at {os.path.basename(theirs[-1].filename)}:{theirs[-1].lineno}, in {theirs[-1].name})" if theirs else ""
    return f"your code raised {type(exc).__name__}: {exc}{where}"


def _run(exercise, steps):
    """Run ``(name, step)`` pairs in order; a step returns None when its property holds, else a message.

    Stops at the first failure: later properties usually fail because of it,
    and one precise message helps more than five.
    """
    done = []
    with _float64():
        for name, step in steps:
            try:
                problem = step()
            except Exception as exc:  # a wrong answer must come back as a report, not a traceback
                problem = _raised(exc)
            if problem:
                return Report(exercise, False, done, f"{name} — {problem}")
            done.append(name)
    return Report(exercise, True, done, "all checks passed")


@contextlib.contextmanager
def _float64():
    # finite differences need float64 (chapter 6); learners' tg.tensor([...]) should get it too
    old = get_default_dtype()
    set_default_dtype(np.float64)
    try:
        yield
    finally:
        set_default_dtype(old)


def _np(value):
    """A float64 NumPy array from a Tensor, Scalar, array, list or number."""
    if isinstance(value, (Tensor, Scalar)):
        value = value.data
    return np.asarray(value, dtype=np.float64)


def _fmt_idx(idx):
    return str(tuple(int(i) for i in idx)) if len(idx) else "()"


def _mismatch(got, want, what, atol=1e-8, rtol=1e-6):
    """None when ``got`` matches ``want``; else the shape error, or the worst entry and the max error."""
    if got is None:
        return f"{what}: got None"
    try:
        g = _np(got)
    except (TypeError, ValueError) as exc:
        return f"{what}: cannot read {type(got).__name__} as numbers ({exc})"
    w = np.asarray(want, dtype=np.float64)
    if g.shape != w.shape:
        return f"{what} has shape {g.shape}, expected {w.shape}"
    if w.size == 0:
        return None
    finite = np.isfinite(w)
    if np.any(np.isfinite(g) != finite):
        idx = np.argwhere(np.isfinite(g) != finite)[0]
        return f"{what} at index {_fmt_idx(idx)} is {g[tuple(idx)]!r}, expected {w[tuple(idx)]!r} (overflow? NaN?)"
    err = np.where(finite, np.abs(g - np.where(finite, w, 0)), 0.0)
    excess = err - (atol + rtol * np.abs(np.where(finite, w, 0)))
    if np.all(excess <= 0):
        return None
    idx = np.unravel_index(int(np.argmax(excess)), w.shape)
    return (f"{what} is wrong: max |error| {err.max():.3g}; at index {_fmt_idx(idx)} got {g[idx]:.10g}, "
            f"expected {w[idx]:.10g}")


def _ratio_hint(a, n):
    """A hint when ``a`` is a constant multiple of ``n`` (a forgotten 1/N, a flipped sign, ...)."""
    nn = float(np.sum(n * n))
    if nn == 0 or not np.all(np.isfinite(a)):
        return ""
    r = float(np.sum(a * n)) / nn
    if np.linalg.norm(a - r * n) <= 1e-6 * (np.linalg.norm(a) + 1e-300) and abs(r - 1) > 1e-3:
        if abs(r + 1) < 1e-3:
            return " Hint: your gradient has the wrong sign everywhere."
        return f" Hint: your gradient is {r:.6g} times the right one everywhere (a missing or extra factor?)."
    return ""


def _gradient_problem(fn, inputs, names=None, seed=0, atol=1e-6, rtol=1e-5, ones_hint=True):
    r"""Compare the backward pass of ``fn`` with central differences, for a random upstream gradient v.

    Returns None when every input's :math:`v^\top J` agrees entry by entry
    (|a - n| <= atol + rtol |n|); else which input, the max |error|, where,
    and both values. ``inputs`` are float64 tensors; those with
    ``requires_grad`` are checked.
    """
    names = names or [f"input {i}" for i in range(len(inputs))]
    out = fn(*inputs)
    if not isinstance(out, Tensor):
        return f"expected a Tensor from the forward pass, got {type(out).__name__}"
    if not out.requires_grad:
        return "the output does not require grad: did forward return a plain array through Function.apply?"
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(out.shape)
    wanted = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    analytic = _grad(out, [inputs[i] for i in wanted], grad_outputs=Tensor(v), allow_unused=True)
    numeric = numerical_grad(fn, inputs, v, wrt=tuple(wanted))
    for i, a in zip(wanted, analytic):
        n = numeric[i]
        if a is None:
            return f"no gradient reached {names[i]}: does backward return one gradient per input of apply?"
        a = _np(a)
        if a.shape != n.shape:
            return f"the gradient of {names[i]} has shape {a.shape}, the input has {n.shape}"
        err = np.abs(a - n)
        excess = err - (atol + rtol * np.abs(n))
        if np.any(~np.isfinite(a)) or np.any(excess > 0):
            idx = np.unravel_index(int(np.argmax(np.where(np.isfinite(excess), excess, np.inf))), n.shape)
            msg = (f"the gradient of {names[i]} (shape {n.shape}) disagrees with central finite differences: "
                   f"max |error| {np.nanmax(np.where(np.isfinite(err), err, np.inf)):.3g}; at index {_fmt_idx(idx)} "
                   f"backward gave {a[idx]:.10g}, finite differences {n[idx]:.10g}.")
            hint = _ratio_hint(a, n)
            if not hint and ones_hint:
                # the classic bug (chapter 6): a backward that ignores its upstream gradient computes vᵀJ for v = 1
                n1 = numerical_grad(fn, inputs, np.ones_like(v), wrt=(i,))[i]
                if np.allclose(a, n1, rtol=1e-5, atol=1e-6):
                    hint = " Hint: it equals the gradient for an upstream gradient of all ones — multiply by `grad`."
            return msg + hint
    return None


def _leaf(array):
    return Tensor(np.asarray(array, dtype=np.float64), requires_grad=True)


def _away_from(rng, shape, low=0.1, high=2.0):
    """Random values with low <= |x| <= high: off the kink at 0."""
    return rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)
