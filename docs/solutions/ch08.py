"""Chapter 8 — convolution: reference solutions."""
import numpy as np


def out_size(H, K, stride=1, padding=0, dilation=1):
    """floor((H + 2P - d(K - 1) - 1) / s) + 1: the positions where the dilated kernel fits."""
    return (H + 2 * padding - dilation * (K - 1) - 1) // stride + 1


def conv2d_backward_input(gy, w, x_shape, stride, padding):
    """Scatter every forward term back: x̄_pad[n, c, i s + p, j s + q] += ū[n, o, i, j] w[o, c, p, q]."""
    N, C, H, W = x_shape
    _, _, K, _ = w.shape
    _, _, OH, OW = gy.shape
    s, P = stride, padding
    gx = np.zeros((N, C, H + 2 * P, W + 2 * P))
    for p in range(K):
        for q in range(K):
            # tap (p, q) of all outputs at once: rows p, p + s, ..., columns q, q + s, ...
            contribution = np.einsum("noij,oc->ncij", gy, w[:, :, p, q])
            gx[:, :, p:p + s * (OH - 1) + 1:s, q:q + s * (OW - 1) + 1:s] += contribution
    return gx[:, :, P:P + H, P:P + W]        # the padding's gradient is dropped; unread rows keep 0
