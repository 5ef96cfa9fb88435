"""What the LeNet-5 demo's defaults buy: augmentation × learning-rate schedule, over several seeds.

    python demos/lenet_ablation.py --data DIR                 # 2 x 2 settings, 3 seeds, 15 epochs each
    python demos/lenet_ablation.py --data DIR --seeds 5 --epochs 10

Each setting trains the demo's LeNet-5 (Adam, learning rate 2e-3, batch 64)
with one seed after another and reports the *validation* accuracy of the
epoch the demo would choose (the best one) as mean ± standard deviation over
the seeds. The test set is never evaluated (``--no-test``): comparing
settings is a choice, and choices are made on validation data. The table is
printed as Markdown and written to ``OUT/ablation.json``.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys

import numpy as np

from tinygrad_cv.lenet_demo import main as train

SETTINGS = [(aug, sched) for aug, sched in itertools.product(("none", "affine"), ("none", "cosine"))]


def run(args):
    results = {}
    for aug, sched in SETTINGS:
        accs = []
        for seed in range(args.seeds):
            out = os.path.join(args.out, f"{aug}-{sched}-seed{seed}")
            argv = ["--epochs", str(args.epochs), "--augment", aug, "--schedule", sched, "--seed", str(seed),
                    "--out", out, "--no-plots", "--no-test"]
            if args.data:
                argv += ["--data", args.data]
            if args.limit:
                argv += ["--limit", str(args.limit)]
            train(argv)
            with open(os.path.join(out, "history.json")) as f:
                history = json.load(f)
            best = max(history, key=lambda h: h["val_acc"])
            accs.append(best["val_acc"])
            print(f"augment {aug}, schedule {sched}, seed {seed}: best validation accuracy "
                  f"{100 * best['val_acc']:.2f}% (epoch {best['epoch']})", flush=True)
        results[f"{aug}/{sched}"] = accs
    return results


def table(results):
    lines = ["| augmentation | schedule | validation accuracy (mean ± std) | runs |", "|---|---|---:|---:|"]
    for key, accs in results.items():
        aug, sched = key.split("/")
        a = 100 * np.asarray(accs)
        std = a.std(ddof=1) if len(a) > 1 else 0.0
        lines.append(f"| {aug} | {sched} | {a.mean():.2f} ± {std:.2f} % | {len(a)} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=None, help="MNIST folder (as for demos/train_lenet_mnist.py)")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--limit", type=int, default=None, help="first N training images only (quick runs)")
    p.add_argument("--out", default="runs/ablation")
    args = p.parse_args(argv)
    if args.seeds < 1 or args.epochs < 1:
        p.error("--seeds and --epochs must be at least 1")
    results = run(args)
    text = table(results)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "ablation.json"), "w") as f:
        json.dump({"epochs": args.epochs, "seeds": args.seeds, "val_acc": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
