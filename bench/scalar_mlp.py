"""Time one training step of a 2-16-16-1 Scalar MLP on 100 points.

Side by side: tinygrad_cv's `Scalar` (Functions + the shared graph walk) and a
minimal closure-based scalar engine written below (each op stores a Python
closure for its backward, the smallest possible design). Both build the same
graph and compute the same loss; the ratio is the price of the shared
Function/Context machinery. Also shows how much of it is Python's cyclic
garbage collector walking the (acyclic) graph while it grows.

    python bench/scalar_mlp.py
"""
from __future__ import annotations

import gc
import math
import random
import statistics
import time

from tinygrad_cv.scalar_nn import MLP, hinge_step, make_moons


class V:
    """A plain-Python scalar autograd node: value, grad, parents, a backward closure."""

    __slots__ = ("data", "grad", "_back", "_prev")

    def __init__(self, data, prev=()):
        self.data, self.grad, self._back, self._prev = data, 0.0, None, prev

    def __add__(self, o):
        o = o if isinstance(o, V) else V(o)
        out = V(self.data + o.data, (self, o))

        def back():
            self.grad += out.grad
            o.grad += out.grad

        out._back = back
        return out

    __radd__ = __add__

    def __mul__(self, o):
        o = o if isinstance(o, V) else V(o)
        out = V(self.data * o.data, (self, o))

        def back():
            self.grad += o.data * out.grad
            o.grad += self.data * out.grad

        out._back = back
        return out

    __rmul__ = __mul__

    def __neg__(self):
        return self * -1

    def __sub__(self, o):
        return self + (-o)

    def __rsub__(self, o):
        return (-self) + o

    def tanh(self):
        t = math.tanh(self.data)
        out = V(t, (self,))

        def back():
            self.grad += (1 - t * t) * out.grad

        out._back = back
        return out

    def relu(self):
        out = V(self.data if self.data > 0 else 0.0, (self,))

        def back():
            self.grad += (out.data > 0) * out.grad

        out._back = back
        return out

    def backward(self):
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            v, done = stack.pop()
            if done:
                order.append(v)
            elif id(v) not in seen:
                seen.add(id(v))
                stack.append((v, True))
                stack.extend((p, False) for p in v._prev)
        self.grad = 1.0
        for v in reversed(order):
            if v._back:
                v._back()


def plain_mlp(seed=0):
    rng = random.Random(seed)
    dims = [2, 16, 16, 1]
    layers = []
    for i in range(3):
        b = dims[i] ** -0.5
        layers.append([([V(rng.uniform(-b, b)) for _ in range(dims[i])], V(rng.uniform(-b, b))) for _ in range(dims[i + 1])])
    return layers


def plain_forward(layers, x):
    for li, layer in enumerate(layers):
        out = []
        for w, b in layer:
            s = b
            for wi, xi in zip(w, x):
                s = s + wi * xi
            out.append(s.tanh() if li < len(layers) - 1 else s)
        x = out
    return x[0]


def plain_step(layers, xs, ys, lr, alpha=1e-4):
    params = [p for layer in layers for w, b in layer for p in w + [b]]
    scores = [plain_forward(layers, x) for x in xs]
    losses = [(1 - y * s).relu() for y, s in zip(ys, scores)]
    loss = sum(losses, V(0.0)) * (1.0 / len(losses)) + sum((p * p for p in params), V(0.0)) * alpha
    for p in params:
        p.grad = 0.0
    loss.backward()
    for p in params:
        p.data -= lr * p.grad
    return loss.data


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(repeats=5):
    xs, ys = make_moons(100, seed=0)
    model = MLP(2, [16, 16, 1], seed=0)
    plain = plain_mlp(0)
    rows = []
    for label, gc_on in (("gc enabled", True), ("gc disabled", False)):
        (gc.enable if gc_on else gc.disable)()
        ours = timed(lambda: hinge_step(model, xs, ys, 0.05), repeats)
        base = timed(lambda: plain_step(plain, xs, ys, 0.05), repeats)
        rows.append((label, ours, base))
    gc.enable()
    print("Scalar MLP 2-16-16-1, 100 points, one full-batch training step (median of %d)" % repeats)
    print(f"{'':12s} {'tinygrad_cv.Scalar':>20s} {'closure engine':>16s} {'ratio':>7s}")
    for label, ours, base in rows:
        print(f"{label:12s} {ours * 1e3:17.0f} ms {base * 1e3:13.0f} ms {ours / base:6.2f}x")


if __name__ == "__main__":
    main()
