"""Chapter 6 — gradient checking: reference solutions."""
import numpy as np


def numerical_vjp(f, x, v, eps=1e-6):
    """Central differences: (vᵀJ)_j ≈ (v·f(x + ε e_j) - v·f(x - ε e_j)) / 2ε, one pair of evaluations per entry."""
    x = np.array(x, dtype=np.float64)        # a private copy: the caller's x is never touched
    out = np.zeros_like(x)
    flat, g = x.reshape(-1), out.reshape(-1)  # views of the copies
    for j in range(flat.size):
        old = flat[j]
        flat[j] = old + eps
        plus = np.sum(v * f(x))
        flat[j] = old - eps
        minus = np.sum(v * f(x))
        flat[j] = old
        g[j] = (plus - minus) / (2 * eps)
    return out
