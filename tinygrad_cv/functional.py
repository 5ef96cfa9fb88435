r"""Stateless operations on tensors, PyTorch's ``torch.nn.functional`` (import as ``F``).

Activations and losses are built from the primitives in ``tinygrad_cv.ops``;
the argument names, order and defaults follow PyTorch.
"""
from __future__ import annotations

import numpy as np

from . import cuda as _cuda
from . import kernels as _kernels
from .kernels import shapes as _shapes
from .ops import conv as _conv
from .ops import movement as M
from .ops import pool as _pool
from .ops.linear import Linear as LinearFn
from .ops.loss import CrossEntropy, NLLLoss
from .tensor import Tensor, concatenate, stack, where  # noqa: F401  (re-exported)

__all__ = [
    "relu", "leaky_relu", "sigmoid", "tanh", "softmax", "log_softmax",
    "cross_entropy", "nll_loss", "mse_loss", "kl_div", "multi_margin_loss", "pad",
    "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d",
]


def relu(input):
    r"""max(x, 0); derivative 1 for x > 0 and 0 otherwise (0 at the kink)."""
    return input.relu()


def leaky_relu(input, negative_slope=0.01):
    return input.leaky_relu(negative_slope)


def sigmoid(input):
    r"""\sigma(x) = 1 / (1 + e^{-x}), derivative \sigma(x)(1 - \sigma(x))."""
    return input.sigmoid()


def tanh(input):
    return input.tanh()


def softmax(input, dim=-1):
    r"""e^{x_i} / \sum_j e^{x_j} along ``dim``, computed stably."""
    return input.softmax(dim)


def log_softmax(input, dim=-1):
    r"""x_i - \log \sum_j e^{x_j} along ``dim``, computed stably."""
    return input.log_softmax(dim)


_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _class_targets(input, target, ignore_index, name):
    """Validate integer class targets against (N, C, ...) / (C,) scores; returns (input, target, unbatched)."""
    t = target.data if isinstance(target, Tensor) else np.asarray(target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{name}: class-index targets must be integers, got {t.dtype}")
    unbatched = input.ndim == 1
    if unbatched:
        input = input.unsqueeze(0)
        t = t.reshape(1) if t.ndim == 0 else t
    if input.ndim < 2:
        raise ValueError(f"{name}: input must have shape (N, C) or (N, C, d1, ...), got {input.shape}")
    expected = (input.shape[0],) + input.shape[2:]
    if t.shape != expected:
        raise ValueError(
            f"{name}: target shape {t.shape} does not match input shape {input.shape} "
            f"(expected target shape {expected})"
        )
    c = input.shape[1]
    invalid = (t < 0) | (t >= c)
    if ignore_index is not None:  # None: every target must be a class (multi_margin_loss)
        invalid = (t != ignore_index) & invalid
    if invalid.any():  # on the GPU this check is one small device-to-host read
        host = _cuda.move(t, "cpu")
        out_of_range = (host < 0) | (host >= c)
        if ignore_index is not None:
            out_of_range &= host != ignore_index
        bad = host[out_of_range]
        raise IndexError(f"{name}: target {int(bad.flat[0])} is out of bounds for {c} classes")
    return input, t.astype(np.int64, copy=False), unbatched


def _class_weight(weight, input, name):
    if weight is None:
        return None
    w = weight.data if isinstance(weight, Tensor) else np.asarray(weight)
    if w.shape != (input.shape[1],):
        raise ValueError(f"{name}: weight has shape {w.shape}, expected ({input.shape[1]},) for input {input.shape}")
    return w.astype(input.dtype)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    r"""Negative log-likelihood of class indices: -w[t_n] \cdot input[n, t_n], reduced."""
    _check_reduction(reduction)
    input, t, unbatched = _class_targets(input, target, ignore_index, "nll_loss")
    w = _class_weight(weight, input, "nll_loss")
    out = NLLLoss.apply(input, t, w, ignore_index, reduction)
    return out.squeeze(0) if unbatched and reduction == "none" else out


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    r"""Softmax cross-entropy of raw scores (logits) ``input`` (N, C, ...) against ``target``.

    ``target`` holds class indices (N, ...) or class probabilities (same shape
    as ``input``). With label smoothing ε the target distribution becomes
    (1 - ε) y + ε / C, i.e.

        loss = (1 - ε) nll(log_softmax(x), t) + ε / C \sum_c -w_c log_softmax(x)_c

    The gradient with respect to the logits is softmax(x) - y (times the
    weights and the reduction's scale).
    """
    _check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    tdata = target.data if isinstance(target, Tensor) else np.asarray(target)
    if tdata.dtype.kind == "f":
        return _soft_cross_entropy(input, target, weight, reduction, label_smoothing)
    input, t, unbatched = _class_targets(input, target, ignore_index, "cross_entropy")
    w = _class_weight(weight, input, "cross_entropy")
    if input.ndim == 2 and label_smoothing == 0 and input.dtype.kind == "f":
        # the common case as one node whose backward is coef (softmax(x) - y)
        loss = CrossEntropy.apply(input, t, w, ignore_index, reduction)
        return loss.squeeze(0) if unbatched and reduction == "none" else loss
    logp = input.log_softmax(1)
    loss = NLLLoss.apply(logp, t, w, ignore_index, reduction)
    if label_smoothing > 0:
        c = input.shape[1]
        keep = t != ignore_index
        wl = logp if w is None else logp * Tensor._wrap(w.reshape((1, c) + (1,) * (logp.ndim - 2)))
        smooth = -wl.sum(1) * Tensor._wrap(keep.astype(logp.dtype))
        if reduction == "mean":
            denom = keep.sum() if w is None else w[np.where(keep, t, 0)][keep].sum()
            smooth = smooth.sum() / float(denom)
        elif reduction == "sum":
            smooth = smooth.sum()
        loss = loss * (1 - label_smoothing) + smooth * (label_smoothing / c)
    return loss.squeeze(0) if unbatched and reduction == "none" else loss


def _soft_cross_entropy(input, target, weight, reduction, label_smoothing):
    target = target if isinstance(target, Tensor) else Tensor(target, dtype=input.dtype)
    if target.shape != input.shape:
        raise ValueError(f"cross_entropy: probability target shape {target.shape} != input shape {input.shape}")
    cdim = 0 if input.ndim == 1 else 1
    c = input.shape[cdim]
    if label_smoothing > 0:
        target = target * (1 - label_smoothing) + label_smoothing / c
    logp = input.log_softmax(cdim)
    if weight is not None:
        w = _class_weight(weight, input if cdim else input.unsqueeze(0), "cross_entropy")
        logp = logp * Tensor._wrap(w.reshape((c,) + (1,) * (logp.ndim - cdim - 1)))
    losses = -(target * logp).sum(cdim)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / (input.shape[0] if cdim else 1) / (int(np.prod(input.shape[2:])) if cdim else 1)


def mse_loss(input, target, reduction="mean"):
    r"""Mean squared error (x - y)^2, reduced. Shapes must match exactly.

    (PyTorch only warns on a mismatch; silently broadcasting (N, 1) against
    (N,) into (N, N) is a classic bug, so it is an error here.)
    """
    _check_reduction(reduction)
    target = target if isinstance(target, Tensor) else input._lift(target)
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: input shape {input.shape} and target shape {target.shape} differ")
    d = input - target
    sq = d * d
    return sq.mean() if reduction == "mean" else sq.sum() if reduction == "sum" else sq


_KL_REDUCTIONS = ("mean", "batchmean", "sum", "none")


def kl_div(input, target, reduction="mean", log_target=False):
    r"""Kullback-Leibler divergence KL(target ‖ p) where ``input`` holds log p (log-probabilities), as PyTorch.

    Pointwise, with y the target:

        log_target=False:  y (log y - input)        (0 where y = 0: 0 log 0 = 0)
        log_target=True:   e^y (y - input)          (the target given as log-probabilities)

    then reduced: ``"mean"`` averages over *all* elements (PyTorch's default,
    which is not the divergence per sample), ``"batchmean"`` sums and divides
    by the batch size ``input.shape[0]`` (the mathematical KL per sample, the
    one to use), ``"sum"``, ``"none"``.

    The y log y term has an infinite slope at y = 0; there its gradient with
    respect to the target is taken as 0 (PyTorch gives NaN), so a target with
    zeros still backpropagates finite numbers. The gradient with respect to
    ``input`` is minus the target probability (-y, or -e^y with
    ``log_target``), scaled by the reduction. Shapes must match exactly (no
    broadcasting, as ``mse_loss``). Targets must be non-negative when
    ``log_target=False``.
    """
    if reduction not in _KL_REDUCTIONS:
        raise ValueError(f"kl_div: reduction must be one of {_KL_REDUCTIONS}, got {reduction!r}")
    if not isinstance(input, Tensor):
        raise TypeError(f"kl_div: input must be a Tensor of log-probabilities, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(f"kl_div: input must hold log-probabilities in a floating point dtype, got {input.dtype}")
    if not isinstance(target, Tensor):
        target = Tensor(np.asarray(target), dtype=input.dtype, device=input.device)
    if target.dtype.kind != "f":
        raise TypeError(
            f"kl_div: target must hold (log-)probabilities in a floating point dtype, got {target.dtype} "
            "(class indices? use nll_loss / cross_entropy)"
        )
    if input.shape != target.shape:
        raise ValueError(f"kl_div: input shape {input.shape} and target shape {target.shape} differ")
    if log_target:
        pointwise = target.exp() * (target - input)
    else:
        if (target.data < 0).any():  # on the GPU one small device-to-host read
            raise ValueError("kl_div: target probabilities must be non-negative (log_target=False); "
                             f"got a minimum of {float(_cuda.move(target.data, 'cpu').min())}")
        positive = target > 0
        safe = where(positive, target, 1.0)  # log(1) = 0: no -inf (and no NaN gradient) where y = 0
        pointwise = where(positive, target * safe.log(), 0.0) - target * input
    if reduction == "none":
        return pointwise
    if reduction == "sum":
        return pointwise.sum()
    if reduction == "mean":
        return pointwise.mean()
    total = pointwise.sum()
    return total / input.shape[0] if input.ndim else total  # batchmean


def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, reduction="mean"):
    r"""Multi-class hinge loss (PyTorch's ``multi_margin_loss``), for scores (N, C) or (C,) and class indices y.

    For each sample, with w the optional class weights (C,):

        loss = w[y] / C \sum_{i \ne y} max(0, margin - x[y] + x[i])^p,   p ∈ {1, 2}

    i.e. every wrong class scoring within ``margin`` of the right one is
    penalised (linearly, or squared for p = 2). ``"mean"`` averages the
    per-sample losses over N (the weights do not enter the divisor, unlike
    ``cross_entropy``). At a margin tie (margin - x[y] + x[i] = 0) the
    gradient is the one-sided 0, as relu's.
    """
    _check_reduction(reduction)
    if isinstance(p, bool) or p not in (1, 2):
        raise ValueError(f"multi_margin_loss: only p == 1 and p == 2 are supported, got p={p!r}")
    if not isinstance(input, Tensor):
        raise TypeError(f"multi_margin_loss: input must be a Tensor, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(f"multi_margin_loss: input must be floating point scores, got {input.dtype}")
    if input.ndim not in (1, 2):
        raise ValueError(f"multi_margin_loss: input must have shape (N, C) or (C,), got {input.shape}")
    if input.shape[-1] == 0:
        raise ValueError(f"multi_margin_loss: input has no classes (shape {input.shape})")
    t0 = target.data if isinstance(target, Tensor) else np.asarray(target)
    scalar_target = t0.ndim == 0
    input, t, unbatched = _class_targets(input, target, None, "multi_margin_loss")
    w = _class_weight(weight, input, "multi_margin_loss")
    n, c = input.shape
    index = Tensor._wrap(t.reshape(n, 1))
    x_y = input.gather(1, index)  # (N, 1): the right class's score
    hinge = (input - x_y + float(margin)).relu()
    if p == 2:
        hinge = hinge * hinge
    cols = _cuda.move(np.arange(c, dtype=np.int64).reshape(1, c), input.device)
    others = (t.reshape(n, 1) != cols).astype(input.dtype)  # drop i = y from the sum
    losses = (hinge * Tensor._wrap(others)).sum(1) / c
    if w is not None:
        losses = losses * Tensor._wrap(w).reshape(1, c).expand(n, c).gather(1, index).reshape(n)  # w[y]
    if reduction == "none":
        return losses.squeeze(0) if unbatched and scalar_target else losses
    return losses.sum() if reduction == "sum" else losses.mean()


def pad(input, pad, mode="constant", value=0.0):
    """Pad with a constant; ``pad`` lists (left, right) pairs starting from the LAST dim, as PyTorch.

    ``F.pad(x, (1, 1, 2, 2))`` pads the last dim by 1 on each side and the one
    before it by 2. Negative values crop.
    """
    if mode != "constant":
        raise ValueError(f"pad: only mode='constant' is supported, got {mode!r}")
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: {pad} must hold (left, right) pairs for at most {input.ndim} dims of shape {input.shape}")
    widths = [(0, 0)] * input.ndim
    for k in range(len(pad) // 2):
        widths[input.ndim - 1 - k] = (pad[2 * k], pad[2 * k + 1])
    for n, (b, e) in zip(input.shape, widths):
        if n + b + e < 0:
            raise ValueError(f"pad: {pad} crops more than the size of shape {input.shape}")
    return M.Pad.apply(input, tuple(widths), value)


# --- convolution and pooling ---------------------------------------------------------
# The maths and the three kernel twins live in ``tinygrad_cv/ops/conv.py``,
# ``ops/pool.py`` and ``tinygrad_cv/kernels/``; here arguments are normalised
# and checked so that bad input fails with the numbers at fault.


def _same_dtype(x, *others):
    return [None if t is None else (t if t.dtype == x.dtype else t.to(x.dtype)) for t in others]


def _float_input(x, name):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: input must be a Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f" or x.dtype == np.float16:
        raise TypeError(f"{name}: input must be float32 or float64, got {x.dtype}")


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    r"""2-D convolution over (N, C, H, W) with weight (O, C/groups, KH, KW).

    ``padding`` is an int, a pair, ``"valid"`` (no padding) or ``"same"``
    (output size = input size; stride must be 1; for even kernels the extra
    row/column goes at the bottom/right, as PyTorch). Output size per axis:
    ⌊(H + 2p − d(k − 1) − 1) / s⌋ + 1.
    """
    _float_input(input, "conv2d")
    weight, bias = _same_dtype(input, weight, bias)
    stride_, dil = _shapes.pair(stride, "stride"), _shapes.pair(dilation, "dilation")
    if isinstance(padding, str) and padding == "same" and stride_ != (1, 1):
        raise ValueError(f"conv2d: padding='same' is not supported for strided convolutions (stride={stride_})")
    if not isinstance(padding, str):
        # PyTorch's public rule: an int or a (pad_h, pad_w) pair. The kernels' own (top, bottom, left, right)
        # 4-tuple is refused here, since F.pad reads a 4-tuple as (left, right, top, bottom): the two orders
        # would silently disagree.
        padding = _shapes.pair(padding, "padding")
    kernel = tuple(weight.shape[2:]) if weight.ndim == 4 else (1, 1)
    pad4 = _shapes.resolve_padding(padding, kernel, stride_, dil)
    _shapes.check_conv2d(input.shape, weight.shape, None if bias is None else bias.shape, stride_, pad4, dil, groups)
    return _conv.Conv2d.apply(input, weight, bias, stride_, pad4, dil, int(groups))


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    r"""Transposed convolution ("deconvolution"): the adjoint of ``conv2d``, used for learnable upsampling.

    weight is (C_in, C_out/groups, KH, KW). Output size per axis:
    (H − 1) s − 2p + d(k − 1) + output_padding + 1.
    """
    _float_input(input, "conv_transpose2d")
    weight, bias = _same_dtype(input, weight, bias)
    stride_, dil = _shapes.pair(stride, "stride"), _shapes.pair(dilation, "dilation")
    pad = _shapes.pair(padding, "padding")
    pad4 = (pad[0], pad[0], pad[1], pad[1])
    out_hw = _shapes.check_conv_transpose2d(
        input.shape, weight.shape, None if bias is None else bias.shape, stride_, pad4, output_padding, groups, dil
    )
    return _conv.ConvTranspose.apply(input, weight, bias, stride_, pad4, dil, int(groups), tuple(out_hw))


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max over k×k windows (stride defaults to kernel_size; padding counts as −inf).

    The gradient goes to one element per window: the first maximum in
    row-major order. ``return_indices=True`` also returns the argmax positions
    (flat indices into each H×W plane, as PyTorch).
    """
    _float_input(input, "max_pool2d")
    k, s, p, d = _shapes.pool_args(kernel_size, stride, padding, dilation)
    _shapes.check_pool2d(input.shape, k, s, p, d, ceil_mode, "max_pool2d")
    y, idx = _pool.MaxPool2d.apply(input, k, s, p, d, bool(ceil_mode))
    return (y, idx) if return_indices else y


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
    """Mean over k×k windows, PyTorch's divisor rules (``count_include_pad``, ``divisor_override``)."""
    _float_input(input, "avg_pool2d")
    k, s, p, _ = _shapes.pool_args(kernel_size, stride, padding)
    _shapes.check_pool2d(input.shape, k, s, p, 1, ceil_mode, "avg_pool2d")
    if divisor_override is not None and int(divisor_override) <= 0:
        raise ValueError(f"avg_pool2d: divisor_override must be positive, got {divisor_override}")
    return _pool.AvgPool2d.apply(input, k, s, p, bool(ceil_mode), bool(count_include_pad), divisor_override)


# ----------------------------------------------------------------------------
# Layer operations used by tinygrad_cv.nn
# ----------------------------------------------------------------------------
__all__ += ["linear", "flatten", "dropout", "batch_norm", "adaptive_avg_pool2d"]

from . import random as _random  # noqa: E402  (dropout masks)
from .ops import nn as _nn_ops  # noqa: E402  (fused batch norm)


def linear(input, weight, bias=None):
    r"""y = x Wᵀ + b for ``input`` (*, in_features), ``weight`` (out_features, in_features), ``bias`` (out_features,).

    Gradients: dL/dx = g W, dL/dW = gᵀ x (summed over the leading axes),
    dL/db = g summed over the leading axes. One fused node (``ops.linear``)
    when all operands share a float dtype and device; otherwise (mixed
    dtypes, a broadcast bias) the same from matmul and broadcasting.
    """
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {weight.shape}")
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input shape {input.shape} does not end in in_features={weight.shape[1]} "
            f"(weight shape {weight.shape})"
        )
    dtype = input.dtype
    if (
        isinstance(input, Tensor)
        and isinstance(weight, Tensor)
        and (bias is None or isinstance(bias, Tensor))
        and dtype in (np.float32, np.float64)
        and weight.dtype == dtype
        and weight.device == input.device
        and (bias is None or (bias.dtype == dtype and bias.device == input.device and bias.shape == weight.shape[:1]))
    ):
        return LinearFn.apply(input, weight, bias)
    out = input @ weight.T
    return out if bias is None else out + bias


def flatten(input, start_dim=0, end_dim=-1):
    """Merge dims ``start_dim..end_dim`` into one (``torch.flatten``)."""
    return input.flatten(start_dim, end_dim)


def dropout(input, p=0.5, training=True, inplace=False):
    r"""Inverted dropout: zero each element with probability ``p``, scale the survivors by 1/(1-p).

    The scaling keeps E[output] = input, so nothing has to change at
    evaluation time, where (``training=False``) this is the identity. The mask
    comes from ``tinygrad_cv.random``'s generator: ``manual_seed`` makes it
    reproducible (on the GPU it is drawn on the device from one integer of
    that generator, so GPU masks differ from CPU masks for the same seed).
    The gradient is the same mask times the upstream gradient.
    ``inplace`` is accepted for PyTorch compatibility; the result is always a
    new tensor (the engine has no in-place operations).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    # the twin draws from the library's generator (so manual_seed rules); the GPU twin's masks differ from the CPU's
    mask = _kernels.backend_for(input.data).dropout_mask(input.shape, p, input._float().dtype,
                                                         _random.default_generator())
    return input * Tensor._wrap(mask)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    r"""Batch normalisation over every axis but the channel axis 1 of ``input`` (N, C, *).

    Training (``training=True``): with the batch mean μ and the *biased*
    variance σ² = mean((x - μ)²) of each channel,

        y = (x - μ) / √(σ² + eps) · weight + bias

    and, when running statistics are given, they are updated in place with
    the *unbiased* variance (n / (n - 1) σ², n values per channel):

        running_mean ← (1 - momentum) running_mean + momentum μ
        running_var  ← (1 - momentum) running_var  + momentum n/(n-1) σ²

    Evaluation (``training=False``): the running statistics replace μ and σ²
    (constants, so this is a per-channel affine map built from tensor ops).

    Training mode runs as one fused operation (``ops.nn.BatchNormTrain``)
    whose gradient, through μ and σ² too, is the closed form; the tests check
    it against this same formula written with elementary tensor operations.
    The batch statistics, forward and backward are the kernel twins'
    (``kernels/norm/``).
    """
    if input.ndim < 2:
        raise ValueError(f"batch_norm: input must have shape (N, C, *), got {input.shape}")
    c = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (c,):
            raise ValueError(f"batch_norm: {name} has shape {tuple(t.shape)}, expected ({c},) for input {input.shape}")
    bshape = (1, c) + (1,) * (input.ndim - 2)
    x = input._float()
    # parameters follow the input's dtype, as the output does
    weight = weight if weight is None or weight.dtype == x.dtype else weight.to(x.dtype)
    bias = bias if bias is None or bias.dtype == x.dtype else bias.to(x.dtype)
    if training:
        n = input.numel() // c if c else 0
        if n <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {input.shape}")
        mean, var = _kernels.backend_for(x.data).batch_norm_stats(x.data)  # (C,) each; var is the biased one
        m = float(momentum)
        if running_mean is not None:
            rm = running_mean.data
            rm[...] = (1 - m) * rm + m * mean
            running_mean._bump_version()
        if running_var is not None:
            rv = running_var.data
            rv[...] = (1 - m) * rv + m * var * (n / (n - 1))
            running_var._bump_version()
        return _nn_ops.BatchNormTrain.apply(x, weight, bias, mean, var, eps)
    if running_mean is None or running_var is None:
        raise ValueError("batch_norm: running_mean and running_var are needed when training=False")
    mean = Tensor._wrap(running_mean.data.reshape(bshape).astype(x.dtype, copy=False))
    var = Tensor._wrap(running_var.data.reshape(bshape).astype(x.dtype, copy=False))
    out = (x - mean) / (var + eps).sqrt()
    if weight is not None:
        out = out * weight.reshape(bshape)
    if bias is not None:
        out = out + bias.reshape(bshape)
    return out


def _adaptive_windows(n_in, n_out):
    """PyTorch's adaptive pooling windows: [floor(i n_in / n_out), ceil((i+1) n_in / n_out)) for each output i."""
    i = np.arange(n_out)
    start = (i * n_in) // n_out
    end = -((-(i + 1) * n_in) // n_out)  # ceil division on integers
    return start, end


def _averaging_matrix(n_in, n_out, dtype):
    """(n_out, n_in) matrix whose row i averages input window i: A x pools along one axis."""
    start, end = _adaptive_windows(n_in, n_out)
    cols = np.arange(n_in)
    inside = (cols >= start[:, None]) & (cols < end[:, None])
    return (inside / (end - start)[:, None]).astype(dtype)


def adaptive_avg_pool2d(input, output_size):
    r"""Average pooling to a fixed output size (oh, ow) for input (N, C, H, W) or (C, H, W).

    Output (i, j) averages rows [floor(i H/oh), ceil((i+1) H/oh)) and columns
    likewise — windows may overlap when the sizes do not divide. ``None`` in
    ``output_size`` keeps that input size.

    Three paths, one result: 1×1 is a mean over H and W (global average
    pooling); divisible sizes reshape into equal blocks and average them; the
    general case multiplies by averaging matrices, out = A_h · x · A_wᵀ
    (so the gradient is A_hᵀ · g · A_w, courtesy of matmul).
    """
    if input.ndim not in (3, 4):
        raise ValueError(f"adaptive_avg_pool2d: expected a 3-D or 4-D input, got shape {input.shape}")
    h, w = input.shape[-2:]
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != 2:
            raise ValueError(f"adaptive_avg_pool2d: output_size must be an int or a pair, got {output_size!r}")
        oh, ow = output_size
    else:
        oh = ow = output_size
    oh = h if oh is None else int(oh)
    ow = w if ow is None else int(ow)
    if oh < 1 or ow < 1:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be positive, got {(oh, ow)}")
    if h == 0 or w == 0:
        raise ValueError(f"adaptive_avg_pool2d: input has an empty spatial size {input.shape}")
    x = input._float()
    if (oh, ow) == (1, 1):
        return x.mean((-2, -1), keepdim=True)
    if h % oh == 0 and w % ow == 0:
        lead = x.shape[:-2]
        blocks = x.reshape(lead + (oh, h // oh, ow, w // ow))
        return blocks.mean((-3, -1))
    a_h = Tensor(_averaging_matrix(h, oh, x.dtype), device=x.device)
    a_w = Tensor(_averaging_matrix(w, ow, x.dtype), device=x.device)
    return a_h @ x @ a_w.T
