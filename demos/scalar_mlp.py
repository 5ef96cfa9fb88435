"""Train a small multilayer perceptron on the `Scalar` engine.

Two interleaving moons, 100 points, a 2-16-16-1 network in which every weight
is one `Scalar`: backpropagation one number at a time.

    python demos/scalar_mlp.py --steps 30
"""
from __future__ import annotations

import argparse
import sys
import time

from tinygrad_cv.scalar_nn import MLP, hinge_step, make_moons


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    xs, ys = make_moons(100, noise=0.1, seed=args.seed)
    model = MLP(2, [16, 16, 1], seed=args.seed)
    print(f"Scalar-engine MLP 2-16-16-1, {len(model.parameters())} parameters, 100 points")
    t0 = time.perf_counter()
    for step in range(args.steps):
        lr = 1.0 - 0.9 * step / args.steps
        loss, acc = hinge_step(model, xs, ys, lr)
        if step % 10 == 0 or step == args.steps - 1:
            print(f"step {step:3d}  loss {loss:.4f}  accuracy {acc:.0%}")
    dt = time.perf_counter() - t0
    print(f"{args.steps} steps in {dt:.1f} s ({1000 * dt / args.steps:.0f} ms per step)")
    return 0 if acc >= 0.85 else 1


if __name__ == "__main__":
    sys.exit(main())
