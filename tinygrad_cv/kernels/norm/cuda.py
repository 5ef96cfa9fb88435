"""Batch normalisation (training mode), CUDA twin: one launch each for statistics, forward and backward.

* **statistics** - one block per channel, two passes (the mean, then squared
  deviations from it: no cancellation as in E[x²] - E[x]²), each a
  ``block_sum``. With few channels this leaves most of a GPU idle; splitting
  a channel over blocks would need a second launch (or atomics) to combine
  the partial sums.
* **forward** - elementwise, a grid-stride loop.
* **backward** - one block per channel: it owns the channel, so the two
  per-channel sums (``block_sum2``) and the elementwise gradient that needs
  them share one launch with no grid-wide barrier.

Device arrays in (C-contiguous, one float dtype), new device arrays out.
Arguments are checked by the caller (``kernels/contract.py``).
"""
from __future__ import annotations

import numpy as np
from numba import cuda

from ..cuda_common import (MAX_THREADS, block_sum, block_sum2, empty, float_array, grid_1d, placeholder, row_blocks,
                           row_threads, sqrt)


@cuda.jit
def _bn_stats(x, count, mean, var):
    """x viewed as (N, C, S): mean[c] and the biased var[c], one block per channel."""
    sh = cuda.shared.array(MAX_THREADS, x.dtype)
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    n_img, channels, spatial = x.shape
    n = n_img * spatial
    for c in range(cuda.blockIdx.x, channels, cuda.gridDim.x):
        acc = x.dtype.type(0)
        for k in range(tid, n, nt):
            i = k // spatial
            acc += x[i, c, k - i * spatial]
        mu = block_sum(sh, acc) / count
        acc = x.dtype.type(0)
        for k in range(tid, n, nt):
            i = k // spatial
            d = x[i, c, k - i * spatial] - mu
            acc += d * d
        v = block_sum(sh, acc) / count
        if tid == 0:
            mean[c] = mu
            var[c] = v


@cuda.jit
def _bn_forward_flat(x, mean, var, weight, bias, has_w, has_b, eps, channels, spatial, y, xhat, inv_std):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over flat x; inv_std[c] written too."""
    one = x.dtype.type(1)
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for c in range(start, channels, stride):
        inv_std[c] = one / sqrt(var[c] + eps)
    for k in range(start, x.shape[0], stride):
        c = (k // spatial) % channels
        # recomputed per element rather than read from inv_std: that would need a
        # second launch (or a grid-wide barrier) after the loop above
        inv = one / sqrt(var[c] + eps)
        xh = (x[k] - mean[c]) * inv
        xhat[k] = xh
        v = xh
        if has_w:
            v = v * weight[c]
        if has_b:
            v = v + bias[c]
        y[k] = v


@cuda.jit
def _bn_backward(g, xhat, inv_std, weight, has_w, need_x, need_w, need_b, n_f, gx, gweight, gbias):
    """The closed-form gradients, one block per channel (views are (N, C, S))."""
    sh_a = cuda.shared.array(MAX_THREADS, g.dtype)
    sh_b = cuda.shared.array(MAX_THREADS, g.dtype)
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    n_img, channels, spatial = g.shape
    n = n_img * spatial
    for c in range(cuda.blockIdx.x, channels, cuda.gridDim.x):
        a = g.dtype.type(0)
        b = g.dtype.type(0)
        for k in range(tid, n, nt):
            i = k // spatial
            s = k - i * spatial
            gv = g[i, c, s]
            a += gv
            b += gv * xhat[i, c, s]
        sum_g, sum_gx = block_sum2(sh_a, sh_b, a, b)
        if tid == 0:
            if need_w:
                gweight[c] = sum_gx
            if need_b:
                gbias[c] = sum_g
        if need_x:
            w = g.dtype.type(1)
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


def _nc_s(x, name):
    """``x`` (N, C, *spatial) as a device array and its (N, C, S) view (S = prod(spatial))."""
    x = float_array(x, name)
    n, c = x.shape[0], x.shape[1]
    s = int(np.prod(x.shape[2:], dtype=np.int64))
    return x, x.reshape((n, c, s))


def _per_channel(a, name, c, dtype):
    """A per-channel vector, (C,) or the broadcastable (1, C, 1, ...), as (C,)."""
    return float_array(a, name, dtype).reshape((c,))


def batch_norm_stats(x):
    """(mean, var), each (C,): one launch, one block per channel."""
    x, x3 = _nc_s(x, "x")
    n, c, s = x3.shape
    mean = empty((c,), x.dtype)
    var = empty((c,), x.dtype)
    if c:
        _bn_stats[row_blocks(c), row_threads(n * s)](x3, x.dtype.type(n * s), mean, var)
    return mean, var


def batch_norm_forward(x, mean, var, weight=None, bias=None, eps=1e-5):
    """(y, xhat, inv_std (C,)) for given statistics: one elementwise launch."""
    x, x3 = _nc_s(x, "x")
    n, c, s = x3.shape
    mean = _per_channel(mean, "mean", c, x.dtype)
    var = _per_channel(var, "var", c, x.dtype)
    has_w, has_b = weight is not None, bias is not None
    weight = _per_channel(weight, "weight", c, x.dtype) if has_w else placeholder(x.dtype)
    bias = _per_channel(bias, "bias", c, x.dtype) if has_b else placeholder(x.dtype)
    y = empty(x.shape, x.dtype)
    xhat = empty(x.shape, x.dtype)
    inv_std = empty((c,), x.dtype)
    total = x.size
    if c:
        _bn_forward_flat[grid_1d(max(total, c))](
            x.reshape(total), mean, var, weight, bias, has_w, has_b, x.dtype.type(eps), c, max(s, 1),
            y.reshape(total), xhat.reshape(total), inv_std,
        )
    return y, xhat, inv_std


def batch_norm_backward(grad, xhat, inv_std, weight=None, need_x=True, need_w=True, need_b=True):
    """(gx, gweight, gbias), each None unless asked for: one launch, one block per channel."""
    grad, g3 = _nc_s(grad, "grad")
    xhat = float_array(xhat, "xhat", grad.dtype)
    n, c, s = g3.shape
    inv_std = _per_channel(inv_std, "inv_std", c, grad.dtype)
    has_w = weight is not None
    weight = _per_channel(weight, "weight", c, grad.dtype) if has_w else placeholder(grad.dtype)
    gx = empty(grad.shape, grad.dtype) if need_x else None
    gweight = empty((c,), grad.dtype) if need_w else None
    gbias = empty((c,), grad.dtype) if need_b else None
    if c and (need_x or need_w or need_b):
        ph = placeholder(grad.dtype)
        _bn_backward[row_blocks(c), row_threads(n * s)](
            g3, xhat.reshape((n, c, s)), inv_std, weight, has_w, bool(need_x), bool(need_w), bool(need_b),
            grad.dtype.type(n * s),
            gx.reshape((n, c, s)) if need_x else placeholder(grad.dtype, 3),
            gweight if need_w else ph, gbias if need_b else ph,
        )
    return gx, gweight, gbias
