"""Chapter 14 — making it fast: reference solutions."""
import numpy as np


def im2col(x, kh, kw, stride=1, padding=0):
    """Row (c kh + p) kw + q, column (n OH + i) OW + j: tap (p, q) of channel c at output (i, j) of image n."""
    n, c, h, w = x.shape
    s, P = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))
    oh, ow = (h + 2 * P - kh) // s + 1, (w + 2 * P - kw) // s + 1
    cols = np.empty((c * kh * kw, n * oh * ow), dtype=x.dtype)
    for ci in range(c):
        for p in range(kh):
            for q in range(kw):
                cols[(ci * kh + p) * kw + q] = xp[:, ci, p:p + s * (oh - 1) + 1:s, q:q + s * (ow - 1) + 1:s].reshape(-1)
    return cols
