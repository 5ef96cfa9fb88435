"""Gradients with respect to the input: the saliency map, SmoothGrad, and the deconvnet and guided
backpropagation, which pass the gradient down through each ReLU by another rule."""
from __future__ import annotations

import contextlib

import numpy as np

from .. import autograd
from .. import nn
from ._common import _evaluating, _images, _objective, _targets, _to_model

__all__ = [
    "input_gradient", "saliency", "smoothgrad", "relu_backward_rule", "guided_backprop", "deconvnet",
]


# =====================================================================================================
# Gradients with respect to the input
# =====================================================================================================
def input_gradient(model, x, target=None, layer=None):
    r"""The gradient :math:`\partial S_t / \partial x` of each image's target score, (N, C, H, W).

    :math:`S_t` is the class score (logit, before the softmax — the softmax
    would mix in the other classes) of class :math:`t` (default: the predicted
    one); with ``layer``, ``target`` is a unit of that layer and :math:`S_t` its
    largest activation.
    """
    x = _images(x)
    with _evaluating(model), autograd.enable_grad():
        xt = _to_model(x, model, requires_grad=True)
        score, _ = _objective(model, xt, target, layer)
        (g,) = autograd.grad(score.sum(), [xt])  # images are independent: the sum's gradient is each one's
    return g.detach().cpu().numpy()


def saliency(model, x, target=None):
    r"""Simonyan et al.'s saliency map: :math:`M_{ij} = \max_c |\partial S_t / \partial x_{c,i,j}|`, (N, H, W)."""
    return np.abs(input_gradient(model, x, target)).max(axis=1)


def smoothgrad(model, x, target=None, n_samples=25, noise=0.15, seed=0, batch_size=128, reduce=True):
    r"""SmoothGrad (Smilkov et al.): the input gradient averaged over noisy copies of each image.

    .. math:: \hat M(x) = \frac{1}{n} \sum_{k=1}^{n} \frac{\partial S_t}{\partial x}(x + \varepsilon_k),
              \quad \varepsilon_k \sim \mathcal N(0, \sigma^2), \quad \sigma = \text{noise} \cdot (\max x - \min x)

    The target is fixed from the clean image (default: its predicted class),
    so every noisy copy explains the same score. The noise is drawn from
    ``numpy.random.default_rng(seed)``. With ``reduce=True`` the result is the
    map :math:`\max_c |\hat M_c|` (N, H, W) like :func:`saliency`, otherwise
    the averaged gradient (N, C, H, W).
    """
    x = _images(x)
    n_samples = int(n_samples)
    if n_samples < 1 or not noise >= 0:
        raise ValueError(f"smoothgrad needs n_samples >= 1 and noise >= 0, got {n_samples} and {noise}")
    n = len(x)
    with _evaluating(model), autograd.no_grad():
        logits = model(_to_model(x, model)).detach().cpu().numpy()
    t = np.repeat(_targets(target, n, logits.shape[1], logits.argmax(1)), n_samples)
    rng = np.random.default_rng(seed)
    sigma = noise * (x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3)))  # per image
    noisy = x[:, None] + rng.standard_normal((n, n_samples) + x.shape[1:]) * sigma[:, None, None, None, None]
    noisy = noisy.reshape((n * n_samples,) + x.shape[1:]).astype(x.dtype)
    grads = np.concatenate([input_gradient(model, noisy[s:s + batch_size], t[s:s + batch_size])
                            for s in range(0, len(noisy), batch_size)])
    mean = grads.reshape((n, n_samples) + x.shape[1:]).mean(1)
    return np.abs(mean).max(axis=1) if reduce else mean


def _guided_hook(module, grad_input, grad_output):
    # grad_input is already g * [a > 0] (the usual ReLU rule); guided backprop also drops g < 0
    return tuple(None if g is None else g.relu() for g in grad_input)


def _deconvnet_hook(module, grad_input, grad_output):
    # the deconvnet ignores the forward pass: a ReLU applied to the signal coming down
    return tuple(None if g is None else g.relu() for g in grad_output)


_RULES = {"guided": _guided_hook, "deconvnet": _deconvnet_hook}


@contextlib.contextmanager
def relu_backward_rule(model, rule):
    r"""Inside the block, every ``nn.ReLU`` of ``model`` passes gradients down by another rule.

    For a ReLU :math:`a^+ = \max(a, 0)` and the signal :math:`g` arriving from
    above, the signal passed down is

    - backpropagation: :math:`g \cdot [a > 0]`;
    - ``"deconvnet"`` (Zeiler & Fergus): :math:`\max(g, 0)` — the forward input is ignored;
    - ``"guided"`` (Springenberg et al.): :math:`\max(g, 0) \cdot [a > 0]` — both masks.

    Implemented with ``register_full_backward_hook`` on each ReLU module (the
    hook replaces the module's input gradient), removed again on leaving the
    block. Only ReLU *modules* can be reached: a ``forward`` that calls
    ``F.relu`` directly keeps the ordinary rule there, so a model without any
    ``nn.ReLU`` is refused.
    """
    if rule not in _RULES:
        raise ValueError(f"rule must be one of {sorted(_RULES)}, got {rule!r}")
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ValueError(f"{type(model).__name__} has no nn.ReLU modules for the {rule!r} rule to replace "
                         "(ReLUs applied with F.relu inside forward cannot be hooked)")
    handles = [m.register_full_backward_hook(_RULES[rule]) for m in relus]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def guided_backprop(model, x, target=None, layer=None):
    """Guided backpropagation (Springenberg et al.): the input gradient with the guided ReLU rule, (N, C, H, W).

    ``target``/``layer`` as in :func:`input_gradient`.
    """
    with relu_backward_rule(model, "guided"):
        return input_gradient(model, x, target, layer)


def deconvnet(model, x, target=None, layer=None):
    """Zeiler & Fergus's deconvnet reconstruction: the input gradient with the deconvnet ReLU rule, (N, C, H, W).

    Max pooling routes the signal to the position that won the forward pass —
    the deconvnet's "switches" — and the transposed convolution is the
    convolution's gradient, so only the ReLU rule differs from backprop.
    """
    with relu_backward_rule(model, "deconvnet"):
        return input_gradient(model, x, target, layer)
