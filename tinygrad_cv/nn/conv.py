"""Convolution layers: `Conv2d` and `ConvTranspose2d`, over ``F.conv2d`` / ``F.conv_transpose2d``.

Weights are stored in PyTorch's layouts, so state dicts interchange:

- Conv2d:          (out_channels, in_channels / groups, kH, kW)
- ConvTranspose2d: (in_channels, out_channels / groups, kH, kW)

and initialised as PyTorch does: ``kaiming_uniform_(a=√5)`` for the weight
(bound 1/√fan_in) and U(-1/√fan_in, 1/√fan_in) for the bias, where fan_in is
the weight's ``size(1) · kH · kW``.
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from ..tensor import empty
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["Conv2d", "ConvTranspose2d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _pair(v, name):
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {tuple(v)!r}")
        return tuple(int(n) for n in v)
    return (int(v), int(v))


def _source_rows(n, before, after, mode):
    """For each position of an axis of size ``n`` padded by (before, after): the input index it copies.

    reflect mirrors about the edge without repeating it (… 2 1 | 0 1 2 … ),
    replicate repeats the edge (… 0 0 | 0 1 2 …), circular wraps around
    (… n-2 n-1 | 0 1 2 …).
    """
    p = np.arange(-before, n + after)
    if mode == "reflect":
        if before >= n or after >= n:
            raise ValueError(f"padding_mode='reflect' needs padding < input size, got padding ({before}, {after}) for size {n}")
        p = np.where(p < 0, -p, p)
        return np.where(p >= n, 2 * (n - 1) - p, p)
    if mode == "replicate":
        return np.clip(p, 0, n - 1)
    if before > n or after > n:
        raise ValueError(f"padding_mode='circular' needs padding <= input size, got padding ({before}, {after}) for size {n}")
    return p % n


def _pad_by_copying(x, pad4, mode):
    """Pad the last two axes of ``x`` by (top, bottom, left, right) copying input values (non-zero padding modes).

    Built from integer-array indexing, so the gradient (a scatter-add of the
    upstream gradient back onto the copied positions) comes for free.
    """
    top, bottom, left, right = pad4
    rows = _source_rows(x.shape[-2], top, bottom, mode)
    cols = _source_rows(x.shape[-1], left, right, mode)
    return x[..., rows, :][..., cols]


class _ConvNd(Module):
    def _init_conv(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                   padding_mode, output_padding, transposed, device, dtype):
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups:
            raise ValueError("out_channels must be divisible by groups")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, but got padding_mode='{padding_mode}'")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Invalid padding string {padding!r}, should be one of ('valid', 'same')")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError("padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = _pair(padding, "padding")
        self.dilation = _pair(dilation, "dilation")
        self.output_padding = _pair(output_padding, "output_padding")
        self.groups = int(groups)
        self.padding_mode = padding_mode
        self.transposed = transposed
        if transposed:
            shape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        else:
            shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight = Parameter(empty(*shape, dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(empty(self.out_channels, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.output_padding != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv2d(_ConvNd):
    r"""2-D convolution: out[n, o] = bias[o] + Σ_c weight[o, c] ⋆ input[n, c] (c over o's group).

    ``padding`` is an int, a pair, ``"valid"`` or ``"same"`` (stride 1 only).
    ``padding_mode`` ``"reflect"``, ``"replicate"`` or ``"circular"`` pads by
    copying input values instead of zeros.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        self._init_conv(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                        padding_mode, 0, False, device, dtype)

    def _copy_padding(self):
        """(top, bottom, left, right) for the copying padding modes."""
        if self.padding == "valid":
            return (0, 0, 0, 0)
        if self.padding == "same":
            out = []
            for k, d in zip(self.kernel_size, self.dilation):
                total = d * (k - 1)
                out += [total // 2, total - total // 2]
            return tuple(out)
        (ph, pw) = self.padding
        return (ph, ph, pw, pw)

    def forward(self, input):
        if self.padding_mode != "zeros":
            padded = _pad_by_copying(input, self._copy_padding(), self.padding_mode)
            return F.conv2d(padded, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ConvTranspose2d(_ConvNd):
    r"""Transposed convolution (the gradient of Conv2d with respect to its input), for learnable upsampling.

    Output size per axis: (H - 1)·stride - 2·padding + dilation·(k - 1) + output_padding + 1.
    ``forward(input, output_size=None)``: giving the wanted ``output_size``
    picks the output_padding that produces it (a strided Conv2d maps several
    input sizes to the same output size).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {type(self).__name__}')
        if isinstance(padding, str):
            raise ValueError(f"{type(self).__name__} does not accept padding={padding!r}; give numbers")
        super().__init__()
        self._init_conv(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                        padding_mode, output_padding, True, device, dtype)

    def _output_padding(self, input, output_size):
        if output_size is None:
            return self.output_padding
        size = tuple(int(n) for n in output_size)
        if len(size) == input.ndim:  # (N, C, H, W) given: keep the spatial part
            size = size[-2:]
        if len(size) != 2:
            raise ValueError(f"output_size must have 2 or {input.ndim} elements, got {len(size)}")
        pads = []
        for d in range(2):
            n_in = input.shape[-2 + d]
            smallest = ((n_in - 1) * self.stride[d] - 2 * self.padding[d]
                        + self.dilation[d] * (self.kernel_size[d] - 1) + 1)
            largest = smallest + self.stride[d] - 1
            if not smallest <= size[d] <= largest:
                raise ValueError(
                    f"requested an output size of {size}, but valid sizes range from "
                    f"{smallest} to {largest} along axis {d} (for an input of {input.shape[-2:]})"
                )
            pads.append(size[d] - smallest)
        return tuple(pads)

    def forward(self, input, output_size=None):
        output_padding = self._output_padding(input, output_size)
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding, output_padding,
                                  self.groups, self.dilation)
