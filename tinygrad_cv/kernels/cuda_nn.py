r"""Fused CUDA kernels for the training step: softmax, NLL loss, dropout, batch norm.

Written with elementary operations, ``log_softmax(x)`` is a max, a subtract,
an exp, a sum, a log and a second subtract: six launches and six trips
through global memory, with four temporaries the size of ``x``. Each function
here is **one** launch that reads its inputs once per pass it needs and writes
only its results, keeping the partial results (a row's max and sum, a
channel's mean) in registers and shared memory. Kernels are memory bound, so
fewer passes over memory is what makes them fast.

Layout of the kernels:

* *row-wise* (softmax, its backward, batch-norm statistics and backward): one
  block per row (or per channel); the block's threads stride over the row, so
  rows of any length work, and combine their partial results with a
  shared-memory tree reduction. Blocks stride over the rows, so the grid stays
  bounded however many rows there are.
* *elementwise* (NLL backward, dropout, batch-norm forward): a grid-stride
  loop over the flattened output (:mod:`tinygrad_cv.cuda.launch`).

Every function takes numba CUDA device arrays (C-contiguous, float32 or
float64; class targets int64), returns new device arrays and never copies
anything to the host. Scalars reach the kernels typed as the array dtype
(``dtype.type(v)``): a bare Python float would turn float32 arithmetic into
float64 arithmetic on the device.
"""
from __future__ import annotations

import functools
import math
import numbers
from types import SimpleNamespace

import numba
import numpy as np
from numba import cuda, uint64
from numba.cuda.random import (
    init_xoroshiro128p_state,
    xoroshiro128p_dtype,
    xoroshiro128p_uniform_float64,
)

from ..cuda import is_simulator
from ..cuda.launch import MAX_BLOCKS, grid_1d

__all__ = [
    "log_softmax_forward",
    "softmax_forward",
    "softmax_backward",
    "log_softmax_backward",
    "nll_loss_forward",
    "nll_loss_backward",
    "dropout_mask",
    "batch_norm_stats",
    "batch_norm_forward",
    "batch_norm_backward",
]

#: largest block a row-wise kernel uses; the shared-memory scratch is sized for it
_MAX_THREADS = 256
#: most blocks a row-wise launch uses; blocks stride over the remaining rows (tests lower it)
_MAX_ROW_BLOCKS = MAX_BLOCKS

# Under the simulator the kernels run as Python, where math.exp overflows with
# an exception and math.log(0) raises, while the GPU returns inf / -inf; NumPy's
# versions follow IEEE like the GPU (and keep float32 scalars float32).
if is_simulator():
    _exp, _log, _sqrt = np.exp, np.log, np.sqrt
else:
    _exp, _log, _sqrt = math.exp, math.log, math.sqrt


# --------------------------------------------------------------------------------------------
# launch helpers and argument checks (shared with cuda_optim)
# --------------------------------------------------------------------------------------------
def _row_threads(n: int) -> int:
    """Threads per block for a row of ``n`` values: a power of two (the tree reduction halves it).

    32 under the simulator (every thread is a Python thread); on a GPU the
    smallest power of two covering the row, between 32 (one warp) and 256.
    """
    if is_simulator():
        return 32
    t = 32
    while t < n and t < _MAX_THREADS:
        t *= 2
    return t


def _row_blocks(rows: int) -> int:
    return max(1, min(rows, _MAX_ROW_BLOCKS))


def _device(x, name: str):
    """``x`` as a numba device array, or TypeError (host arrays are refused: no hidden copies)."""
    if cuda.devicearray.is_cuda_ndarray(x):
        return x
    is_cai = getattr(cuda, "is_cuda_array", None)  # other libraries' GPU arrays, zero-copy
    if is_cai is not None and is_cai(x):
        return cuda.as_cuda_array(x)
    raise TypeError(
        f"{name} must be a CUDA device array (numba.cuda.to_device / device_array), got {type(x).__name__}"
    )


def _float_array(x, name: str, dtype=None):
    """Check ``x`` is a C-contiguous float32/float64 device array (of ``dtype`` when given)."""
    x = _device(x, name)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got {x.dtype}")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{name} has dtype {x.dtype}, expected {np.dtype(dtype)} (the dtype of the other inputs)")
    if not x.is_c_contiguous():
        raise ValueError(f"{name} must be C-contiguous, got shape {x.shape} with strides {x.strides}")
    return x


def _same_shape(x, name: str, shape) -> None:
    if tuple(x.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(x.shape)}, expected {tuple(shape)}")


@functools.lru_cache(maxsize=None)
def _placeholder(dtype, ndim=1):
    """A 1-element device array passed where an optional array is None; the kernel never touches it.

    Cached, so an absent argument costs no allocation (one per dtype and rank, ever).
    """
    return cuda.device_array((1,) * ndim, dtype=np.dtype(dtype))


def _empty(shape, dtype):
    return cuda.device_array(tuple(int(s) for s in shape), dtype=dtype)


# --------------------------------------------------------------------------------------------
# block reductions (device functions, any dtype)
# --------------------------------------------------------------------------------------------
@cuda.jit(device=True)
def _block_sum(sh, v):
    """Sum of ``v`` over the block's threads (blockDim.x a power of two); every thread gets it."""
    tid = cuda.threadIdx.x
    sh[tid] = v
    cuda.syncthreads()
    s = cuda.blockDim.x // 2
    while s > 0:
        if tid < s:
            sh[tid] += sh[tid + s]
        cuda.syncthreads()
        s //= 2
    total = sh[0]
    cuda.syncthreads()  # everyone has read sh[0] before the next reduction overwrites it
    return total


@cuda.jit(device=True)
def _block_sum2(sh_a, sh_b, a, b):
    """Two block sums in one tree (half the barriers of two calls)."""
    tid = cuda.threadIdx.x
    sh_a[tid] = a
    sh_b[tid] = b
    cuda.syncthreads()
    s = cuda.blockDim.x // 2
    while s > 0:
        if tid < s:
            sh_a[tid] += sh_a[tid + s]
            sh_b[tid] += sh_b[tid + s]
        cuda.syncthreads()
        s //= 2
    ta = sh_a[0]
    tb = sh_b[0]
    cuda.syncthreads()
    return ta, tb


@cuda.jit(device=True)
def _block_max(sh, v):
    """Max of ``v`` over the block, NaN-propagating like ``np.max``."""
    tid = cuda.threadIdx.x
    sh[tid] = v
    cuda.syncthreads()
    s = cuda.blockDim.x // 2
    while s > 0:
        if tid < s:
            o = sh[tid + s]
            if o > sh[tid] or o != o:
                sh[tid] = o
        cuda.syncthreads()
        s //= 2
    m = sh[0]
    cuda.syncthreads()
    return m


# --------------------------------------------------------------------------------------------
# kernels (built once per dtype: shared-memory arrays need their dtype at compile time)
# --------------------------------------------------------------------------------------------
def _build(nbt):
    @cuda.jit
    def log_softmax_rows(x, out, want_exp):
        # out = x - m - log(sum exp(x - m)), or its exp; m = row max, 0 if not finite
        sh = cuda.shared.array(_MAX_THREADS, nbt)
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        rows, cols = x.shape
        for r in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
            m = x[r, 0]  # any element of the row is a valid start for the max
            for j in range(tid, cols, nt):
                v = x[r, j]
                if v > m or v != v:
                    m = v
            m = _block_max(sh, m)
            if math.isinf(m) or math.isnan(m):
                m = nbt(0)  # as ops/softmax.py: inf/nan rows give the IEEE result of x - log(sum exp x)
            s = nbt(0)
            for j in range(tid, cols, nt):
                s += _exp(x[r, j] - m)
            lse = _log(_block_sum(sh, s))
            for j in range(tid, cols, nt):
                z = (x[r, j] - m) - lse
                if want_exp:
                    out[r, j] = _exp(z)
                else:
                    out[r, j] = z

    @cuda.jit
    def softmax_backward_rows(g, s, out, log_form):
        # log_form: s = log p, out = g - p * sum(g);  else: s = p, out = p * (g - sum(g * p))
        sh = cuda.shared.array(_MAX_THREADS, nbt)
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        rows, cols = g.shape
        for r in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
            acc = nbt(0)
            for j in range(tid, cols, nt):
                if log_form:
                    acc += g[r, j]
                else:
                    acc += g[r, j] * s[r, j]
            tot = _block_sum(sh, acc)
            for j in range(tid, cols, nt):
                if log_form:
                    out[r, j] = g[r, j] - _exp(s[r, j]) * tot
                else:
                    out[r, j] = s[r, j] * (g[r, j] - tot)

    @cuda.jit(device=True)
    def nll_row(logp, target, weight, has_weight, ignore_index, r):
        """(w, loss) of row r; NaN for a target outside [0, C) (never read out of bounds)."""
        t = target[r]
        if t == ignore_index:
            return nbt(0), nbt(0)
        if t < 0 or t >= logp.shape[1]:
            return nbt(math.nan), nbt(math.nan)
        w = nbt(1)
        if has_weight:
            w = weight[t]
        return w, -(w * logp[r, t])

    @cuda.jit
    def nll_rows(logp, target, weight, has_weight, ignore_index, out, coef):
        # reduction="none": independent rows, a plain grid-stride loop
        for r in range(cuda.grid(1), logp.shape[0], cuda.gridsize(1)):
            w, loss = nll_row(logp, target, weight, has_weight, ignore_index, r)
            coef[r] = w
            out[r] = loss

    @cuda.jit
    def nll_reduce(logp, target, weight, has_weight, ignore_index, mean, out, coef):
        # reduction="sum"/"mean": ONE block does the rows, both sums and the division, so
        # the loss, its denominator and the gradient coefficients come out of one launch
        sh_l = cuda.shared.array(_MAX_THREADS, nbt)
        sh_w = cuda.shared.array(_MAX_THREADS, nbt)
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        rows = logp.shape[0]
        ls = nbt(0)
        ws = nbt(0)
        for r in range(tid, rows, nt):
            w, loss = nll_row(logp, target, weight, has_weight, ignore_index, r)
            coef[r] = w
            ls += loss
            ws += w
        lsum, wsum = _block_sum2(sh_l, sh_w, ls, ws)
        if mean:
            # each thread rescales the rows it wrote itself: no barrier needed
            for r in range(tid, rows, nt):
                coef[r] = coef[r] / wsum
            if tid == 0:
                out[()] = lsum / wsum  # 0/0 -> nan when every target is ignored, as PyTorch
        elif tid == 0:
            out[()] = lsum

    @cuda.jit
    def nll_backward_flat(grad, per_row, coef, target, ignore_index, out):
        # out[m, j] = -coef[m] * g  at j == target[m], 0 elsewhere (NaN rows for bad targets)
        rows, cols = out.shape
        for k in range(cuda.grid(1), rows * cols, cuda.gridsize(1)):
            r = k // cols
            j = k - r * cols
            t = target[r]
            if t == ignore_index:
                out[r, j] = nbt(0)
            elif t < 0 or t >= cols:
                out[r, j] = nbt(math.nan)
            elif j == t:
                g = grad[0]
                if per_row:
                    g = grad[r]
                out[r, j] = -(coef[r] * g)
            else:
                out[r, j] = nbt(0)

    @cuda.jit
    def bn_stats(x, count, mean, var):
        # x viewed as (N, C, S); one block per channel, two passes (mean, then squared
        # deviations from it): no cancellation as in E[x^2] - E[x]^2. With few channels
        # this leaves most of a GPU idle; splitting a channel over blocks would need a
        # second launch (or atomics) to combine the partial sums.
        sh = cuda.shared.array(_MAX_THREADS, nbt)
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        n_img, channels, spatial = x.shape
        n = n_img * spatial
        for c in range(cuda.blockIdx.x, channels, cuda.gridDim.x):
            acc = nbt(0)
            for k in range(tid, n, nt):
                i = k // spatial
                acc += x[i, c, k - i * spatial]
            mu = _block_sum(sh, acc) / count
            acc = nbt(0)
            for k in range(tid, n, nt):
                i = k // spatial
                d = x[i, c, k - i * spatial] - mu
                acc += d * d
            v = _block_sum(sh, acc) / count
            if tid == 0:
                mean[c] = mu
                var[c] = v

    @cuda.jit
    def bn_forward_flat(x, mean, var, weight, bias, has_w, has_b, eps, channels, spatial, y, xhat, inv_std):
        start = cuda.grid(1)
        stride = cuda.gridsize(1)
        for c in range(start, channels, stride):
            inv_std[c] = nbt(1) / _sqrt(var[c] + eps)
        for k in range(start, x.shape[0], stride):
            c = (k // spatial) % channels
            # recomputed per element rather than read from inv_std: that would need a
            # second launch (or a grid-wide barrier) after the loop above
            inv = nbt(1) / _sqrt(var[c] + eps)
            xh = (x[k] - mean[c]) * inv
            xhat[k] = xh
            v = xh
            if has_w:
                v = v * weight[c]
            if has_b:
                v = v + bias[c]
            y[k] = v

    @cuda.jit
    def bn_backward(g, xhat, inv_std, weight, has_w, need_x, need_w, need_b, n_f, gx, gweight, gbias):
        # one block per channel: it owns the channel, so the per-channel sums and the
        # elementwise gradient that needs them share one launch with no grid-wide sync
        sh_a = cuda.shared.array(_MAX_THREADS, nbt)
        sh_b = cuda.shared.array(_MAX_THREADS, nbt)
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        n_img, channels, spatial = g.shape
        n = n_img * spatial
        for c in range(cuda.blockIdx.x, channels, cuda.gridDim.x):
            a = nbt(0)
            b = nbt(0)
            for k in range(tid, n, nt):
                i = k // spatial
                s = k - i * spatial
                gv = g[i, c, s]
                a += gv
                b += gv * xhat[i, c, s]
            sum_g, sum_gx = _block_sum2(sh_a, sh_b, a, b)
            if tid == 0:
                if need_w:
                    gweight[c] = sum_gx
                if need_b:
                    gbias[c] = sum_g
            if need_x:
                w = nbt(1)
                if has_w:
                    w = weight[c]
                # weight is constant over the channel: sum(g*w) = w*sum(g), sum(g*w*xhat) = w*sum(g*xhat)
                sum_gw = w * sum_g
                sum_gw_xhat = w * sum_gx
                scale = inv_std[c] / n_f
                for k in range(tid, n, nt):
                    i = k // spatial
                    s = k - i * spatial
                    gw = g[i, c, s] * w
                    gx[i, c, s] = (gw * n_f - sum_gw - xhat[i, c, s] * sum_gw_xhat) * scale

    return SimpleNamespace(
        log_softmax_rows=log_softmax_rows,
        softmax_backward_rows=softmax_backward_rows,
        nll_rows=nll_rows,
        nll_reduce=nll_reduce,
        nll_backward_flat=nll_backward_flat,
        bn_stats=bn_stats,
        bn_forward_flat=bn_forward_flat,
        bn_backward=bn_backward,
    )


@functools.lru_cache(maxsize=None)
def _kernels(dtype):
    return _build(numba.from_dtype(np.dtype(dtype)))


# --------------------------------------------------------------------------------------------
# softmax / log-softmax
# --------------------------------------------------------------------------------------------
def _rows(x, name):
    x = _float_array(x, name)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (M, C) with the softmax axis last, got shape {tuple(x.shape)}")
    return x


def _log_softmax_launch(x, want_exp):
    x = _rows(x, "x")
    out = _empty(x.shape, x.dtype)
    rows, cols = x.shape
    if rows and cols:
        _kernels(x.dtype).log_softmax_rows[_row_blocks(rows), _row_threads(cols)](x, out, want_exp)
    return out


def log_softmax_forward(x):
    r"""``log_softmax`` along the last axis of ``x`` (M, C) -> new (M, C) array.

        out[m, j] = (x[m, j] - mx) - log sum_k exp(x[m, k] - mx),   mx = max_k x[m, k]

    Subtracting the row max keeps every exponent <= 0 (no overflow). A row whose
    max is +-inf or nan uses mx = 0 instead, exactly as ``ops.softmax._log_softmax``.
    One launch, three passes over each row (max, sum, write).
    """
    return _log_softmax_launch(x, False)


def softmax_forward(x):
    r"""``softmax`` along the last axis of ``x`` (M, C): ``exp(log_softmax_forward(x))``, one launch."""
    return _log_softmax_launch(x, True)


def _backward_pair(grad, saved, saved_name):
    grad = _rows(grad, "grad")
    saved = _float_array(saved, saved_name, grad.dtype)
    _same_shape(saved, saved_name, grad.shape)
    return grad, saved


def softmax_backward(grad, s):
    r"""Gradient of softmax: ``grad * s - s * sum_j(grad * s)`` row-wise, i.e. ``s * (grad - sum(grad * s))``.

    ``grad`` and ``s`` (the forward output) are (M, C); returns a new (M, C) array.
    """
    grad, s = _backward_pair(grad, s, "s")
    out = _empty(grad.shape, grad.dtype)
    rows, cols = grad.shape
    if rows and cols:
        _kernels(grad.dtype).softmax_backward_rows[_row_blocks(rows), _row_threads(cols)](grad, s, out, False)
    return out


def log_softmax_backward(grad, logp):
    r"""Gradient of log-softmax: ``grad - exp(logp) * sum_j grad`` row-wise.

    ``grad`` and ``logp`` (the forward output) are (M, C); returns a new (M, C) array.
    """
    grad, logp = _backward_pair(grad, logp, "logp")
    out = _empty(grad.shape, grad.dtype)
    rows, cols = grad.shape
    if rows and cols:
        _kernels(grad.dtype).softmax_backward_rows[_row_blocks(rows), _row_threads(cols)](grad, logp, out, True)
    return out


# --------------------------------------------------------------------------------------------
# negative log-likelihood
# --------------------------------------------------------------------------------------------
_REDUCTIONS = ("none", "mean", "sum")


def _check_target(target, rows):
    target = _device(target, "target")
    if target.dtype != np.int64:
        raise TypeError(f"target must be int64 class indices, got {target.dtype}")
    if target.ndim != 1 or target.shape[0] != rows:
        raise ValueError(f"target must have shape ({rows},) to match logp's rows, got {tuple(target.shape)}")
    return target


def _check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def nll_loss_forward(logp, target, weight=None, ignore_index=-100, reduction="mean"):
    r"""Negative log-likelihood of log-probabilities ``logp`` (M, C) at class indices ``target`` (M,) int64.

        w_m    = weight[t_m] (1 without weight), 0 where t_m == ignore_index
        loss_m = -w_m * logp[m, t_m]                 (0 where t_m == ignore_index)

    Returns ``(out, coef)``:

    * ``out``: for ``reduction="none"`` the (M,) losses; for ``"sum"`` / ``"mean"``
      a **0-d** device array (shape ``()``) holding sum_m loss_m, or that sum
      divided by sum_m w_m (0/0 -> nan when every target is ignored, as PyTorch);
    * ``coef`` (M,): d loss / d logp[m, t_m] = -coef[m] * upstream, i.e.
      ``coef = w / sum(w)`` for ``"mean"`` and ``coef = w`` otherwise (0 on ignored rows).

    ``weight`` is None or (C,) of logp's dtype. Targets are **not** validated here
    (that would need a copy to the host): the caller checks them. The kernel still
    never reads outside ``logp``/``weight``: a target outside [0, C) that is not
    ``ignore_index`` makes its loss and coefficient NaN (so a sum or mean is NaN too).
    An ignored row contributes exactly 0, even where ``logp`` is -inf there.
    One launch: for sum/mean a single block computes the rows, both sums and the division.
    """
    _check_reduction(reduction)
    logp = _rows(logp, "logp")
    rows, cols = logp.shape
    target = _check_target(target, rows)
    has_weight = weight is not None
    if has_weight:
        weight = _float_array(weight, "weight", logp.dtype)
        _same_shape(weight, "weight", (cols,))
    else:
        weight = _placeholder(logp.dtype)
    k = _kernels(logp.dtype)
    coef = _empty((rows,), logp.dtype)
    ignore_index = np.int64(ignore_index)
    if reduction == "none":
        out = _empty((rows,), logp.dtype)
        if rows:
            k.nll_rows[grid_1d(rows)](logp, target, weight, has_weight, ignore_index, out, coef)
        return out, coef
    if rows == 0:  # nothing to launch over: sum of nothing, and 0/0 for the mean
        value = np.nan if reduction == "mean" else 0.0
        return cuda.to_device(np.array(value, dtype=logp.dtype)), coef
    out = _empty((), logp.dtype)
    k.nll_reduce[1, _row_threads(rows)](logp, target, weight, has_weight, ignore_index, reduction == "mean", out, coef)
    return out, coef


def nll_loss_backward(grad_out, coef, target, C, ignore_index=-100, reduction="mean"):
    r"""Dense gradient of the NLL loss with respect to ``logp``: a new (M, C) array.

        grad[m, j] = -coef[m] * g_m   at j == target[m],   0 elsewhere

    with ``coef`` (M,) from :func:`nll_loss_forward` and ``g_m = grad_out`` for
    ``"mean"``/``"sum"`` (a one-element device array: shape ``()`` or ``(1,)``) or
    ``grad_out[m]`` for ``"none"`` (shape (M,)). Rows whose target is ``ignore_index``
    are 0; rows whose target is outside [0, C) are NaN (see :func:`nll_loss_forward`).
    """
    _check_reduction(reduction)
    coef = _float_array(coef, "coef")
    if coef.ndim != 1:
        raise ValueError(f"coef must have shape (M,), got {tuple(coef.shape)}")
    rows = coef.shape[0]
    target = _check_target(target, rows)
    if not isinstance(C, numbers.Integral) or C < 0:
        raise ValueError(f"C (the number of classes) must be a non-negative int, got {C!r}")
    grad_out = _float_array(grad_out, "grad_out", coef.dtype)
    per_row = reduction == "none"
    if per_row:
        _same_shape(grad_out, "grad_out", (rows,))
    else:
        if grad_out.size != 1 or grad_out.ndim > 1:
            raise ValueError(
                f"grad_out must be a one-element array of shape () or (1,) for reduction={reduction!r}, "
                f"got shape {tuple(grad_out.shape)}"
            )
        grad_out = grad_out.reshape((1,))
    out = _empty((rows, int(C)), coef.dtype)
    if rows and C:
        _kernels(coef.dtype).nll_backward_flat[grid_1d(rows * int(C))](
            grad_out, per_row, coef, target, np.int64(ignore_index), out
        )
    return out


# --------------------------------------------------------------------------------------------
# dropout
# --------------------------------------------------------------------------------------------
_MASK64 = (1 << 64) - 1
# RNG states, one per thread of the largest grid launched so far; reused by every call
_rng_cache: dict = {"states": None}


def _splitmix64(z: int) -> int:
    """One SplitMix64 output for ``z``: spreads nearby seeds (1, 2, 3...) over the 64-bit space."""
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _rng_states(n: int):
    if is_simulator() and not _rng_cache.get("warm"):
        # The simulator compiles numba.cuda.random's helpers (CPU object mode) on first use.
        # Doing it once here, on one thread, is ~5x faster than letting a block's 32
        # simulated threads all hit the compiler at the same time in the first launch.
        warm = cuda.device_array(1, dtype=xoroshiro128p_dtype)
        init_xoroshiro128p_state(warm, 0, np.uint64(0))
        xoroshiro128p_uniform_float64(warm, 0)
        _rng_cache["warm"] = True
    states = _rng_cache["states"]
    if states is None or states.shape[0] < n:
        states = _rng_cache["states"] = cuda.device_array(n, dtype=xoroshiro128p_dtype)
    return states


@cuda.jit
def _dropout_kernel(states, key, p, scale, out):
    i = cuda.grid(1)
    # reseed this thread's xoroshiro128+ state on the device (SplitMix64 of key ^ i, inside
    # init_xoroshiro128p_state): no host-side state setup and no host->device copy per call
    init_xoroshiro128p_state(states, i, key ^ uint64(i))
    for k in range(i, out.shape[0], cuda.gridsize(1)):
        # float64 uniforms for either dtype: P(u >= p) = 1 - p to 2**-53, like F.dropout
        if xoroshiro128p_uniform_float64(states, i) >= p:
            out[k] = scale
        else:
            out[k] = 0


def dropout_mask(shape, p, dtype, seed):
    r"""Inverted-dropout mask made on the device: a new array of ``shape`` and ``dtype``.

        mask = 1/(1 - p)  with probability 1 - p  (kept),   0  otherwise

    so ``x * mask`` is dropout with E[x * mask] = x (``p == 1`` gives all zeros).
    Uniforms come from ``numba.cuda.random``'s xoroshiro128+ generators, one per
    thread of a grid-stride launch. Choice: the generator states live in a
    module-level cache sized for the largest launch grid so far, and every call
    **reseeds** them on the device from ``seed`` (an int; thread i starts from
    SplitMix64(SplitMix64(seed) ^ i)) instead of advancing them. So the mask is a
    pure function of (seed, shape, launch grid): the same seed gives the same
    mask for the same shape on the same kind of device (the grid differs between
    the simulator and a GPU), and the caller draws a fresh seed per step (e.g.
    from ``tinygrad_cv.random``'s generator, which ``manual_seed`` controls).
    """
    if isinstance(shape, numbers.Integral):
        shape = (int(shape),)
    shape = tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ValueError(f"shape must be non-negative, got {shape}")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    out = cuda.device_array(shape, dtype=dtype)
    n = out.size
    if n == 0:
        return out
    blocks, threads = grid_1d(n)
    states = _rng_states(blocks * threads)
    scale = dtype.type(0.0 if p == 1.0 else 1.0 / (1.0 - p))
    key = np.uint64(_splitmix64(int(seed) & _MASK64))
    _dropout_kernel[blocks, threads](states, key, np.float64(p), scale, out.reshape(n))
    return out


# --------------------------------------------------------------------------------------------
# batch normalisation (training mode, batch statistics)
# --------------------------------------------------------------------------------------------
def _nc_s(x, name):
    """Check ``x`` is (N, C, *spatial) and return its (N, C, S) view (S = prod(spatial))."""
    x = _float_array(x, name)
    if x.ndim < 2:
        raise ValueError(f"{name} must have shape (N, C, *spatial), got {tuple(x.shape)}")
    n, c = x.shape[0], x.shape[1]
    s = int(np.prod(x.shape[2:], dtype=np.int64))
    return x, x.reshape((n, c, s))


def _per_channel(a, name, c, dtype):
    """A per-channel vector: (C,) or the broadcastable (1, C, 1, ...); returned as (C,)."""
    a = _float_array(a, name, dtype)
    if tuple(a.shape) != (c,) and not (a.ndim >= 2 and a.shape[1] == c and a.size == c):
        raise ValueError(f"{name} must have shape ({c},) (or (1, {c}, 1, ...)), got {tuple(a.shape)}")
    return a.reshape((c,))


def batch_norm_stats(x):
    r"""Per-channel batch mean and biased variance of ``x`` (N, C, *spatial).

        mean[c] = 1/n sum x[:, c],   var[c] = 1/n sum (x[:, c] - mean[c])**2,   n = N * prod(spatial)

    Returns ``(mean, var)``, two new (C,) arrays. One launch, one block per
    channel, two passes (the mean first, then squared deviations from it).
    """
    x, x3 = _nc_s(x, "x")
    n, c, s = x3.shape
    if n * s == 0 and c:
        raise ValueError(f"batch_norm_stats: no values per channel in x of shape {tuple(x.shape)}")
    mean = _empty((c,), x.dtype)
    var = _empty((c,), x.dtype)
    if c:
        _kernels(x.dtype).bn_stats[_row_blocks(c), _row_threads(n * s)](x3, x.dtype.type(n * s), mean, var)
    return mean, var


def batch_norm_forward(x, mean, var, weight=None, bias=None, eps=1e-5):
    r"""Batch-norm forward with given statistics, as ``ops.nn.BatchNormTrain.forward``.

        inv_std = 1 / sqrt(var + eps)              (C,)
        xhat    = (x - mean) * inv_std             (N, C, *spatial)
        y       = xhat * weight + bias             (weight / bias may be None)

    ``mean``/``var`` are (C,) (or (1, C, 1, ...)), ``weight``/``bias`` (C,), all of
    ``x``'s dtype. Returns ``(y, xhat, inv_std)`` as new arrays; ``xhat`` and
    ``inv_std`` are what :func:`batch_norm_backward` needs. One elementwise launch.
    """
    x, x3 = _nc_s(x, "x")
    n, c, s = x3.shape
    mean = _per_channel(mean, "mean", c, x.dtype)
    var = _per_channel(var, "var", c, x.dtype)
    has_w, has_b = weight is not None, bias is not None
    weight = _per_channel(weight, "weight", c, x.dtype) if has_w else _placeholder(x.dtype)
    bias = _per_channel(bias, "bias", c, x.dtype) if has_b else _placeholder(x.dtype)
    y = _empty(x.shape, x.dtype)
    xhat = _empty(x.shape, x.dtype)
    inv_std = _empty((c,), x.dtype)
    total = x.size
    if c:
        _kernels(x.dtype).bn_forward_flat[grid_1d(max(total, c))](
            x.reshape(total), mean, var, weight, bias, has_w, has_b, x.dtype.type(eps), c, max(s, 1),
            y.reshape(total), xhat.reshape(total), inv_std,
        )
    return y, xhat, inv_std


def batch_norm_backward(grad, xhat, inv_std, weight=None, need_x=True, need_w=True, need_b=True):
    r"""Closed-form batch-norm gradients (``ops.nn`` docstring), n = N * prod(spatial):

        gw         = grad * weight            (weight = 1 when None)
        dL/dx      = inv_std / n * (n gw - sum(gw) - xhat * sum(gw xhat))
        dL/dweight = sum(grad * xhat)          dL/dbias = sum(grad)

    (sums per channel over every axis but 1). ``grad``/``xhat`` are (N, C, *spatial),
    ``inv_std``/``weight`` (C,). Returns ``(gx, gweight, gbias)``, new arrays, each
    None unless asked for with ``need_x`` / ``need_w`` / ``need_b``. One launch,
    one block per channel: two sums, then the elementwise gradient.
    """
    grad, g3 = _nc_s(grad, "grad")
    xhat = _float_array(xhat, "xhat", grad.dtype)
    _same_shape(xhat, "xhat", grad.shape)
    n, c, s = g3.shape
    inv_std = _per_channel(inv_std, "inv_std", c, grad.dtype)
    has_w = weight is not None
    weight = _per_channel(weight, "weight", c, grad.dtype) if has_w else _placeholder(grad.dtype)
    gx = _empty(grad.shape, grad.dtype) if need_x else None
    gweight = _empty((c,), grad.dtype) if need_w else None
    gbias = _empty((c,), grad.dtype) if need_b else None
    if c and (need_x or need_w or need_b):
        ph = _placeholder(grad.dtype)
        _kernels(grad.dtype).bn_backward[_row_blocks(c), _row_threads(n * s)](
            g3, xhat.reshape((n, c, s)), inv_std, weight, has_w, bool(need_x), bool(need_w), bool(need_b),
            grad.dtype.type(n * s),
            gx.reshape((n, c, s)) if need_x else _placeholder(grad.dtype, 3),
            gweight if need_w else ph, gbias if need_b else ph,
        )
    return gx, gweight, gbias
