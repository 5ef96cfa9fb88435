"""Chapter 10 — the MLP and the δ-rule: reference solutions."""
import numpy as np


def mlp_gradients(X, t, weights, biases):
    """Backpropagation by the δ-rule for a tanh MLP with a mean cross-entropy loss."""
    A, Z = [X], []
    for l, (W, b) in enumerate(zip(weights, biases)):
        Z.append(A[-1] @ W.T + b)
        if l < len(weights) - 1:
            A.append(np.tanh(Z[-1]))
    z = Z[-1] - Z[-1].max(axis=1, keepdims=True)
    P = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    N = len(X)
    delta = P.copy()
    delta[np.arange(N), t] -= 1
    delta /= N                                       # Δ(L) = (P - Y)/N
    dWs, dbs = [None] * len(weights), [None] * len(weights)
    for l in reversed(range(len(weights))):
        dWs[l] = delta.T @ A[l]                      # Δᵀ A(l-1)
        dbs[l] = delta.sum(axis=0)
        if l > 0:
            delta = (delta @ weights[l]) * (1 - np.tanh(Z[l - 1]) ** 2)   # down one layer
    return dWs, dbs
