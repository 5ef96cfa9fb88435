"""Matrix products, reference twin: the sums written out.

``matmul`` is the triple loop's formula with NumPy doing only the innermost
sum (one dot product per output element); ``linear_*`` is the fully
connected layer y = x Wᵀ + b and its three gradients written with it.
Arguments are checked by the caller (``kernels/contract.py``).
"""
from __future__ import annotations

import numpy as np

from ..host import float_array as _float_array


def matmul(a, b):
    """c[i, j] = sum_k a[i, k] * b[k, j] for a (M, K), b (K, N)."""
    a = _float_array(a, "a")
    b = _float_array(b, "b", a.dtype)
    M, N = a.shape[0], b.shape[1]
    c = np.empty((M, N), dtype=a.dtype)
    for i in range(M):
        for j in range(N):
            c[i, j] = np.dot(a[i, :], b[:, j])  # the sum over k
    return c


def linear_forward(x, w, b):
    """y[m, n] = sum_k x[m, k] * w[n, k] + b[n]: x (M, K), w (N, K), b (N,) or None -> y (M, N)."""
    y = matmul(x, np.transpose(w))
    return y if b is None else y + np.asarray(b, dtype=y.dtype)


def linear_backward(grad, x, w, need_input=True, need_weight=True, need_bias=True):
    """The three gradients of y = x Wᵀ + b for g = dL/dy (M, N), each None unless asked for.

        dL/dx = g W   (M, K)        dL/dW = gᵀ x   (N, K)        dL/db[n] = sum_m g[m, n]   (N,)
    """
    gx = matmul(grad, w) if need_input else None
    gw = matmul(np.transpose(grad), x) if need_weight else None
    gb = _float_array(grad, "grad").sum(axis=0) if need_bias else None
    return gx, gw, gb
