r"""The kernel contract: every function a kernel twin provides, declared once.

Each entry below is a stub with the function's name, its signature, a
docstring holding the formula and the shapes, and a body holding the
*rules* its arguments must obey. Three twins implement every entry, one
module per device, assembled from the families' files:

* ``kernels/reference.py`` - readable NumPy: the formulas, the oracle;
* ``kernels/cpu.py``       - fast CPU code (Numba loops, BLAS, NumPy);
* ``kernels/cuda.py``      - ``numba.cuda`` kernels on GPU arrays.

Everything else is derived from this list: the twin modules must export
exactly these names with exactly these signatures
(``tests/kernels/test_contract.py``), :func:`checked` runs the rules before a
twin's function when a person calls it directly, and ``kernels.backend_for``
hands the operations the same functions without the rules. Adding an
operation = one entry here, its three twins (``kernels/<family>/``), their
tests.

Conventions shared by every entry
---------------------------------
* **Arguments are checked by the caller.** The public API
  (``tinygrad_cv.functional``, the ``Tensor`` methods) validates what the user
  passed, once; the operations then call the twins through
  ``kernels.backend_for``, which does not check again. Called directly
  (``kernels.get_backend("cpu").conv2d_forward(...)``), a twin runs the rules
  written here first. A twin only normalises representations: ints to pairs,
  arrays to C order, a second float operand to the first's dtype, and it
  refuses non-float data (TypeError) where it computes in floating point.
* Arrays are float32 or float64 (class targets and max-pool indices int64);
  results are new arrays of the first operand's dtype, except for the
  optimiser steps, which update their ``writes`` in place and return None.
* The CUDA twin takes and returns GPU arrays and never copies to the host.
* ``padding`` is (ph, pw) or (top, bottom, left, right); ``stride``,
  ``dilation``, ``kernel_size`` and ``output_padding`` are ints or pairs.
"""
from __future__ import annotations

import functools
import inspect
import numbers
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import shapes

__all__ = ["Kernel", "KERNELS", "FAMILIES", "checked"]

#: the families, in the order their files are read: kernels/<family>/{reference,cpu,cuda}.py
FAMILIES = ("conv", "pool", "matmul", "elementwise", "softmax_loss", "norm", "dropout", "optim", "indexing")


@dataclass(frozen=True)
class Kernel:
    """One contract entry: ``rules`` is the stub (its signature, its docstring, its argument checks)."""

    name: str
    family: str
    rules: Callable
    writes: tuple = ()  # arguments updated in place (the optimiser steps); everything else is read only

    @property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.rules)

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.rules) or ""


#: name -> entry, in declaration order
KERNELS: dict[str, Kernel] = {}


def _entry(family: str, writes=()):
    def declare(stub):
        assert family in FAMILIES and stub.__name__ not in KERNELS, stub.__name__
        KERNELS[stub.__name__] = Kernel(stub.__name__, family, stub, tuple(writes))
        return stub

    return declare


def checked(impl, convert=None):
    """``impl`` (a twin's function) behind its contract entry's rules, for direct callers.

    ``convert(impl, entry, direct)`` may wrap ``impl`` first (the CUDA twin's
    ``CudaArray`` adapter; ``direct`` is True for the checked function). The
    function without the rules is kept as ``.unchecked``: that is what
    ``kernels.backend_for`` hands to the operations.
    """
    entry = KERNELS[impl.__name__]
    rules = entry.rules
    inner = impl if convert is None else convert(impl, entry, True)

    @functools.wraps(impl)
    def call(*args, **kwargs):
        rules(*args, **kwargs)
        return inner(*args, **kwargs)

    call.unchecked = impl if convert is None else convert(impl, entry, False)
    return call


# ==========================================================================
# Helpers of the rules
# ==========================================================================

def _shape(a):
    return tuple(np.shape(a))


def _dtype(a):
    return np.dtype(a.dtype) if hasattr(a, "dtype") else np.asarray(a).dtype


def _float(a, name):
    if _dtype(a) not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got {_dtype(a)}")


def _like(a, name, ref):
    """``a`` of ``ref``'s dtype and shape."""
    if _dtype(a) != _dtype(ref):
        raise TypeError(f"{name} has dtype {_dtype(a)}, expected {_dtype(ref)} (the dtype of the other inputs)")
    if _shape(a) != _shape(ref):
        raise ValueError(f"{name} has shape {_shape(a)}, expected {_shape(ref)}")


def _rows(x, name):
    _float(x, name)
    if len(_shape(x)) != 2:
        raise ValueError(f"{name} must be 2-D (M, C) with the softmax axis last, got shape {_shape(x)}")


def _reduction(reduction):
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"reduction must be one of ('none', 'mean', 'sum'), got {reduction!r}")


def _targets(target, rows):
    if _dtype(target) != np.int64:
        raise TypeError(f"target must be int64 class indices, got {_dtype(target)}")
    if _shape(target) != (rows,):
        raise ValueError(f"target must have shape ({rows},) to match logp's rows, got {_shape(target)}")


def _class_weight(weight, logp):
    if weight is None:
        return
    if _dtype(weight) != _dtype(logp):
        raise TypeError(f"weight has dtype {_dtype(weight)}, expected {_dtype(logp)} (the dtype of the other inputs)")
    if _shape(weight) != (_shape(logp)[1],):
        raise ValueError(f"weight has shape {_shape(weight)}, expected ({_shape(logp)[1]},)")


def _nc(x, name):
    """(N, C, *spatial) float input; returns C."""
    _float(x, name)
    if len(_shape(x)) < 2:
        raise ValueError(f"{name} must have shape (N, C, *spatial), got {_shape(x)}")
    return _shape(x)[1]


def _per_channel(a, name, c, dtype):
    if a is None:
        return
    if _dtype(a) != dtype:
        raise TypeError(f"{name} has dtype {_dtype(a)}, expected {dtype} (the dtype of the other inputs)")
    s = _shape(a)
    if s != (c,) and not (len(s) >= 2 and s[1] == c and int(np.prod(s)) == c):
        raise ValueError(f"{name} must have shape ({c},) (or (1, {c}, 1, ...)), got {s}")


def _same_arrays(param, **others):
    _float(param, "param")
    for name, a in others.items():
        _like(a, name, param)


def _divisor(divisor_override):
    if divisor_override is not None and divisor_override == 0:
        raise ValueError("divisor_override must be non-zero, got 0")


# ==========================================================================
# conv: convolution and transposed convolution (kernels/conv/)
# ==========================================================================

@_entry("conv")
def conv2d_forward(x, w, b, stride, padding, dilation, groups):
    """2-D cross-correlation (PyTorch's ``conv2d``).

    x (N, C, H, W), w (O, C/groups, KH, KW), b (O,) or None -> y (N, O, OH, OW)::

        y[n,o,i,j] = b[o] + sum_{c in group(o)} sum_{p,q} x[n, c, i*sh + p*dh - pt, j*sw + q*dw - pl] * w[o, c, p, q]

    x outside the input reads as 0 (padding); OH = floor((H + pt + pb - dh*(KH-1) - 1) / sh) + 1, likewise OW.
    """
    stride, pad4, dilation = shapes.conv_args(stride, padding, dilation)
    shapes.check_conv2d(_shape(x), _shape(w), None if b is None else _shape(b), stride, pad4, dilation, groups)


@_entry("conv")
def conv2d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    """dL/dx of conv2d, the adjoint in x ("full correlation with the flipped kernel"; conv_transpose2d's forward).

    gy (N, O, OH, OW), w (O, C/groups, KH, KW) -> gx of shape ``x_shape`` (N, C, H, W)::

        gx[n, c, h, v] = sum over (o, p, q, i, j) with i*sh + p*dh - pt = h, j*sw + q*dw - pl = v of gy[n,o,i,j] * w[o,c,p,q]
    """
    shapes.check_conv2d_grad(x_shape, _shape(w), _shape(gy), stride, padding, dilation, groups)


@_entry("conv")
def conv2d_backward_weight(x, gy, w_shape, stride, padding, dilation, groups):
    """dL/dw of conv2d: x (N, C, H, W), gy (N, O, OH, OW) -> gw of shape ``w_shape`` (O, C/groups, KH, KW)::

        gw[o, c, p, q] = sum_{n,i,j} gy[n, o, i, j] * x[n, c, i*sh + p*dh - pt, j*sw + q*dw - pl]
    """
    shapes.check_conv2d_grad(_shape(x), w_shape, _shape(gy), stride, padding, dilation, groups)


@_entry("conv")
def conv2d_backward(x, gy, w, stride, padding, dilation, groups, need_input=True, need_weight=True, need_bias=True):
    """All three gradients of conv2d in one call: (gx, gw, gb), each None unless asked for.

    gx and gw as in ``conv2d_backward_input`` / ``conv2d_backward_weight``;
    gb[o] = sum_{n,i,j} gy[n, o, i, j] (O,). A twin may share work between them.
    """
    shapes.check_conv2d_grad(_shape(x), _shape(w), _shape(gy), stride, padding, dilation, groups)


@_entry("conv")
def conv_transpose2d_forward(x, w, b, stride, padding, output_padding, groups, dilation):
    """Transposed convolution (PyTorch's ``conv_transpose2d``): the adjoint of a conv2d whose weight is w.

    x (N, C_in, H, W), w (C_in, C_out/groups, KH, KW), b (C_out,) or None -> y (N, C_out, OH, OW),
    y = conv2d_backward_input(x as gy, w) + b, with OH = (H - 1)*sh - pt - pb + dh*(KH - 1) + output_padding + 1.
    """
    stride, pad4, dilation = shapes.conv_args(stride, padding, dilation)
    shapes.check_conv_transpose2d(_shape(x), _shape(w), None if b is None else _shape(b), stride, pad4,
                                  output_padding, groups, dilation)


@_entry("conv")
def conv_transpose2d_backward_input(gy, w, stride, padding, dilation, groups, x_shape=None):
    """dL/dx of conv_transpose2d = conv2d_forward(gy, w) (no bias), cropped to ``x_shape`` when given.

    gy (N, C_out, OH, OW), w (C_in, C_out/groups, KH, KW) -> (N, C_in, H, W). When output_padding >= stride
    (allowed below the dilation) the conv2d has more rows/columns than x: they are cropped away.
    """
    shapes.check_conv_transpose2d_grad(_shape(gy), _shape(w), x_shape, stride, padding, dilation, groups)


@_entry("conv")
def conv_transpose2d_backward_weight(x, gy, w_shape, stride, padding, dilation, groups):
    """dL/dw of conv_transpose2d = conv2d_backward_weight with (gy, x) as (input, output gradient).

    x (N, C_in, H, W), gy (N, C_out, OH, OW) -> ``w_shape`` (C_in, C_out/groups, KH, KW).
    """
    shapes.check_conv_transpose2d_grad(_shape(gy), w_shape, _shape(x), stride, padding, dilation, groups)


# ==========================================================================
# pool: max and average pooling (kernels/pool/)
# ==========================================================================

@_entry("pool")
def max_pool2d_forward(x, kernel_size, stride, padding, dilation, ceil_mode):
    """Max pooling with PyTorch's ``return_indices``: x (N, C, H, W) -> (y, indices), both (N, C, OH, OW).

        y[n,c,i,j] = max over taps (p, q) of x[n, c, i*sh + p*dh - ph, j*sw + q*dw - pw]   (padding: -inf)

    indices (int64) holds h*W + w of the winner in its plane. The window is scanned row-major and only a
    strictly greater value wins (first maximum); a NaN always wins (last NaN's index); a window with no
    input element (possible with dilation) gives -inf and index -1.
    """
    k, s, p, d = shapes.pool_args(kernel_size, stride, padding, dilation)
    shapes.check_pool2d(_shape(x), k, s, p, d, ceil_mode, "max_pool2d")


@_entry("pool")
def max_pool2d_backward(gy, indices, x_shape):
    """Route each output gradient to its window's winner: gy, indices (N, C, OH, OW) -> gx (``x_shape``).

        gx[n, c].flat[indices[n, c, i, j]] += gy[n, c, i, j]     (a sum: windows may overlap; index -1 routes nowhere)
    """
    n, c, h, w = shapes.check_4d(x_shape, "x_shape")
    if _shape(indices) != _shape(gy) or _shape(gy)[:2] != (n, c):
        raise ValueError(
            f"gy {_shape(gy)} and indices {_shape(indices)} must have the same shape (N={n}, C={c}, OH, OW)")


@_entry("pool")
def avg_pool2d_forward(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override=None):
    """Average pooling: x (N, C, H, W) -> y (N, C, OH, OW), y = (sum of the window's real elements) / divisor.

    Divisor (PyTorch's): ``divisor_override`` if given; else with ``count_include_pad`` the window size
    clipped to the padded input (the ceil_mode overhang past the padding does not count); else the number
    of real elements in the window.
    """
    _divisor(divisor_override)
    k, s, p, _ = shapes.pool_args(kernel_size, stride, padding)
    shapes.check_pool2d(_shape(x), k, s, p, 1, ceil_mode, "avg_pool2d")


@_entry("pool")
def avg_pool2d_backward(gy, x_shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                        divisor_override=None):
    """The adjoint of average pooling: gy (N, C, OH, OW) -> gx (``x_shape``); each window's real elements
    receive gy / divisor (the forward's divisor)."""
    _divisor(divisor_override)
    k, s, p, _ = shapes.pool_args(kernel_size, stride, padding)
    oh, ow = shapes.check_pool2d(x_shape, k, s, p, 1, ceil_mode, "avg_pool2d")
    shapes.check_grad_shape(_shape(gy), tuple(x_shape)[:2] + (oh, ow), "gy")


# ==========================================================================
# matmul: matrix products and the fully connected layer (kernels/matmul/)
# ==========================================================================

@_entry("matmul")
def matmul(a, b):
    """c[i, j] = sum_k a[i, k] * b[k, j]: a (M, K), b (K, N) -> c (M, N). Both 2-D (batches: the arrays' @)."""
    shapes.check_matmul(_shape(a), _shape(b))


def _linear_shapes(x, w, rows_name="x"):
    xs, ws = _shape(x), _shape(w)
    if len(xs) != 2 or len(ws) != 2 or xs[1] != ws[1]:
        raise ValueError(f"linear: {rows_name} of shape {xs} and w of shape {ws} do not fit: "
                         f"expected {rows_name} (M, K) and w (N, K)")
    return ws[0]


@_entry("matmul")
def linear_forward(x, w, b):
    """The fully connected layer: x (M, K), w (N, K), b (N,) or None -> y (M, N)::

        y[m, n] = sum_k x[m, k] * w[n, k] + b[n]          (y = x Wᵀ + b)
    """
    n = _linear_shapes(x, w)
    if b is not None and _shape(b) != (n,):
        raise ValueError(f"linear: b has shape {_shape(b)}, expected ({n},)")


@_entry("matmul")
def linear_backward(grad, x, w, need_input=True, need_weight=True, need_bias=True):
    """The layer's gradients for g = dL/dy (M, N): (gx, gw, gb), each None unless asked for::

        gx = g W (M, K)        gw = gᵀ x (N, K)        gb[n] = sum_m g[m, n] (N,)
    """
    n = _linear_shapes(x, w)
    if _shape(grad) != (_shape(x)[0], n):
        raise ValueError(f"linear: grad has shape {_shape(grad)}, expected {(_shape(x)[0], n)}")


# ==========================================================================
# elementwise: ReLU (kernels/elementwise/)
# ==========================================================================

@_entry("elementwise")
def relu_forward(x):
    """y = max(x, 0) elementwise, any shape (NaN stays NaN)."""


@_entry("elementwise")
def relu_backward(gy, y):
    """gx = gy where the ReLU's output y > 0, else 0 (the derivative at 0 taken as 0); gy and y of one shape."""
    shapes.check_grad_shape(_shape(gy), _shape(y), "gy")


# ==========================================================================
# softmax_loss: softmax, log-softmax, NLL and cross-entropy, on rows (kernels/softmax_loss/)
# ==========================================================================

@_entry("softmax_loss")
def log_softmax_forward(x):
    """log_softmax along the last axis: x (M, C) -> (M, C)::

        out[m, j] = (x[m, j] - mx) - log sum_k exp(x[m, k] - mx),    mx = max_k x[m, k]   (0 if not finite)

    Subtracting the row max keeps every exponent <= 0 (no overflow); an inf/NaN row gives the formula's IEEE result.
    """
    _rows(x, "x")


@_entry("softmax_loss")
def softmax_forward(x):
    """softmax along the last axis: x (M, C) -> (M, C), exp(log_softmax_forward(x))."""
    _rows(x, "x")


@_entry("softmax_loss")
def log_softmax_backward(grad, logp):
    """dL/dx of log_softmax from its output logp (M, C): grad - exp(logp) * sum_j grad[:, j], row-wise."""
    _rows(grad, "grad")
    _like(logp, "logp", grad)


@_entry("softmax_loss")
def softmax_backward(grad, s):
    """dL/dx of softmax from its output s (M, C): s * (grad - sum_j grad[:, j] * s[:, j]), row-wise."""
    _rows(grad, "grad")
    _like(s, "s", grad)


@_entry("softmax_loss")
def nll_loss_forward(logp, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of log-probabilities logp (M, C) at class indices target (M,) int64::

        w_m    = weight[t_m] (1 without weight), 0 where t_m == ignore_index
        loss_m = -w_m * logp[m, t_m]

    Returns (out, coef): out is the (M,) losses for "none", else a 0-d array with sum_m loss_m
    ("sum") or that sum / sum_m w_m ("mean"; 0/0 -> nan when every target is ignored, as PyTorch);
    coef (M,) = d out / d loss_m: w / sum(w) for "mean", w otherwise. weight is None or (C,).
    Targets are in [0, C) or ignore_index (the caller checks; the CUDA twin makes other rows NaN).
    """
    _reduction(reduction)
    _rows(logp, "logp")
    _targets(target, _shape(logp)[0])
    _class_weight(weight, logp)


@_entry("softmax_loss")
def nll_loss_backward(grad_out, coef, target, C, ignore_index=-100, reduction="mean"):
    """The dense gradient of the NLL loss with respect to logp: a new (M, C) array::

        grad[m, j] = -coef[m] * g_m  at j == target[m] (not ignored),  0 elsewhere

    g_m = grad_out[m] for "none" (grad_out (M,)), else the one value of grad_out (shape () or (1,)).
    """
    _reduction(reduction)
    _float(coef, "coef")
    if len(_shape(coef)) != 1:
        raise ValueError(f"coef must have shape (M,), got {_shape(coef)}")
    rows = _shape(coef)[0]
    _targets(target, rows)
    if not isinstance(C, numbers.Integral) or C < 0:
        raise ValueError(f"C (the number of classes) must be a non-negative int, got {C!r}")
    if _dtype(grad_out) != _dtype(coef):
        raise TypeError(f"grad_out has dtype {_dtype(grad_out)}, expected {_dtype(coef)} (the dtype of the other inputs)")
    if reduction == "none":
        if _shape(grad_out) != (rows,):
            raise ValueError(f"grad_out has shape {_shape(grad_out)}, expected {(rows,)}")
    elif int(np.prod(_shape(grad_out))) != 1 or len(_shape(grad_out)) > 1:
        raise ValueError(f"grad_out must be a one-element array of shape () or (1,) for reduction={reduction!r}, "
                         f"got shape {_shape(grad_out)}")


@_entry("softmax_loss")
def cross_entropy_forward(x, target, weight=None, ignore_index=-100, reduction="mean"):
    """Softmax cross-entropy of logits x (M, C) at class indices target (M,): NLL of log_softmax(x).

    Returns (out, logp, coef): out and coef as in ``nll_loss_forward``, logp = log_softmax(x) (M, C)
    (what the backward pass needs).
    """
    _reduction(reduction)
    _rows(x, "x")
    _targets(target, _shape(x)[0])
    _class_weight(weight, x)


@_entry("softmax_loss")
def cross_entropy_backward(grad_out, logp, coef, target, ignore_index=-100, reduction="mean"):
    """dL/dx of cross-entropy: the famous coef (p - y), times the upstream gradient::

        dx[m, :] = g_m * coef[m] * (exp(logp[m, :]) - onehot(target[m]))      (M, C)

    g_m as in ``nll_loss_backward``; logp and coef from ``cross_entropy_forward``.
    """
    _reduction(reduction)
    _rows(logp, "logp")
    if _dtype(coef) != _dtype(logp) or _shape(coef) != _shape(logp)[:1]:
        raise ValueError(f"coef must be ({_shape(logp)[0]},) of logp's dtype {_dtype(logp)}, "
                         f"got {_shape(coef)} {_dtype(coef)}")
    _targets(target, _shape(logp)[0])


# ==========================================================================
# norm: batch normalisation, training mode (kernels/norm/)
# ==========================================================================

@_entry("norm")
def batch_norm_stats(x):
    """Per-channel batch mean and biased variance of x (N, C, *spatial): (mean, var), each (C,)::

        mean[c] = 1/n sum x[:, c],   var[c] = 1/n sum (x[:, c] - mean[c])**2,   n = N * prod(spatial)
    """
    c = _nc(x, "x")
    s = _shape(x)
    if int(np.prod(s)) == 0 and c:
        raise ValueError(f"batch_norm_stats: no values per channel in x of shape {s}")


@_entry("norm")
def batch_norm_forward(x, mean, var, weight=None, bias=None, eps=1e-5):
    """Batch-norm forward with given statistics: (y, xhat, inv_std)::

        inv_std = 1 / sqrt(var + eps)   (C,)      xhat = (x - mean) * inv_std      y = xhat * weight + bias

    x (N, C, *spatial); mean, var (C,) or (1, C, 1, ...); weight, bias (C,) or None; all of x's dtype.
    """
    c = _nc(x, "x")
    for name, a in (("mean", mean), ("var", var), ("weight", weight), ("bias", bias)):
        _per_channel(a, name, c, _dtype(x))


@_entry("norm")
def batch_norm_backward(grad, xhat, inv_std, weight=None, need_x=True, need_w=True, need_b=True):
    """The closed-form gradients (the paths through the batch mean and variance included), n = N*prod(spatial)::

        gw = grad * weight (weight = 1 when None)
        dL/dx = inv_std / n * (n gw - sum(gw) - xhat * sum(gw xhat))      dL/dweight = sum(grad xhat)      dL/dbias = sum(grad)

    (sums per channel, over every axis but 1). grad, xhat (N, C, *spatial); inv_std, weight (C,).
    Returns (gx, gweight, gbias), each None unless asked for.
    """
    c = _nc(grad, "grad")
    _like(xhat, "xhat", grad)
    _per_channel(inv_std, "inv_std", c, _dtype(grad))
    _per_channel(weight, "weight", c, _dtype(grad))


# ==========================================================================
# dropout (kernels/dropout/)
# ==========================================================================

@_entry("dropout")
def dropout_mask(shape, p, dtype, seed):
    """An inverted-dropout mask: a new array of ``shape`` and ``dtype`` (float32/float64)::

        mask = 1/(1 - p)  with probability 1 - p (kept),   0 otherwise     (p == 1: all zeros)

    so x * mask is dropout with E[x * mask] = x. ``seed`` is an int (a fixed mask) or a NumPy Generator
    to draw from (the library's generator: ``manual_seed`` controls it). Twins draw differently: the
    masks of the CPU and the CUDA twin differ for the same seed.
    """
    dims = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
    if any(int(s) < 0 for s in dims):
        raise ValueError(f"shape must be non-negative, got {dims}")
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not isinstance(seed, np.random.Generator) and (not isinstance(seed, numbers.Integral) or isinstance(seed, bool)):
        raise TypeError(f"seed must be an int or a numpy Generator, got {type(seed).__name__}")


# ==========================================================================
# optim: the optimiser updates, in place (kernels/optim/)
# ==========================================================================

@_entry("optim", writes=("param", "buf"))
def sgd_step(param, grad, buf, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
             maximize=False, first_step=False):
    """One SGD step on ``param`` in place; the momentum buffer ``buf`` updated in place. With γ = lr,
    μ = momentum, τ = dampening, λ = weight_decay::

        g ← -grad if maximize else grad
        g ← g + λ θ                                  (λ ≠ 0)
        if μ ≠ 0:   b ← g (first_step)  or  b ← μ b + (1 - τ) g;     g ← g + μ b (nesterov)  or  g ← b
        θ ← θ - γ g

    param, grad, buf: one shape and dtype; buf may be None when μ == 0. Returns None.
    """
    if momentum != 0 and buf is None:
        raise ValueError("buf (the momentum buffer) is required when momentum != 0")
    _same_arrays(param, grad=grad, **({"buf": buf} if momentum != 0 else {}))


@_entry("optim", writes=("param", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"))
def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr=1e-3, beta1=0.9, beta2=0.999,
              eps=1e-8, weight_decay=0.0, decoupled=False, amsgrad=False, maximize=False):
    """One Adam / AdamW step on ``param`` in place, at step t = ``step`` (1-based). With λ = weight_decay::

        g ← -grad if maximize else grad
        g ← g + λ θ   (Adam, λ ≠ 0)          θ ← θ (1 - lr λ)   (AdamW: decoupled=True)
        m ← β₁ m + (1 - β₁) g                (exp_avg, in place)
        v ← β₂ v + (1 - β₂) g²               (exp_avg_sq, in place)
        v ← v̂max ← max(v̂max, v)              (amsgrad: max_exp_avg_sq, in place)
        θ ← θ - lr / (1 - β₁ᵗ) · m / (√v / √(1 - β₂ᵗ) + ε)

    (PyTorch's arrangement: ε after dividing √v by √(1 - β₂ᵗ).) All arrays one shape and dtype;
    max_exp_avg_sq may be None unless amsgrad. Returns None.
    """
    if not isinstance(step, numbers.Integral) or step < 1:
        raise ValueError(f"step must be an int >= 1 (the number of this update), got {step!r}")
    if amsgrad and max_exp_avg_sq is None:
        raise ValueError("max_exp_avg_sq is required when amsgrad=True")
    others = dict(grad=grad, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq)
    if amsgrad:
        others["max_exp_avg_sq"] = max_exp_avg_sq
    _same_arrays(param, **others)


# ==========================================================================
# indexing: scatter-add, the adjoint of gather (kernels/indexing/)
# ==========================================================================

@_entry("indexing")
def scatter_add_along_axis(src, index, axis, shape):
    """zeros(shape) with src added at index along axis: the adjoint of ``np.take_along_axis``::

        out[i_0, .., index[i_0, .., i_n], .., i_n] += src[i_0, .., i_n]      (index replaces coordinate ``axis``)

    src and index (integers) of one shape, with ``len(shape)`` dims; repeated indices add up.
    """
    if _dtype(index).kind not in "iu":
        raise TypeError(f"index must hold integers, got {_dtype(index)}")
    if _shape(index) != _shape(src) or len(_shape(src)) != len(tuple(shape)):
        raise ValueError(f"index {_shape(index)} and src {_shape(src)} must have one shape of {len(tuple(shape))} dims")
    if not -len(tuple(shape)) <= axis < len(tuple(shape)):
        raise ValueError(f"axis {axis} is out of range for shape {tuple(shape)}")
