"""Batch-level data transforms on NumPy arrays.

Every transform takes a whole batch, shaped (N, H, W) or (N, C, H, W), and
returns a new array of the same shape and dtype; nothing loops over samples
in Python.  Random transforms draw from a ``numpy.random.Generator``: pass
one as ``rng`` (to share a stream, e.g. with the DataLoader) or a ``seed``
to get a private, reproducible one.

Colour (N, 3, H, W) batches go through all of them the same way as
greyscale ones; ``Normalize`` takes one mean/std per channel, and the
CIFAR-style augmentations ``RandomCrop`` (pad, then crop at a random offset
per image) and ``RandomHorizontalFlip`` (a coin per image) use the names and
argument order of torchvision, except that every image of the batch gets
its own draw (torchvision draws once per call).

The geometric transforms (``RandomAffine``, ``ElasticDistortion``) resample
the whole batch with a single ``scipy.ndimage.map_coordinates`` call: the
sample index is just one more coordinate, always an integer, so with linear
(or nearest) interpolation no value ever leaks between images.  Pixels that
come from outside the image are zero.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

__all__ = [
    "Compose",
    "ToFloat",
    "Normalize",
    "RandomShift",
    "RandomAffine",
    "ElasticDistortion",
    "RandomCrop",
    "RandomHorizontalFlip",
    "shift_batch",
    "affine_batch",
    "pad_batch",
    "crop_batch",
]


def _as_batch(x, who: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim not in (3, 4):
        raise ValueError(f"{who} expects a batch shaped (N, H, W) or (N, C, H, W), got shape {x.shape}")
    return x


def _require_float(x: np.ndarray, who: str) -> None:
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{who} expects a floating-point batch, got {x.dtype} (convert with ToFloat first)")


def _make_rng(rng, seed) -> np.random.Generator:
    if rng is not None and seed is not None:
        raise ValueError("pass either rng or seed, not both")
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(seed if rng is None else rng)
    return rng


def _pair(value, who: str) -> tuple[float, float]:
    if np.ndim(value) == 0:
        return float(value), float(value)
    lo, hi = value
    if lo > hi:
        raise ValueError(f"{who}: expected (low, high) with low <= high, got {value!r}")
    return float(lo), float(hi)


class Compose:
    """Apply transforms one after the other."""

    def __init__(self, transforms: Iterable[Callable[[np.ndarray], np.ndarray]]):
        self.transforms = list(transforms)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


class ToFloat:
    """Integer images -> floating point in [0, 1], with a channel axis.

    ``x.astype(dtype) / max_value``; (N, H, W) input becomes (N, 1, H, W)
    when ``add_channel`` is true, the layout convolution layers expect.
    Dividing (rather than multiplying by 1/255) keeps 255 -> 1.0 exact.
    """

    def __init__(self, max_value: float = 255.0, dtype=np.float32, add_channel: bool = True):
        self.max_value = max_value
        self.dtype = np.dtype(dtype)
        self.add_channel = add_channel

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = _as_batch(x, "ToFloat")
        if self.add_channel and x.ndim == 3:
            x = x[:, None]
        out = x.astype(self.dtype)
        out /= self.dtype.type(self.max_value)
        return out

    def __repr__(self) -> str:
        return f"ToFloat(max_value={self.max_value}, dtype={self.dtype.name}, add_channel={self.add_channel})"


class Normalize:
    """``(x - mean) / std``, per channel when given sequences.

    ``out[n, c, y, x] = (x[n, c, y, x] - mean[c]) / std[c]``.  The arithmetic
    happens in the batch's own dtype (mean and std are cast to it first), so
    float32 batches stay float32.  A scalar mean/std applies to every
    channel; a sequence needs an (N, C, H, W) batch with C entries (or one
    entry), e.g. ``Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))``
    for CIFAR-10.  A batch whose channel count does not match raises
    ``ValueError`` naming both.
    """

    def __init__(self, mean, std):
        self.mean = mean
        self.std = std
        for what, value in (("mean", mean), ("std", std)):
            arr = np.asarray(value)
            if arr.ndim > 1 or arr.size == 0 or arr.dtype.kind not in "iuf":
                raise ValueError(f"Normalize: {what} must be a number or a flat sequence of numbers, got {value!r}")
        m, sd = np.asarray(mean).size, np.asarray(std).size
        if m > 1 and sd > 1 and m != sd:
            raise ValueError(f"Normalize: {m} means but {sd} stds; give one value or one per channel for each")
        if np.any(np.asarray(std) == 0):
            raise ValueError(f"Normalize: std must be non-zero, got {std!r}")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = _as_batch(x, "Normalize")
        _require_float(x, "Normalize")
        mean = np.asarray(self.mean, dtype=x.dtype)
        std = np.asarray(self.std, dtype=x.dtype)
        if mean.ndim or std.ndim:
            if x.ndim != 4:
                if mean.size == std.size == 1:
                    mean, std = mean.reshape(()), std.reshape(())
                else:
                    raise ValueError(
                        f"Normalize: per-channel mean/std ({max(mean.size, std.size)} values) need an "
                        f"(N, C, H, W) batch, got shape {x.shape}"
                    )
            else:
                c = x.shape[1]
                try:
                    mean = np.broadcast_to(mean.reshape(-1), (c,)).reshape(1, c, 1, 1)
                    std = np.broadcast_to(std.reshape(-1), (c,)).reshape(1, c, 1, 1)
                except ValueError:
                    raise ValueError(
                        f"Normalize: got {mean.size} means / {std.size} stds for {c} channels "
                        f"(batch shape {x.shape})"
                    ) from None
        return (x - mean) / std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


def shift_batch(x: np.ndarray, dy, dx) -> np.ndarray:
    """Translate image ``i`` of the batch by ``(dy[i], dx[i])`` whole pixels.

    Positive ``dy`` moves the content down, positive ``dx`` to the right:
    ``out[i, ..., y, x] = x[i, ..., y - dy[i], x - dx[i]]``, zero where that
    falls outside the image.  Works for any dtype.

    Vectorised by padding the batch once and picking, for each image, one
    HxW window of a strided sliding-window view: a single fancy-indexing
    gather, no Python loop over images.
    """
    x = _as_batch(x, "shift_batch")
    n = x.shape[0]
    dy = np.broadcast_to(np.asarray(dy, dtype=np.intp), (n,))
    dx = np.broadcast_to(np.asarray(dx, dtype=np.intp), (n,))
    h, w = x.shape[-2:]
    # Shifts beyond the image size give all-zero images; clipping them keeps
    # the padding (and memory) bounded without changing the result.
    dy = np.clip(dy, -h, h)
    dx = np.clip(dx, -w, w)
    py = int(np.abs(dy).max(initial=0))
    px = int(np.abs(dx).max(initial=0))
    padded = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(py, py), (px, px)])
    windows = sliding_window_view(padded, (h, w), axis=(-2, -1))  # (N, [C,] 2py+1, 2px+1, H, W)
    rows = np.arange(n)
    oy, ox = py - dy, px - dx
    if x.ndim == 3:
        return windows[rows, oy, ox]
    # The slice between the advanced indices keeps C after N: (N, C, H, W).
    return windows[rows, :, oy, ox]


class RandomShift:
    """Random whole-pixel translations, independently per image, zero fill.

    ``max_shift`` is an int (same bound for both axes) or ``(max_dy, max_dx)``;
    each image gets ``dy`` and ``dx`` drawn uniformly from the integers in
    ``[-max, max]``.
    """

    def __init__(self, max_shift, rng=None, seed=None):
        my, mx = (max_shift, max_shift) if np.ndim(max_shift) == 0 else max_shift
        if my < 0 or mx < 0:
            raise ValueError("max_shift must be non-negative")
        self.max_shift = (int(my), int(mx))
        self.rng = _make_rng(rng, seed)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = _as_batch(x, "RandomShift")
        n = x.shape[0]
        my, mx = self.max_shift
        dy = self.rng.integers(-my, my + 1, size=n)
        dx = self.rng.integers(-mx, mx + 1, size=n)
        return shift_batch(x, dy, dx)

    def __repr__(self) -> str:
        return f"RandomShift(max_shift={self.max_shift})"


def _resample(x: np.ndarray, src_y: np.ndarray, src_x: np.ndarray, order: int) -> np.ndarray:
    """Sample ``x[i, ..., src_y[i], src_x[i]]`` for the whole batch in one call.

    ``src_y``/``src_x`` are (N, H, W) source coordinates (floats); every
    channel of an image uses the same grid.
    """
    if order not in (0, 1):
        # Higher orders need a spline prefilter, which would run along the
        # batch axis too and mix neighbouring images.
        raise ValueError(f"interpolation order must be 0 (nearest) or 1 (linear), got {order}")
    h, w = x.shape[-2:]
    if x.ndim == 4:
        # Fold channels into the batch axis (same grid for every channel):
        # three coordinates interpolate 2**3 corners per point instead of
        # 2**4, which makes the call over twice as fast.
        n, c = x.shape[:2]
        src_y = np.broadcast_to(src_y[:, None], (n, c, h, w)).reshape(n * c, h, w)
        src_x = np.broadcast_to(src_x[:, None], (n, c, h, w)).reshape(n * c, h, w)
    flat = x.reshape(-1, h, w)
    idx = np.broadcast_to(np.arange(flat.shape[0], dtype=np.float64)[:, None, None], src_y.shape)
    coords = np.stack([idx, src_y, src_x])
    out = ndimage.map_coordinates(flat, coords, order=order, mode="constant", cval=0.0, output=x.dtype, prefilter=False)
    return out.reshape(x.shape)


def affine_batch(x: np.ndarray, angle, tx, ty, scale, order: int = 1) -> np.ndarray:
    """Rotate/scale each image about its centre, then translate it.

    Per image ``i``: ``angle[i]`` degrees (positive = counter-clockwise as
    displayed, i.e. with rows growing downwards, like ``np.rot90``), zoom
    ``scale[i]``, then a shift of ``(ty[i], tx[i])`` pixels (down, right).
    Each output pixel is looked up through the inverse map and interpolated
    (``order`` 0 or 1); outside the image reads as zero.
    """
    x = _as_batch(x, "affine_batch")
    _require_float(x, "affine_batch")
    n = x.shape[0]
    h, w = x.shape[-2:]
    theta = np.deg2rad(np.broadcast_to(np.asarray(angle, dtype=np.float64), (n,)))[:, None, None]
    tx = np.broadcast_to(np.asarray(tx, dtype=np.float64), (n,))[:, None, None]
    ty = np.broadcast_to(np.asarray(ty, dtype=np.float64), (n,))[:, None, None]
    s = np.broadcast_to(np.asarray(scale, dtype=np.float64), (n,))[:, None, None]
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    # Output offsets from the centre, minus the translation...
    u = xx[None] - cx - tx
    v = yy[None] - cy - ty
    # ...mapped back through the inverse rotation and scale.  Forward
    # rotation (screen CCW) is x' = x cos + y sin, y' = -x sin + y cos.
    cos, sin = np.cos(theta), np.sin(theta)
    src_x = (u * cos - v * sin) / s + cx
    src_y = (u * sin + v * cos) / s + cy
    return _resample(x, src_y, src_x, order)


class RandomAffine:
    """Random rotation, translation and zoom per image.

    ``degrees``: angle range, ``d`` meaning ``(-d, d)``, or ``(lo, hi)``.
    ``translate``: ``(fx, fy)`` maximum shifts as fractions of width and
    height (shift drawn from ``[-fx*W, fx*W]`` etc.), or None.
    ``scale``: ``(lo, hi)`` zoom range, or None for 1.
    Linear interpolation by default (``order=1``), zero fill.
    """

    def __init__(self, degrees=0.0, translate=None, scale=None, rng=None, seed=None, order: int = 1):
        lo, hi = (-abs(float(degrees)), abs(float(degrees))) if np.ndim(degrees) == 0 else _pair(degrees, "degrees")
        self.degrees = (lo, hi)
        if translate is None:
            self.translate = None
        else:
            fx, fy = (translate, translate) if np.ndim(translate) == 0 else translate
            if fx < 0 or fy < 0:
                raise ValueError(f"RandomAffine: translate fractions must be non-negative, got {translate!r}")
            self.translate = (float(fx), float(fy))
        self.scale = None if scale is None else _pair(scale, "scale")
        if self.scale is not None and min(self.scale) <= 0:
            raise ValueError("RandomAffine: scale must be positive")
        if order not in (0, 1):
            raise ValueError(f"RandomAffine: order must be 0 or 1, got {order}")
        self.order = order
        self.rng = _make_rng(rng, seed)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = _as_batch(x, "RandomAffine")
        n = x.shape[0]
        h, w = x.shape[-2:]
        angle = self.rng.uniform(*self.degrees, size=n)
        if self.translate is not None:
            fx, fy = self.translate
            tx = self.rng.uniform(-fx * w, fx * w, size=n)
            ty = self.rng.uniform(-fy * h, fy * h, size=n)
        else:
            tx = ty = np.zeros(n)
        s = self.rng.uniform(*self.scale, size=n) if self.scale is not None else np.ones(n)
        return affine_batch(x, angle, tx, ty, s, order=self.order)

    def __repr__(self) -> str:
        return f"RandomAffine(degrees={self.degrees}, translate={self.translate}, scale={self.scale})"


class ElasticDistortion:
    """Elastic deformation of Simard, Steinkraus & Platt (ICDAR 2003).

    For every image, two displacement fields (rows and columns) are drawn
    uniformly from [-1, 1] per pixel, smoothed with a Gaussian of standard
    deviation ``sigma`` pixels, and scaled by ``alpha``; each output pixel is
    then read from its displaced position with linear interpolation.  Small
    ``sigma`` gives near-random jitter, large ``sigma`` near-rigid motion; the
    paper uses sigma=4, alpha=34 for MNIST.  ``alpha=0`` is the identity.

    The fields for the whole batch are smoothed in one ``gaussian_filter``
    call (sigma 0 along the batch axis, so images stay independent).
    """

    def __init__(self, alpha: float, sigma: float, rng=None, seed=None, order: int = 1):
        if sigma < 0:
            raise ValueError("ElasticDistortion: sigma must be non-negative")
        if order not in (0, 1):
            raise ValueError(f"ElasticDistortion: order must be 0 or 1, got {order}")
        self.alpha = float(alpha)
        self.sigma = float(sigma)
        self.order = order
        self.rng = _make_rng(rng, seed)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = _as_batch(x, "ElasticDistortion")
        _require_float(x, "ElasticDistortion")
        n = x.shape[0]
        h, w = x.shape[-2:]
        fields = self.rng.uniform(-1.0, 1.0, size=(2, n, h, w))
        fields = ndimage.gaussian_filter(fields, sigma=(0, 0, self.sigma, self.sigma), mode="constant", cval=0.0)
        fields *= self.alpha
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        return _resample(x, yy[None] + fields[0], xx[None] + fields[1], self.order)

    def __repr__(self) -> str:
        return f"ElasticDistortion(alpha={self.alpha}, sigma={self.sigma})"


# -- cropping and flipping (CIFAR-style augmentation) -------------------------------

_PADDING_MODES = ("constant", "edge", "reflect", "symmetric")


def _int_arg(value, what: str, who: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{who}: {what} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{who}: {what} must be >= {minimum}, got {value!r}")
    return int(value)


def _crop_size(size, who: str) -> tuple[int, int]:
    """torchvision's ``size``: an int ``s`` (square), ``(s,)`` or ``(h, w)``."""
    if np.ndim(size) == 0:
        h = w = size
    elif len(size) == 1:
        h = w = size[0]
    elif len(size) == 2:
        h, w = size
    else:
        raise ValueError(f"{who}: size must be an int or (height, width), got {size!r}")
    return _int_arg(h, "size", who, 1), _int_arg(w, "size", who, 1)


def _padding4(padding, who: str) -> tuple[int, int, int, int]:
    """torchvision's ``padding`` as ``(left, top, right, bottom)``.

    An int pads all four borders; ``(lr, tb)`` pads left/right by ``lr`` and
    top/bottom by ``tb``; four values are ``(left, top, right, bottom)``.
    """
    if padding is None:
        return (0, 0, 0, 0)
    if np.ndim(padding) == 0:
        values = [padding] * 4
    elif len(padding) == 1:
        values = [padding[0]] * 4
    elif len(padding) == 2:
        values = [padding[0], padding[1], padding[0], padding[1]]
    elif len(padding) == 4:
        values = list(padding)
    else:
        raise ValueError(f"{who}: padding must be an int or a sequence of 1, 2 or 4 ints, got {padding!r}")
    if any(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v < 0 for v in values):
        raise ValueError(f"{who}: padding must be non-negative, got {padding!r}")
    left, top, right, bottom = (_int_arg(v, "padding", who, 0) for v in values)
    return left, top, right, bottom


def _check_fill(fill, who: str) -> np.ndarray:
    arr = np.asarray(fill)
    if arr.ndim > 1 or arr.size == 0 or arr.dtype.kind not in "biuf":
        raise ValueError(f"{who}: fill must be a number or one number per channel, got {fill!r}")
    return arr


def pad_batch(x: np.ndarray, padding, fill=0, padding_mode: str = "constant") -> np.ndarray:
    """Pad every image of a batch by the same borders: (N, [C,] H, W) -> (N, [C,] H+t+b, W+l+r).

    ``padding`` is torchvision's: an int, ``(left/right, top/bottom)`` or
    ``(left, top, right, bottom)``.  ``padding_mode``:

    * ``"constant"``: the border is ``fill``, a number or one per channel;
    * ``"edge"``: the nearest edge pixel repeated;
    * ``"reflect"``: mirrored without repeating the edge, ``[3 2 | 1 2 3 4 | 3 2]``;
    * ``"symmetric"``: mirrored with the edge, ``[2 1 | 1 2 3 4 | 4 3]``.

    The dtype is kept; a ``fill`` that the dtype cannot hold exactly (300 or
    -1 for uint8, 0.5 for an integer batch) is refused rather than wrapped.
    """
    x = _as_batch(x, "pad_batch")
    if padding_mode not in _PADDING_MODES:
        raise ValueError(f"pad_batch: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
    left, top, right, bottom = _padding4(padding, "pad_batch")
    widths = [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)]
    if padding_mode != "constant":
        return np.pad(x, widths, mode=padding_mode)
    fill = _check_fill(fill, "pad_batch")
    cast = fill.astype(x.dtype)
    with np.errstate(invalid="ignore"):
        exact = np.array_equal(cast.astype(np.float64), fill.astype(np.float64))
    if not exact:
        raise ValueError(f"pad_batch: fill {fill.tolist()!r} cannot be stored exactly in a {x.dtype} batch")
    if cast.size == 1:
        return np.pad(x, widths, mode="constant", constant_values=cast.reshape(()))
    channels = x.shape[1] if x.ndim == 4 else 1
    if cast.ndim != 1 or cast.size != channels:
        raise ValueError(
            f"pad_batch: {cast.size} fill values for a batch of {channels} channel(s) (shape {x.shape})"
        )
    h, w = x.shape[-2:]
    out = np.empty(x.shape[:2] + (h + top + bottom, w + left + right), dtype=x.dtype)
    out[...] = cast.reshape(1, channels, 1, 1)
    out[:, :, top:top + h, left:left + w] = x
    return out


def crop_batch(x: np.ndarray, top, left, size) -> np.ndarray:
    """Cut a ``size = (h, w)`` window out of each image, at its own corner ``(top[i], left[i])``.

    ``out[i, ..., y, x] = x[i, ..., top[i] + y, left[i] + x]``; ``top``/``left``
    are ints or length-N integer arrays, and every window must lie inside
    the image.  One fancy-indexing gather from a strided sliding-window view,
    the same trick as :func:`shift_batch`: only the chosen windows are copied.
    """
    x = _as_batch(x, "crop_batch")
    th, tw = _crop_size(size, "crop_batch")
    n = x.shape[0]
    h, w = x.shape[-2:]
    top = np.broadcast_to(np.asarray(top, dtype=np.intp), (n,))
    left = np.broadcast_to(np.asarray(left, dtype=np.intp), (n,))
    if th > h or tw > w:
        raise ValueError(f"crop_batch: crop size {(th, tw)} is larger than the images {(h, w)}")
    if n and (top.min() < 0 or left.min() < 0 or top.max() > h - th or left.max() > w - tw):
        raise ValueError(
            f"crop_batch: corners must satisfy 0 <= top <= {h - th} and 0 <= left <= {w - tw} for a "
            f"{(th, tw)} crop of {(h, w)} images; got top in [{top.min()}, {top.max()}], "
            f"left in [{left.min()}, {left.max()}]"
        )
    windows = sliding_window_view(x, (th, tw), axis=(-2, -1))  # (N, [C,] h-th+1, w-tw+1, th, tw)
    rows = np.arange(n)
    if x.ndim == 3:
        return windows[rows, top, left]
    # The slice between the advanced indices keeps C after N: (N, C, th, tw).
    return windows[rows, :, top, left]


class RandomCrop:
    """Pad, then crop a ``size`` window at a random position, independently per image.

    ``RandomCrop(size, padding=None, pad_if_needed=False, fill=0,
    padding_mode="constant", *, rng=None, seed=None)``, torchvision's
    arguments (``size``/``padding``/``fill``/``padding_mode`` as in
    :func:`pad_batch`).  The batch is padded once, to (Hp, Wp); then for
    each image ``top ~ U{0, ..., Hp - h}`` and ``left ~ U{0, ..., Wp - w}``
    are drawn (all tops, then all lefts, from the transform's Generator) and
    ``out[i] = padded[i, ..., top:top+h, left:left+w]``.  The classic
    CIFAR-10 augmentation ``RandomCrop(32, padding=4)`` thus shifts each
    image by -4..4 pixels in each direction, with zeros coming in.

    ``pad_if_needed`` pads an image still smaller than ``size`` on both
    sides by the shortfall (as torchvision does); otherwise a ``size`` larger
    than the padded image is an error.  Any dtype works (uint8 too), and
    (N, H, W) as well as (N, C, H, W) batches.
    """

    def __init__(self, size, padding=None, pad_if_needed: bool = False, fill=0,
                 padding_mode: str = "constant", *, rng=None, seed=None):
        self.size = _crop_size(size, "RandomCrop")
        self.padding = _padding4(padding, "RandomCrop")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"RandomCrop: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        self.padding_mode = padding_mode
        _check_fill(fill, "RandomCrop")
        self.fill = fill
        self.pad_if_needed = bool(pad_if_needed)
        self.rng = _make_rng(rng, seed)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = _as_batch(x, "RandomCrop")
        shape_in = x.shape
        if any(self.padding):
            x = pad_batch(x, self.padding, self.fill, self.padding_mode)
        th, tw = self.size
        h, w = x.shape[-2:]
        if self.pad_if_needed and (h < th or w < tw):
            dy, dx = max(th - h, 0), max(tw - w, 0)
            x = pad_batch(x, (dx, dy), self.fill, self.padding_mode)
            h, w = x.shape[-2:]
        if h < th or w < tw:
            raise ValueError(
                f"RandomCrop: crop size {(th, tw)} is larger than the padded image {(h, w)} "
                f"(batch shape {shape_in}, padding (left, top, right, bottom) = {self.padding}); "
                "use a smaller size, more padding, or pad_if_needed=True"
            )
        n = x.shape[0]
        top = self.rng.integers(0, h - th + 1, size=n)
        left = self.rng.integers(0, w - tw + 1, size=n)
        return crop_batch(x, top, left, (th, tw))

    def __repr__(self) -> str:
        return (
            f"RandomCrop(size={self.size}, padding={self.padding}, pad_if_needed={self.pad_if_needed}, "
            f"fill={self.fill}, padding_mode={self.padding_mode!r})"
        )


class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p``, a coin per image.

    ``RandomHorizontalFlip(p=0.5, *, rng=None, seed=None)``.  Image ``i``
    is flipped (``out[i, ..., x] = in[i, ..., W - 1 - x]``) when
    ``u_i < p`` for ``u_i`` drawn uniformly from [0, 1), so ``p=0`` never
    and ``p=1`` always flips.  Any dtype, (N, H, W) or (N, C, H, W).
    """

    def __init__(self, p: float = 0.5, *, rng=None, seed=None):
        try:
            p_value = float(p)
        except (TypeError, ValueError):
            raise TypeError(f"RandomHorizontalFlip: p must be a probability, got {p!r}") from None
        if not 0.0 <= p_value <= 1.0:  # also refuses NaN
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p!r}")
        self.p = p_value
        self.rng = _make_rng(rng, seed)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = _as_batch(x, "RandomHorizontalFlip")
        flip = self.rng.random(x.shape[0]) < self.p
        out = x.copy()
        out[flip] = x[flip][..., ::-1]
        return out

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"
