r"""Adversarial examples: small input changes that fool a network, and training that resists them.

Every attack works on a batch ``x`` of shape ``(N, C, H, W)`` (a `Tensor` or
a NumPy array) whose values lie in the box ``clamp`` (default ``[0, 1]``: the
pixel values), and returns a new `Tensor` of the same shape that never
leaves that box. The perturbation is measured in the same units as the
pixels, so "ε = 0.1" means "no pixel moves by more than a tenth of the
white level" (the model, not the data pipeline, should standardise its
inputs; see chapter 17).

- `fgsm`: the fast gradient sign method (Goodfellow, Shlens & Szegedy,
  2015), one step ``x + ε sign(∇ₓ L)`` — the exact maximiser of the
  first-order approximation of the loss over the L∞ ball of radius ε.
- `pgd`: projected gradient ascent (Kurakin et al. 2017's iterative FGSM,
  Madry et al. 2018's PGD) in the L∞ or L2 ball, from a random start.
- `lbfgs_attack`: Szegedy et al. (2014)'s box-constrained problem
  ``min c‖r‖₂² + loss(f(x + r), l)  s.t.  x + r ∈ [0, 1]^m`` solved with
  SciPy's L-BFGS-B, with a search over ``c`` per image.
- `fooling_images`: images grown from noise by gradient ascent on one class's
  log-probability (Nguyen, Yosinski & Clune, 2015).
- `adversarial_training_step`: one optimiser step on adversarial examples
  (FGSM with a random start, Wong, Rice & Kolter 2020; or PGD, Madry et al.).

While an attack runs, the model is put in evaluation mode (dropout off, batch
normalisation on its running statistics — the network that will be deployed
is the one attacked) and its parameters stop requiring gradients (the attack
needs ∂L/∂x only, and the convolutions then skip their weight gradients);
both are restored afterwards, even when an error is raised. Gradients are
taken with `tinygrad_cv.grad`, which returns them instead of accumulating
them in ``.grad``, so no parameter's ``.grad`` is touched.
"""
from __future__ import annotations

import contextlib
import math
import numbers

import numpy as np

from . import functional as F
from .autograd import enable_grad, grad, no_grad
from .nn import Module
from .tensor import Tensor

__all__ = ["fgsm", "pgd", "lbfgs_attack", "fooling_images", "adversarial_training_step", "attack_mode"]

_NORMS = {"inf": "inf", "linf": "inf", "2": "2", "l2": "2"}


# --- argument checks --------------------------------------------------------------------------
def _real(value, name, *, low=None, low_open=False):
    """``value`` as a finite float, with a clear error when it is not one or is below ``low``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low:g}, got {value:g}")
    return value


def _count(value, name, low=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _norm(norm):
    """'inf' or '2' for the names and numbers that mean them ("inf", "linf", inf; "2", "l2", 2)."""
    key = None
    if isinstance(norm, str):
        key = _NORMS.get(norm.lower())
    elif isinstance(norm, numbers.Real) and not isinstance(norm, bool):
        key = "inf" if math.isinf(norm) else "2" if norm == 2 else None
    if key is None:
        raise ValueError(f"unknown norm {norm!r}; expected 'inf' (L∞) or '2' (L2)")
    return key


def _box(clamp):
    """``clamp`` as ``(low, high)`` floats with low < high, or None for no box."""
    if clamp is None:
        return None
    try:
        lo, hi = clamp
    except (TypeError, ValueError):
        raise TypeError(f"clamp must be a pair (low, high) or None, got {clamp!r}") from None
    lo, hi = _real(lo, "clamp[0]"), _real(hi, "clamp[1]")
    if not lo < hi:
        raise ValueError(f"clamp must satisfy low < high, got ({lo:g}, {hi:g})")
    return lo, hi


def _model_dtype_device(model):
    """The dtype and device of the model's first floating-point parameter (float32 / cpu without one)."""
    if isinstance(model, Module):
        for p in model.parameters():
            if p.dtype.kind == "f":
                return p.dtype, p.device
    return np.dtype(np.float32), "cpu"


def _images(x, box, name="x"):
    """``x`` as a float64 NumPy array (N, C, H, W), checked: a batch, finite, inside the box."""
    array = x.detach().numpy() if isinstance(x, Tensor) else np.asarray(x)
    if array.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold numbers, got dtype {array.dtype}")
    if array.ndim != 4:
        hint = (f"; a single image of shape {array.shape} needs a batch dimension: x[None]"
                if array.ndim == 3 else "")
        raise ValueError(f"{name} must be a batch of images of shape (N, C, H, W), got shape {array.shape}{hint}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {array.shape})")
    # the attack's arithmetic (steps, projections, norms) runs in float64; only the forward pass uses `dtype`
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if box is not None:
        lo, hi = box
        if array.min() < lo or array.max() > hi:
            raise ValueError(
                f"{name} has values in [{array.min():g}, {array.max():g}], outside the clamp box [{lo:g}, {hi:g}]: "
                "attacks work in pixel units, so pass images scaled to the box (e.g. [0, 1], before any "
                "normalisation) or give the matching clamp=")
    return array


def _labels(y, n, name="y"):
    """``y`` as an int64 array of shape (n,)."""
    array = y.detach().numpy() if isinstance(y, Tensor) else np.asarray(y)
    if array.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one class index per image of x, got shape {array.shape}")
    if array.dtype.kind not in "iu":
        if array.dtype.kind == "f" and np.all(array == np.round(array)):
            pass  # whole numbers stored as floats are accepted
        else:
            raise TypeError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    array = array.astype(np.int64)
    if array.min() < 0:
        raise ValueError(f"{name} holds a negative class index ({array.min()})")
    return array


def _check_classes(labels, n_classes, name):
    if labels.max() >= n_classes:
        raise ValueError(f"{name} holds class {labels.max()}, but the model has {n_classes} outputs")


# --- running the model ------------------------------------------------------------------------
@contextlib.contextmanager
def attack_mode(model):
    """Context manager: the model in eval mode with frozen parameters, gradients recorded; all restored on exit.

    Freezing matters for speed, not correctness: with ``requires_grad`` off
    the backward pass of every layer skips the weight gradients the attack
    would throw away. ``model`` may also be any callable (then nothing is
    changed).
    """
    modes, frozen = [], []
    if isinstance(model, Module):
        modes = [(m, m.training) for m in model.modules()]
        frozen = [p for p in model.parameters() if p.requires_grad]
        model.eval()
        for p in frozen:
            p.requires_grad_(False)
    try:
        with enable_grad():  # an attack called inside no_grad() still needs its one gradient
            yield
    finally:
        for p in frozen:
            p.requires_grad_(True)
        # parents come first in modules(): train(mode) also sets the children, which are then reset to theirs
        for m, mode in modes:
            m.train(mode)


class _Objective:
    """The loss of a model on a batch and its gradient with respect to the batch (NumPy in, NumPy out)."""

    def __init__(self, model, labels, loss_fn, dtype, device, name="y"):
        self.model, self.loss_fn, self.dtype, self.device = model, loss_fn, dtype, device
        self.labels = labels
        self.name, self.checked = name, False

    def tensor(self, x, requires_grad=False):
        t = Tensor(x.astype(self.dtype), requires_grad=requires_grad)
        return t if self.device == "cpu" else t.to(self.device)

    def logits(self, x):
        with no_grad():
            out = self.model(self.tensor(x))
        return np.asarray(out.numpy(), dtype=np.float64)

    def value_and_grad(self, x, rows=None):
        """``(loss, ∂loss/∂x, logits)`` at ``x``, against the labels ``labels[rows]`` (default: all).

        The loss is a Python float; the gradient (shaped like ``x``) and the
        logits (N, classes) are float64 NumPy arrays.
        """
        labels = self.labels if rows is None else self.labels[rows]
        xt = self.tensor(x, requires_grad=True)
        out = self.model(xt)
        if not self.checked:  # once: a label beyond the model's outputs is the caller's mistake, said plainly
            if out.ndim != 2 or out.shape[0] != x.shape[0]:
                raise ValueError(f"the model must return logits of shape (N, classes) = ({x.shape[0]}, K), "
                                 f"got {tuple(out.shape)}")
            _check_classes(self.labels, out.shape[1], self.name)
            self.checked = True
        target = Tensor(labels) if self.device == "cpu" else Tensor(labels).to(self.device)
        loss = self.loss_fn(out, target)
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ValueError("loss_fn must return a scalar Tensor")
        (g,) = grad(loss.reshape(()) if loss.ndim else loss, [xt])
        logits = np.asarray(out.detach().numpy(), dtype=np.float64)
        return float(loss.item()), np.asarray(g.numpy(), dtype=np.float64), logits


def _sum_cross_entropy(logits, labels):
    # The sum, not the mean: each image's gradient is then its own loss's gradient, independent of the batch
    # size (the sign and the normalised steps do not care, but float32 gradients divided by N can underflow).
    return F.cross_entropy(logits, labels, reduction="sum")


def _output(x_adv, like, dtype):
    out = Tensor(x_adv.astype(dtype))
    return out.to(like.device) if isinstance(like, Tensor) and like.device != "cpu" else out


def _per_image(values, ndim):
    return values.reshape((-1,) + (1,) * (ndim - 1))


def _l2(v):
    """The L2 norm of each image of a batch, shape (N,)."""
    return np.sqrt(np.sum(v.reshape(len(v), -1) ** 2, axis=1))


# --- FGSM -------------------------------------------------------------------------------------
def fgsm(model, x, y, eps, *, targeted=False, clamp=(0.0, 1.0), loss_fn=None):
    r"""The fast gradient sign method: one step of size ``eps`` along the sign of the input gradient.

    .. math::  x_{adv} = \mathrm{clip}_{[a,b]}\big(x + \epsilon\,\mathrm{sign}(\nabla_x L(f(x), y))\big)

    which maximises the linearised loss :math:`L + g^\top r` over
    :math:`\|r\|_\infty \le \epsilon` (the maximum is :math:`\epsilon\|g\|_1`).
    With ``targeted=True``, ``y`` is the class to reach and the step goes
    *down* the loss of that class: :math:`x - \epsilon\,\mathrm{sign}(\nabla_x L(f(x), y))`.

    Shapes: ``x`` (N, C, H, W) in the box ``clamp`` (None: no box); ``y`` (N,)
    class indices. ``loss_fn(logits, y)`` returns the scalar to raise
    (default: cross-entropy summed over the batch). Returns a `Tensor` like
    ``x`` with ``|x_adv - x| <= eps`` everywhere. A pixel whose gradient is
    exactly 0 does not move (sign(0) = 0).
    """
    eps = _real(eps, "eps", low=0)
    box = _box(clamp)
    dtype, device = _model_dtype_device(model)
    x0 = _images(x, box)
    labels = _labels(y, len(x0))
    with attack_mode(model):
        objective = _Objective(model, labels, loss_fn or _sum_cross_entropy, dtype, device)
        _, g, _ = objective.value_and_grad(x0)
    step = -np.sign(g) if targeted else np.sign(g)
    x_adv = x0 + eps * step
    if box is not None:
        x_adv = np.clip(x_adv, *box)  # moves pixels towards x only, so the ε-ball still holds
    return _output(x_adv, x, dtype)


# --- PGD ----------------------------------------------------------------------------------------
def _project(delta, eps, norm):
    r"""The nearest point of the ε-ball to ``delta``, per image.

    L∞: clip every coordinate to [-ε, ε]. L2: scale down by min(1, ε / ‖δ‖₂).
    """
    if norm == "inf":
        return np.clip(delta, -eps, eps)
    n = _l2(delta)
    scale = np.minimum(1.0, eps / np.maximum(n, 1e-12))
    return delta * _per_image(scale, delta.ndim)


def _random_start(shape, eps, norm, rng):
    """A uniform random point of the ε-ball (one per image)."""
    if norm == "inf":
        return rng.uniform(-eps, eps, size=shape)
    # uniform in the L2 ball: a uniform direction (a normalised Gaussian) times a radius ε u^(1/m)
    m = int(np.prod(shape[1:]))
    direction = rng.standard_normal(shape)
    direction /= _per_image(np.maximum(_l2(direction), 1e-12), len(shape))
    radius = eps * rng.uniform(0.0, 1.0, size=shape[0]) ** (1.0 / m)
    return direction * _per_image(radius, len(shape))


def _ascent_direction(g, norm):
    """The steepest-ascent step of unit size for the norm: sign(g) for L∞, g / ‖g‖₂ for L2."""
    if norm == "inf":
        return np.sign(g)
    return g / _per_image(np.maximum(_l2(g), 1e-12), g.ndim)


def pgd(model, x, y, eps, *, alpha=None, steps=40, norm="inf", random_start=True, targeted=False,
        clamp=(0.0, 1.0), seed=None, loss_fn=None, early_stop=False):
    r"""Projected gradient descent (ascent on the loss) inside the ε-ball: Madry et al.'s PGD attack.

    From :math:`x^0 = x + \delta_0` (:math:`\delta_0` uniform in the ball
    when ``random_start``, else 0), repeat ``steps`` times

    .. math::  x^{t+1} = \Pi\big(x^t + \alpha\, d(\nabla_x L(f(x^t), y))\big)

    with :math:`d(g) = \mathrm{sign}(g)` for ``norm="inf"`` and
    :math:`d(g) = g/\|g\|_2` for ``norm="2"``, and :math:`\Pi` the projection:
    first onto the ball, :math:`\delta \mapsto \mathrm{clip}(\delta, -\epsilon, \epsilon)`
    (L∞) or :math:`\delta \mapsto \delta\,\min(1, \epsilon/\|\delta\|_2)` (L2)
    for :math:`\delta = x^{t+1} - x`, then onto the box by clipping. For L∞
    the two together are the exact projection onto the intersection; for L2
    they give a point of the intersection that is not always the nearest one
    (the usual practice). ``targeted=True`` descends the loss of the target
    class ``y`` instead.

    ``alpha`` (step size, > 0) defaults to 2.5 ε / steps, so that the steps
    could cross the ball more than twice. ``seed``: an int or a
    ``numpy.random.Generator`` for the random start (None: fresh entropy);
    the result is deterministic given a seed. Shapes as in `fgsm`. Returns
    the last iterate, a `Tensor` inside the ball and the box.

    ``early_stop=True`` stops moving an image at the first iterate the model
    misclassifies (targeted: assigns to ``y``), and returns that iterate. It
    saves the forward and backward passes of the images already fooled, and
    accuracy measured on its output counts an image as fooled when *any*
    iterate fooled it, so it is never higher than on the last iterates
    (the random start and the fixed step can walk back out of a wrong
    class). The result of the last step is not checked (that would cost
    one more forward pass); it is returned as it is without ``early_stop``.
    """
    eps = _real(eps, "eps", low=0)
    steps = _count(steps, "steps")
    norm = _norm(norm)
    alpha = 2.5 * eps / steps if alpha is None else _real(alpha, "alpha", low=0, low_open=True)
    box = _box(clamp)
    dtype, device = _model_dtype_device(model)
    x0 = _images(x, box)
    labels = _labels(y, len(x0))
    rng = np.random.default_rng(seed)
    delta = _random_start(x0.shape, eps, norm, rng) if random_start and eps > 0 else np.zeros_like(x0)
    x_adv = x0 + delta if box is None else np.clip(x0 + delta, *box)
    if eps == 0 or alpha == 0:
        return _output(x_adv, x, dtype)
    sign = -1.0 if targeted else 1.0
    with attack_mode(model):
        objective = _Objective(model, labels, loss_fn or _sum_cross_entropy, dtype, device)
        active = np.arange(len(x0))  # the images still moving
        for _ in range(steps):
            rows = None if len(active) == len(x0) else active
            _, g, logits = objective.value_and_grad(x_adv[active], rows)
            if early_stop:
                pred = logits.argmax(axis=1)
                moving = pred != labels[active] if targeted else pred == labels[active]
                active, g = active[moving], g[moving]
                if len(active) == 0:
                    break
            step = x_adv[active] + sign * alpha * _ascent_direction(g, norm)
            step = x0[active] + _project(step - x0[active], eps, norm)
            x_adv[active] = step if box is None else np.clip(step, *box)
    return _output(x_adv, x, dtype)


# --- Szegedy et al.'s box-constrained L-BFGS attack --------------------------------------------------
class _CSearch:
    """The search over ``c`` for one image: factors of 10 until the outcome flips, then log-space bisection.

    ``c`` weighs ‖r‖₂², so success (the target is reached) is expected for
    small ``c`` and failure for large ``c``; the boundary between them is
    what the search closes in on. ``lo`` is the largest successful ``c`` so
    far, ``hi`` the smallest failing one above it.
    """

    def __init__(self, c, c_range, bisections):
        self.c, self.c_range, self.left = c, c_range, bisections
        self.lo = self.hi = None

    def record(self, ok):
        """Note the outcome at ``self.c``; returns the next ``c`` to try, or None when the search is over."""
        c = self.c
        if ok:
            self.lo = c if self.lo is None else max(self.lo, c)
        else:
            self.hi = c if self.hi is None else min(self.hi, c)
        if self.lo is None or self.hi is None or self.hi < self.lo:  # not bracketed yet: keep stepping by 10
            nxt = c * 10.0 if ok else c / 10.0
            if not self.c_range[0] <= nxt <= self.c_range[1]:
                return None
        else:
            if self.left == 0:
                return None
            self.left -= 1
            nxt = math.sqrt(self.lo * self.hi)
        self.c = nxt
        return nxt


def lbfgs_attack(model, x, target, *, c=1.0, clamp=(0.0, 1.0), max_iter=200, search_steps=6,
                 c_range=(1e-4, 1e4), batched=True, return_info=False):
    r"""Szegedy et al. (2014)'s attack: a small change ``r`` that makes ``model`` answer ``target``.

    For each image, with ``clamp`` = (a, b), solve with L-BFGS-B (SciPy)

    .. math::  \min_r\; c\,\|r\|_2^2 + \mathrm{CE}(f(x + r), l)
               \quad\text{subject to}\quad x + r \in [a, b]^m

    (per-coordinate bounds, which L-BFGS-B keeps exactly) and search over
    ``c`` > 0. ``c`` weighs the size of ``r``: a larger ``c`` gives a smaller
    change, until the change is too small to reach ``target``. The paper
    asks for "the minimum c > 0 for which the minimizer r satisfies
    f(x+r) = l" — written with ``c`` on the norm, the boundary it means is the
    *largest* successful ``c``, the one with the smallest successful ``r``
    (Carlini & Wagner put ``c`` on the loss instead, and then it is the
    smallest). The search, per image: from ``c``, multiply by 10 after a
    success or divide by 10 after a failure until the outcome flips (or
    ``c_range`` is left), then ``search_steps`` bisections in log-space
    between the largest success and the smallest failure. The problem is
    not convex, so every successful solution is kept and the one with the
    smallest ‖r‖₂ returned.

    ``batched=True`` solves the problems of all images still searching as
    one problem: the sum of their objectives (each with its own ``c``) over
    the product of their boxes. Its minimiser is the tuple of their
    minimisers, and each forward and backward pass then runs on a batch,
    which is many times faster than one image at a time; only the
    optimiser's path is shared (one line search, one curvature memory), so
    an image may end at a slightly different local solution than alone.
    ``batched=False`` solves every image on its own. ``max_iter`` bounds the
    L-BFGS-B iterations of each solve.

    An image the model already assigns to ``target`` is returned unchanged.
    When no ``c`` in ``c_range`` succeeds, the solution at the smallest ``c``
    tried (the strongest push towards ``target``) is returned, marked
    unsuccessful.

    Returns the adversarial batch as a `Tensor` (N, C, H, W); with
    ``return_info=True`` also a dict of arrays (N,): ``success`` (bool),
    ``c`` (the ``c`` of the returned solution; NaN for an unchanged image or
    a failure), ``norm`` (‖r‖₂) and ``pred`` (the model's class for the result).
    """
    from scipy.optimize import Bounds, minimize
    from threadpoolctl import threadpool_limits

    c = _real(c, "c", low=0, low_open=True)
    max_iter = _count(max_iter, "max_iter")
    search_steps = _count(search_steps, "search_steps", low=0)
    try:
        c_lo, c_hi = (_real(v, "c_range", low=0, low_open=True) for v in c_range)
    except (TypeError, ValueError) as e:
        raise ValueError(f"c_range must be a pair 0 < low <= high, got {c_range!r} ({e})") from None
    if not c_lo <= c <= c_hi:
        raise ValueError(f"c must lie in c_range = ({c_lo:g}, {c_hi:g}), got {c:g}")
    box = _box(clamp)
    dtype, device = _model_dtype_device(model)
    x0 = _images(x, box)
    targets = _labels(target, len(x0), name="target")
    n, shape = len(x0), x0.shape[1:]
    m = int(np.prod(shape))
    flat = x0.reshape(n, m)
    result = x0.copy()
    info = {"success": np.zeros(n, bool), "c": np.full(n, np.nan)}

    def solve(idx, cs):
        """The minimisers for images ``idx`` with weights ``cs``, jointly; and whether each reaches its target."""
        k, xs = len(idx), flat[idx]
        objective = _Objective(model, targets[idx], _sum_cross_entropy, dtype, device, name="target")

        def fun(z):
            r = z.reshape(k, m) - xs
            loss, g, _ = objective.value_and_grad(z.reshape((k,) + shape))
            value = float(np.sum(cs * np.sum(r * r, axis=1))) + loss
            return value, (2.0 * cs[:, None] * r + g.reshape(k, m)).ravel()

        bounds = None if box is None else Bounds(np.full(k * m, box[0]), np.full(k * m, box[1]))
        # L-BFGS-B's vector operations call BLAS, which splits vectors this long over threads; on a busy machine
        # waking those threads for every dot product cost 10-20x the arithmetic (measured), so one thread it is
        with threadpool_limits(1, user_api="blas"):
            res = minimize(fun, xs.ravel().copy(), jac=True, method="L-BFGS-B", bounds=bounds,
                           options={"maxiter": max_iter})
        z = res.x.reshape(k, m)
        if box is not None:
            z = np.clip(z, *box)  # L-BFGS-B keeps to the bounds; this only makes it exact to the last bit
        return z, objective.logits(z.reshape((k,) + shape)).argmax(axis=1) == targets[idx]

    with attack_mode(model):
        # one forward pass for all: checks the targets against the model's outputs, finds images already there
        start = _Objective(model, targets, _sum_cross_entropy, dtype, device, name="target")
        done = start.value_and_grad(x0)[2].argmax(axis=1) == targets
        info["success"][done] = True  # r = 0 is the smallest change for these
        todo = [int(i) for i in np.flatnonzero(~done)]
        searches = {i: _CSearch(c, (c_lo, c_hi), search_steps) for i in todo}
        best = {}  # i -> (‖r‖₂, z, c) of the smallest successful change
        weakest = {}  # i -> (c, z) of the failure at the smallest c
        for group in ([todo] if batched else [[i] for i in todo]):
            active = group
            while active:
                cs = np.array([searches[i].c for i in active])
                z, ok = solve(active, cs)
                still = []
                for j, i in enumerate(active):
                    if ok[j]:
                        norm = float(np.linalg.norm(z[j] - flat[i]))
                        if i not in best or norm < best[i][0]:
                            best[i] = (norm, z[j], cs[j])
                    elif i not in weakest or cs[j] < weakest[i][0]:
                        weakest[i] = (cs[j], z[j])
                    if searches[i].record(bool(ok[j])) is not None:
                        still.append(i)
                active = still
        for i in todo:
            if i in best:
                _, z, ci = best[i]
                info["success"][i], info["c"][i] = True, ci
            else:
                z = weakest[i][1]
            result[i] = z.reshape(shape)
        info["norm"] = _l2(result - x0)
        info["pred"] = start.logits(result).argmax(axis=1)
    out = _output(result, x, dtype)
    return (out, info) if return_info else out


# --- fooling images -------------------------------------------------------------------------------
def fooling_images(model, classes, *, shape=(1, 28, 28), steps=200, lr=0.05, seed=None, clamp=(0.0, 1.0),
                   init=None):
    r"""Images that ``model`` assigns to ``classes`` with high confidence, grown from random noise.

    Gradient ascent on the log-probability of the wanted class (Nguyen,
    Yosinski & Clune 2015 show that such images, unrecognisable to a person,
    get ≥ 99 % confidence), with a step of fixed size and a clip to the box:

    .. math::  x \leftarrow \mathrm{clip}_{[a,b]}\Big(x + \eta\,\sqrt{m}\,\frac{g}{\|g\|_2}\Big),
               \qquad g = \nabla_x \log \mathrm{softmax}(f(x))_k

    so that ``lr`` = η is the root-mean-square change of a pixel per step
    (the raw gradient's size varies by orders of magnitude; the normalised
    step does not). The start is uniform noise in the box from ``seed`` (an
    int or a ``numpy.random.Generator``), or ``init`` (N, C, H, W).

    ``classes``: a sequence of N class indices. Returns a `Tensor`
    (N, *shape) in the box; ``softmax(model(images))`` gives their confidence.
    """
    steps = _count(steps, "steps")
    lr = _real(lr, "lr", low=0, low_open=True)
    box = _box(clamp)
    if box is None:
        raise ValueError("fooling_images needs a box (clamp=(low, high)): the noise is drawn in it and kept in it")
    labels = np.asarray(classes.detach().numpy() if isinstance(classes, Tensor) else classes)
    if labels.ndim != 1 or len(labels) == 0:
        raise ValueError(f"classes must be a non-empty sequence of class indices, got shape {labels.shape}")
    labels = _labels(labels, len(labels), name="classes")
    dtype, device = _model_dtype_device(model)
    if init is None:
        try:
            shape = tuple(int(s) for s in shape)
        except TypeError:
            raise TypeError(f"shape must be a tuple (C, H, W), got {shape!r}") from None
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"shape must be (C, H, W) with positive sizes, got {shape}")
        x_img = np.random.default_rng(seed).uniform(*box, size=(len(labels),) + shape)
    else:
        x_img = _images(init, box, name="init")
        if len(x_img) != len(labels):
            raise ValueError(f"init has {len(x_img)} images for {len(labels)} classes")
    m = int(np.prod(x_img.shape[1:]))

    def log_prob(logits, wanted):  # the sum over images of log p_k(x_k); each image's gradient is its own
        return -F.cross_entropy(logits, wanted, reduction="sum")

    with attack_mode(model):
        objective = _Objective(model, labels, log_prob, dtype, device, name="classes")
        for _ in range(steps):
            _, g, _ = objective.value_and_grad(x_img)
            x_img = np.clip(x_img + lr * math.sqrt(m) * _ascent_direction(g, "2"), *box)
    return Tensor(x_img.astype(dtype)) if device == "cpu" else Tensor(x_img.astype(dtype)).to(device)


# --- adversarial training -------------------------------------------------------------------------
def adversarial_training_step(model, x, y, optimizer, *, attack="fgsm_rs", eps, alpha=None, steps=10,
                              norm="inf", clamp=(0.0, 1.0), clean_weight=0.0, seed=None):
    r"""One optimiser step on adversarial examples of the batch: the inner max, then the outer min.

    Adversarial training (Madry et al. 2018) minimises the worst-case loss

    .. math::  \min_\theta\; \mathbb{E}_{(x,y)}\Big[\max_{\|\delta\| \le \epsilon} L(f_\theta(x + \delta), y)\Big]

    by approximating the inner maximum with an attack, then taking a
    gradient step on the loss at the attacked inputs (Danskin's theorem: at
    the maximiser, the gradient of the max is the gradient of the loss).

    ``attack``:

    - ``"fgsm_rs"`` — FGSM from a uniform random start in the ball with step
      ``alpha`` (default 1.25 ε), projected back to the ball: Wong, Rice &
      Kolter (2020), "Fast is better than free"; one extra gradient per step.
    - ``"pgd"`` — `pgd` with ``steps`` steps (default 10; used by this attack only) and its default
      ``alpha`` (2.5 ε / steps); ``steps`` extra gradients per step.
    - ``"fgsm"`` — plain FGSM without the random start (Goodfellow et al.
      2015; prone to "catastrophic overfitting", kept for comparison).

    ``clean_weight`` w mixes in the clean loss: (1 - w) L(x_adv) + w L(x)
    (Goodfellow et al. used w = 0.5). ``seed``: an int or a
    ``numpy.random.Generator`` for the random start (pass one Generator for a
    whole run). The attack runs in eval mode with frozen parameters; the
    update runs in the mode the model was in (call ``model.train()`` first).
    Returns the loss of the step (a float).
    """
    if attack not in ("fgsm_rs", "pgd", "fgsm"):
        raise ValueError(f"unknown attack {attack!r}; expected 'fgsm_rs', 'pgd' or 'fgsm'")
    eps = _real(eps, "eps", low=0)
    clean_weight = _real(clean_weight, "clean_weight", low=0)
    if clean_weight > 1:
        raise ValueError(f"clean_weight must be in [0, 1], got {clean_weight:g}")
    box = _box(clamp)
    dtype, device = _model_dtype_device(model)
    x0 = _images(x, box)
    labels = _labels(y, len(x0))
    if eps == 0:
        x_adv = Tensor(x0.astype(dtype))  # nothing to attack within a ball of radius 0
    elif attack == "fgsm":
        x_adv = fgsm(model, x0, labels, eps, clamp=box)
    elif attack == "fgsm_rs":
        alpha = 1.25 * eps if alpha is None else alpha
        x_adv = pgd(model, x0, labels, eps, alpha=alpha, steps=1, norm=norm, clamp=box, seed=seed)
    else:
        x_adv = pgd(model, x0, labels, eps, alpha=alpha, steps=steps, norm=norm, clamp=box, seed=seed)
    to_device = (lambda t: t) if device == "cpu" else (lambda t: t.to(device))
    target = to_device(Tensor(labels))
    loss = F.cross_entropy(model(to_device(x_adv)), target)
    if clean_weight > 0:
        clean = F.cross_entropy(model(to_device(Tensor(x0.astype(dtype)))), target)
        loss = loss * (1.0 - clean_weight) + clean * clean_weight
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.item())
