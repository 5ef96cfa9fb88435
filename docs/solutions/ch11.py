"""Chapter 11 — optimisers: reference solutions."""
import numpy as np


def momentum_step(theta, g, buf, lr, momentum, nesterov=False, weight_decay=0.0):
    """PyTorch's SGD with momentum: b = g on the first step, then b = μ b + g; step along b (or g + μ b)."""
    g = g + weight_decay * theta
    buf = g.copy() if buf is None else momentum * buf + g
    step = g + momentum * buf if nesterov else buf
    return theta - lr * step, buf


def adam_step(theta, g, m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """Adam with bias correction; ε added after √v is divided by √(1 - β₂ᵗ), as in PyTorch."""
    b1, b2 = betas
    g = g + weight_decay * theta
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    theta = theta - lr / (1 - b1**t) * m / (np.sqrt(v) / np.sqrt(1 - b2**t) + eps)
    return theta, m, v
