"""Layers and their geometry: receptive fields, the filters (weights), feature maps (activations) and the
inputs that excite a unit most, with the patch of the input its receptive field sees."""
from __future__ import annotations

import math
from collections import namedtuple

import numpy as np

from .. import autograd
from .. import nn
from ._common import _evaluating, _extractor, _images, _to_model, get_layer

__all__ = [
    "ReceptiveField", "receptive_field", "receptive_field_patches", "filters", "image_grid", "filter_grid",
    "feature_maps", "TopActivations", "top_activations",
]


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
