"""Autograders for Chapters 13-18: training, speed, the GPU, looking inside, attacks, distillation."""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from ..autograd import grad as _grad
from ..tensor import Tensor

from ._grader import Report, _gradient_problem, _leaf, _mismatch, _np, _run

# =====================================================================================================
# Chapter 13: one training step
# =====================================================================================================
def _tiny_classifier(seed, n_in=16, classes=4):
    from .. import nn
    from ..random import manual_seed

    manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(n_in, 8, dtype=np.float64), nn.Tanh(),
                         nn.Linear(8, classes, dtype=np.float64))


def check_train_step(train_step):
    """Chapter 13: ``train_step(model, optimizer, images, labels)``: one step on one batch; return the loss.

    Forward, mean cross-entropy, ``zero_grad``, ``backward``, ``step`` — and
    return the loss (a float or a one-element Tensor) computed *before* the
    update. Checked against the same steps done by the checker on an identical
    model, twice in a row with SGD with momentum (the second step shows
    gradients left over from the first).
    """
    from .. import optim

    rng = np.random.default_rng(20)
    images = [Tensor(rng.standard_normal((8, 1, 4, 4))) for _ in range(3)]
    labels = [Tensor(rng.integers(0, 4, 8)) for _ in range(3)]

    def run():
        mine, theirs = _tiny_classifier(21), _tiny_classifier(21)
        opt_mine = optim.SGD(mine.parameters(), lr=0.1, momentum=0.9)
        opt_theirs = optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
        for k in range(3):
            loss = F.cross_entropy(mine(images[k]), labels[k])
            opt_mine.zero_grad()
            loss.backward()
            opt_mine.step()
            before = [p.data.copy() for p in theirs.parameters()]
            got = train_step(theirs, opt_theirs, images[k], labels[k])
            try:
                got_value = float(got.item() if isinstance(got, Tensor) else got)
            except (TypeError, ValueError, AttributeError):
                return f"train_step returned {got!r}, expected the loss (a float or a one-element Tensor)"
            if not math.isclose(got_value, loss.item(), rel_tol=1e-9):
                return f"step {k + 1}: returned loss {got_value!r}, expected {loss.item()!r} (the loss before the update)"
            if all(np.array_equal(b, p.data) for b, p in zip(before, theirs.parameters())):
                return f"step {k + 1}: no parameter changed. Hint: call optimizer.step() after backward()."
            for (name, p), q in zip(theirs.named_parameters(), mine.parameters()):
                problem = _mismatch(p, q.data, f"step {k + 1}: parameter {name}", atol=1e-10, rtol=1e-9)
                if problem:
                    if k > 0:
                        problem += (" Hint: the first step matched, a later one did not: gradients accumulate — "
                                    "call optimizer.zero_grad() before backward().")
                    return problem

    return _run("train_step", [("three steps of SGD with momentum", run)])


# =====================================================================================================
# Chapter 14: im2col
# =====================================================================================================
def check_im2col(im2col):
    r"""Chapter 14: ``im2col(x, kh, kw, stride=1, padding=0)``: every receptive field as a column.

    ``x`` (N, C, H, W) → a (C·kh·kw, N·OH·OW) matrix; row ``(c·kh + p)·kw + q``
    holds tap (p, q) of channel c, column ``(n·OH + i)·OW + j`` output
    position (i, j) of image n, so that

    .. math::  y = \big(W_{(O,\ C k_h k_w)}\ \mathrm{cols}\big)\text{ reshaped to }(O, N, OH, OW),\text{ axes 0 and 1 swapped}

    is the convolution. Compared, through that product, with the reference
    twin's ``conv2d_forward``.
    """
    from ..kernels import reference as ref

    rng = np.random.default_rng(22)

    def case(N, C, H, W, kh, kw, s, P):
        x = rng.standard_normal((N, C, H, W))
        w = rng.standard_normal((4, C, kh, kw))
        OH, OW = (H + 2 * P - kh) // s + 1, (W + 2 * P - kw) // s + 1
        cols = _np(im2col(x.copy(), kh, kw, stride=s, padding=P))
        if cols.shape != (C * kh * kw, N * OH * OW):
            return f"the matrix has shape {cols.shape}, expected (C·kh·kw, N·OH·OW) = {(C * kh * kw, N * OH * OW)}"
        y = (w.reshape(4, -1) @ cols).reshape(4, N, OH, OW).transpose(1, 0, 2, 3)
        want = ref.conv2d_forward(x, w, None, s, P, 1, 1)
        return _mismatch(y, want, "W @ cols, reshaped (the convolution)")

    return _run("im2col", [("3×3, stride 1, no padding", lambda: case(2, 3, 6, 5, 3, 3, 1, 0)),
                           ("2×3 kernel, stride 2, padding 1", lambda: case(2, 2, 7, 6, 2, 3, 2, 1))])


# =====================================================================================================
# Chapter 15: a tree reduction on the GPU
# =====================================================================================================
def check_block_max(block_max, threads=16):
    """Chapter 15: the kernel ``block_max[1, threads](x, out)`` writes ``max(x)`` to ``out[0]``.

    One block of ``threads`` threads (a power of two): a block-stride loop
    for each thread's own maximum, then a tree in shared memory with
    ``cuda.syncthreads()`` between levels. Checked with more elements than
    threads, fewer, and all negative (the identity is -inf, not 0). Runs on a
    GPU or on Numba's simulator (``NUMBA_ENABLE_CUDASIM=1``).
    """
    from .. import cuda as tg_cuda

    if not tg_cuda.is_available():
        return Report("block_max", False, [], "not checked: no GPU and no simulator here; start Python with "
                      "NUMBA_ENABLE_CUDASIM=1 to run the kernel on the simulator")
    from numba import cuda

    rng = np.random.default_rng(23)

    def case(x):
        d_out = cuda.to_device(np.array([np.nan]))
        block_max[1, threads](cuda.to_device(x), d_out)
        got = d_out.copy_to_host()[0]
        if not (got == x.max()):
            hint = ""
            if got == 0.0 and x.max() < 0:
                hint = " Hint: every value is negative: start each thread's maximum at -inf, not 0."
            elif len(x) > threads and got == x[:threads].max():
                hint = " Hint: only the first `threads` elements were seen: loop k = t, t + T, ... over all of x."
            return f"max of {len(x)} values: got {float(got)!r}, expected {float(x.max())!r}.{hint}"

    return _run("block_max", [("40 values, 16 threads", lambda: case(rng.standard_normal(40))),
                              ("5 values (fewer than the threads)", lambda: case(rng.standard_normal(5))),
                              ("all negative", lambda: case(-rng.uniform(1, 2, 37)))])


# =====================================================================================================
# Chapter 16-17: input gradients, saliency and FGSM
# =====================================================================================================
def _images_classifier(seed):
    from .. import nn
    from ..random import manual_seed

    manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(2 * 5 * 5, 12, dtype=np.float64), nn.Tanh(),
                         nn.Linear(12, 4, dtype=np.float64))


def check_saliency(saliency):
    r"""Chapter 16: ``saliency(model, x, target)``: :math:`M_{ij} = \max_c |\partial S_t / \partial x_{c,i,j}|`.

    ``x`` a NumPy batch (N, C, H, W), ``target`` N class indices; :math:`S_t`
    is the *logit* of class t (before the softmax). Return an (N, H, W) array.
    Compared with ``tinygrad_cv.visualize.saliency`` on a small two-channel
    classifier.
    """
    from ..visualize import saliency as library_saliency

    rng = np.random.default_rng(24)
    model = _images_classifier(25)
    x = rng.uniform(0, 1, (3, 2, 5, 5))
    target = np.array([0, 3, 1])

    def run():
        got = saliency(model, x.copy(), target.copy())
        want = library_saliency(model, x, target)
        problem = _mismatch(got, want, "the saliency map", atol=1e-10)
        if problem and np.shape(got) == want.shape:
            xt = _leaf(x)
            logp = F.log_softmax(model(xt), 1)
            (g,) = _grad(logp[np.arange(3), target].sum(), [xt])
            if np.allclose(_np(got), np.abs(g.numpy()).max(axis=1)):
                problem += " Hint: differentiate the class score (the logit), not the log-probability."
            elif np.allclose(_np(got), np.abs(library_saliency(model, x, None))):
                problem += " Hint: use the given target class, not the predicted one."
        elif problem and np.shape(got) == (3, 2, 5, 5):
            problem += " Hint: take the maximum of |gradient| over the channel axis."
        return problem

    return _run("saliency", [("three images, two channels", run)])


def check_fgsm(fgsm):
    r"""Chapter 17: ``fgsm(model, x, y, eps)``: :math:`\mathrm{clip}_{[0,1]}(x + \epsilon\,\mathrm{sign}\,\nabla_x L)`.

    ``x`` a NumPy batch in [0, 1], ``y`` its labels, :math:`L` the summed
    cross-entropy. Return the adversarial batch (array or Tensor). Compared
    with ``tinygrad_cv.adversarial.fgsm``; also checked: it stays within ε of
    ``x`` and inside [0, 1].
    """
    from ..adversarial import fgsm as library_fgsm

    rng = np.random.default_rng(26)
    model = _images_classifier(27)
    x = rng.uniform(0, 1, (4, 2, 5, 5))
    x[0, 0, 0] = 0.0   # pixels on the box's edges, which a step may push outside
    x[1, 1, 2] = 1.0
    y = np.array([0, 1, 2, 3])

    def run():
        eps = 0.1
        got = _np(fgsm(model, x.copy(), y.copy(), eps))
        if got.shape != x.shape:
            return f"the adversarial batch has shape {got.shape}, expected {x.shape}"
        if np.abs(got - x).max() > eps + 1e-9:
            return f"a pixel moved by {np.abs(got - x).max():.4g} > eps = {eps}"
        if got.min() < 0 or got.max() > 1:
            return f"values outside [0, 1] (min {got.min():.4g}, max {got.max():.4g}): clip to the image box"
        want = _np(library_fgsm(model, x, y, eps))
        problem = _mismatch(got, want, "x_adv", atol=1e-12)
        xt = _leaf(x)
        (g,) = _grad(F.cross_entropy(model(xt), Tensor(y), reduction="sum"), [xt])
        if problem and np.allclose(got, np.clip(x - eps * np.sign(g.numpy()), 0, 1)):
            problem += " Hint: you stepped down the loss; FGSM goes up it: x + eps·sign(∇L)."
        return problem

    return _run("fgsm", [("four images, eps 0.1", run)])


# =====================================================================================================
# Chapter 18: distillation
# =====================================================================================================
def check_distillation_loss(distillation_loss):
    r"""Chapter 18: ``distillation_loss(z_s, z_t, target, T, alpha)`` as tensor operations.

    .. math::  \mathcal L = \alpha T^2\, \mathrm{KL}\big(\mathrm{softmax}(z_t/T) \,\|\, \mathrm{softmax}(z_s/T)\big)
               + (1 - \alpha)\, \mathrm{CE}(z_s, y)

    with the KL summed over classes and averaged over the batch, the
    cross-entropy at T = 1, and no gradient reaching the teacher. Compared
    with ``tinygrad_cv.distillation.distillation_loss``: the value, the
    student's gradient (and against central differences), the teacher's.
    """
    from ..distillation import distillation_loss as library_loss

    rng = np.random.default_rng(28)
    zs0, zt0 = rng.standard_normal((6, 5)) * 3, rng.standard_normal((6, 5)) * 3
    y = Tensor(rng.integers(0, 5, 6))

    def case(T, alpha):
        zs, zt = _leaf(zs0), _leaf(zt0)
        loss = distillation_loss(zs, zt, y, T, alpha)
        if not isinstance(loss, Tensor):
            return f"expected a Tensor (so that it can be backpropagated), got {type(loss).__name__}"
        want = library_loss(Tensor(zs0), Tensor(zt0), y, T=T, alpha=alpha).item()
        problem = _mismatch(loss.reshape(()) if loss.numel() == 1 else loss, want, f"the loss at T = {T}, alpha = {alpha}")
        if problem:
            if loss.numel() == 1 and T != 1:
                soft = library_loss(Tensor(zs0), Tensor(zt0), y, T=T, alpha=1.0).item()
                hard = want - alpha * soft
                if math.isclose(loss.item(), alpha * soft / (T * T) + hard, rel_tol=1e-9):
                    problem += " Hint: the soft term is multiplied by T² (keeps its gradient's size as T changes)."
            return problem
        grads = _grad(loss, [zs, zt], allow_unused=True)
        if grads[1] is not None and np.any(grads[1].numpy() != 0):
            return "a gradient reached the teacher's logits: detach them (teacher.detach())"
        zs_c, zt_c = _leaf(zs0), Tensor(zt0)
        return _gradient_problem(lambda z: distillation_loss(z, zt_c, y, T, alpha), [zs_c], ["the student's logits"])

    return _run("distillation_loss", [("T = 1, alpha = 0.5", lambda: case(1.0, 0.5)),
                                      ("T = 4, alpha = 0.9", lambda: case(4.0, 0.9)),
                                      ("T = 10, alpha = 1", lambda: case(10.0, 1.0))])
