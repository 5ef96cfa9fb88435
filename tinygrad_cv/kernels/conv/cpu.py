"""Convolution, CPU twin: the entry points, and the rule that picks a method per pass.

Same functions, signatures and semantics as ``reference.py`` (the readable
definition and the test oracle); only *how* the numbers are computed differs.
Three methods are implemented; :func:`_use_winograd`, then :func:`_use_gemm`
pick one per pass:

* **direct** (``cpu_direct.py``) - register-blocked flat loops on a
  zero-padded, ``Wp``-wide grid for stride 1, per-plane loops for strides;
* **gemm** (``cpu_gemm.py``) - the batch cut into chunks of a few images;
  per chunk, on one core: im2col into a ``(C*KH*KW, n*OH*OW)`` matrix that
  stays in cache, one BLAS GEMM per group (one BLAS thread), the copy back;
* **winograd** (``cpu_winograd.py``) - F(2x2, 3x3) for 3x3 stride-1
  convolutions: 16 small GEMMs over transformed 4x4 tiles, 2.25x fewer
  multiply-adds (forward and backward-input only).

Measured with each path forced (ms forward / backward-input / backward-weight,
best of 9 alternating runs in one process; float32, 2 cores, while another
job ran, so absolute times are ~2x high but the two columns are comparable):

==========================  =====  ===================  ===================
layer (batch)               K      direct               gemm
==========================  =====  ===================  ===================
3x3 s2 16->32, 28x28 (128)  144    88 / 103 / 126       9.4 / 8.9 / 9.0
1x1 s2 16->32, 28x28 (128)  16     11 / 13 / 13         1.9 / 2.3 / 1.9
7x7 s2 3->64, 56x56 (32)    147    142 / 166 / 187      9.9 / 10 / 11
depthwise 3x3 s2 32, 28x28  9      8.8 / 6.7 / 11       10 / 11 / 10
3x3 s1 16->16, 28x28 (128)  144    8.7 / 9.6 / 10       15 / 15 / 15
3x3 s1 32->32, 14x14 (128)  288    9.4 / 12 / 12        16 / 16 / 17
3x3 s1 64->64, 28x28 (32)   576    22 / 30 / 28         31 / 30 / 34
3x3 s1 64->64, 8x8 (128)    576    12 / 19 / 20         12 / 11 / 13
3x3 s1 64->64, 7x7 (128)    576    15 / 17 / 19         11 / 9.9 / 11
3x3 s1 128->128, 14 (32)    1152   35 / 40 / 41         30 / 29 / 33
3x3 s1 256->256, 7 (32)     2304   52 / 57 / 62         28 / 31 / 38
1x1 s1 64->64, 14x14 (128)  64     5.0 / 7.5 / 8.0      4.3 / 5.4 / 4.4
5x5 s1 6->16, 14x14 (128)   150    2.2 / 4.7 / 3.8      3.7 / 3.7 / 3.6
==========================  =====  ===================  ===================

(K = C/groups * KH * KW, the length of each dot product.) So :func:`_use_gemm`
picks GEMM for every strided and every 1x1 convolution, and for stride-1
convolutions with long reductions on small images (K >= 512 and at most
16x16 outputs); the register-blocked direct kernels keep wide images with
few channels, where their flat loops over a whole plane run at full vector
speed and im2col would copy the input KH*KW times.  Grouped convolutions
with short reductions per group (depthwise) stay direct: each group's GEMM
would be a sliver.

Winograd against the other two (``python bench/conv_methods.py``: 3x3
stride 1 padding 1, float32, ms forward / backward-input, fastest of 9
calls, the three methods alternating in one process on a quiet machine):

==========================  ===========  ===========  ===========
layer (batch)               direct       gemm         winograd
==========================  ===========  ===========  ===========
3x3 16->16, 32x32 (128)     5.3 / 6.1    11.5 / 11.8  10.3 / 10.3
3x3 32->32, 16x16 (128)     5.9 / 6.9    8.5 / 8.0    6.2 / 6.0
3x3 64->64, 8x8 (128)       9.2 / 10.5   6.8 / 6.7    5.3 / 5.2
3x3 16->16, 28x28 (128)     4.4 / 5.2    9.8 / 9.9    7.9 / 7.8
3x3 32->32, 14x14 (128)     4.8 / 5.4    7.0 / 7.7    5.3 / 5.2
3x3 64->64, 7x7 (128)       8.7 / 10.2   6.1 / 7.1    5.3 / 5.2
3x3 64->64, 16x16 (128)     22.7 / 24.8  24.1 / 24.7  16.3 / 16.5
3x3 128->128, 8x8 (128)     37.5 / 41.7  21.4 / 21.4  16.1 / 16.7
3x3 128->128, 14x14 (32)    18.3 / 18.5  15.2 / 15.7  13.5 / 13.8
3x3 256->256, 7x7 (32)      32.5 / 38.5  15.8 / 18.3  29.0 / 29.6
==========================  ===========  ===========  ===========

With 16 or 32 channels the transforms (16 values per tile and channel, in
and out) cost as much as the multiply-adds they save; from 64 channels the
GEMMs dominate and Winograd wins by 10-35 %; at 256 channels the
transformed weight (16 * C * O values) no longer stays in cache and GEMM
wins again.  So :func:`_use_winograd` takes 64-128 channels in and out, at
most 16x16 outputs (the largest measured), forward and backward-input.

Every parallel loop gives each work item exclusive ownership of the output
elements it writes, and every sum runs in a fixed order, so two runs are
bit-identical (tested).  Accumulation happens in the input dtype (float32 or
float64), like PyTorch.  Arguments are checked by the caller
(``kernels/contract.py``); inputs are made C-contiguous floats here.
"""
from __future__ import annotations

import numpy as np

from .. import shapes
from ..host import float_c as _float_c
from . import cpu_direct, cpu_gemm, cpu_winograd
from .cpu_layout import _padded_input, _rows_needed, _spread_planes

# Test hook: None = heuristic, "direct" or "gemm" forces a convolution path; "winograd" forces it
# where it applies (3x3, stride 1, ...: cpu_winograd.eligible) and leaves the rest to the heuristic.
_FORCE_STRATEGY: str | None = None

# Thresholds of _use_gemm (measured; see the module docstring).
_GEMM_MIN_K_PER_GROUP = 32   # shorter reductions per group (depthwise 3x3: 9) stay direct
_GEMM_MIN_K_UNIT = 512       # stride-1 KxK (K > 1) convolutions: GEMM from 64 channels of 3x3 ...
_GEMM_MAX_P_UNIT = 256       # ... on outputs of at most 16x16


def _use_gemm(kind, N, O, Cg, KH, KW, groups, P, unit) -> bool:
    """Pick the convolution path for one pass (see the module docstring for the numbers).

    ``kind`` is "forward" / "input" / "weight" (the rule is the same for the
    three passes today); ``unit`` means stride 1; P = OH * OW.
    """
    if _FORCE_STRATEGY in ("direct", "gemm"):
        return _FORCE_STRATEGY == "gemm"
    K = Cg * KH * KW
    if groups > 1 and K < _GEMM_MIN_K_PER_GROUP:
        return False
    if not unit or KH * KW == 1:
        return True
    return K >= _GEMM_MIN_K_UNIT and P <= _GEMM_MAX_P_UNIT


# Winograd F(2x2, 3x3) for the forward and backward-input passes of 3x3 stride-1 convolutions with
# 64-128 channels in and out on outputs of at most 16x16 (measured; see the module docstring).
_WINOGRAD_CHANNELS = (64, 128)
_WINOGRAD_MAX_P = 256


def _use_winograd(kind, C, O, KH, KW, stride, dilation, groups, pad4, P) -> bool:
    """Winograd for this pass? Only "forward" and "input" (the weight gradient measured slower)."""
    if kind == "weight" or not cpu_winograd.eligible(KH, KW, stride, dilation, groups, pad4):
        return False
    if _FORCE_STRATEGY is not None:
        return _FORCE_STRATEGY == "winograd"
    lo, hi = _WINOGRAD_CHANNELS
    return lo <= C <= hi and lo <= O <= hi and P <= _WINOGRAD_MAX_P


# ==========================================================================
# The three passes: shared preparation, then the chosen method
# ==========================================================================

def _conv_fwd(x, w, b, stride, pad4, dilation, groups, OH, OW):
    N, C, H, W = x.shape
    O, Cg, KH, KW = w.shape
    sh, sw = stride
    dh, dw = dilation
    if b is None:
        b = np.zeros(O, dtype=x.dtype)
    if _use_winograd("forward", C, O, KH, KW, stride, dilation, groups, pad4, OH * OW):
        return cpu_winograd.forward(x, w, b, pad4, OH, OW)
    xp, Wp, R = _padded_input(x, pad4, KH, OH, sh, dh)
    y = np.empty((N, O, OH, OW), dtype=x.dtype)
    unit = sh == 1 and sw == 1
    method = cpu_gemm if _use_gemm("forward", N, O, Cg, KH, KW, groups, OH * OW, unit) else cpu_direct
    method.forward(xp, Wp, w, b, y, stride, dilation, groups)
    return y


def _conv_bwd_input(gy, w, x_shape, stride, pad4, dilation, groups, spread=None):
    """gx; ``spread`` = (gyf, G), gy already re-laid by _spread_planes for this Wp (stride 1)."""
    N, C, H, W = x_shape
    O, Cg, KH, KW = w.shape
    OH, OW = gy.shape[2], gy.shape[3]
    if _use_winograd("input", C, O, KH, KW, stride, dilation, groups, pad4, OH * OW):
        return cpu_winograd.backward_input(gy, w, x_shape, pad4)
    sh, sw = stride
    dh, dw = dilation
    pt, pb, pl, pr = pad4
    R = _rows_needed(OH, KH, sh, dh)
    Wp = W + pl + pr
    gx = np.empty((N, C, H, W), dtype=gy.dtype)
    unit = sh == 1 and sw == 1
    if _use_gemm("input", N, O, Cg, KH, KW, groups, OH * OW, unit):
        cpu_gemm.backward_input(gy, w, gx, R, Wp, pad4, stride, dilation, groups)
    else:
        cpu_direct.backward_input(gy, w, gx, R, Wp, pad4, stride, dilation, groups, spread)
    return gx


def _conv_bwd_weight(x, gy, w_shape, stride, pad4, dilation, groups, spread=None):
    """gw; ``spread`` as in :func:`_conv_bwd_input`."""
    N, C, H, W = x.shape
    O, Cg, KH, KW = w_shape
    OH, OW = gy.shape[2], gy.shape[3]
    sh, sw = stride
    dh, dw = dilation
    xp, Wp, R = _padded_input(x, pad4, KH, OH, sh, dh)
    gw = np.empty((O, Cg, KH, KW), dtype=x.dtype)
    unit = sh == 1 and sw == 1
    if _use_gemm("weight", N, O, Cg, KH, KW, groups, OH * OW, unit):
        cpu_gemm.backward_weight(xp, Wp, gy, gw, stride, dilation, groups)
    else:
        cpu_direct.backward_weight(xp, Wp, gy, gw, stride, dilation, groups, spread)
    return gw


# ==========================================================================
# Entry points (the contract's functions)
# ==========================================================================

def conv2d_forward(x, w, b, stride, padding, dilation, groups):
    """2-D cross-correlation; see ``reference.conv2d_forward`` for the formula."""
    x = _float_c(x, "x")
    w = _float_c(w, "w", x.dtype)
    b = None if b is None else _float_c(b, "b", x.dtype)
    stride, pad4, dilation = shapes.conv_args(stride, padding, dilation)
    OH, OW = shapes.conv_out_hw(x.shape[2:], w.shape[2:], stride, pad4, dilation)
    return _conv_fwd(x, w, b, stride, pad4, dilation, groups, OH, OW)


def conv2d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    """Gradient of conv2d w.r.t. its input (= conv_transpose2d's forward)."""
    gy = _float_c(gy, "gy")
    w = _float_c(w, "w", gy.dtype)
    stride, pad4, dilation = shapes.conv_args(stride, padding, dilation)
    return _conv_bwd_input(gy, w, tuple(x_shape), stride, pad4, dilation, groups)


def conv2d_backward_weight(x, gy, w_shape, stride, padding, dilation, groups):
    """Gradient of conv2d w.r.t. its weight."""
    x = _float_c(x, "x")
    gy = _float_c(gy, "gy", x.dtype)
    stride, pad4, dilation = shapes.conv_args(stride, padding, dilation)
    return _conv_bwd_weight(x, gy, tuple(w_shape), stride, pad4, dilation, groups)


def conv2d_backward(x, gy, w, stride, padding, dilation, groups, need_input=True, need_weight=True,
                    need_bias=True):
    """All gradients of conv2d in one call: (gx, gw, gb), None for those not asked for.

    The same numbers as ``conv2d_backward_input``, ``conv2d_backward_weight``
    and ``gy.sum((0, 2, 3))``, with less memory traffic: at stride 1 both
    direct kernels read gy re-laid on the padded grid, so it is re-laid once,
    and the bias gradient is summed in that same pass (in float64, per plane,
    then over the batch in order).
    """
    x = _float_c(x, "x")
    gy = _float_c(gy, "gy", x.dtype)
    w = _float_c(w, "w", x.dtype)
    stride, pad4, dilation = shapes.conv_args(stride, padding, dilation)
    N, C, H, W = x.shape
    O, Cg, KH, KW = w.shape
    OH, OW = gy.shape[2], gy.shape[3]
    unit = stride == (1, 1)
    passes = [kind for kind, need in (("input", need_input), ("weight", need_weight)) if need]
    spread = sums = None
    if unit and any(not _use_gemm(kind, N, O, Cg, KH, KW, groups, OH * OW, unit)
                    and not _use_winograd(kind, C, O, KH, KW, stride, dilation, groups, pad4, OH * OW)
                    for kind in passes):
        Wp = W + pad4[2] + pad4[3]
        sums = np.empty((N, O)) if need_bias else None
        spread = _spread_planes(gy, Wp, (OH - 1) * Wp + OW, sums)
    gx = _conv_bwd_input(gy, w, x.shape, stride, pad4, dilation, groups, spread) if need_input else None
    gw = _conv_bwd_weight(x, gy, w.shape, stride, pad4, dilation, groups, spread) if need_weight else None
    gb = None
    if need_bias:
        gb = (sums.sum(axis=0) if sums is not None else gy.sum(axis=(0, 2, 3), dtype=np.float64)).astype(x.dtype)
    return gx, gw, gb


def conv_transpose2d_forward(x, w, b, stride, padding, output_padding, groups, dilation):
    """Transposed convolution = conv2d_backward_input with x in the role of gy."""
    x = _float_c(x, "x")
    w = _float_c(w, "w", x.dtype)
    b = None if b is None else _float_c(b, "b", x.dtype)
    stride, pad4, dilation = shapes.conv_args(stride, padding, dilation)
    oh, ow = shapes.conv_transpose_out_hw(x.shape[2:], w.shape[2:], stride, pad4, output_padding, dilation)
    y = _conv_bwd_input(x, w, (x.shape[0], w.shape[1] * groups, oh, ow), stride, pad4, dilation, groups)
    if b is not None:
        y += b[None, :, None, None]
    return y


def conv_transpose2d_backward_input(gy, w, stride, padding, dilation, groups, x_shape=None):
    """Gradient of conv_transpose2d w.r.t. x = conv2d_forward(gy, w), cropped to x_shape."""
    gy = _float_c(gy, "gy")
    w = _float_c(w, "w", gy.dtype)
    stride, pad4, dilation = shapes.conv_args(stride, padding, dilation)
    OH, OW = (tuple(x_shape)[2:] if x_shape is not None
              else shapes.conv_out_hw(gy.shape[2:], w.shape[2:], stride, pad4, dilation))
    return _conv_fwd(gy, w, None, stride, pad4, dilation, groups, OH, OW)


def conv_transpose2d_backward_weight(x, gy, w_shape, stride, padding, dilation, groups):
    """Gradient of conv_transpose2d w.r.t. w = conv2d_backward_weight with (gy, x) as (input, grad)."""
    x = _float_c(x, "x")
    gy = _float_c(gy, "gy", x.dtype)
    stride, pad4, dilation = shapes.conv_args(stride, padding, dilation)
    return _conv_bwd_weight(gy, x, tuple(w_shape), stride, pad4, dilation, groups)
