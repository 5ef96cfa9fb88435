"""Convolution, CPU twin: the entry points, and the rule that picks a method per pass.

Same functions, signatures and semantics as ``reference.py`` (the readable
definition and the test oracle); only *how* the numbers are computed differs.
Two methods are implemented and :func:`_use_gemm` picks one per pass:

* **direct** (``cpu_direct.py``) - register-blocked flat loops on a
  zero-padded, ``Wp``-wide grid for stride 1, per-plane loops for strides;
* **gemm** (``cpu_gemm.py``) - im2col into a ``(C*KH*KW, n*OH*OW)`` matrix
  for a chunk of images, one BLAS GEMM per group, a parallel copy back.

Measured with both paths forced (ms, min of 5-20 runs; float32, batch 64,
2 cores, PyTorch 2.13 on the same box for scale):

=========================  ==========  ========  =========  =======
layer                      pass        direct    gemm       PyTorch
=========================  ==========  ========  =========  =======
conv 6->16 5x5, 14x14      fwd         0.49      1.0        0.24
(K = 150, 15 M MAC)        bwd_input   0.77      1.1        0.48
                           bwd_weight  0.47      1.1        0.38
conv 64->64 3x3 p1, 32x32  fwd         40        51         44
(K = 576, 2.4 G MAC)       bwd_input   44        57         45
                           bwd_weight  34        59         44
conv 64->128 3x3 s2 p1     fwd         785       47
(strided, 1.2 G MAC)       bwd_input   689       44
                           bwd_weight  828       36
=========================  ==========  ========  =========  =======

So: direct for every stride-1 convolution; for strided ones, direct for
short reductions (K < 64) and many groups, GEMM for the weight gradient once
K >= 64, and GEMM for forward and backward-input when there is also enough
work (>= 2**27 multiply-adds) to pay for handing the cores from Numba's
thread pool to BLAS's and back.

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
from . import cpu_direct, cpu_gemm
from .cpu_layout import _padded_input, _rows_needed, _spread_planes

# Test hook: None = heuristic, "direct" or "gemm" forces a convolution path.
_FORCE_STRATEGY: str | None = None

# Thresholds of _use_gemm (measured on the bench shapes; see the module docstring).
_GEMM_MIN_K = 64
_GEMM_MIN_WORK = 1 << 27


def _use_gemm(kind, N, O, Cg, KH, KW, groups, P, unit) -> bool:
    """Pick the convolution path for one pass (see the module docstring for the numbers).

    kind is "forward" / "input" / "weight"; unit means stride 1, where the
    register-blocked direct kernels beat im2col+GEMM at every measured size.
    For strided convolutions im2col+GEMM needs a long reduction per group
    (K = C/g*KH*KW) for BLAS to beat the direct loops, few groups (one GEMM
    each), and - forward and backward-input - enough total work to amortise
    the hand-over between the Numba and the BLAS thread pools (about 0.5 ms
    per switch on two cores).  The strided backward-weight kernel is a plain
    reduction per (o, c) pair and loses to BLAS whenever K is long.
    """
    if _FORCE_STRATEGY is not None:
        return _FORCE_STRATEGY == "gemm"
    K = Cg * KH * KW
    if unit or groups > 4 or K < _GEMM_MIN_K:
        return False
    return kind == "weight" or N * O * P * K >= _GEMM_MIN_WORK


# ==========================================================================
# The three passes: shared preparation, then the chosen method
# ==========================================================================

def _conv_fwd(x, w, b, stride, pad4, dilation, groups, OH, OW):
    N, C, H, W = x.shape
    O, Cg, KH, KW = w.shape
    sh, sw = stride
    dh, dw = dilation
    xp, Wp, R = _padded_input(x, pad4, KH, OH, sh, dh)
    y = np.empty((N, O, OH, OW), dtype=x.dtype)
    if b is None:
        b = np.zeros(O, dtype=x.dtype)
    unit = sh == 1 and sw == 1
    method = cpu_gemm if _use_gemm("forward", N, O, Cg, KH, KW, groups, OH * OW, unit) else cpu_direct
    method.forward(xp, Wp, w, b, y, stride, dilation, groups)
    return y


def _conv_bwd_input(gy, w, x_shape, stride, pad4, dilation, groups, spread=None):
    """gx; ``spread`` = (gyf, G), gy already re-laid by _spread_planes for this Wp (stride 1)."""
    N, C, H, W = x_shape
    O, Cg, KH, KW = w.shape
    OH, OW = gy.shape[2], gy.shape[3]
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
    if unit and any(not _use_gemm(kind, N, O, Cg, KH, KW, groups, OH * OW, unit) for kind in passes):
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
