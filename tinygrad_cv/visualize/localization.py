"""Where in the image the evidence for a class lies: occlusion sensitivity (hide a patch, watch the
probability drop), the class activation map of a global-average-pooling head, and Grad-CAM at any layer;
:func:`resize` brings a coarse map up to the input's size."""
from __future__ import annotations

import numpy as np

from .. import autograd
from .. import nn
from ._common import _capture, _evaluating, _images, _objective, _targets, _to_model, get_layer

__all__ = [
    "occlusion", "resize", "class_activation_map", "grad_cam",
]


# =====================================================================================================
# Occlusion
# =====================================================================================================
def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def occlusion(model, x, target=None, patch=7, stride=1, fill=0.0, output="prob", batch_size=256):
    r"""Zeiler & Fergus's occlusion sensitivity: how much the target's probability drops under a grey patch.

    A ``patch`` × ``patch`` square of value ``fill`` (0 is the mean pixel of
    inputs normalised to mean 0: "grey") is centred on rows and columns
    :math:`0, s, 2s, \ldots` (``stride`` :math:`s`; the square is cut at the
    border). Map entry :math:`(a, b)`, for the square centred on pixel
    :math:`(as, bs)`:

    .. math:: D_{ab} = p_t(x) - p_t(x \text{ with the square at } (as, bs) \text{ set to fill})

    (``output="score"``: the same with the logit :math:`S_t` instead of the
    probability :math:`p_t`). Returns (N, ⌈H/s⌉, ⌈W/s⌉); with stride 1 it is
    aligned with the image pixel for pixel. Large values: the patch hid
    evidence for the class. The occluded copies are classified ``batch_size``
    at a time.
    """
    x = _images(x)
    patch, stride = int(patch), int(stride)
    if patch < 1 or stride < 1:
        raise ValueError(f"occlusion needs patch >= 1 and stride >= 1, got {patch} and {stride}")
    if output not in ("prob", "score"):
        raise ValueError(f"output must be 'prob' or 'score', got {output!r}")
    n, _, h, w = x.shape
    rows, cols = np.arange(0, h, stride), np.arange(0, w, stride)
    half = patch // 2

    def evaluate(batch):
        z = model(_to_model(batch, model)).detach().cpu().numpy().astype(np.float64)
        return _softmax(z) if output == "prob" else z

    maps = np.empty((n, len(rows), len(cols)))
    with _evaluating(model), autograd.no_grad():
        base = evaluate(x)
        t = _targets(target, n, base.shape[1], base.argmax(1))
        centres = [(a, b) for a in range(len(rows)) for b in range(len(cols))]
        for i in range(n):
            drops = []
            for start in range(0, len(centres), batch_size):
                chunk = centres[start:start + batch_size]
                batch = np.repeat(x[i:i + 1], len(chunk), axis=0)
                for k, (a, b) in enumerate(chunk):
                    r0, c0 = max(rows[a] - half, 0), max(cols[b] - half, 0)
                    batch[k, :, r0:rows[a] - half + patch, c0:cols[b] - half + patch] = fill
                drops.append(base[i, t[i]] - evaluate(batch)[:, t[i]])
            maps[i] = np.concatenate(drops).reshape(len(rows), len(cols))
    return maps


# =====================================================================================================
# Class activation maps
# =====================================================================================================
def resize(maps, size):
    """Bilinear resizing of (N, h, w) maps to ``size`` = (H, W), pixel centres aligned (``align_corners=False``)."""
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3:
        raise ValueError(f"resize expects maps of shape (N, h, w), got {maps.shape}")
    out_h, out_w = size

    def weights(n_in, n_out):
        # output pixel o's centre lies at (o + 0.5) n_in / n_out - 0.5 in input pixels
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        frac = pos - lo
        m = np.zeros((n_out, n_in))
        np.add.at(m, (np.arange(n_out), lo), 1 - frac)
        np.add.at(m, (np.arange(n_out), hi), frac)
        return m

    rows, cols = weights(maps.shape[1], out_h), weights(maps.shape[2], out_w)
    return np.einsum("ij,njk,lk->nil", rows, maps, cols)


def class_activation_map(model, x, target=None, features="features", classifier="fc", upsample=True):
    r"""Zhou et al.'s class activation map for a network ending in global average pooling and a linear layer.

    With :math:`A_k` (h, w) the maps of layer ``features`` and :math:`w_{c,k}`
    the weights of the ``Linear`` layer ``classifier``, whose input is
    :math:`F_k = \frac{1}{hw}\sum_{ij} A_k[i, j]`:

    .. math:: \mathrm{CAM}_c = \sum_k w_{c,k} A_k, \qquad S_c = \frac{1}{hw}\sum_{ij} \mathrm{CAM}_c[i, j] + b_c

    Returns (N, h, w), or (N, H, W) bilinearly up-sampled to the input with
    ``upsample=True``, for target class :math:`c` (default: the predicted one).
    The identity on the right is checked on the way: a network whose scores
    are not the average of its maps through ``classifier`` is refused (use
    :func:`grad_cam` there).
    """
    x = _images(x)
    fc = get_layer(model, classifier)
    if not isinstance(fc, nn.Linear):
        raise ValueError(f"class_activation_map: {classifier!r} must be the final Linear layer, got "
                         f"{type(fc).__name__}")
    with _evaluating(model), autograd.no_grad(), _capture(model, features) as store:
        logits = model(_to_model(x, model)).detach().cpu().numpy().astype(np.float64)
        a = store["out"].detach().cpu().numpy().astype(np.float64)
    if a.ndim != 4:
        raise ValueError(f"class_activation_map: {features!r} must give feature maps (N, K, h, w), got {a.shape}")
    w = fc.weight.detach().cpu().numpy().astype(np.float64)
    b = 0.0 if fc.bias is None else fc.bias.detach().cpu().numpy().astype(np.float64)
    if w.shape != (logits.shape[1], a.shape[1]):
        raise ValueError(f"class_activation_map: {classifier!r} maps {w.shape[1]} features to {w.shape[0]} "
                         f"scores, but {features!r} has {a.shape[1]} maps and the model {logits.shape[1]} scores")
    expected = a.mean(axis=(2, 3)) @ w.T + b
    if not np.allclose(expected, logits, rtol=1e-3, atol=1e-3 * max(1.0, np.abs(logits).max())):
        raise ValueError(f"class_activation_map: the scores are not {classifier!r} applied to the global average "
                         f"of {features!r}'s maps, so the CAM would not explain them; use grad_cam")
    t = _targets(target, len(x), logits.shape[1], logits.argmax(1))
    cam = np.einsum("nk,nkij->nij", w[t], a)
    return resize(cam, x.shape[2:]) if upsample else cam


def grad_cam(model, x, layer, target=None, upsample=True):
    r"""Selvaraju et al.'s Grad-CAM at any layer with feature maps: (N, h, w), or (N, H, W) up-sampled.

    .. math:: \alpha_k = \frac{1}{hw} \sum_{ij} \frac{\partial S_t}{\partial A_k[i, j]}, \qquad
              L = \mathrm{ReLU}\Big(\sum_k \alpha_k A_k\Big)

    :math:`S_t` is the target's class score (default: the predicted class).
    For a network of global average pooling and a linear layer,
    :math:`\alpha_k = w_{t,k}/(hw)`, so Grad-CAM is :math:`\mathrm{ReLU}(\mathrm{CAM}_t)/(hw)`.
    """
    x = _images(x)
    with _evaluating(model), autograd.enable_grad(), _capture(model, layer) as store:
        xt = _to_model(x, model)
        score, _ = _objective(model, xt, target, None)
        score = score.sum()
        a = store.get("out")
        if a is None or a.ndim != 4:
            raise ValueError(f"grad_cam: {layer!r} must give feature maps (N, K, h, w), got "
                             f"{None if a is None else a.shape}")
        (g,) = autograd.grad(score, [a])
    a = a.detach().cpu().numpy().astype(np.float64)
    alpha = g.detach().cpu().numpy().astype(np.float64).mean(axis=(2, 3))
    cam = np.maximum(np.einsum("nk,nkij->nij", alpha, a), 0)
    return resize(cam, x.shape[2:]) if upsample else cam
