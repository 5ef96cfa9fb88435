r"""Looking inside a trained CNN: what its layers respond to and which pixels its decisions use.

Every function takes a model and a batch of images ``x`` of shape
``(N, C, H, W)`` (a NumPy array or a `Tensor`; one image is ``x[None]``) and
returns NumPy arrays; layers are named as in ``model.named_modules()``
(``"features.0"``). The plotting helpers at the end draw those arrays with
matplotlib, an optional extra imported only when they are called.

What each method computes (chapter 16 of ``docs/`` derives them):

- weights: :func:`filters`, :func:`filter_grid` — each filter scaled to [0, 1] on its own;
- activations: :func:`feature_maps`, :func:`top_activations` (the k inputs that excite a
  unit most, with the patch its receptive field sees — :func:`receptive_field`);
- gradients with respect to the input: :func:`saliency` :math:`\max_c |\partial S_t/\partial x_c|`,
  :func:`smoothgrad` (the gradient averaged over noisy copies), :func:`guided_backprop` and
  :func:`deconvnet` (backpropagation with another rule at each ReLU, :func:`relu_backward_rule`);
- perturbation: :func:`occlusion` (the drop of the class probability under a sliding grey patch);
- localisation: :func:`class_activation_map` (GAP-headed networks), :func:`grad_cam` (any layer);
- optimising the input: :func:`activation_maximization` (class models, units) and
  :func:`invert_representation` (an image whose representation matches a given one);
- representations of a data set: :func:`layer_features`, :func:`pca`, :func:`tsne`,
  :func:`knn_accuracy`, :func:`linear_probe_accuracy`, :func:`layer_separability`.

Everything that runs the model does it in evaluation mode (batch norm with its
running statistics, no dropout — otherwise the images of a batch would influence
each other's explanations) and restores each module's mode afterwards. Gradients
are taken with ``tinygrad_cv.grad``, so parameters' ``.grad`` are left untouched.
"""
from __future__ import annotations

import contextlib
import math
from collections import OrderedDict, namedtuple

import numpy as np

from . import autograd
from . import functional as F
from . import nn
from .tensor import Tensor, from_numpy

__all__ = [
    "get_layer", "ReceptiveField", "receptive_field",
    "filters", "filter_grid", "image_grid", "feature_maps", "TopActivations", "top_activations",
    "receptive_field_patches",
    "input_gradient", "saliency", "smoothgrad", "relu_backward_rule", "guided_backprop", "deconvnet",
    "occlusion", "class_activation_map", "grad_cam", "resize",
    "gaussian_blur", "total_variation", "activation_maximization", "invert_representation",
    "layer_features", "pca", "tsne", "knn_accuracy", "linear_probe_accuracy", "layer_separability",
    "plot_images", "plot_filters", "plot_overlay", "plot_embeddings",
]


# =====================================================================================================
# Arguments: layers, images, targets
# =====================================================================================================
def get_layer(model, name):
    """The sub-module of ``model`` called ``name`` (a dotted name from ``named_modules()``).

    An unknown name is a ``ValueError`` that lists the names there are, so a
    typo is answered with the right spelling.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")
    if not isinstance(name, str):
        raise TypeError(f"a layer is named by a string such as 'features.0', got {type(name).__name__}")
    modules = dict(model.named_modules())
    if name == "" or name not in modules:
        known = ", ".join(f"{n} ({type(m).__name__})" for n, m in modules.items() if n)
        raise ValueError(f"unknown layer {name!r}; the layers of {type(model).__name__} are: {known}")
    return modules[name]


def _model_dtype_device(model):
    for p in model.parameters():
        return p.dtype, p.device
    return np.dtype(np.float32), "cpu"


def _images(x, name="x"):
    """``x`` as a float NumPy batch (N, C, H, W); anything else is refused with the fix."""
    if isinstance(x, Tensor):
        x = x.detach().numpy()
    x = np.asarray(x)
    if x.ndim != 4:
        hint = " — for one image use x[None]" if x.ndim == 3 else ""
        raise ValueError(f"{name} must be a batch of images of shape (N, C, H, W); got shape {x.shape}{hint}")
    if x.dtype.kind != "f":
        # uint8 pixels would be fed un-normalised; better to say so than to explain garbage
        raise TypeError(f"{name} must hold floating point values (normalised as for training), got {x.dtype}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {x.shape})")
    return x


def _to_model(array, model, requires_grad=False):
    dtype, device = _model_dtype_device(model)
    t = from_numpy(np.ascontiguousarray(array, dtype=dtype))
    if device != "cpu":
        t = t.to(device)
    if requires_grad:
        t.requires_grad_()
    return t


@contextlib.contextmanager
def _evaluating(model):
    """Evaluation mode inside the block; each module's own mode is put back afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)


def _targets(target, n, num_outputs, default, what="target"):
    """One index per image: None -> ``default`` (the predicted class), an int -> the same for all."""
    if target is None:
        return np.asarray(default, dtype=np.int64)
    t = np.asarray(target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{what} must be an integer or a sequence of integers, got {target!r}")
    t = np.broadcast_to(t, (n,)) if t.ndim == 0 else t
    if t.shape != (n,):
        raise ValueError(f"{what} must be one integer or one per image ({n}), got shape {t.shape}")
    if t.size and (t.min() < 0 or t.max() >= num_outputs):
        raise ValueError(f"{what} must lie in [0, {num_outputs}), got {t.tolist()}")
    return t.astype(np.int64)


def _one_hot(indices, n_classes, like):
    out = np.zeros((len(indices), n_classes), dtype=like.dtype)
    out[np.arange(len(indices)), indices] = 1
    t = Tensor._wrap(out)
    return t.to(like.device) if like.device != "cpu" else t


@contextlib.contextmanager
def _capture(model, layer):
    """Inside the block, ``store["out"]`` is ``layer``'s latest output (with its graph), via a forward hook."""
    module = get_layer(model, layer)
    store = {}

    def hook(mod, args, output):
        store["out"] = output

    handle = module.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def _extractor(model, layers):
    # imported here: tinygrad_cv.models imports nn, which this module also needs at import time
    from .models import feature_extractor

    for name in layers:
        get_layer(model, name)  # our error message (with the list of names) for a typo
    return feature_extractor(model, list(layers))


def _objective(model, xt, target, layer):
    """The score each image's explanation is about, an (N,) Tensor with its graph, and the targets used.

    ``layer=None``: the class score (logit) S_t(x_n) of target t_n (default: the predicted class).
    ``layer`` given: unit (channel) t_n of that layer — its largest activation over positions for
    a feature map (the single strongest activation, which is what Zeiler & Fergus project down),
    the value itself for a vector layer.
    """
    if layer is None:
        logits = model(xt)
        if logits.ndim != 2:
            raise ValueError(f"the model must return scores of shape (N, classes), got {logits.shape}")
        t = _targets(target, xt.shape[0], logits.shape[1], logits.detach().cpu().numpy().argmax(1))
        return (logits * _one_hot(t, logits.shape[1], logits)).sum(1), t
    if target is None:
        raise ValueError(f"with layer={layer!r} the target is a unit (channel) of that layer; give its index")
    with _capture(model, layer) as store:
        model(xt)
    a = store["out"]
    t = _targets(target, xt.shape[0], a.shape[1], None, what="unit")
    mask = _one_hot(t, a.shape[1], a).reshape((a.shape[0], a.shape[1]) + (1,) * (a.ndim - 2))
    picked = (a * mask).sum(1)
    if picked.ndim > 1:
        picked = picked.reshape(picked.shape[0], -1).amax(1)
    return picked, t


# =====================================================================================================
# Receptive fields
# =====================================================================================================
ReceptiveField = namedtuple("ReceptiveField", ["size", "stride", "offset"])
ReceptiveField.__doc__ = """Where a unit of a layer looks in the input, per axis (rows, columns).

Unit ``(i, j)`` of the layer sees input rows ``offset[0] + i * stride[0]`` to
``offset[0] + i * stride[0] + size[0] - 1`` (and columns likewise); a negative
offset means the window starts in the zero padding."""

# layers that act on each position separately: the geometry passes through them unchanged
_POINTWISE = (nn.ReLU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.BatchNorm2d, nn.Dropout, nn.Identity)
# after one of these a unit sees the whole input
_GLOBAL = (nn.Linear, nn.Flatten, nn.AdaptiveAvgPool2d, nn.BatchNorm1d)


def _geometry(module):
    """(kernel, stride, left padding, dilation), each a pair, of a conv or pool layer."""

    def pair(v):
        return tuple(int(a) for a in v) if isinstance(v, (tuple, list)) else (int(v), int(v))

    if isinstance(module, nn.ConvTranspose2d):
        raise ValueError("receptive_field: a transposed convolution up-samples; its geometry is not a "
                         "kernel/stride window of its input, so the arithmetic here does not apply")
    if isinstance(module, nn.Conv2d):
        k, s, d = module.kernel_size, module.stride, module.dilation
        if module.padding == "same":  # total d(k-1), the odd one out on the right/bottom (PyTorch)
            p = tuple((di * (ki - 1)) // 2 for ki, di in zip(k, d))
        elif module.padding == "valid":
            p = (0, 0)
        else:
            p = module.padding
        return pair(k), pair(s), pair(p), pair(d)
    if isinstance(module, nn.MaxPool2d):
        return pair(module.kernel_size), pair(module.stride), pair(module.padding), pair(module.dilation)
    if isinstance(module, nn.AvgPool2d):
        return pair(module.kernel_size), pair(module.stride), pair(module.padding), (1, 1)
    return None


def receptive_field(model, layer):
    r"""Size, stride and offset of the receptive field of ``layer``'s units in the input.

    Walking the conv and pool layers up to ``layer`` in registration order (the
    order of a ``Sequential``), with kernel :math:`k`, stride :math:`s`, left
    padding :math:`p` and dilation :math:`d` (effective kernel
    :math:`\hat k = d(k - 1) + 1`), per axis and starting from
    :math:`r_0 = 1, j_0 = 1, o_0 = 0`:

    .. math::
        r_l = r_{l-1} + (\hat k_l - 1)\, j_{l-1}, \qquad j_l = j_{l-1}\, s_l, \qquad
        o_l = o_{l-1} - p_l\, j_{l-1}

    :math:`r` is the size (in input pixels), :math:`j` the stride ("jump")
    between neighbouring units, :math:`o` the first input row unit 0 sees.
    Pointwise layers (ReLU, batch norm, dropout, ...) change nothing. A layer
    at or after a ``Linear``/``Flatten``/global pooling sees the whole input and
    is refused; so is a layer type the arithmetic does not know (a custom
    module), rather than guessing. A model whose ``forward`` applies its layers
    in another order than they were registered needs its own walk.
    """
    target = get_layer(model, layer)
    r, j, o = [1, 1], [1, 1], [0, 0]
    for name, module in model.named_modules():
        if module._modules:  # containers and models: only their leaves act on the data
            if module is target:
                raise ValueError(f"receptive_field: {layer!r} is a container ({type(module).__name__}); "
                                 "name one of its layers")
            continue
        if isinstance(module, _GLOBAL):
            raise ValueError(f"receptive_field: {layer!r} comes at or after {name!r} ({type(module).__name__}), "
                             "so its units see the whole input")
        geometry = _geometry(module)
        if geometry is not None:
            (kh, kw), (sh, sw), (ph, pw), (dh, dw) = geometry
            for axis, (k, s, p, d) in enumerate(((kh, sh, ph, dh), (kw, sw, pw, dw))):
                k_eff = d * (k - 1) + 1
                r[axis] += (k_eff - 1) * j[axis]
                o[axis] -= p * j[axis]
                j[axis] *= s
        elif not isinstance(module, _POINTWISE):
            raise ValueError(f"receptive_field: don't know the geometry of {name!r} ({type(module).__name__}); "
                             "only Conv2d, MaxPool2d, AvgPool2d and pointwise layers are understood")
        if module is target:
            return ReceptiveField(tuple(r), tuple(j), tuple(o))
    raise ValueError(f"receptive_field: {layer!r} was not reached walking the model's layers")  # pragma: no cover


def receptive_field_patches(images, indices, positions, rf, fill=None):
    """The input patches that units at ``positions`` of images ``indices`` see.

    ``images`` (N, C, H, W); ``indices`` any integer shape S; ``positions`` shape
    S + (2,) of (row, column) in the layer's output; ``rf`` a `ReceptiveField`.
    Returns S + (C, size_rows, size_cols). Parts of a window outside the image
    (the padding) are filled with ``fill`` (default: each image's minimum, the
    background of a digit).
    """
    images = _images(images, "images")
    indices = np.asarray(indices)
    positions = np.asarray(positions)
    if positions.shape != indices.shape + (2,):
        raise ValueError(f"positions must have shape {indices.shape + (2,)}, got {positions.shape}")
    (rh, rw), (sh, sw), (oh, ow) = rf
    n, c, h, w = images.shape
    out = np.empty(indices.shape + (c, rh, rw), dtype=images.dtype)
    for idx in np.ndindex(indices.shape):
        img = images[indices[idx]]
        top, left = oh + positions[idx][0] * sh, ow + positions[idx][1] * sw
        patch = np.full((c, rh, rw), img.min() if fill is None else fill, dtype=images.dtype)
        r0, r1 = max(top, 0), min(top + rh, h)
        c0, c1 = max(left, 0), min(left + rw, w)
        if r0 < r1 and c0 < c1:
            patch[:, r0 - top:r1 - top, c0 - left:c1 - left] = img[:, r0:r1, c0:c1]
        out[idx] = patch
    return out


# =====================================================================================================
# Weights and activations
# =====================================================================================================
def filters(model, layer):
    r"""The weights of conv layer ``layer``, (out, in, kh, kw), each filter scaled to [0, 1] on its own.

    :math:`\hat w_o = (w_o - \min w_o) / (\max w_o - \min w_o)`, min and max over
    all of filter :math:`o`'s entries (all its input channels together, so an
    RGB filter keeps its colour balance). A constant filter becomes 0.5.
    """
    module = get_layer(model, layer)
    if not isinstance(module, nn.Conv2d) or isinstance(module, nn.ConvTranspose2d):
        raise ValueError(f"filters: {layer!r} is a {type(module).__name__}, not a Conv2d")
    w = module.weight.detach().cpu().numpy().astype(np.float64)
    lo = w.min(axis=(1, 2, 3), keepdims=True)
    span = w.max(axis=(1, 2, 3), keepdims=True) - lo
    return np.where(span > 0, (w - lo) / np.where(span > 0, span, 1), 0.5)


def image_grid(tiles, ncols=None, pad=1, pad_value=1.0):
    """Lay out ``tiles`` (N, h, w) or (N, h, w, 3) in a mosaic with ``ncols`` columns and ``pad`` pixels between."""
    tiles = np.asarray(tiles, dtype=np.float64)
    if tiles.ndim not in (3, 4) or (tiles.ndim == 4 and tiles.shape[-1] != 3) or len(tiles) == 0:
        raise ValueError(f"tiles must have shape (N, h, w) or (N, h, w, 3) with N > 0, got {tiles.shape}")
    n, h, w = tiles.shape[:3]
    ncols = int(ncols or math.ceil(math.sqrt(n)))
    if ncols < 1:
        raise ValueError(f"ncols must be positive, got {ncols}")
    nrows = math.ceil(n / ncols)
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad) + tiles.shape[3:], pad_value)
    for k in range(n):
        r, c = divmod(k, ncols)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = tiles[k]
    return grid


def filter_grid(model, layer, mode="auto", ncols=None, pad=1):
    """The filters of conv layer ``layer`` as one image.

    ``mode="rgb"`` (a layer with 3 input channels): one colour tile per filter,
    (H, W, 3). ``mode="channels"``: one grey tile per (filter, input channel),
    a row per filter (``ncols`` = input channels), (H, W). ``"auto"``: RGB when
    the layer reads 3 channels, one tile per filter when it reads 1, channels otherwise.
    """
    w = filters(model, layer)
    n_out, n_in = w.shape[:2]
    if mode == "auto":
        mode = "rgb" if n_in == 3 else "channels"
    if mode == "rgb":
        if n_in != 3:
            raise ValueError(f"filter_grid: mode='rgb' needs 3 input channels, {layer!r} has {n_in}")
        return image_grid(w.transpose(0, 2, 3, 1), ncols=ncols, pad=pad)
    if mode != "channels":
        raise ValueError(f"filter_grid: mode must be 'auto', 'rgb' or 'channels', got {mode!r}")
    if n_in == 1:
        return image_grid(w[:, 0], ncols=ncols, pad=pad)
    return image_grid(w.reshape(n_out * n_in, *w.shape[2:]), ncols=ncols or n_in, pad=pad)


def feature_maps(model, layer, x):
    """The output of ``layer`` for the images ``x``: (N, C, h, w) for a conv layer, (N, F) for a vector one."""
    x = _images(x)
    fx = _extractor(model, [layer])
    with _evaluating(model), autograd.no_grad():
        out = fx(_to_model(x, model))[layer]
    return out.detach().cpu().numpy()


TopActivations = namedtuple("TopActivations", ["units", "values", "indices", "positions", "patches"])
TopActivations.__doc__ = """What `top_activations` found, per unit u and rank r (strongest first).

``values[u, r]`` the activation, ``indices[u, r]`` the image, ``positions[u, r]``
the (row, column) of the strongest position in the unit's map (zeros for a
vector layer), ``patches[u, r]`` what that position's receptive field sees
(the whole image for a vector layer or when no receptive field applies)."""


def top_activations(model, layer, images, units=None, k=9, batch_size=256, patches=True):
    r"""The ``k`` images that excite each unit (channel) of ``layer`` most, and the patches they excite it with.

    A unit's response to image :math:`n` is its largest activation over
    positions, :math:`\max_{ij} A_u(x_n)[i, j]`; the patch is the input window
    of that position's receptive field (:func:`receptive_field`); a vector
    layer's units see the whole image. ``units`` (default: all) selects
    channels. ``patches=False`` skips the patches (``None``), for a layer
    whose receptive field :func:`receptive_field` cannot work out. Returns a
    `TopActivations`.
    """
    images = _images(images, "images")
    k = int(k)
    if not 1 <= k <= len(images):
        raise ValueError(f"k must be between 1 and the number of images ({len(images)}), got {k}")
    fx = _extractor(model, [layer])
    best, where, vector = [], [], False
    with _evaluating(model), autograd.no_grad():
        for start in range(0, len(images), batch_size):
            a = fx(_to_model(images[start:start + batch_size], model))[layer].detach().cpu().numpy()
            if a.ndim == 2:
                vector = True
                a = a[:, :, None, None]
            if a.ndim != 4:
                raise ValueError(f"top_activations: {layer!r} gives outputs of shape {a.shape}; expected (N, C, h, w) "
                                 "or (N, F)")
            flat = a.reshape(a.shape[0], a.shape[1], -1)
            arg = flat.argmax(-1)
            best.append(np.take_along_axis(flat, arg[..., None], -1)[..., 0])
            where.append(np.stack(np.unravel_index(arg, a.shape[2:]), -1))
    best, where = np.concatenate(best), np.concatenate(where)  # (N, C), (N, C, 2)
    n_units = best.shape[1]
    units = np.arange(n_units) if units is None else np.asarray(units, dtype=np.int64).reshape(-1)
    if units.size == 0 or units.min() < 0 or units.max() >= n_units:
        raise ValueError(f"units must be channel indices of {layer!r}, in [0, {n_units}), got {units.tolist()}")
    # a stable sort of -value: equal activations keep the images' order, so the result is reproducible
    order = np.argsort(-best[:, units].T, axis=1, kind="stable")[:, :k]  # (U, k)
    values = np.take_along_axis(best[:, units].T, order, 1)
    positions = where[order, units[:, None]]  # (U, k, 2)
    if not patches:
        crops = None
    elif vector:
        crops = images[order]
    else:  # an unknown layer type below is an error here, not a silent whole image
        crops = receptive_field_patches(images, order, positions, receptive_field(model, layer))
    return TopActivations(units, values, order, positions, crops)


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
    from . import optim  # optim imports nn; here at call time, as _extractor

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


# =====================================================================================================
# Representations of a data set
# =====================================================================================================
def layer_features(model, layers, images, batch_size=256):
    """Each layer's output for every image, flattened: an ``OrderedDict`` name -> (N, D) array.

    The name ``"input"`` (when it is not a layer of the model) stands for the images themselves.
    """
    images = _images(images, "images")
    layers = list(layers)
    if not layers:
        raise ValueError("layer_features needs at least one layer name")
    named = dict(model.named_modules())
    real = [name for name in layers if not (name == "input" and name not in named)]
    fx = _extractor(model, real) if real else None
    parts = {name: [] for name in real}
    if fx is not None:
        with _evaluating(model), autograd.no_grad():
            for start in range(0, len(images), batch_size):
                out = fx(_to_model(images[start:start + batch_size], model))
                for name in real:
                    a = out[name].detach().cpu().numpy()
                    parts[name].append(a.reshape(len(a), -1))
    result = OrderedDict()
    for name in layers:
        result[name] = images.reshape(len(images), -1) if name not in parts else np.concatenate(parts[name])
    return result


def pca(features, n_components=2):
    r"""Principal component scores of the rows of ``features`` (N, D) -> (N, n_components), by numpy's SVD.

    With :math:`X_c = X - \bar x` (rows centred) and :math:`X_c = U \Sigma V^\top`,
    the scores are :math:`X_c V_{:k} = U_{:k} \Sigma_{:k}`. Each component's sign
    is fixed so that its largest-magnitude score is positive (SVD leaves it free).
    """
    X = np.asarray(features, dtype=np.float64)
    if X.ndim != 2 or len(X) < 2:
        raise ValueError(f"pca expects features of shape (N, D) with N >= 2, got {X.shape}")
    k = int(n_components)
    if not 1 <= k <= min(X.shape):
        raise ValueError(f"n_components must be between 1 and min(N, D) = {min(X.shape)}, got {n_components}")
    Xc = X - X.mean(axis=0)
    U, S, _ = np.linalg.svd(Xc, full_matrices=False)
    scores = U[:, :k] * S[:k]
    flip = np.sign(scores[np.abs(scores).argmax(axis=0), np.arange(k)])
    return scores * np.where(flip == 0, 1, flip)


def tsne(features, n_components=2, perplexity=30.0, seed=0):
    """A t-SNE embedding (van der Maaten & Hinton) of the rows of ``features``, by scikit-learn (optional)."""
    try:
        from sklearn.manifold import TSNE
    except ImportError as e:
        raise ImportError("tsne needs scikit-learn, an optional dependency: pip install scikit-learn "
                          "(pca needs nothing extra)") from e
    X = np.asarray(features, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"tsne expects features of shape (N, D), got {X.shape}")
    perplexity = min(float(perplexity), (len(X) - 1) / 3)  # scikit-learn requires perplexity < N
    return TSNE(n_components=n_components, perplexity=perplexity, init="pca", random_state=seed).fit_transform(X)


def _check_split(train_x, train_y, test_x, test_y):
    train_x, test_x = np.asarray(train_x, dtype=np.float64), np.asarray(test_x, dtype=np.float64)
    train_y, test_y = np.asarray(train_y).reshape(-1), np.asarray(test_y).reshape(-1)
    if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"features must be (N, D) arrays with the same D, got {train_x.shape} and {test_x.shape}")
    if len(train_x) != len(train_y) or len(test_x) != len(test_y) or len(train_x) == 0 or len(test_x) == 0:
        raise ValueError("each feature array needs one label per row, and neither split may be empty")
    return train_x, train_y.astype(np.int64), test_x, test_y.astype(np.int64)


def knn_accuracy(train_x, train_y, test_x, test_y, k=5):
    """Accuracy of the ``k``-nearest-neighbour vote (Euclidean distance) on the test rows.

    Ties between classes go to the class of the nearest neighbour among them.
    """
    train_x, train_y, test_x, test_y = _check_split(train_x, train_y, test_x, test_y)
    k = int(k)
    if not 1 <= k <= len(train_x):
        raise ValueError(f"k must be between 1 and the number of training rows ({len(train_x)}), got {k}")
    d = (test_x ** 2).sum(1)[:, None] - 2 * test_x @ train_x.T + (train_x ** 2).sum(1)[None, :]
    nearest = np.argsort(d, axis=1, kind="stable")[:, :k]
    votes = np.zeros((len(test_x), int(max(train_y.max(), test_y.max())) + 1))
    for rank in range(k):
        # one vote each, plus a tie-breaker smaller than a vote that favours nearer neighbours
        np.add.at(votes, (np.arange(len(test_x)), train_y[nearest[:, rank]]), 1 + (k - rank) / (k * (k + 1)))
    return float((votes.argmax(1) == test_y).mean())


def _ridge(A, Y, lambdas):
    """Ridge solutions W(λ) = argmin ||A W - Y||² + λ||W||² for each λ, from one thin SVD A = U S Vᵀ.

    W(λ) = V diag(s / (s² + λ)) Uᵀ Y — whichever of N and D is larger, the SVD costs
    min(N, D)² max(N, D) once, and every λ after it is a rescaling.
    """
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    UtY = U.T @ Y
    return [Vt.T @ ((s / (s * s + lam))[:, None] * UtY) for lam in lambdas]


_PROBE_L2 = tuple(10.0 ** np.arange(-2, 6))


def linear_probe_accuracy(train_x, train_y, test_x, test_y, l2=None, folds=3, seed=0):
    r"""Accuracy on the test rows of a linear classifier fitted to the training rows (a ridge-regression "probe").

    Features are standardised with the training rows' mean and deviation;
    with one-hot targets :math:`Y` centred by their training mean :math:`\bar y`,

    .. math:: W = \arg\min_W \lVert X W - (Y - \bar y) \rVert^2 + \lambda \lVert W \rVert^2,
              \qquad \hat c(x) = \arg\max_c\, (x W + \bar y)_c

    (the intercept :math:`\bar y` is not penalised). ``l2=None`` chooses
    :math:`\lambda` from :math:`10^{-2}, \ldots, 10^{5}` by ``folds``-fold
    cross-validation on the training rows alone (the largest of the best, on
    ties); the test rows are only used for the one accuracy returned.
    """
    train_x, train_y, test_x, test_y = _check_split(train_x, train_y, test_x, test_y)
    n_classes = int(max(train_y.max(), test_y.max())) + 1

    def fit(x, y, lambdas):
        mu, sd = x.mean(0), x.std(0)
        sd = np.where(sd > 0, sd, 1.0)
        Y = np.eye(n_classes)[y]
        ybar = Y.mean(0)
        Ws = _ridge((x - mu) / sd, Y - ybar, lambdas)
        return [lambda z, W=W: ((z - mu) / sd) @ W + ybar for W in Ws]

    if l2 is None:
        order = np.random.default_rng(seed).permutation(len(train_x))
        parts = np.array_split(order, int(folds))
        if int(folds) < 2 or min(len(p) for p in parts) == 0:
            raise ValueError(f"cross-validation needs 2 <= folds <= {len(train_x)} training rows, got {folds}")
        correct = np.zeros(len(_PROBE_L2))
        for k, held in enumerate(parts):
            rest = np.concatenate([p for m, p in enumerate(parts) if m != k])
            for i, predict in enumerate(fit(train_x[rest], train_y[rest], _PROBE_L2)):
                correct[i] += (predict(train_x[held]).argmax(1) == train_y[held]).sum()
        l2 = _PROBE_L2[np.flatnonzero(correct == correct.max())[-1]]
    (predict,) = fit(train_x, train_y, [float(l2)])
    return float((predict(test_x).argmax(1) == test_y).mean())


def layer_separability(model, layers, images, labels, holdout=0.5, method="knn", k=5, seed=0, batch_size=256):
    """How well each layer's representation separates the classes: an ``OrderedDict`` name -> accuracy.

    The images are split at random (``seed``) into a fitting part and a
    held-out part (the fraction ``holdout``); a k-NN vote (``method="knn"``)
    or a linear probe (``"linear"``) is fitted on the first and scored on the
    second. ``"input"`` in ``layers`` measures the raw pixels.
    """
    if method not in ("knn", "linear"):
        raise ValueError(f"method must be 'knn' or 'linear', got {method!r}")
    labels = np.asarray(labels).reshape(-1)
    images = _images(images, "images")
    if len(labels) != len(images):
        raise ValueError(f"need one label per image: {len(images)} images, {len(labels)} labels")
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must be a fraction in (0, 1), got {holdout}")
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = max(1, int(round(holdout * len(images))))
    test, fit = order[:n_test], order[n_test:]
    feats = layer_features(model, layers, images, batch_size)
    result = OrderedDict()
    for name, f in feats.items():
        if method == "knn":
            result[name] = knn_accuracy(f[fit], labels[fit], f[test], labels[test], k)
        else:
            result[name] = linear_probe_accuracy(f[fit], labels[fit], f[test], labels[test])
    return result


# =====================================================================================================
# Plotting (matplotlib, imported only here)
# =====================================================================================================
def _figure(figsize):
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError("plotting needs matplotlib, an optional extra: pip install 'tinygrad_cv[plots]'") from e
    # a Figure, not pyplot: no global state, no GUI backend; save it with fig.savefig(path)
    return Figure(figsize=figsize)


def _as_tiles(images):
    a = np.asarray(images, dtype=np.float64)
    if a.ndim == 4 and a.shape[1] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
    if a.ndim == 4 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (3, 4) or (a.ndim == 4 and a.shape[-1] != 3):
        raise ValueError(f"images must be (N, H, W), (N, H, W, 3) or (N, C, H, W) with C 1 or 3, got {np.shape(images)}")
    return a


def _normalise_rgb(a):
    lo, hi = a.min(), a.max()
    return (a - lo) / (hi - lo) if hi > lo else np.full_like(a, 0.5)


def plot_images(images, titles=None, ncols=None, cmap="gray", symmetric=False, suptitle=None, size=1.4):
    """A grid of images (each scaled on its own); ``symmetric=True`` centres the colour map on 0. Returns the Figure."""
    a = _as_tiles(images)
    n = len(a)
    ncols = int(ncols or min(n, 10))
    nrows = math.ceil(n / ncols)
    fig = _figure((size * ncols, size * nrows + (0.4 if suptitle else 0) + (0.25 * nrows if titles else 0)))
    for i in range(n):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        if a.ndim == 4:
            ax.imshow(_normalise_rgb(a[i]))
        elif symmetric:
            m = np.abs(a[i]).max() or 1.0
            ax.imshow(a[i], cmap=cmap, vmin=-m, vmax=m)
        else:
            ax.imshow(a[i], cmap=cmap)
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_filters(model, layer, mode="auto", title=None, size=4.0):
    """The filters of conv layer ``layer`` (:func:`filter_grid`) in one panel. Returns the Figure."""
    grid = filter_grid(model, layer, mode=mode)
    fig = _figure((size, size * grid.shape[0] / grid.shape[1] + 0.4))
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(grid, cmap=None if grid.ndim == 3 else "gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or f"{layer}: filters, each scaled to [0, 1]", fontsize=9)
    fig.tight_layout()
    return fig


def plot_overlay(images, heatmaps, titles=None, ncols=None, alpha=0.5, cmap="jet", suptitle=None, size=1.4):
    """Heat maps (N, H, W) drawn over grey images (N, C, H, W) or (N, H, W), each scaled to its own range."""
    imgs = _as_tiles(images)
    maps = np.asarray(heatmaps, dtype=np.float64)
    if maps.shape[0] != imgs.shape[0] or maps.shape[1:3] != imgs.shape[1:3]:
        raise ValueError(f"need one (H, W) heat map per image: images {np.shape(images)}, maps {maps.shape}")
    n = len(imgs)
    ncols = int(ncols or min(n, 10))
    nrows = math.ceil(n / ncols)
    fig = _figure((size * ncols, size * nrows + (0.4 if suptitle else 0) + (0.25 * nrows if titles else 0)))
    for i in range(n):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        base = imgs[i] if imgs.ndim == 3 else imgs[i].mean(-1)
        ax.imshow(base, cmap="gray")
        ax.imshow(maps[i], cmap=cmap, alpha=alpha)
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_embeddings(embeddings, labels, scores=None, title=None, size=2.6, point_size=4):
    """One scatter plot per layer of 2-D ``embeddings`` (name -> (N, 2)), coloured by ``labels``.

    ``scores`` (name -> number, e.g. :func:`layer_separability`) go into the panel titles.
    """
    labels = np.asarray(labels).reshape(-1)
    names = list(embeddings)
    if not names:
        raise ValueError("plot_embeddings needs at least one embedding")
    ncols = min(len(names), 4)
    nrows = math.ceil(len(names) / ncols)
    fig = _figure((size * ncols, size * nrows + (0.4 if title else 0)))
    for i, name in enumerate(names):
        e = np.asarray(embeddings[name])
        if e.shape != (len(labels), 2):
            raise ValueError(f"embedding {name!r} must have shape ({len(labels)}, 2), got {e.shape}")
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.scatter(e[:, 0], e[:, 1], c=labels, cmap="tab10", s=point_size, vmin=0, vmax=9, linewidths=0)
        ax.set_xticks([])
        ax.set_yticks([])
        label = name if scores is None or name not in scores else f"{name}: {100 * scores[name]:.1f} %"
        ax.set_title(label, fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
