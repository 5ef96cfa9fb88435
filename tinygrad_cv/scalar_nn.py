"""A multilayer perceptron on the `Scalar` engine: every weight is one `Scalar`.

Slow by design — each multiply-add is a node in the graph — and therefore the
clearest place to watch backpropagation work one number at a time.
"""
from __future__ import annotations

import random

from .scalar import Scalar


class Neuron:
    """act(sum_i w_i x_i + b)."""

    def __init__(self, n_in: int, activation: str = "tanh", rng: random.Random | None = None):
        rng = rng or random.Random(0)
        # uniform in +-1/sqrt(n_in): PyTorch's default Linear initialisation
        bound = n_in**-0.5
        self.w = [Scalar(rng.uniform(-bound, bound)) for _ in range(n_in)]
        self.b = Scalar(rng.uniform(-bound, bound))
        self.activation = activation

    def __call__(self, x):
        s = self.b
        for wi, xi in zip(self.w, x):
            s = s + wi * xi
        if self.activation == "tanh":
            return s.tanh()
        if self.activation == "relu":
            return s.relu()
        return s

    def parameters(self):
        return self.w + [self.b]


class Layer:
    def __init__(self, n_in, n_out, activation="tanh", rng=None):
        self.neurons = [Neuron(n_in, activation, rng) for _ in range(n_out)]

    def __call__(self, x):
        out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self):
        return [p for n in self.neurons for p in n.parameters()]


class MLP:
    """``MLP(2, [16, 16, 1])``: tanh hidden layers, a linear output."""

    def __init__(self, n_in, sizes, activation="tanh", seed=0):
        rng = random.Random(seed)
        dims = [n_in] + list(sizes)
        self.layers = [
            Layer(dims[i], dims[i + 1], activation if i < len(sizes) - 1 else "linear", rng) for i in range(len(sizes))
        ]

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x if isinstance(x, list) else [x])
        return x

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]

    def zero_grad(self):
        for p in self.parameters():
            p.zero_grad()


def make_moons(n=100, noise=0.1, seed=0):
    """Two interleaving half circles (labels -1 / +1), a classic non-linear toy problem."""
    import math

    rng = random.Random(seed)
    xs, ys = [], []
    for i in range(n):
        t = math.pi * (i // 2) / max(n // 2 - 1, 1)
        if i % 2 == 0:
            x, y, label = math.cos(t), math.sin(t), -1.0
        else:
            x, y, label = 1 - math.cos(t), 0.5 - math.sin(t), 1.0
        xs.append([x + rng.gauss(0, noise), y + rng.gauss(0, noise)])
        ys.append(label)
    return xs, ys


def hinge_step(model, xs, ys, lr, alpha=1e-4):
    """One full-batch step of SVM hinge loss + L2 regularisation; returns (loss, accuracy)."""
    scores = [model(x) for x in xs]
    losses = [(1 - y * s).relu() for y, s in zip(ys, scores)]
    data_loss = sum(losses, Scalar(0.0, requires_grad=False)) * (1.0 / len(losses))
    reg = sum((p * p for p in model.parameters()), Scalar(0.0, requires_grad=False)) * alpha
    loss = data_loss + reg
    model.zero_grad()
    loss.backward()
    for p in model.parameters():
        p.data -= lr * p.grad
    acc = sum((s.data > 0) == (y > 0) for s, y in zip(scores, ys)) / len(ys)
    return loss.data, acc
