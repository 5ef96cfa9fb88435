r"""Softmax, log-softmax and the NLL / cross-entropy loss, CUDA twin: one launch per formula.

Written with elementary operations, ``log_softmax(x)`` is a max, a subtract,
an exp, a sum, a log and a second subtract: six launches and six trips
through global memory, with four temporaries the size of ``x``. Each kernel
here is **one** launch that reads its inputs once per pass it needs and
writes only its results, keeping the partial results (a row's max and sum)
in registers and shared memory. Kernels are memory bound, so fewer passes
over memory is what makes them fast.

* *row-wise* (softmax, its backward): one block per row; the block's threads
  stride over the row, so rows of any length work, and combine their partial
  results with ``block_max`` / ``block_sum``. Blocks stride over the rows, so
  the grid stays bounded however many rows there are.
* *NLL*: a grid-stride loop over the rows for ``reduction="none"``; for
  ``"sum"``/``"mean"`` ONE block computes the rows, both sums and the division
  (the loss, its denominator and the gradient coefficients in one launch).
  Its backward is a grid-stride loop over the dense (M, C) gradient.
* *cross-entropy* = log-softmax then NLL (two launches), and its backward
  NLL-backward then log-softmax-backward (two launches): coef (p - y).

Every function takes numba CUDA device arrays (C-contiguous, float32 or
float64; class targets int64), returns new device arrays and never copies
anything to the host. Arguments are checked by the caller
(``kernels/contract.py``); targets are never read out of bounds: a target
outside [0, C) that is not ``ignore_index`` makes its row NaN.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from ..cuda_common import (MAX_THREADS, block_max, block_sum, block_sum2, device, empty, exp, float_array, grid_1d,
                           log, placeholder, row_blocks, row_threads)


# ==========================================================================
# Kernels
# ==========================================================================

@cuda.jit
def _log_softmax_rows(x, out, want_exp):
    """out = x - m - log(sum exp(x - m)) per row, or its exp; m = the row max, 0 if not finite."""
    sh = cuda.shared.array(MAX_THREADS, x.dtype)
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    rows, cols = x.shape
    for r in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
        m = x[r, 0]  # any element of the row is a valid start for the max
        for j in range(tid, cols, nt):
            v = x[r, j]
            if v > m or v != v:
                m = v
        m = block_max(sh, m)
        if math.isinf(m) or math.isnan(m):
            m = x.dtype.type(0)  # as the CPU twin: inf/nan rows give the IEEE result of x - log(sum exp x)
        s = x.dtype.type(0)
        for j in range(tid, cols, nt):
            s += exp(x[r, j] - m)
        lse = log(block_sum(sh, s))
        for j in range(tid, cols, nt):
            z = (x[r, j] - m) - lse
            if want_exp:
                out[r, j] = exp(z)
            else:
                out[r, j] = z


@cuda.jit
def _softmax_backward_rows(g, s, out, log_form):
    """log_form: s = log p, out = g - p * sum(g);  else: s = p, out = p * (g - sum(g * p))."""
    sh = cuda.shared.array(MAX_THREADS, g.dtype)
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    rows, cols = g.shape
    for r in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
        acc = g.dtype.type(0)
        for j in range(tid, cols, nt):
            if log_form:
                acc += g[r, j]
            else:
                acc += g[r, j] * s[r, j]
        tot = block_sum(sh, acc)
        for j in range(tid, cols, nt):
            if log_form:
                out[r, j] = g[r, j] - exp(s[r, j]) * tot
            else:
                out[r, j] = s[r, j] * (g[r, j] - tot)


@cuda.jit(device=True)
def _nll_row(logp, target, weight, has_weight, ignore_index, r):
    """(w, loss) of row r; NaN for a target outside [0, C) (never read out of bounds)."""
    zero = logp.dtype.type(0)
    t = target[r]
    if t == ignore_index:
        return zero, zero
    if t < 0 or t >= logp.shape[1]:
        return logp.dtype.type(math.nan), logp.dtype.type(math.nan)
    w = logp.dtype.type(1)
    if has_weight:
        w = weight[t]
    return w, -(w * logp[r, t])


@cuda.jit
def _nll_rows(logp, target, weight, has_weight, ignore_index, out, coef):
    """reduction="none": independent rows, a plain grid-stride loop."""
    for r in range(cuda.grid(1), logp.shape[0], cuda.gridsize(1)):
        w, loss = _nll_row(logp, target, weight, has_weight, ignore_index, r)
        coef[r] = w
        out[r] = loss


@cuda.jit
def _nll_reduce(logp, target, weight, has_weight, ignore_index, mean, out, coef):
    """reduction="sum"/"mean": ONE block does the rows, both sums and the division."""
    sh_l = cuda.shared.array(MAX_THREADS, logp.dtype)
    sh_w = cuda.shared.array(MAX_THREADS, logp.dtype)
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    rows = logp.shape[0]
    ls = logp.dtype.type(0)
    ws = logp.dtype.type(0)
    for r in range(tid, rows, nt):
        w, loss = _nll_row(logp, target, weight, has_weight, ignore_index, r)
        coef[r] = w
        ls += loss
        ws += w
    lsum, wsum = block_sum2(sh_l, sh_w, ls, ws)
    if mean:
        # each thread rescales the rows it wrote itself: no barrier needed
        for r in range(tid, rows, nt):
            coef[r] = coef[r] / wsum
        if tid == 0:
            out[()] = lsum / wsum  # 0/0 -> nan when every target is ignored, as PyTorch
    elif tid == 0:
        out[()] = lsum


@cuda.jit
def _nll_backward_flat(grad, per_row, coef, target, ignore_index, out):
    """out[m, j] = -coef[m] * g  at j == target[m], 0 elsewhere (NaN rows for bad targets)."""
    rows, cols = out.shape
    zero = out.dtype.type(0)
    for k in range(cuda.grid(1), rows * cols, cuda.gridsize(1)):
        r = k // cols
        j = k - r * cols
        t = target[r]
        if t == ignore_index:
            out[r, j] = zero
        elif t < 0 or t >= cols:
            out[r, j] = out.dtype.type(math.nan)
        elif j == t:
            g = grad[0]
            if per_row:
                g = grad[r]
            out[r, j] = -(coef[r] * g)
        else:
            out[r, j] = zero


# ==========================================================================
# Entry points (the contract's functions)
# ==========================================================================

def _log_softmax_launch(x, want_exp):
    x = float_array(x, "x")
    out = empty(x.shape, x.dtype)
    rows, cols = x.shape
    if rows and cols:
        _log_softmax_rows[row_blocks(rows), row_threads(cols)](x, out, want_exp)
    return out


def log_softmax_forward(x):
    """``log_softmax`` along the last axis of ``x`` (M, C): one launch, three passes over each row."""
    return _log_softmax_launch(x, False)


def softmax_forward(x):
    """``softmax`` along the last axis of ``x`` (M, C): ``exp(log_softmax_forward(x))``, one launch."""
    return _log_softmax_launch(x, True)


def _backward_launch(grad, saved, saved_name, log_form):
    grad = float_array(grad, "grad")
    saved = float_array(saved, saved_name, grad.dtype)
    out = empty(grad.shape, grad.dtype)
    rows, cols = grad.shape
    if rows and cols:
        _softmax_backward_rows[row_blocks(rows), row_threads(cols)](grad, saved, out, log_form)
    return out


def log_softmax_backward(grad, logp):
    """``grad - exp(logp) * sum_j grad`` row-wise: one launch."""
    return _backward_launch(grad, logp, "logp", True)


def softmax_backward(grad, s):
    """``s * (grad - sum_j(grad * s))`` row-wise: one launch."""
    return _backward_launch(grad, s, "s", False)


def nll_loss_forward(logp, target, weight=None, ignore_index=-100, reduction="mean"):
    """(out, coef) of the NLL loss (see the contract); one launch. An ignored row is exactly 0, even at -inf."""
    logp = float_array(logp, "logp")
    rows, cols = logp.shape
    target = device(target, "target")
    has_weight = weight is not None
    weight = float_array(weight, "weight", logp.dtype) if has_weight else placeholder(logp.dtype)
    coef = empty((rows,), logp.dtype)
    ignore_index = np.int64(ignore_index)
    if reduction == "none":
        out = empty((rows,), logp.dtype)
        if rows:
            _nll_rows[grid_1d(rows)](logp, target, weight, has_weight, ignore_index, out, coef)
        return out, coef
    if rows == 0:  # nothing to launch over: sum of nothing, and 0/0 for the mean
        value = np.nan if reduction == "mean" else 0.0
        return cuda.to_device(np.array(value, dtype=logp.dtype)), coef
    out = empty((), logp.dtype)
    _nll_reduce[1, row_threads(rows)](logp, target, weight, has_weight, ignore_index, reduction == "mean", out, coef)
    return out, coef


def nll_loss_backward(grad_out, coef, target, C, ignore_index=-100, reduction="mean"):
    """Dense (M, C) gradient of the NLL loss with respect to logp (see the contract); one launch."""
    coef = float_array(coef, "coef")
    rows = coef.shape[0]
    target = device(target, "target")
    grad_out = float_array(grad_out, "grad_out", coef.dtype)
    per_row = reduction == "none"
    if not per_row:
        grad_out = grad_out.reshape((1,))
    out = empty((rows, int(C)), coef.dtype)
    if rows and C:
        _nll_backward_flat[grid_1d(rows * int(C))](grad_out, per_row, coef, target, np.int64(ignore_index), out)
    return out


def cross_entropy_forward(x, target, weight=None, ignore_index=-100, reduction="mean"):
    """(out, logp, coef): log-softmax, then the NLL loss of it; two launches."""
    logp = log_softmax_forward(x)
    out, coef = nll_loss_forward(logp, target, weight, ignore_index, reduction)
    return out, logp, coef


def cross_entropy_backward(grad_out, logp, coef, target, ignore_index=-100, reduction="mean"):
    """dL/dx = g coef (softmax(x) - onehot): the NLL gradient through log-softmax's backward; two launches."""
    dlogp = nll_loss_backward(grad_out, coef, target, logp.shape[1], ignore_index, reduction)
    return log_softmax_backward(dlogp, logp)
