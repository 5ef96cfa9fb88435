"""Optimising the input: images that maximise a class score or a unit (activation maximisation), and
images whose representation at a layer matches a given one (inverting a representation)."""
from __future__ import annotations

import math

import numpy as np

from .. import autograd
from .. import functional as F
from ._common import _evaluating, _extractor, _images, _model_dtype_device, _objective, _to_model

__all__ = [
    "gaussian_blur", "total_variation", "activation_maximization", "invert_representation",
]


# =====================================================================================================
# Optimising the input
# =====================================================================================================
def gaussian_blur(images, sigma):
    """Blur (N, C, H, W) images with a Gaussian of standard deviation ``sigma`` pixels (edges repeated)."""
    images = np.asarray(images)
    if sigma <= 0:
        return images.copy()
    radius = max(1, int(math.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    padded = np.pad(images, ((0, 0), (0, 0), (radius, radius), (radius, radius)), mode="edge")
    h, w = images.shape[2:]
    # separable: rows, then columns
    rows = sum(k[i] * padded[:, :, i:i + h, :] for i in range(len(k)))
    return sum(k[i] * rows[:, :, :, i:i + w] for i in range(len(k))).astype(images.dtype)


def total_variation(x, beta=2.0, eps=1e-8):
    r"""Mahendran & Vedaldi's total variation of (N, C, H, W) images, averaged over images and positions (a Tensor).

    .. math:: \mathrm{TV}_\beta(x) = \frac{1}{NHW} \sum_{n,c,i,j}
              \big((x_{i,j+1} - x_{ij})^2 + (x_{i+1,j} - x_{ij})^2 + \epsilon\big)^{\beta/2}

    with the differences that would reach past the last row or column taken
    as 0, so every pixel, the corners included, is tied to its neighbours.
    :math:`\beta = 2` penalises every step quadratically; :math:`\beta < 2`
    tolerates sharp edges (the :math:`\epsilon` keeps its gradient finite at 0).
    """
    dx = F.pad(x[:, :, :, 1:] - x[:, :, :, :-1], (0, 1))          # (N, C, H, W): last column 0
    dy = F.pad(x[:, :, 1:, :] - x[:, :, :-1, :], (0, 0, 0, 1))    # (N, C, H, W): last row 0
    sq = dx * dx + dy * dy
    terms = sq if beta == 2 else (sq + eps) ** (beta / 2)
    return terms.sum() / (x.shape[0] * x.shape[2] * x.shape[3])


def activation_maximization(model, targets, shape, layer=None, steps=200, lr=0.1, l2=1e-2, jitter=1,
                            blur_every=4, blur_sigma=0.5, clip=None, init_std=0.1, seed=0, history=None):
    r"""Images that maximise class scores (Simonyan et al.'s class models) or units of a layer, (N, C, H, W).

    For each target :math:`t_n` (a class, or a unit of ``layer``), gradient
    ascent on the regularised objective

    .. math:: J(x) = S_t(x) - \lambda \lVert x \rVert_2^2

    (``l2`` :math:`= \lambda`) from a small random image, with Yosinski et
    al.'s regularisers: before each step the image is shifted by a random
    offset of at most ``jitter`` pixels (the score must hold wherever the
    pattern sits), every ``blur_every`` steps it is blurred with a Gaussian of
    ``blur_sigma`` pixels (high frequencies the network would gladly amplify
    are smoothed away), and with ``clip=(lo, hi)`` it is kept in the range of
    real inputs. The step is :math:`x \leftarrow x + \eta\, \nabla J / \mathrm{rms}(\nabla J)`
    (``lr`` :math:`= \eta`), normalised per image so one rate fits every layer
    and class; this changes the path, not the stationary points :math:`\nabla J = 0`.

    ``shape`` is one image's (C, H, W). Everything random comes from
    ``numpy.random.default_rng(seed)``: the same seed gives the same images.
    If ``history`` is a list, the targets' scores :math:`S_t` (an (N,) array)
    are appended to it before every step.
    """
    targets = np.asarray(targets, dtype=np.int64).reshape(-1)
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3:
        raise ValueError(f"shape is one image's (C, H, W), got {shape}")
    if int(steps) < 0 or lr <= 0 or l2 < 0:
        raise ValueError(f"need steps >= 0, lr > 0 and l2 >= 0, got {steps}, {lr}, {l2}")
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((len(targets),) + shape) * init_std).astype(np.float64)
    for step in range(int(steps)):
        dy, dx = rng.integers(-jitter, jitter + 1, size=2) if jitter else (0, 0)
        shifted = np.roll(x, (dy, dx), axis=(2, 3))
        with _evaluating(model), autograd.enable_grad():
            xt = _to_model(shifted, model, requires_grad=True)
            score, _ = _objective(model, xt, targets, layer)
            if history is not None:
                history.append(score.detach().cpu().numpy().astype(np.float64))
            (g,) = autograd.grad(score.sum(), [xt])
        # the gradient with respect to the unshifted image is the shifted-back gradient
        g = np.roll(g.detach().cpu().numpy().astype(np.float64), (-dy, -dx), axis=(2, 3)) - 2 * l2 * x
        rms = np.sqrt((g ** 2).mean(axis=(1, 2, 3), keepdims=True)) + 1e-12
        x = x + lr * g / rms
        if blur_every and (step + 1) % int(blur_every) == 0:
            x = gaussian_blur(x, blur_sigma)
        if clip is not None:
            x = np.clip(x, clip[0], clip[1])
    return x.astype(_model_dtype_device(model)[0])


def invert_representation(model, layer, x0, steps=200, lr=0.05, tv_weight=1e-2, tv_beta=2.0, init_std=0.1,
                          clip=None, seed=0, history=None):
    r"""Mahendran & Vedaldi: an image whose representation at ``layer`` matches that of ``x0``, (N, C, H, W).

    .. math:: x^* = \arg\min_x \frac{\lVert \Phi(x) - \Phi(x_0) \rVert_2^2}{\lVert \Phi(x_0) \rVert_2^2}
              + \lambda\, \mathrm{TV}_\beta(x)

    with :math:`\Phi` the output of ``layer`` (:func:`total_variation`,
    ``tv_weight`` :math:`= \lambda`), minimised by Adam (``lr``) for ``steps``
    steps from a random image (``numpy.random.default_rng(seed)``), each image
    of the batch on its own (the losses are summed). What survives the
    inversion is what the layer keeps of the input; what comes out different
    is what it has thrown away. If ``history`` is a list, the representation
    loss (the first term, summed over the batch) before every step is appended.
    """
    from .. import optim  # optim imports nn; here at call time, as _extractor

    x0 = _images(x0, "x0")
    if int(steps) < 0 or lr <= 0 or tv_weight < 0:
        raise ValueError(f"need steps >= 0, lr > 0 and tv_weight >= 0, got {steps}, {lr}, {tv_weight}")
    fx = _extractor(model, [layer])
    n = len(x0)
    with _evaluating(model):
        with autograd.no_grad():
            target = fx(_to_model(x0, model))[layer].detach()
        target = target.reshape(n, -1)
        norm = (target * target).sum(1).detach().cpu().numpy().astype(np.float64)
        if np.any(norm == 0):
            raise ValueError(f"invert_representation: {layer!r} gives an all-zero representation for some image; "
                             "the normalised loss is undefined")
        inv_norm = _to_model(1.0 / norm, model)
        rng = np.random.default_rng(seed)
        x = _to_model(rng.standard_normal(x0.shape) * init_std, model, requires_grad=True)
        opt = optim.Adam([x], lr=lr)
        for _ in range(int(steps)):
            diff = fx(x)[layer].reshape(n, -1) - target
            rep = ((diff * diff).sum(1) * inv_norm).sum()
            loss = rep + tv_weight * n * total_variation(x, tv_beta) if tv_weight else rep
            if history is not None:
                history.append(rep.item())
            opt.zero_grad()
            loss.backward()
            opt.step()
            if clip is not None:
                with autograd.no_grad():
                    x.data[...] = np.clip(x.data, clip[0], clip[1])
                    x._bump_version()
    return x.detach().cpu().numpy()
