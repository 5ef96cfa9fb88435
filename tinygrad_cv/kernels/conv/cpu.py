"""Convolution, CPU twin: the entry points, and the rule that picks a method per pass.

Same functions, signatures and semantics as ``reference.py`` (the readable
definition and the test oracle); only *how* the numbers are computed differs.
Five methods are implemented; :func:`_use_depthwise`, :func:`_use_winograd`,
:func:`_use_phases`, then :func:`_use_gemm` pick one per pass:

* **direct** (``cpu_direct.py``) - register-blocked flat loops on a
  zero-padded, ``Wp``-wide grid for stride 1, per-plane loops for strides;
* **gemm** (``cpu_gemm.py``) - the batch cut into chunks of a few images;
  per chunk, on one core: im2col into a ``(C*KH*KW, n*OH*OW)`` matrix that
  stays in cache, one BLAS GEMM per group (one BLAS thread), the copy back;
* **winograd** (``cpu_winograd.py``) - F(2x2, 3x3) for 3x3 stride-1
  convolutions: 16 small GEMMs over transformed 4x4 tiles, 2.25x fewer
  multiply-adds (forward and backward-input only);
* **phase** (``cpu_direct.forward_phases``, ``backward_input_phases``,
  ``backward_weight_phases``) - a strided convolution as sh*sw stride-1
  ones: the padded input split into its phase planes
  (``cpu_layout._phase_planes``), then the register-blocked stride-1
  kernels, whose taps are constant offsets again; the input gradient
  scatters into phase planes and interleaves them back;
* **depthwise** (``cpu_depthwise.py``) - one filter per channel at stride 1:
  each plane padded in a small buffer of the work item's own (no padded
  copy of the batch), the flat correlation, the output written straight
  from the accumulator; the input gradient is the same kernel with the
  filter turned by 180 degrees.

Measured with each method forced (``python bench/conv_methods.py``: ms
forward / backward-input / backward-weight, float32, all cores, fastest of 9
calls, the methods alternating call by call in one process; "-": the method
does not apply):

===========================  ===================  ===================  ===================
layer (batch)                direct               gemm                 winograd
===========================  ===================  ===================  ===================
3x3 s2 16->32, 28x28 (128)   59.1 / 59.3 / 83.0   5.0 / 5.1 / 4.3      - / - / -
1x1 s2 16->32, 28x28 (128)   7.0 / 7.0 / 9.1      1.2 / 1.8 / 1.0      - / - / -
7x7 s2 3->64, 56x56 (32)     88.2 / 90.3 / 120.4  6.0 / 6.1 / 5.6      - / - / -
dw 3x3 s2 32, 28x28 (128)    5.2 / 4.7 / 6.8      4.9 / 7.1 / 5.0      - / - / -
3x3 s1 16->16, 32x32 (128)   5.9 / 6.8 / 8.9      12.3 / 12.1 / 8.4    10.9 / 10.7 / -
3x3 s1 16->16, 28x28 (128)   4.5 / 5.2 / 6.7      9.7 / 9.4 / 6.6      8.0 / 7.9 / -
3x3 s1 32->32, 16x16 (128)   6.2 / 8.2 / 9.7      8.7 / 8.3 / 6.9      6.5 / 6.3 / -
3x3 s1 32->32, 14x14 (128)   4.9 / 5.5 / 7.5      7.3 / 7.0 / 5.9      5.8 / 5.5 / -
3x3 s1 64->64, 8x8 (128)     9.4 / 9.9 / 12.6     7.1 / 7.1 / 6.7      5.5 / 5.4 / -
3x3 s1 64->64, 7x7 (128)     8.6 / 10.0 / 11.0    6.0 / 6.0 / 5.5      5.4 / 5.3 / -
3x3 s1 64->64, 16x16 (128)   22.1 / 25.1 / 34.1   23.4 / 23.4 / 21.0   16.0 / 15.9 / -
3x3 s1 64->64, 28x28 (32)    15.6 / 18.3 / 24.3   17.4 / 16.9 / 15.0   12.5 / 12.6 / -
3x3 s1 128->128, 8x8 (128)   36.8 / 42.4 / 52.0   21.6 / 22.3 / 29.5   16.5 / 16.8 / -
3x3 s1 128->128, 14x14 (32)  18.3 / 21.1 / 27.8   15.3 / 15.4 / 16.3   13.8 / 13.9 / -
3x3 s1 256->256, 7x7 (32)    33.2 / 38.2 / 43.8   16.6 / 18.1 / 26.5   30.0 / 30.2 / -
1x1 s1 64->64, 14x14 (128)   3.8 / 4.8 / 5.9      3.8 / 4.8 / 4.1      - / - / -
5x5 s1 6->16, 14x14 (128)    1.3 / 1.6 / 1.9      2.3 / 2.5 / 1.6      - / - / -
===========================  ===================  ===================  ===================

Strided layers, each method forced (same command, ms forward / input /
weight):

===========================  ==================  ==================
layer (batch)                gemm                phase
===========================  ==================  ==================
dw 3x3 s2 32, 28x28 (128)    4.0 / 5.5 / 4.0     2.4 / 2.7 / 2.6
3x3 s2 8->16, 28x28 (128)    2.1 / 2.0 / 1.6     0.9 / 1.0 / 1.4
3x3 s2 16->32, 28x28 (128)   5.1 / 4.3 / 3.7     3.4 / 3.5 / 4.9
3x3 s2 16->32, 32x32 (128)   5.3 / 5.2 / 4.5     3.4 / 3.9 / 5.5
3x3 s2 32->32, 16x16 (128)   3.6 / 3.2 / 2.9     2.5 / 2.8 / 3.7
7x7 s2 16->16, 28x28 (128)   9.7 / 10.1 / 7.4    4.5 / 5.1 / 7.6
5x5 s2 32->32, 28x28 (128)   20.0 / 19.4 / 15.4  12.3 / 20.5 / 20.9
7x7 s2 3->64, 56x56 (32)     4.7 / 5.1 / 4.3     3.7 / 6.2 / 6.4
3x3 s2 32->64, 16x16 (128)   5.2 / 4.3 / 4.0     4.8 / 5.2 / 6.8
3x3 s2 64->128, 16x16 (128)  11.6 / 11.5 / 12.2  15.4 / 19.2 / 26.3
1x1 s2 16->32, 28x28 (128)   1.0 / 1.4 / 0.9     1.0 / 1.1 / 1.2
===========================  ==================  ==================

:func:`_use_phases` takes strided K x K forward passes with at most 32
output channels per group (on so few rows BLAS's GEMM is inefficient,
whatever the reduction length) or reductions K = C/groups * KH * KW up to
147 (the 7x7 stem); input passes with at most 32 output channels per group
(the 5x5 32->32 layer is a coin toss); weight passes up to K = 72 only (at
144 and beyond the GEMM's reduction over whole chunks of images wins).  A
1x1 forward or weight pass has no copies to save.  Without phases, strided
convolutions cannot use the direct kernels' flat-offset trick and lose by
5-20x; 1x1 convolutions are a plain matrix product.  So
:func:`_use_gemm` picks GEMM for every strided and every 1x1 convolution; for
stride-1 KxK convolutions it picks GEMM for the forward and input passes
with long reductions on small images (K = C/groups * KH * KW >= 512, at most
16x16 outputs), and for the weight gradient from K >= 256 (its GEMM has the
whole chunk as the reduction and runs at BLAS speed); the register-blocked
direct kernels keep wide images with few channels, where their flat loops
over a whole plane run at full vector speed and im2col would copy the input
KH*KW times.  Grouped convolutions with short reductions per group
(depthwise) stay direct, but for the strided weight gradient.

:func:`_use_depthwise` comes first.  A depthwise convolution does KH*KW
multiply-adds per output, so its time is memory traffic, and the direct
method's padded copy of the batch was most of it (ms forward / input /
weight, batch 128, float32; direct -> depthwise): 3x3 on 256 channels of 7x7
4.7 / 5.3 / 4.5 -> 2.2 / 2.2 / 2.3; 128 of 14x14 4.1 / 5.2 / 5.0 -> 2.2 /
2.2 / 2.8; 64 of 28x28 5.3 / 9.0 / 6.4 -> 3.7 / 3.7 / 5.6; 32 of 56x56 14.4
/ 20.6 / 15.2 -> 7.1 / 7.1 / 10.9.  With 5x5 and 7x7 filters the direct
kernels' four taps per pass win the forward and weight passes (7x7 on 64
channels of 28x28: 17.8 / 34.3 / 16.0 direct, 22.2 / 22.1 / 23.0
depthwise), so those take the depthwise method for the input gradient only.

:func:`_use_winograd` comes next: with 16 or 32 channels Winograd's
transforms (16 values per tile and channel, in and out) cost about as much
as the multiply-adds they save, and only the input gradient (where the
direct kernel scatters) gains from 32 channels; from 64 channels the GEMMs
dominate and Winograd wins both passes by 10-35 %; at 256 channels the
transformed weight (16 * C * O values) no longer stays in cache and GEMM
wins again.  So: forward from 64, input from 32 channels in and out, up to
128, on outputs up to 112x112 (the largest measured: at 56x56 64 -> 64,
batch 32, Winograd 44 / 43 ms forward / input against the rule's earlier
direct / GEMM choice of 67 / 74; 64 -> 64 at 112x112, batch 8: 54-62 / 53-70
against 64 / 74; 32 -> 32 at 32x32 is a coin toss).  Where two methods are
within ~10 % of each other the rule's choice is a coin toss between them.

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
from . import cpu_depthwise, cpu_direct, cpu_gemm, cpu_winograd
from .cpu_layout import _padded_input, _phased_input, _rows_needed, _spread_planes

# Test hook: None = heuristic, "direct" or "gemm" forces a convolution path; "winograd" forces it
# where it applies (3x3, stride 1, ...: cpu_winograd.eligible) and leaves the rest to the heuristic,
# as does "depthwise" (cpu_depthwise.eligible);
# "phase" forces the phase split for every strided forward and weight pass (the rest: direct).
_FORCE_STRATEGY: str | None = None

# Thresholds of _use_gemm (measured; see the module docstring).
_GEMM_MIN_K_PER_GROUP = 32   # shorter reductions per group (depthwise 3x3: 9) stay direct (strided weight gradient: GEMM)
_GEMM_MIN_K_UNIT = 512       # stride-1 KxK (K > 1) convolutions: GEMM from 64 channels of 3x3 ...
_GEMM_MAX_P_UNIT = 256       # ... on outputs of at most 16x16
_GEMM_MIN_K_WEIGHT = 256     # their weight gradient: GEMM from 32 channels of 3x3, any image size


def _use_gemm(kind, N, O, Cg, KH, KW, groups, P, unit) -> bool:
    """Pick the convolution path for one pass (see the module docstring for the numbers).

    ``kind`` is "forward" / "input" / "weight"; ``unit`` means stride 1;
    P = OH * OW.
    """
    if _FORCE_STRATEGY in ("direct", "gemm", "phase"):
        return _FORCE_STRATEGY == "gemm"
    K = Cg * KH * KW
    if groups > 1 and K < _GEMM_MIN_K_PER_GROUP and (unit or kind != "weight"):
        return False
    if not unit or KH * KW == 1:
        return True
    if kind == "weight":
        return K >= _GEMM_MIN_K_WEIGHT
    return K >= _GEMM_MIN_K_UNIT and P <= _GEMM_MAX_P_UNIT


# Thresholds of _use_phases (measured; see the module docstring).
_PHASE_MAX_OUT_PER_GROUP = 32  # forward and input: up to 32 output channels per group ...
_PHASE_MAX_K_FORWARD = 147     # ... or (forward) reductions up to the 7x7 stem's 3 * 49
_PHASE_MAX_K_WEIGHT = 72       # weight gradient: short reductions only


def _use_phases(kind, O, Cg, KH, KW, stride, groups) -> bool:
    """Phase-split the input and run the stride-1 direct kernels for this strided pass?

    Forward: K x K kernels (K > 1; a 1x1 kernel has no copies to save) with
    few output channels per group (on so few rows BLAS's GEMM is
    inefficient) or short reductions.  Input gradient: few output channels
    per group (the scatter's inner sum), any kernel.  Weight gradient: short
    reductions only (its GEMM sums whole chunks of images, which the direct
    kernel's 4 x 4 dot products do not match).
    """
    if stride == (1, 1):
        return False
    if _FORCE_STRATEGY is not None:
        return _FORCE_STRATEGY == "phase"
    K = Cg * KH * KW
    few_out = O // groups <= _PHASE_MAX_OUT_PER_GROUP
    if kind == "input":
        return few_out
    if KH * KW == 1:
        return False
    if kind == "forward":
        return few_out or K <= _PHASE_MAX_K_FORWARD
    return K <= _PHASE_MAX_K_WEIGHT


# Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions: the forward pass from 64 channels in and out,
# the input gradient (where the direct kernel's scatter is slower than its forward) from 32; up to 128
# channels and 112x112 outputs (measured; see the module docstring).
_WINOGRAD_MIN_CHANNELS = {"forward": 64, "input": 32}
_WINOGRAD_MAX_CHANNELS = 128
_WINOGRAD_MAX_P = 112 * 112


def _use_winograd(kind, C, O, KH, KW, stride, dilation, groups, pad4, P) -> bool:
    """Winograd for this pass? Only "forward" and "input" (the weight gradient measured slower)."""
    if kind == "weight" or not cpu_winograd.eligible(KH, KW, stride, dilation, groups, pad4):
        return False
    if _FORCE_STRATEGY is not None:
        return _FORCE_STRATEGY == "winograd"
    lo, hi = _WINOGRAD_MIN_CHANNELS[kind], _WINOGRAD_MAX_CHANNELS
    return lo <= C <= hi and lo <= O <= hi and P <= _WINOGRAD_MAX_P


# Depthwise convolutions (one filter per channel, stride 1): the plane-buffer kernels for 3x3 and
# smaller filters, and for the input gradient of any size (measured; see the module docstring).
_DEPTHWISE_MAX_TAPS = 9


def _use_depthwise(kind, C, O, KH, KW, stride, dilation, groups, pad4, hw=None) -> bool:
    """The depthwise method for this pass? Forward and weight: up to 3x3 filters; input: any filter.

    ``hw`` = (H, W, OH, OW) for the input gradient, whose x may be larger than
    the convolution reads (see ``cpu_depthwise.eligible``).
    """
    if not cpu_depthwise.eligible(C, O, groups, stride, pad4, KH, KW, dilation, kind, hw):
        return False
    if _FORCE_STRATEGY is not None:
        return _FORCE_STRATEGY == "depthwise"
    return kind == "input" or KH * KW <= _DEPTHWISE_MAX_TAPS


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
    if _use_depthwise("forward", C, O, KH, KW, stride, dilation, groups, pad4):
        return cpu_depthwise.forward(x, w, b, pad4, dilation, OH, OW)
    if _use_winograd("forward", C, O, KH, KW, stride, dilation, groups, pad4, OH * OW):
        return cpu_winograd.forward(x, w, b, pad4, OH, OW)
    if _use_phases("forward", O, Cg, KH, KW, stride, groups):
        xph, W2, RW2 = _phased_input(x, pad4, KH, KW, OH, OW, stride, dilation)
        y = np.empty((N, O, OH, OW), dtype=x.dtype)
        cpu_direct.forward_phases(xph, W2, RW2, w, b, y, stride, dilation, groups)
        return y
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
    if _use_depthwise("input", C, O, KH, KW, stride, dilation, groups, pad4, (H, W, OH, OW)):
        return cpu_depthwise.backward_input(gy, w, x_shape, pad4, dilation)
    if _use_winograd("input", C, O, KH, KW, stride, dilation, groups, pad4, OH * OW):
        return cpu_winograd.backward_input(gy, w, x_shape, pad4)
    sh, sw = stride
    dh, dw = dilation
    pt, pb, pl, pr = pad4
    R = _rows_needed(OH, KH, sh, dh)
    Wp = W + pl + pr
    gx = np.empty((N, C, H, W), dtype=gy.dtype)
    unit = sh == 1 and sw == 1
    if _use_phases("input", O, Cg, KH, KW, stride, groups):
        cpu_direct.backward_input_phases(gy, w, gx, pad4, stride, dilation, groups)
    elif _use_gemm("input", N, O, Cg, KH, KW, groups, OH * OW, unit):
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
    if _use_depthwise("weight", C, O, KH, KW, stride, dilation, groups, pad4):
        return cpu_depthwise.backward_weight(x, gy, w_shape, pad4, dilation)
    gw = np.empty((O, Cg, KH, KW), dtype=x.dtype)
    if _use_phases("weight", O, Cg, KH, KW, stride, groups):
        xph, W2, RW2 = _phased_input(x, pad4, KH, KW, OH, OW, stride, dilation)
        cpu_direct.backward_weight_phases(xph, W2, RW2, gy, gw, stride, dilation, groups)
        return gw
    xp, Wp, R = _padded_input(x, pad4, KH, OH, sh, dh)
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
                    and not _use_depthwise(kind, C, O, KH, KW, stride, dilation, groups, pad4, (H, W, OH, OW))
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
