"""Chapter 9 — pooling: reference solutions."""
import numpy as np


def max_pool_backward(x, gy, kernel_size, stride):
    """Each output's gradient to its window's first maximum; overlapping windows add (+=)."""
    k, s = kernel_size, stride
    gx = np.zeros_like(x)
    N, C, OH, OW = gy.shape
    for n in range(N):
        for c in range(C):
            for i in range(OH):
                for j in range(OW):
                    window = x[n, c, i * s:i * s + k, j * s:j * s + k]
                    p, q = np.unravel_index(np.argmax(window), window.shape)   # argmax: the first on a tie
                    gx[n, c, i * s + p, j * s + q] += gy[n, c, i, j]
    return gx
