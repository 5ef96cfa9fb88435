"""Convolution, reference twin: the formulas, written out, in plain NumPy.

The oracle the fast twins are tested against and the text chapter 8 quotes,
so it favours being obviously right over being fast: Python loops run over
output positions and kernel taps, and NumPy only vectorises over the batch
and channel axes (where the formula has a plain sum or an outer product).
Use it on small shapes.

Notation used throughout (the lecture's)::

    x  : (N, C, H, W)            input
    w  : (O, C/g, KH, KW)        weight, g = groups
    b  : (O,)                    bias
    u  : (N, O, OH, OW)          output
    s, d, (pt, pb, pl, pr)       stride, dilation, padding (top, bottom, left, right)

    u[n,o,i,j] = b[o] + sum_c sum_p sum_q  xpad[n, c, i*s + p*d, j*s + q*d] * w[o, c, p, q]

where ``xpad`` is ``x`` with zeros around it and ``c`` runs over the input
channels of the group that output channel ``o`` belongs to.

Arguments are checked by the caller (``kernels/contract.py``); these
functions normalise ints to pairs, take float32/float64 arrays (a second
operand is converted to the first's dtype) and return new arrays of that dtype.
"""
from __future__ import annotations

import numpy as np

from .. import shapes
from ..host import float_array as _float_array


def _channels_of_group(o: int, out_per_group: int, in_per_group: int) -> slice:
    """Input channels that output channel ``o`` sees: its group's block."""
    g = o // out_per_group
    return slice(g * in_per_group, (g + 1) * in_per_group)


def _pad(x: np.ndarray, padding4) -> np.ndarray:
    pt, pb, pl, pr = padding4
    return np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))


# --------------------------------------------------------------------------
# convolution
# --------------------------------------------------------------------------

def _conv2d(x, w, b, stride, padding4, dilation, groups, out_hw):
    """u = b + sum_c sum_p sum_q xpad[:, c, i*s+p*d, j*s+q*d] * w[o, c, p, q].

    ``out_hw`` may be smaller than the natural output size (used by
    conv_transpose2d's backward, where the extra rows are cropped away).
    """
    N = x.shape[0]
    O, Cg, KH, KW = w.shape
    OH, OW = out_hw
    sh, sw = stride
    dh, dw = dilation
    Og = O // groups
    xpad = _pad(x, padding4)
    u = np.empty((N, O, OH, OW), dtype=x.dtype)
    for o in range(O):
        cs = _channels_of_group(o, Og, Cg)
        for i in range(OH):
            for j in range(OW):
                acc = np.full(N, b[o] if b is not None else 0, dtype=x.dtype)
                for p in range(KH):
                    for q in range(KW):
                        # sum over the group's input channels c: a dot product
                        acc += xpad[:, cs, i * sh + p * dh, j * sw + q * dw] @ w[o, :, p, q]
                u[:, o, i, j] = acc
    return u


def _conv2d_adjoint_input(gy, w, x_shape, stride, padding4, dilation, groups):
    """gx = d<u, gy>/dx: every forward term xpad[...]*w[o,c,p,q] sends gy*w back.

    gxpad[n, c, i*s+p*d, j*s+q*d] += gy[n, o, i, j] * w[o, c, p, q]
    (a "full correlation with the flipped kernel"), then the padding is cut off.
    """
    N, C, H, W = x_shape
    O, Cg, KH, KW = w.shape
    _, _, OH, OW = gy.shape
    sh, sw = stride
    dh, dw = dilation
    pt, pb, pl, pr = padding4
    Og = O // groups
    gxpad = np.zeros((N, C, H + pt + pb, W + pl + pr), dtype=gy.dtype)
    for o in range(O):
        cs = _channels_of_group(o, Og, Cg)
        for i in range(OH):
            for j in range(OW):
                for p in range(KH):
                    for q in range(KW):
                        # outer product over (n, c)
                        gxpad[:, cs, i * sh + p * dh, j * sw + q * dw] += np.outer(gy[:, o, i, j], w[o, :, p, q])
    return gxpad[:, :, pt:pt + H, pl:pl + W].copy()


def _conv2d_adjoint_weight(x, gy, w_shape, stride, padding4, dilation, groups):
    """gw[o, c, p, q] = sum_n sum_i sum_j gy[n, o, i, j] * xpad[n, c, i*s+p*d, j*s+q*d]."""
    O, Cg, KH, KW = w_shape
    _, _, OH, OW = gy.shape
    sh, sw = stride
    dh, dw = dilation
    Og = O // groups
    xpad = _pad(x, padding4)
    gw = np.zeros((O, Cg, KH, KW), dtype=x.dtype)
    for o in range(O):
        cs = _channels_of_group(o, Og, Cg)
        for p in range(KH):
            for q in range(KW):
                for i in range(OH):
                    for j in range(OW):
                        # sum over the batch n: (N,) @ (N, Cg) -> (Cg,)
                        gw[o, :, p, q] += gy[:, o, i, j] @ xpad[:, cs, i * sh + p * dh, j * sw + q * dw]
    return gw


def conv2d_forward(x, w, b, stride, padding, dilation, groups):
    """2-D cross-correlation, PyTorch's ``conv2d``.

    x (N, C, H, W), w (O, C/groups, KH, KW), b (O,) or None -> u (N, O, OH, OW)::

        u[n,o,i,j] = b[o] + sum_c sum_p sum_q x[n, c, i*s+p*d - pt, j*s+q*d - pl] * w[o, c, p, q]

    with out-of-range x reading as zero (padding).  ``padding`` is (ph, pw) or
    (top, bottom, left, right).
    """
    x = _float_array(x, "x")
    w = _float_array(w, "w", x.dtype)
    b = None if b is None else _float_array(b, "b", x.dtype)
    stride, pad4, dilation = shapes.conv_args(stride, padding, dilation)
    out_hw = shapes.conv_out_hw(x.shape[2:], w.shape[2:], stride, pad4, dilation)
    return _conv2d(x, w, b, stride, pad4, dilation, groups, out_hw)


def conv2d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    """Gradient of conv2d with respect to x (the adjoint of ``conv2d_forward`` in x).

    gy (N, O, OH, OW) -> gx of shape ``x_shape``.  This is also the forward
    pass of conv_transpose2d.
    """
    gy = _float_array(gy, "gy")
    w = _float_array(w, "w", gy.dtype)
    stride, pad4, dilation = shapes.conv_args(stride, padding, dilation)
    return _conv2d_adjoint_input(gy, w, tuple(x_shape), stride, pad4, dilation, groups)


def conv2d_backward_weight(x, gy, w_shape, stride, padding, dilation, groups):
    """Gradient of conv2d with respect to w: (N,C,H,W), (N,O,OH,OW) -> ``w_shape``."""
    x = _float_array(x, "x")
    gy = _float_array(gy, "gy", x.dtype)
    stride, pad4, dilation = shapes.conv_args(stride, padding, dilation)
    return _conv2d_adjoint_weight(x, gy, tuple(w_shape), stride, pad4, dilation, groups)


def conv2d_backward(x, gy, w, stride, padding, dilation, groups, need_input=True, need_weight=True,
                    need_bias=True):
    """All gradients of conv2d in one call: (dL/dx, dL/dw, dL/db), None for those not asked for.

    Here simply the two functions above and the bias gradient
    dL/db[o] = sum_{n,i,j} gy[n, o, i, j] (every output of channel o got + b[o]);
    a fast twin may share work between them.
    """
    gx = conv2d_backward_input(gy, w, np.shape(x), stride, padding, dilation, groups) if need_input else None
    gw = conv2d_backward_weight(x, gy, np.shape(w), stride, padding, dilation, groups) if need_weight else None
    gb = _float_array(gy, "gy").sum(axis=(0, 2, 3)) if need_bias else None
    return gx, gw, gb


# --------------------------------------------------------------------------
# transposed convolution: the same three formulas with roles swapped
# --------------------------------------------------------------------------

def conv_transpose2d_forward(x, w, b, stride, padding, output_padding, groups, dilation):
    """Transposed convolution, PyTorch's ``conv_transpose2d``.

    x (N, C_in, H, W), w (C_in, C_out/groups, KH, KW), b (C_out,) or None.
    It is the adjoint of a conv2d whose weight is ``w`` (seen as
    (O=C_in, C/groups=C_out/groups, KH, KW)): every input pixel scatters
    ``x * w`` into the output, i.e. ``conv2d_backward_input`` with x as gy.
    """
    x = _float_array(x, "x")
    w = _float_array(w, "w", x.dtype)
    b = None if b is None else _float_array(b, "b", x.dtype)
    stride, pad4, dilation = shapes.conv_args(stride, padding, dilation)
    oh, ow = shapes.conv_transpose_out_hw(x.shape[2:], w.shape[2:], stride, pad4, output_padding, dilation)
    y_shape = (x.shape[0], w.shape[1] * groups, oh, ow)
    y = _conv2d_adjoint_input(x, w, y_shape, stride, pad4, dilation, groups)
    if b is not None:
        y += b[None, :, None, None]
    return y


def conv_transpose2d_backward_input(gy, w, stride, padding, dilation, groups, x_shape=None):
    """Gradient of conv_transpose2d with respect to x: a plain conv2d of gy with w.

    When ``output_padding >= stride`` (allowed if it is below the dilation)
    the conv2d produces more rows/columns than x has; pass ``x_shape`` to crop.
    """
    gy = _float_array(gy, "gy")
    w = _float_array(w, "w", gy.dtype)
    stride, pad4, dilation = shapes.conv_args(stride, padding, dilation)
    out_hw = (tuple(x_shape)[2:] if x_shape is not None
              else shapes.conv_out_hw(gy.shape[2:], w.shape[2:], stride, pad4, dilation))
    return _conv2d(gy, w, None, stride, pad4, dilation, groups, out_hw)


def conv_transpose2d_backward_weight(x, gy, w_shape, stride, padding, dilation, groups):
    """Gradient of conv_transpose2d with respect to w.

    y = conv2d_adjoint(x; w) so <y, gy> = <x, conv2d(gy; w)>: the weight
    gradient is conv2d's with the roles of input (gy) and output gradient (x)
    swapped.
    """
    x = _float_array(x, "x")
    gy = _float_array(gy, "gy", x.dtype)
    stride, pad4, dilation = shapes.conv_args(stride, padding, dilation)
    return _conv2d_adjoint_weight(gy, x, tuple(w_shape), stride, pad4, dilation, groups)
