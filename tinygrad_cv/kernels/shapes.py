"""Shape arithmetic and argument validation: one definition of "what size comes out" and "what is illegal".

Pure Python, no NumPy arrays: everything here works on shapes and small
integer tuples. The validators are called at the public API
(``tinygrad_cv.functional``, ``Tensor`` methods) and by the rules of
``kernels/contract.py`` when a twin is called directly; the twins themselves
only use the unchecked size formulas at the end of this module
(:func:`conv_out_hw`, :func:`conv_transpose_out_hw`, :func:`pool_out_hw`),
because their arguments were checked before the call.

Output-size formulas (per spatial dimension, following PyTorch exactly)::

    conv2d:            out = floor((n + pad_lo + pad_hi - d*(k-1) - 1) / s) + 1
    conv_transpose2d:  out = (n - 1)*s - pad_lo - pad_hi + d*(k-1) + output_padding + 1
    pooling:           out = floor((n + 2p - d*(k-1) - 1 [+ s-1 if ceil_mode]) / s) + 1
                       and, with ceil_mode, one less if the last window would
                       start at or past n + p (it must start inside the input
                       or the left padding).

Padding comes in two spellings.  ``(ph, pw)`` pads ``ph`` rows on top *and*
bottom and ``pw`` columns on the left *and* right (PyTorch's convention).  A
4-tuple ``(top, bottom, left, right)`` pads each side separately; it is what
``padding="same"`` resolves to for even kernels, where PyTorch puts the extra
row/column on the bottom/right.  :func:`normalize_padding` turns either into
the 4-tuple that kernels use internally.

Every validator raises ``ValueError`` whose message names the numbers at
fault, so a user looking at a traceback can see *which* shape was wrong.
"""
from __future__ import annotations

import numbers
from typing import Sequence

__all__ = [
    "pair",
    "normalize_padding",
    "resolve_padding",
    "conv2d_output_size",
    "conv_transpose2d_output_size",
    "pool2d_output_size",
    "conv_args",
    "pool_args",
    "check_4d",
    "check_conv2d",
    "check_conv_transpose2d",
    "check_pool2d",
    "check_matmul",
    "check_grad_shape",
    "check_conv2d_grad",
    "check_conv_transpose2d_grad",
    "conv_out_hw",
    "conv_transpose_out_hw",
    "pool_out_hw",
]


def _as_int(v, name: str) -> int:
    if type(v) is int:  # the common case, checked first: abstract-class checks cost microseconds
        return v
    # bool is an int subclass; ``stride=True`` is almost certainly a bug.
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be an int or a tuple of ints, got {v!r}")
    return int(v)


def pair(v, name: str = "argument") -> tuple[int, int]:
    """Normalise an int-or-pair argument (kernel_size, stride, ...) to ``(h, w)``.

    >>> pair(3, "stride")
    (3, 3)
    >>> pair((2, 1), "stride")
    (2, 1)
    """
    if type(v) is tuple and len(v) == 2 and type(v[0]) is int and type(v[1]) is int:
        return v  # already normalised (the autograd layer passes these on)
    if isinstance(v, Sequence) and not isinstance(v, str):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {tuple(v)!r} ({len(v)} values)")
        return (_as_int(v[0], name), _as_int(v[1], name))
    x = _as_int(v, name)
    return (x, x)


def normalize_padding(padding, name: str = "padding") -> tuple[int, int, int, int]:
    """Return padding as ``(top, bottom, left, right)``.

    Accepts an int (all four sides), a pair ``(ph, pw)`` (symmetric, like
    PyTorch) or a 4-tuple ``(top, bottom, left, right)``.  Negative values
    raise ``ValueError``.
    """
    if isinstance(padding, Sequence) and not isinstance(padding, str) and len(padding) == 4:
        t, b, l, r = (_as_int(v, name) for v in padding)
    elif isinstance(padding, str):
        raise ValueError(
            f"{name}={padding!r} must be resolved to numbers first (see resolve_padding)"
        )
    else:
        ph, pw = pair(padding, name)
        t, b, l, r = ph, ph, pw, pw
    if min(t, b, l, r) < 0:
        raise ValueError(f"{name} must be non-negative, got (top, bottom, left, right) = {(t, b, l, r)}")
    return (t, b, l, r)


def resolve_padding(padding, kernel_size, stride=1, dilation=1) -> tuple[int, int, int, int]:
    """Resolve ``"valid"`` / ``"same"`` / numbers to ``(top, bottom, left, right)``.

    ``"same"`` follows PyTorch: total padding ``d*(k-1)`` per dimension, half
    of it (rounded down) before, the rest after, so an even kernel gets the
    extra row at the bottom and the extra column on the right.  Like PyTorch
    it is only defined for stride 1.
    """
    if isinstance(padding, str):
        kh, kw = pair(kernel_size, "kernel_size")
        sh, sw = pair(stride, "stride")
        dh, dw = pair(dilation, "dilation")
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if (sh, sw) != (1, 1):
                raise ValueError(f"padding='same' is only supported for stride 1, got stride={(sh, sw)}")
            th, tw = dh * (kh - 1), dw * (kw - 1)
            return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        raise ValueError(f"padding must be 'same', 'valid', an int or a tuple, got {padding!r}")
    return normalize_padding(padding)


def _check_positive(value: tuple[int, int], name: str) -> None:
    if min(value) < 1:
        raise ValueError(f"{name} must be >= 1, got {name}={value}")


def conv2d_output_size(input_hw, kernel_size, stride=1, padding=0, dilation=1) -> tuple[int, int]:
    """Spatial output size of a 2-D convolution (PyTorch's formula).

    ``floor((n + pad_lo + pad_hi - d*(k-1) - 1) / s) + 1`` per dimension.
    Raises ``ValueError`` when the dilated kernel does not fit in the padded
    input (the result would be < 1).
    """
    h, w = pair(input_hw, "input size")
    kh, kw = pair(kernel_size, "kernel_size")
    sh, sw = pair(stride, "stride")
    dh, dw = pair(dilation, "dilation")
    t, b, l, r = normalize_padding(padding)
    _check_positive((sh, sw), "stride")
    _check_positive((dh, dw), "dilation")
    _check_positive((kh, kw), "kernel_size")
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    ph, pw = h + t + b, w + l + r
    if eh > ph or ew > pw:
        raise ValueError(
            f"kernel larger than padded input: padded input size per channel is ({ph} x {pw}) "
            f"(input ({h} x {w}) + padding (top {t}, bottom {b}, left {l}, right {r})), "
            f"effective kernel size is ({eh} x {ew}) (kernel ({kh} x {kw}), dilation ({dh} x {dw}))"
        )
    return ((ph - eh) // sh + 1, (pw - ew) // sw + 1)


def conv_transpose2d_output_size(
    input_hw, kernel_size, stride=1, padding=0, output_padding=0, dilation=1
) -> tuple[int, int]:
    """Spatial output size of a transposed convolution (PyTorch's formula).

    ``(n - 1)*s - pad_lo - pad_hi + d*(k-1) + output_padding + 1``.
    ``output_padding`` must be smaller than the stride or the dilation (it
    only selects among the input sizes that a strided conv2d maps to the same
    output size).
    """
    h, w = pair(input_hw, "input size")
    kh, kw = pair(kernel_size, "kernel_size")
    sh, sw = pair(stride, "stride")
    dh, dw = pair(dilation, "dilation")
    oph, opw = pair(output_padding, "output_padding")
    t, b, l, r = normalize_padding(padding)
    _check_positive((sh, sw), "stride")
    _check_positive((dh, dw), "dilation")
    _check_positive((kh, kw), "kernel_size")
    if min(oph, opw) < 0:
        raise ValueError(f"output_padding must be non-negative, got {(oph, opw)}")
    if not (oph < sh or oph < dh) or not (opw < sw or opw < dw):
        raise ValueError(
            f"output padding must be smaller than either stride or dilation, got "
            f"output_padding={(oph, opw)}, stride={(sh, sw)}, dilation={(dh, dw)}"
        )
    oh = (h - 1) * sh - t - b + dh * (kh - 1) + oph + 1
    ow = (w - 1) * sw - l - r + dw * (kw - 1) + opw + 1
    if oh < 1 or ow < 1:
        raise ValueError(
            f"conv_transpose2d output size ({oh} x {ow}) is too small: input ({h} x {w}), "
            f"kernel ({kh} x {kw}), stride {(sh, sw)}, padding (top {t}, bottom {b}, left {l}, right {r}), "
            f"output_padding {(oph, opw)}, dilation {(dh, dw)}"
        )
    return (oh, ow)


def _pool_out(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    num = n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = num // s + 1  # floor division, also for a negative numerator
    # PyTorch: with ceil_mode the last window must start inside the input or
    # the left padding; a window starting in the right padding is dropped.
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def pool2d_output_size(
    input_hw, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False
) -> tuple[int, int]:
    """Spatial output size of max/avg pooling (PyTorch's formula, incl. ceil_mode).

    ``stride=None`` means ``stride = kernel_size`` (PyTorch's default).
    Raises ``ValueError`` when the output would be empty.
    """
    h, w = pair(input_hw, "input size")
    kh, kw = pair(kernel_size, "kernel_size")
    sh, sw = pair(kernel_size if stride is None else stride, "stride")
    ph, pw = pair(padding, "padding")
    dh, dw = pair(dilation, "dilation")
    _check_positive((kh, kw), "kernel_size")
    _check_positive((sh, sw), "stride")
    _check_positive((dh, dw), "dilation")
    oh = _pool_out(h, kh, sh, ph, dh, bool(ceil_mode))
    ow = _pool_out(w, kw, sw, pw, dw, bool(ceil_mode))
    if oh < 1 or ow < 1:
        raise ValueError(
            f"pooling output size is too small: input ({h} x {w}), kernel ({kh} x {kw}), "
            f"stride {(sh, sw)}, padding {(ph, pw)}, dilation {(dh, dw)}, ceil_mode={bool(ceil_mode)} "
            f"gives output ({oh} x {ow})"
        )
    return (oh, ow)


def conv_args(stride, padding, dilation) -> tuple[tuple[int, int], tuple[int, int, int, int], tuple[int, int]]:
    """Normalise conv arguments to ``(stride pair, padding 4-tuple, dilation pair)``."""
    return pair(stride, "stride"), normalize_padding(padding), pair(dilation, "dilation")


def pool_args(kernel_size, stride, padding, dilation=1):
    """Normalise pooling arguments to four pairs; ``stride=None`` means kernel_size."""
    k = pair(kernel_size, "kernel_size")
    s = k if stride is None else pair(stride, "stride")
    return k, s, pair(padding, "padding"), pair(dilation, "dilation")


def check_4d(shape, name: str = "input") -> tuple[int, int, int, int]:
    """Require a 4-D (N, C, H, W) shape."""
    shape = tuple(shape)
    if len(shape) != 4:
        raise ValueError(f"{name} must be 4-D (N, C, H, W), got shape {shape} ({len(shape)}-D)")
    return shape  # type: ignore[return-value]


def check_conv2d(x_shape, w_shape, bias_shape, stride, padding, dilation, groups) -> tuple[int, int]:
    """Validate a conv2d configuration; return the spatial output size.

    ``x_shape`` is (N, C, H, W), ``w_shape`` is (O, C // groups, KH, KW),
    ``bias_shape`` is (O,) or None.
    """
    n, c, h, w = check_4d(x_shape, "input")
    o, cg, kh, kw = check_4d(w_shape, "weight")
    groups = _as_int(groups, "groups")
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got groups={groups}")
    if c % groups:
        raise ValueError(f"in_channels={c} is not divisible by groups={groups}")
    if o % groups:
        raise ValueError(f"out_channels={o} (weight shape {tuple(w_shape)}) is not divisible by groups={groups}")
    if cg * groups != c:
        raise ValueError(
            f"weight of shape {tuple(w_shape)} with groups={groups} expects input with "
            f"{cg * groups} channels, but input of shape {tuple(x_shape)} has {c} channels"
        )
    if bias_shape is not None and tuple(bias_shape) != (o,):
        raise ValueError(f"bias must have shape ({o},) to match weight {tuple(w_shape)}, got {tuple(bias_shape)}")
    return conv2d_output_size((h, w), (kh, kw), stride, padding, dilation)


def check_conv_transpose2d(
    x_shape, w_shape, bias_shape, stride, padding, output_padding, groups, dilation
) -> tuple[int, int]:
    """Validate a conv_transpose2d configuration; return the spatial output size.

    ``w_shape`` is (C_in, C_out // groups, KH, KW), PyTorch's layout.
    """
    n, c, h, w = check_4d(x_shape, "input")
    ci, cog, kh, kw = check_4d(w_shape, "weight")
    groups = _as_int(groups, "groups")
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got groups={groups}")
    if c % groups:
        raise ValueError(f"in_channels={c} is not divisible by groups={groups}")
    if ci != c:
        raise ValueError(
            f"weight of shape {tuple(w_shape)} expects input with {ci} channels "
            f"(conv_transpose2d weight is (C_in, C_out // groups, KH, KW)), but input of shape "
            f"{tuple(x_shape)} has {c} channels"
        )
    if bias_shape is not None and tuple(bias_shape) != (cog * groups,):
        raise ValueError(
            f"bias must have shape ({cog * groups},) to match weight {tuple(w_shape)} and "
            f"groups={groups}, got {tuple(bias_shape)}"
        )
    return conv_transpose2d_output_size((h, w), (kh, kw), stride, padding, output_padding, dilation)


def check_pool2d(x_shape, kernel_size, stride, padding, dilation=1, ceil_mode=False, name="pool2d") -> tuple[int, int]:
    """Validate a pooling configuration; return the spatial output size.

    Like PyTorch, padding may be at most half the kernel size (``p <= k // 2``)
    so that every window overlaps the real input.
    """
    check_4d(x_shape, "input")
    kh, kw = pair(kernel_size, "kernel_size")
    ph, pw = pair(padding, "padding")
    if min(ph, pw) < 0:
        raise ValueError(f"{name}: padding must be non-negative, got {(ph, pw)}")
    _check_positive((kh, kw), "kernel_size")
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(
            f"{name}: pad should be at most half of kernel size, got padding={(ph, pw)} "
            f"for kernel_size={(kh, kw)}"
        )
    return pool2d_output_size(tuple(x_shape)[2:], (kh, kw), stride, (ph, pw), dilation, ceil_mode)


def check_matmul(a_shape, b_shape) -> tuple[int, int]:
    """Validate ``(M, K) @ (K, N)``; return ``(M, N)``."""
    a_shape, b_shape = tuple(a_shape), tuple(b_shape)
    if len(a_shape) != 2 or len(b_shape) != 2:
        raise ValueError(f"matmul expects 2-D operands, got shapes {a_shape} and {b_shape}")
    if a_shape[1] != b_shape[0]:
        raise ValueError(
            f"matmul shape mismatch: {a_shape} @ {b_shape} (inner dimensions {a_shape[1]} != {b_shape[0]})"
        )
    return (a_shape[0], b_shape[1])


def check_grad_shape(got, expected, name: str = "gy") -> None:
    """Require an upstream gradient of exactly the output's shape."""
    if tuple(got) != tuple(expected):
        raise ValueError(f"{name} has shape {tuple(got)}, expected {tuple(expected)}")


def check_conv2d_grad(x_shape, w_shape, gy_shape, stride, padding, dilation, groups):
    """Validate the arguments of a conv2d backward pass; return (stride, pad4, dilation).

    Shared by every kernel twin's ``conv2d_backward_input`` / ``_weight``.
    """
    stride, pad4, dilation = conv_args(stride, padding, dilation)
    out_hw = check_conv2d(x_shape, w_shape, None, stride, pad4, dilation, groups)
    check_grad_shape(gy_shape, (tuple(x_shape)[0], tuple(w_shape)[0]) + out_hw, "gy")
    return stride, pad4, dilation


def check_conv_transpose2d_grad(gy_shape, w_shape, x_shape, stride, padding, dilation, groups):
    """Validate a conv_transpose2d backward pass; return (stride, pad4, dilation, (H, W) of x).

    The transposed convolution's backward is a conv2d of ``gy``; x must fit in
    that conv2d's output (it is smaller when output_padding >= stride), so its
    size is returned for the caller to crop to. ``x_shape=None`` skips the crop.
    """
    stride, pad4, dilation = conv_args(stride, padding, dilation)
    out_hw = check_conv2d(gy_shape, w_shape, None, stride, pad4, dilation, groups)
    if x_shape is not None:
        x_shape, nc = tuple(x_shape), (tuple(gy_shape)[0], tuple(w_shape)[0])
        if len(x_shape) != 4 or x_shape[:2] != nc or x_shape[2] > out_hw[0] or x_shape[3] > out_hw[1]:
            raise ValueError(
                f"x of shape {x_shape} does not match: expected ({nc[0]}, {nc[1]}, <= {out_hw[0]}, <= {out_hw[1]})"
            )
        out_hw = (x_shape[2], x_shape[3])
    return stride, pad4, dilation, out_hw


# --------------------------------------------------------------------------
# The size formulas alone, for arguments that were already validated (the
# twins' side of the boundary): plain arithmetic, no checks, no messages.
# --------------------------------------------------------------------------

def conv_out_hw(in_hw, k_hw, stride, pad4, dilation) -> tuple[int, int]:
    """conv2d's output size ``floor((n + lo + hi - d*(k-1) - 1) / s) + 1``; pad4 is (top, bottom, left, right)."""
    h = (in_hw[0] + pad4[0] + pad4[1] - dilation[0] * (k_hw[0] - 1) - 1) // stride[0] + 1
    w = (in_hw[1] + pad4[2] + pad4[3] - dilation[1] * (k_hw[1] - 1) - 1) // stride[1] + 1
    return h, w


def conv_transpose_out_hw(in_hw, k_hw, stride, pad4, output_padding, dilation) -> tuple[int, int]:
    """conv_transpose2d's output size ``(n - 1)*s - lo - hi + d*(k-1) + output_padding + 1``."""
    oph, opw = pair(output_padding, "output_padding")
    h = (in_hw[0] - 1) * stride[0] - pad4[0] - pad4[1] + dilation[0] * (k_hw[0] - 1) + oph + 1
    w = (in_hw[1] - 1) * stride[1] - pad4[2] - pad4[3] + dilation[1] * (k_hw[1] - 1) + opw + 1
    return h, w


def pool_out_hw(in_hw, kernel_size, stride, padding, dilation, ceil_mode) -> tuple[int, int]:
    """Pooling's output size (PyTorch's rule, ceil_mode included), for normalised pairs."""
    return (_pool_out(in_hw[0], kernel_size[0], stride[0], padding[0], dilation[0], bool(ceil_mode)),
            _pool_out(in_hw[1], kernel_size[1], stride[1], padding[1], dilation[1], bool(ceil_mode)))
