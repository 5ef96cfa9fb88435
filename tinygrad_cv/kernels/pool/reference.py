"""Pooling, reference twin: the window rules of max and average pooling, written out in NumPy.

Loops over output positions and window taps; NumPy vectorises over the
(N, C) planes. Max pooling returns PyTorch's ``return_indices`` (the flat
index ``h*W + w`` of each window's winner inside its plane); average pooling
follows PyTorch's divisor rule. Arguments are checked by the caller
(``kernels/contract.py``); the functions take float32/float64 arrays and
return new arrays of that dtype.
"""
from __future__ import annotations

import numpy as np

from .. import shapes
from ..host import float_array as _float_array


def max_pool2d_forward(x, kernel_size, stride, padding, dilation, ceil_mode):
    """Max pooling with PyTorch's ``return_indices``.

    y[n,c,i,j] = max over taps (p, q) of x[n, c, i*s+p*d - ph, j*s+q*d - pw],
    padding reading as -inf.  ``indices`` (int64) holds the flat index
    ``h*W + w`` of the winner inside its (n, c) plane.

    Tie rule: the window is scanned row-major (p, then q) and a value only
    replaces the current best if it is strictly greater, so the FIRST maximum
    wins.  NaN rule (PyTorch's): a NaN always replaces the current best, so a
    window containing NaN yields NaN, with the index of its LAST NaN.

    A window that contains no input element at all (possible only with
    dilation, e.g. taps at -1 and 1 on a 1-pixel input) yields -inf and index
    -1, "no element"; ``max_pool2d_backward`` routes nothing for it. (PyTorch
    reports a seed index there that can alias a real element.)
    """
    x = _float_array(x, "x")
    kernel_size, stride, padding, dilation = shapes.pool_args(kernel_size, stride, padding, dilation)
    OH, OW = shapes.pool_out_hw(x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode)
    N, C, H, W = x.shape
    KH, KW = kernel_size
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    idx = np.empty((N, C, OH, OW), dtype=np.int64)
    for i in range(OH):
        for j in range(OW):
            best = np.full((N, C), -np.inf, dtype=x.dtype)
            # -1 until an element of the input is seen: a window that misses
            # the input entirely keeps it ("no element")
            arg = np.full((N, C), -1, dtype=np.int64)
            seen = False
            for p in range(KH):
                h = i * sh + p * dh - ph
                if not 0 <= h < H:
                    continue  # padding row: -inf never wins
                for q in range(KW):
                    col = j * sw + q * dw - pw
                    if not 0 <= col < W:
                        continue
                    v = x[:, :, h, col]
                    # the first element in range is taken even if it is -inf,
                    # so a window of -inf values still points at a real element
                    take = (v > best) | np.isnan(v) | (not seen)
                    seen = True
                    best = np.where(take, v, best)
                    arg = np.where(take, h * W + col, arg)
            y[:, :, i, j] = best
            idx[:, :, i, j] = arg
    return y, idx


def max_pool2d_backward(gy, indices, x_shape):
    """Route each output gradient to the element that won its window.

    gx[n, c].flat[indices[n, c, i, j]] += gy[n, c, i, j]  (windows may overlap,
    so one element can collect several gradients: this is a sum).
    """
    gy = _float_array(gy, "gy")
    indices = np.asarray(indices)
    N, C, H, W = x_shape
    gx = np.zeros((N, C, H * W), dtype=gy.dtype)
    for n in range(N):
        for c in range(C):
            k, g = indices[n, c].ravel(), gy[n, c].ravel()
            inside = (k >= 0) & (k < H * W)  # a window that missed the input routes nowhere
            np.add.at(gx[n, c], k[inside], g[inside])
    return gx.reshape(N, C, H, W)


def _avg_window(i, s, p, k, n):
    """Row (or column) range of window i and its count for the divisor rule."""
    start = i * s - p
    end = min(start + k, n + p)  # the window may reach into padding, not past it
    with_pad = end - start  # counted by count_include_pad
    start, end = max(start, 0), min(end, n)
    return start, end, with_pad


def _avg_divisor(i, j, kernel_size, stride, padding, hw, count_include_pad, divisor_override):
    """PyTorch's divisor: override, else window size incl. padding (but not the
    ceil_mode overhang past the padding), else the count of real elements."""
    h0, h1, hp = _avg_window(i, stride[0], padding[0], kernel_size[0], hw[0])
    w0, w1, wp = _avg_window(j, stride[1], padding[1], kernel_size[1], hw[1])
    if divisor_override is not None:
        div = divisor_override
    elif count_include_pad:
        div = hp * wp
    else:
        div = (h1 - h0) * (w1 - w0)
    return h0, h1, w0, w1, div


def avg_pool2d_forward(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override=None):
    """Average pooling: y[n,c,i,j] = (sum of the window's real elements) / divisor.

    Divisor (PyTorch's rule): ``divisor_override`` if given; otherwise with
    ``count_include_pad`` the window size clipped to the padded input (padding
    counts, the part hanging past the padding under ceil_mode does not);
    otherwise the number of real input elements in the window.
    """
    x = _float_array(x, "x")
    kernel_size, stride, padding, _ = shapes.pool_args(kernel_size, stride, padding)
    OH, OW = shapes.pool_out_hw(x.shape[2:], kernel_size, stride, padding, (1, 1), ceil_mode)
    N, C, H, W = x.shape
    y = np.zeros((N, C, OH, OW), dtype=x.dtype)
    for i in range(OH):
        for j in range(OW):
            h0, h1, w0, w1, div = _avg_divisor(
                i, j, kernel_size, stride, padding, (H, W), count_include_pad, divisor_override
            )
            if h0 < h1 and w0 < w1:
                y[:, :, i, j] = x[:, :, h0:h1, w0:w1].sum(axis=(2, 3)) / x.dtype.type(div)
    return y


def avg_pool2d_backward(gy, x_shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override=None):
    """Adjoint of average pooling: each window's real elements get gy / divisor."""
    gy = _float_array(gy, "gy")
    kernel_size, stride, padding, _ = shapes.pool_args(kernel_size, stride, padding)
    OH, OW = gy.shape[2], gy.shape[3]
    N, C, H, W = x_shape
    gx = np.zeros((N, C, H, W), dtype=gy.dtype)
    for i in range(OH):
        for j in range(OW):
            h0, h1, w0, w1, div = _avg_divisor(
                i, j, kernel_size, stride, padding, (H, W), count_include_pad, divisor_override
            )
            if h0 < h1 and w0 < w1:
                gx[:, :, h0:h1, w0:w1] += (gy[:, :, i, j] / gy.dtype.type(div))[:, :, None, None]
    return gx
