"""Seconds per 60,000-image LeNet-5 training epoch: tinygrad_cv next to PyTorch.

Trains LeNet-5 (ReLU, max-pool; Adam; float32) on random MNIST-shaped batches
(speed does not depend on the pixel values) for ``--steps`` batches and
scales the time to one 60,000-image epoch. When torch is installed the
identical model and optimizer run in PyTorch (in a process of its own, with
the same thread count), and the ratio is printed.

The two frameworks take turns, ``--repeats`` times each, and the fastest run
of each is reported (with the slowest in brackets): on a shared machine the
speed drifts by tens of percent within a minute, and alternating exposes both
to the same drift.

    python bench/lenet_epoch.py                      # batch 64 and 256
    python bench/lenet_epoch.py --batch-sizes 64 --profile
    python bench/lenet_epoch.py --device cuda        # on the GPU (PyTorch on the same GPU)

On the GPU each batch is copied from the host every step (as a data loader
does), the clock is read after ``synchronize()``, and the number of kernel
launches per training step is printed: for small batches launches, not
arithmetic, set the pace.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

import numpy as np

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import optim
from tinygrad_cv.models import LeNet5

EPOCH = 60_000


def batches(batch, steps, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((steps, batch, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, size=(steps, batch)).astype(np.int64)
    return x, y


def time_ours(batch, steps, warmup, device="cpu", profile=False):
    tg.manual_seed(0)
    model = LeNet5().to(device)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    xs, ys = batches(batch, steps + warmup)
    parts = {"forward": 0.0, "backward": 0.0, "step": 0.0}
    sync = tg.cuda.synchronize if device == "cuda" else (lambda: None)

    def one(i, record):
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(tg.from_numpy(xs[i]).to(device)), tg.from_numpy(ys[i]).to(device))
        if record:
            sync()  # (only when splitting the time: it serialises host and GPU)
        t1 = time.perf_counter()
        opt.zero_grad()
        loss.backward()
        if record:
            sync()
        t2 = time.perf_counter()
        opt.step()
        if record:
            sync()
        t3 = time.perf_counter()
        if record:
            parts["forward"] += t1 - t0
            parts["backward"] += t2 - t1
            parts["step"] += t3 - t2
        return loss

    for i in range(warmup):
        one(i, False)
    launches = None
    if device == "cuda":
        with tg.cuda.count_launches() as counter:
            one(0, False)
        launches = counter.count
    sync()
    t0 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        one(i, profile)
    sync()
    elapsed = time.perf_counter() - t0
    return elapsed, parts, launches


def time_torch(batch, steps, warmup, device="cpu"):
    import torch
    from torch import nn as tnn

    torch.manual_seed(0)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    model = tnn.Sequential(
        tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Flatten(), tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(), tnn.Linear(84, 10),
    ).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xs, ys = batches(batch, steps + warmup)
    xs, ys = torch.from_numpy(xs), torch.from_numpy(ys)

    def one(i):
        loss = tnn.functional.cross_entropy(model(xs[i].to(device)), ys[i].to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()

    for i in range(warmup):
        one(i)
    sync()
    t0 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        one(i)
    sync()
    return time.perf_counter() - t0


def _child(framework, batch, steps, warmup, profile, device):
    """Time one framework in this process and print a JSON line (run in a fresh process)."""
    if framework == "torch":
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        print(json.dumps({"seconds": time_torch(batch, steps, warmup, device)}))
    else:
        seconds, parts, launches = time_ours(batch, steps, warmup, device, profile)
        print(json.dumps({"seconds": seconds, "parts": parts, "launches": launches}))


def _torch_can_run(device):
    if importlib.util.find_spec("torch") is None:
        return False, "torch not installed: printing tinygrad_cv only; `pip install torch==2.13.0` to compare"
    if device == "cuda":
        probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
                               capture_output=True, text=True)
        if probe.stdout.strip() != "True":
            return False, "this torch has no CUDA: printing tinygrad_cv only"
    return True, ""


def _run(framework, batch, steps, warmup, device="cpu", profile=False):
    # Each framework gets its own process: both PyTorch and Numba drive OpenMP
    # thread pools, and sharing one process slows whichever runs second.
    cmd = [sys.executable, __file__, "--child", framework, "--batch-sizes", str(batch),
           "--steps", str(steps), "--warmup", str(warmup), "--device", device] + (["--profile"] if profile else [])
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{framework} run failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--steps", type=int, default=None, help="timed batches (default: about 1/4 epoch)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3, help="alternating runs per framework (fastest is reported)")
    ap.add_argument("--profile", action="store_true", help="split our time into forward / backward / optimizer")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--child", choices=["ours", "torch"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return _child(args.child, args.batch_sizes[0], args.steps, args.warmup, args.profile, args.device)
    if args.device == "cuda":
        tg.cuda.require()  # says what is missing before any timing starts
    have_torch, why = _torch_can_run(args.device)
    if not have_torch:
        print(f"({why})")
    where = "GPU" if args.device == "cuda" else f"{os.cpu_count()} CPU threads"
    print(f"LeNet-5, Adam, float32, {where}; seconds per {EPOCH}-image epoch")
    print(f"{'batch':>6s} {'tinygrad_cv':>12s} {'PyTorch':>9s} {'ratio':>7s}")
    for bs in args.batch_sizes:
        steps = args.steps or max(EPOCH // bs // 4, 10)
        scale = EPOCH / (bs * steps)
        runs_ours, runs_torch = [], []
        for _ in range(max(1, args.repeats)):
            runs_ours.append(_run("ours", bs, steps, args.warmup, args.device, args.profile))
            if have_torch:
                runs_torch.append(_run("torch", bs, steps, args.warmup, args.device)["seconds"])
        ours = min(runs_ours, key=lambda r: r["seconds"])
        spread = max(r["seconds"] for r in runs_ours)
        line = f"{bs:6d} {ours['seconds'] * scale:11.2f}s"
        if have_torch:
            theirs = min(runs_torch)
            line += f" {theirs * scale:8.2f}s {ours['seconds'] / theirs:6.2f}x"
            line += f"   (slowest runs: {spread * scale:.2f}s / {max(runs_torch) * scale:.2f}s)"
        if ours.get("launches") is not None:
            line += f"   ({ours['launches']} kernel launches per step)"
        print(line, flush=True)
        if args.profile:
            parts = ours["parts"]
            total = sum(parts.values())
            print("       " + ", ".join(f"{k} {v * scale:.2f}s ({100 * v / total:.0f}%)" for k, v in parts.items()))


if __name__ == "__main__":
    main()
