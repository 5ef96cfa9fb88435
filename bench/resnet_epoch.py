"""Seconds per training epoch of a CIFAR ResNet-20: tinygrad_cv next to PyTorch.

Trains ResNet-20 (He et al. 2016, section 4.2: 3 stages of 3 basic blocks,
16/32/64 channels, option A shortcuts; ``tinygrad_cv.models.resnet20``) with
SGD (lr 0.1, momentum 0.9, weight decay 5e-4), batch 128, float32, on random
batches (speed does not depend on the pixel values) for ``--steps`` batches,
and scales the time to one epoch: 60,000 images for 1×28×28 input
(MNIST-shaped), 50,000 for 3×32×32 (CIFAR-shaped). When torch is installed
the same network (defined below, with the same layers, shortcuts and
initialisation) and optimizer run in PyTorch, in a process of its own with
the same thread count, and the ratio is printed.

The two frameworks take turns, ``--repeats`` times each, and the fastest run
of each is reported (with the slowest in brackets): on a shared machine the
speed drifts by tens of percent within a minute, and alternating exposes both
to the same drift.

    python bench/resnet_epoch.py                          # both input shapes
    python bench/resnet_epoch.py --inputs cifar --steps 10 --repeats 2
    python bench/resnet_epoch.py --inputs mnist --profile # + where our time goes

``--profile`` splits our time into forward / backward / optimizer (timed
around each phase, as ``bench/lenet_epoch.py`` does) and lists the kernels
(``tinygrad_cv/kernels``, as the operations call them) by total time, with
their call counts per step; "outside the kernels" is the rest: the autograd
engine, the NumPy glue (the residual additions, the option-A slicing and
padding, the mean of global pooling) and Python.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

INPUTS = {"mnist": ((1, 28, 28), 60_000), "cifar": ((3, 32, 32), 50_000)}
POOL = 8  # distinct random batches, cycled (memory stays small whatever --steps is)
LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 5e-4


def batches(shape, batch, n, seed=0):
    rng = np.random.default_rng(seed)
    n = min(n, POOL)
    x = rng.standard_normal((n, batch) + shape).astype(np.float32)
    y = rng.integers(0, 10, size=(n, batch)).astype(np.int64)
    return x, y


def _profile_kernels():
    """Wrap every function of the CPU twin as the operations see it: {name: [seconds, calls]}."""
    from tinygrad_cv import kernels

    twin = kernels.backend_for(np.zeros(1, np.float32))
    stats = {}

    def wrap(name, fn):
        cell = stats.setdefault(name, [0.0, 0])

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                cell[0] += time.perf_counter() - t0
                cell[1] += 1
        return timed

    for name in kernels.contract.KERNELS:
        setattr(twin, name, wrap(name, getattr(twin, name)))
    return stats


def time_ours(shape, batch, steps, warmup, profile=False):
    import tinygrad_cv as tg
    import tinygrad_cv.functional as F
    from tinygrad_cv import optim
    from tinygrad_cv.models import resnet20

    tg.manual_seed(0)
    model = resnet20(num_classes=10, in_channels=shape[0])
    model.train()
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    xs, ys = batches(shape, batch, steps + warmup)
    parts = {"forward": 0.0, "backward": 0.0, "step": 0.0}

    def one(i, record):
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(tg.from_numpy(xs[i % len(xs)])), tg.from_numpy(ys[i % len(ys)]))
        t1 = time.perf_counter()
        opt.zero_grad()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if record:
            parts["forward"] += t1 - t0
            parts["backward"] += t2 - t1
            parts["step"] += t3 - t2
        return loss

    for i in range(warmup):
        one(i, False)
    kstats = _profile_kernels() if profile else None
    t0 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        one(i, profile)
    elapsed = time.perf_counter() - t0
    return elapsed, parts, kstats


def torch_resnet20(in_channels, num_classes=10):
    """ResNet-20 with option A shortcuts in PyTorch: the same layers and initialisation as ours."""
    import torch
    from torch import nn

    class ShortcutA(nn.Module):
        def __init__(self, inplanes, planes, stride):
            super().__init__()
            self.extra, self.stride = planes - inplanes, stride

        def forward(self, x):
            return nn.functional.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, 0, self.extra))

    class BasicBlock(nn.Module):
        def __init__(self, inplanes, planes, stride=1):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = ShortcutA(inplanes, planes, stride) if stride != 1 or inplanes != planes else None

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    class ResNet20(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            self.relu = nn.ReLU(inplace=True)
            stages, inplanes = [], 16
            for planes, stride in ((16, 1), (32, 2), (64, 2)):
                stages.append(nn.Sequential(BasicBlock(inplanes, planes, stride),
                                            *[BasicBlock(planes, planes) for _ in range(2)]))
                inplanes = planes
            self.layer1, self.layer2, self.layer3 = stages
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(64, num_classes)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            x = self.layer3(self.layer2(self.layer1(x)))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return ResNet20()


def time_torch(shape, batch, steps, warmup):
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = torch_resnet20(shape[0])
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    xs, ys = batches(shape, batch, steps + warmup)
    xs, ys = torch.from_numpy(xs), torch.from_numpy(ys)

    def one(i):
        loss = nn.functional.cross_entropy(model(xs[i % len(xs)]), ys[i % len(ys)])
        opt.zero_grad()
        loss.backward()
        opt.step()

    for i in range(warmup):
        one(i)
    t0 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        one(i)
    return time.perf_counter() - t0


def _child(framework, inputs, batch, steps, warmup, profile):
    """Time one framework in this process and print a JSON line (run in a fresh process)."""
    shape = INPUTS[inputs][0]
    if framework == "torch":
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        print(json.dumps({"seconds": time_torch(shape, batch, steps, warmup)}))
    else:
        seconds, parts, kstats = time_ours(shape, batch, steps, warmup, profile)
        print(json.dumps({"seconds": seconds, "parts": parts, "kernels": kstats}))


def _run(framework, inputs, batch, steps, warmup, profile=False):
    # Each framework gets its own process: both PyTorch and Numba drive OpenMP
    # thread pools, and sharing one process slows whichever runs second.
    cmd = [sys.executable, __file__, "--child", framework, "--inputs", inputs, "--batch-size", str(batch),
           "--steps", str(steps), "--warmup", str(warmup)] + (["--profile"] if profile else [])
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{framework} run failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _print_profile(run, steps, scale, top):
    parts = run["parts"]
    total = sum(parts.values())
    print("         " + ", ".join(f"{k} {v * scale:.2f}s ({100 * v / total:.0f}%)" for k, v in parts.items()))
    kstats = {k: v for k, v in (run.get("kernels") or {}).items() if v[1]}
    inside = sum(v[0] for v in kstats.values())
    print(f"         kernels (per epoch, % of the timed run, calls per step); "
          f"the profiled run was {run['seconds'] * scale:.2f}s/epoch:")
    for name, (sec, calls) in sorted(kstats.items(), key=lambda kv: -kv[1][0])[:top]:
        print(f"           {name:28s} {sec * scale:7.2f}s {100 * sec / run['seconds']:5.1f}%  {calls / steps:6.1f}")
    rest = run["seconds"] - inside
    print(f"           {'(outside the kernels)':28s} {rest * scale:7.2f}s {100 * rest / run['seconds']:5.1f}%")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", nargs="+", choices=sorted(INPUTS), default=["mnist", "cifar"])
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20, help="timed batches per run (scaled to an epoch)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3, help="alternating runs per framework (fastest is reported)")
    ap.add_argument("--profile", action="store_true",
                    help="split our time into forward / backward / optimizer and list the kernels by time")
    ap.add_argument("--top", type=int, default=12, help="kernels listed by --profile")
    ap.add_argument("--child", choices=["ours", "torch"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return _child(args.child, args.inputs[0], args.batch_size, args.steps, args.warmup, args.profile)
    have_torch = importlib.util.find_spec("torch") is not None
    if not have_torch:
        print("(torch not installed: printing tinygrad_cv only; `pip install torch==2.13.0` to compare)")
    bs = args.batch_size
    print(f"ResNet-20 (option A), SGD lr {LR} momentum {MOMENTUM} weight decay {WEIGHT_DECAY}, batch {bs}, "
          f"float32, {os.cpu_count()} CPU threads; seconds per epoch from {args.steps} steps, "
          f"best of {args.repeats}")
    print(f"{'input':>9s} {'images':>7s} {'tinygrad_cv':>12s} {'PyTorch':>9s} {'ratio':>7s}")
    for inputs in args.inputs:
        shape, epoch = INPUTS[inputs]
        scale = epoch / (bs * args.steps)
        runs_ours, runs_torch = [], []
        for _ in range(max(1, args.repeats)):
            runs_ours.append(_run("ours", inputs, bs, args.steps, args.warmup, args.profile))
            if have_torch:
                runs_torch.append(_run("torch", inputs, bs, args.steps, args.warmup)["seconds"])
        ours = min(runs_ours, key=lambda r: r["seconds"])
        spread = max(r["seconds"] for r in runs_ours)
        line = f"{'x'.join(map(str, shape)):>9s} {epoch:7d} {ours['seconds'] * scale:11.1f}s"
        if have_torch:
            theirs = min(runs_torch)
            line += f" {theirs * scale:8.1f}s {ours['seconds'] / theirs:6.2f}x"
            line += f"   (slowest runs: {spread * scale:.1f}s / {max(runs_torch) * scale:.1f}s)"
        print(line, flush=True)
        if args.profile:
            _print_profile(ours, args.steps, scale, args.top)


if __name__ == "__main__":
    main()
