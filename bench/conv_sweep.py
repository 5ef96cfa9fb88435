"""Sweep the CNN kernels over the shapes real networks use: tinygrad_cv's CPU twin next to PyTorch.

    python bench/conv_sweep.py                   # 60 shapes, 3 alternating rounds
    python bench/conv_sweep.py --list            # the shapes (with --quick / --filter: the selection)
    python bench/conv_sweep.py --quick           # 11 shapes, a minute or so
    python bench/conv_sweep.py --filter resnet20 --repeats 5 --json sweep.json

Shapes (batch 128, float32 unless the name says otherwise): every distinct
layer of a CIFAR ResNet-20 (with the option-B 1×1 projections, and its
1×28×28 stem), of a ResNet-18 at 32×32 (CIFAR stem; plus torchvision's 7×7/2
stem and 3×3/2 max pool at 112×112), of a small VGG, of NiN and of LeNet-5;
depthwise convolutions; then the extremes: kernels 1 to 7, stride 1 and 2,
padding 0 and "same" (k // 2), 1 -> 16 up to 256 -> 256 channels, 7 to 56
pixels, batch 32 and 256, and float64. Row names start with the network
(``resnet20:``, ``lenet:``, ``dw:``, ``extreme:``, ``f64:``), so ``--filter``
picks a family, a kernel size (``k7``) or a part (``bwd_weight``).

Each case is timed in parts, each part the way the operations call it:

* conv: ``fwd``, ``bwd_input``, ``bwd_weight`` (our ``conv2d_forward`` /
  ``conv2d_backward_input`` / ``conv2d_backward_weight``; PyTorch's
  ``F.conv2d`` and ``aten.convolution_backward`` with an output mask, so each
  part computes only what its row names - as in ``bench/kernels.py``). In
  training, with both gradients wanted, ``ops.conv.Conv2d`` calls
  ``conv2d_backward``, which may share work between the two;
* max / avg pool: ``fwd``, ``bwd`` (``max_pool2d_with_indices_backward``,
  ``avg_pool2d_backward``);
* batch norm, training mode: ``fwd`` (statistics, normalisation, running
  averages; ``aten.native_batch_norm``) and ``bwd`` (all three gradients;
  ``aten.native_batch_norm_backward``);
* ReLU: ``fwd``, ``bwd`` (``threshold_backward``); linear: ``fwd``, ``bwd``
  (all three gradients: gy W, gyᵀ x, sum gy - what autograd runs for ``F.linear``).

Our side calls the kernels through ``kernels.backend_for`` (the unchecked
functions the operations call: no argument checking in the timing).

How it is timed: each framework runs in a process of its own (both drive
OpenMP pools; sharing a process would let one's thread settings leak into the
other's numbers), PyTorch with ``torch.set_num_threads(os.cpu_count())``,
our Numba kernels on all cores too. The two processes stay up and take turns
*case by case*: round r of case c runs ours, then PyTorch, ``--repeats``
rounds each, so both see the same drift of a shared machine. Within a round
each part runs twice untimed, then as many timed calls as fit in
``--target`` seconds (at least 3, at most 50). Reported: the fastest call
over all rounds (the max in brackets), and ours / torch of the fastest calls
(below 1.0: we are quicker). Then the geometric mean of the ratios and the
worst rows. Before each case the CPU load of *other* processes is sampled
(``_busy_fraction``, both workers idle); cases measured while the machine was
busy are flagged ``*``.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUSY = 0.25  # fraction of all CPU time used by others (workers idle) above which a case is flagged


@dataclass(frozen=True)
class Case:
    """One shape. ``kind``: conv, maxpool, avgpool, bn, relu, linear.

    conv: c -> o channels, kernel k, stride s, padding p, h×h input, groups g.
    pools: k, s, p on c channels of h×h. bn / relu: c channels of h×h.
    linear: c -> o features (h unused).
    """

    tag: str
    kind: str
    c: int
    o: int = 0
    k: int = 1
    s: int = 1
    p: int = 0
    h: int = 1
    g: int = 1
    batch: int = 128
    bias: bool = False
    dtype: str = "float32"
    quick: bool = False

    @property
    def name(self):
        hw = f"{self.h}x{self.h}"
        if self.kind == "conv":
            what = (f"dwconv {self.c} k{self.k} s{self.s} p{self.p} {hw}" if self.g == self.c and self.g > 1
                    else f"conv {self.c}->{self.o} k{self.k} s{self.s} p{self.p} {hw}")
        elif self.kind in ("maxpool", "avgpool"):
            what = f"{self.kind} {self.k}x{self.k} s{self.s} p{self.p} {self.c}x{hw}"
        elif self.kind == "linear":
            what = f"linear {self.c}->{self.o}"
        else:
            what = f"{self.kind} {self.c}x{hw}"
        return f"{self.tag}: {what} b{self.batch}" + ("" if self.dtype == "float32" else f" {self.dtype}")

    @property
    def parts(self):
        return ("fwd", "bwd_input", "bwd_weight") if self.kind == "conv" else ("fwd", "bwd")


def conv(tag, c, o, k, s, p, h, **kw):
    return Case(tag, "conv", c, o, k, s, p, h, **kw)


def dw(tag, c, k, s, p, h, **kw):
    return Case(tag, "conv", c, c, k, s, p, h, g=c, **kw)


def pool(tag, kind, c, k, s, p, h, **kw):
    return Case(tag, kind, c, 0, k, s, p, h, **kw)


def bn(tag, c, h, **kw):
    return Case(tag, "bn", c, h=h, **kw)


def relu(tag, c, h, **kw):
    return Case(tag, "relu", c, h=h, **kw)


def linear(tag, c, o, **kw):
    return Case(tag, "linear", c, o, **kw)


CASES = [
    # CIFAR ResNet-20 (32x32; option A shortcuts need no conv, option B adds the 1x1 projections)
    conv("resnet20", 3, 16, 3, 1, 1, 32),
    conv("resnet20", 16, 16, 3, 1, 1, 32, quick=True),
    conv("resnet20", 16, 32, 3, 2, 1, 32, quick=True),
    conv("resnet20", 32, 32, 3, 1, 1, 16),
    conv("resnet20", 32, 64, 3, 2, 1, 16),
    conv("resnet20", 64, 64, 3, 1, 1, 8, quick=True),
    conv("resnet20", 16, 32, 1, 2, 0, 32, quick=True),
    conv("resnet20", 32, 64, 1, 2, 0, 16),
    conv("resnet20", 1, 16, 3, 1, 1, 28),  # the MNIST stem
    bn("resnet20", 16, 32, quick=True),
    bn("resnet20", 64, 8),
    relu("resnet20", 16, 32, quick=True),
    linear("resnet20", 64, 10, bias=True),
    # ResNet-18 at 32x32 (3x3 stem, no max pool), layers 1-4
    conv("resnet18", 3, 64, 3, 1, 1, 32),
    conv("resnet18", 64, 64, 3, 1, 1, 32),
    conv("resnet18", 64, 128, 3, 2, 1, 32),
    conv("resnet18", 128, 128, 3, 1, 1, 16),
    conv("resnet18", 128, 256, 3, 2, 1, 16),
    conv("resnet18", 128, 256, 1, 2, 0, 16),
    conv("resnet18", 256, 256, 3, 1, 1, 8),
    conv("resnet18", 256, 512, 3, 2, 1, 8),
    conv("resnet18", 512, 512, 3, 1, 1, 4),
    bn("resnet18", 256, 8),
    linear("resnet18", 512, 1000, bias=True),
    # torchvision's ImageNet stem at 112x112: 7x7/2 conv, 3x3/2 max pool (batch 32: ~2 s a call at 128)
    conv("stem", 3, 64, 7, 2, 3, 112, batch=32),
    pool("stem", "maxpool", 64, 3, 2, 1, 56, batch=32),
    # a small VGG for CIFAR (conv3x3 + bias, 2x2 max pools)
    conv("vgg", 64, 128, 3, 1, 1, 16, bias=True),
    conv("vgg", 128, 256, 3, 1, 1, 8, bias=True),
    pool("vgg", "maxpool", 64, 2, 2, 0, 32),
    # NiN for CIFAR (Lin et al. 2013): 5x5 and 1x1 convolutions, 3x3/2 pools
    conv("nin", 3, 192, 5, 1, 2, 32, bias=True),
    conv("nin", 192, 160, 1, 1, 0, 32, bias=True),
    conv("nin", 160, 96, 1, 1, 0, 32, bias=True),
    pool("nin", "maxpool", 96, 3, 2, 1, 32),
    conv("nin", 96, 192, 5, 1, 2, 16, bias=True),
    pool("nin", "avgpool", 192, 3, 2, 1, 16),
    conv("nin", 192, 192, 3, 1, 1, 8, bias=True),
    # LeNet-5 (28x28)
    conv("lenet", 1, 6, 5, 1, 2, 28, bias=True, quick=True),
    conv("lenet", 6, 16, 5, 1, 0, 14, bias=True),
    pool("lenet", "maxpool", 6, 2, 2, 0, 28, quick=True),
    pool("lenet", "maxpool", 16, 2, 2, 0, 10),
    pool("lenet", "avgpool", 6, 2, 2, 0, 28),
    linear("lenet", 400, 120, bias=True, quick=True),
    linear("lenet", 84, 10, bias=True),
    # depthwise (MobileNet-style 3x3; 5x5 and ConvNeXt-style 7x7)
    dw("dw", 32, 3, 1, 1, 56),
    dw("dw", 64, 3, 2, 1, 56),
    dw("dw", 128, 3, 1, 1, 14, quick=True),
    dw("dw", 256, 3, 1, 1, 7),
    dw("dw", 64, 7, 1, 3, 28),
    # extremes of kernel, stride, padding, channels, size and batch
    conv("extreme", 16, 16, 7, 1, 3, 28),
    conv("extreme", 16, 16, 7, 2, 0, 28),
    conv("extreme", 32, 32, 5, 2, 2, 28),
    conv("extreme", 32, 32, 3, 1, 0, 16),
    conv("extreme", 256, 256, 1, 1, 0, 14),
    conv("extreme", 256, 256, 3, 1, 1, 14),
    conv("extreme", 64, 64, 3, 1, 1, 56, batch=32),
    conv("extreme", 16, 16, 3, 1, 1, 32, batch=256),
    conv("extreme", 1, 6, 5, 1, 2, 28, batch=256, bias=True),
    # float64 (gradient checks, teaching)
    conv("f64", 16, 16, 3, 1, 1, 32, dtype="float64", quick=True),
    conv("f64", 64, 64, 3, 1, 1, 8, dtype="float64"),
    conv("f64", 1, 6, 5, 1, 2, 28, dtype="float64", bias=True),
]


# --- data and jobs ---------------------------------------------------------------------------

def _out(h, k, s, p):
    return (h + 2 * p - k) // s + 1


def make_data(case, seed=0):
    """The case's arrays (NumPy, C order), identical in both processes."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(case.dtype)

    def randn(*shape, scale=1.0):
        return (rng.standard_normal(shape, dtype=np.float32) * scale).astype(dt)

    n, c, h = case.batch, case.c, case.h
    if case.kind == "conv":
        oh = _out(h, case.k, case.s, case.p)
        return dict(x=randn(n, c, h, h), w=randn(case.o, c // case.g, case.k, case.k, scale=0.1),
                    b=randn(case.o) if case.bias else None, gy=randn(n, case.o, oh, oh))
    if case.kind in ("maxpool", "avgpool"):
        oh = _out(h, case.k, case.s, case.p)
        return dict(x=randn(n, c, h, h), gy=randn(n, c, oh, oh))
    if case.kind == "bn":
        return dict(x=randn(n, c, h, h), w=1 + randn(c, scale=0.1), b=randn(c, scale=0.1), gy=randn(n, c, h, h))
    if case.kind == "relu":
        return dict(x=randn(n, c, h, h), gy=randn(n, c, h, h))
    if case.kind == "linear":
        return dict(x=randn(n, c), w=randn(case.o, c, scale=0.1), b=randn(case.o) if case.bias else None,
                    gy=randn(n, case.o))
    raise ValueError(case.kind)


def ours_jobs(case, d):
    """{part: callable} through the kernels the operations call (``kernels.backend_for``: unchecked)."""
    from tinygrad_cv import kernels

    k = kernels.backend_for(d["x"])
    s, p = (case.s, case.s), (case.p, case.p)
    if case.kind == "conv":
        x, w, b, gy = d["x"], d["w"], d["b"], d["gy"]
        pad4 = (case.p,) * 4
        one = (1, 1)
        return {
            "fwd": lambda: k.conv2d_forward(x, w, b, s, pad4, one, case.g),
            "bwd_input": lambda: k.conv2d_backward_input(gy, w, x.shape, s, pad4, one, case.g),
            "bwd_weight": lambda: k.conv2d_backward_weight(x, gy, w.shape, s, pad4, one, case.g),
        }
    if case.kind == "maxpool":
        x, gy, kk = d["x"], d["gy"], (case.k, case.k)
        _, idx = k.max_pool2d_forward(x, kk, s, p, (1, 1), False)
        return {"fwd": lambda: k.max_pool2d_forward(x, kk, s, p, (1, 1), False),
                "bwd": lambda: k.max_pool2d_backward(gy, idx, x.shape)}
    if case.kind == "avgpool":
        x, gy, kk = d["x"], d["gy"], (case.k, case.k)
        return {"fwd": lambda: k.avg_pool2d_forward(x, kk, s, p, False, True, None),
                "bwd": lambda: k.avg_pool2d_backward(gy, x.shape, kk, s, p, False, True, None)}
    if case.kind == "bn":
        x, w, b, gy = d["x"], d["w"], d["b"], d["gy"]
        rm, rv = np.zeros(case.c, x.dtype), np.ones(case.c, x.dtype)
        m = x.size // case.c

        def fwd():  # what F.batch_norm(training=True) does around the kernels
            mean, var = k.batch_norm_stats(x)
            rm[...] = 0.9 * rm + 0.1 * mean
            rv[...] = 0.9 * rv + 0.1 * var * (m / (m - 1))
            return k.batch_norm_forward(x, mean, var, w, b, 1e-5)

        _, xhat, inv_std = fwd()
        return {"fwd": fwd, "bwd": lambda: k.batch_norm_backward(gy, xhat, inv_std, w, True, True, True)}
    if case.kind == "relu":
        x, gy = d["x"], d["gy"]
        y = k.relu_forward(x)
        return {"fwd": lambda: k.relu_forward(x), "bwd": lambda: k.relu_backward(gy, y)}
    if case.kind == "linear":
        x, w, b, gy = d["x"], d["w"], d["b"], d["gy"]
        return {"fwd": lambda: k.linear_forward(x, w, b),
                "bwd": lambda: k.linear_backward(gy, x, w, True, True, b is not None)}
    raise ValueError(case.kind)


def torch_jobs(case, d):
    import torch
    import torch.nn.functional as F

    aten = torch.ops.aten
    t = {key: None if v is None else torch.from_numpy(v) for key, v in d.items()}
    s, p = [case.s, case.s], [case.p, case.p]
    if case.kind == "conv":
        x, w, b, gy = t["x"], t["w"], t["b"], t["gy"]
        bias_sizes = [case.o] if b is not None else None

        def bwd(mask):
            return aten.convolution_backward(gy, x, w, bias_sizes, s, p, [1, 1], False, [0, 0], case.g, mask)
        return {"fwd": lambda: F.conv2d(x, w, b, s, p, 1, case.g),
                "bwd_input": lambda: bwd([True, False, False]),
                "bwd_weight": lambda: bwd([False, True, False])}
    if case.kind == "maxpool":
        x, gy, kk = t["x"], t["gy"], [case.k, case.k]
        _, idx = F.max_pool2d(x, kk, s, p, return_indices=True)
        return {"fwd": lambda: F.max_pool2d(x, kk, s, p, return_indices=True),
                "bwd": lambda: aten.max_pool2d_with_indices_backward(gy, x, kk, s, p, [1, 1], False, idx)}
    if case.kind == "avgpool":
        x, gy, kk = t["x"], t["gy"], [case.k, case.k]
        return {"fwd": lambda: F.avg_pool2d(x, kk, s, p),
                "bwd": lambda: aten.avg_pool2d_backward(gy, x, kk, s, p, False, True, None)}
    if case.kind == "bn":
        x, w, b, gy = t["x"], t["w"], t["b"], t["gy"]
        rm, rv = torch.zeros(case.c, dtype=x.dtype), torch.ones(case.c, dtype=x.dtype)
        _, save_mean, save_invstd = aten.native_batch_norm(x, w, b, rm, rv, True, 0.1, 1e-5)
        return {"fwd": lambda: aten.native_batch_norm(x, w, b, rm, rv, True, 0.1, 1e-5),
                "bwd": lambda: aten.native_batch_norm_backward(gy, x, w, rm, rv, save_mean, save_invstd, True, 1e-5,
                                                               [True, True, True])}
    if case.kind == "relu":
        x, gy = t["x"], t["gy"]
        y = torch.relu(x)
        return {"fwd": lambda: torch.relu(x), "bwd": lambda: aten.threshold_backward(gy, y, 0)}
    if case.kind == "linear":
        x, w, b, gy = t["x"], t["w"], t["b"], t["gy"]
        return {"fwd": lambda: F.linear(x, w, b),
                "bwd": lambda: (gy @ w, gy.t() @ x, None if b is None else gy.sum(0))}
    raise ValueError(case.kind)


# --- the worker: one framework, one process ---------------------------------------------------

def _time_part(fn, target, warmup=2, lo=3, hi=50):
    for _ in range(warmup):
        fn()
    times = []
    end = time.perf_counter() + target
    while len(times) < lo or (len(times) < hi and time.perf_counter() < end):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def worker(framework):
    """Serve stdin's requests {"case": i, "parts": [...], "target": s} -> {part: [seconds, ...]} or {"error": text}."""
    if framework == "torch":
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        torch.set_grad_enabled(False)
        make_jobs = torch_jobs
    else:
        make_jobs = ours_jobs
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        case = CASES[req["case"]]
        try:
            jobs = make_jobs(case, make_data(case))
            reply = {part: _time_part(jobs[part], req["target"]) for part in req["parts"]}
        except Exception:  # report and go on: one broken kernel must not end the sweep
            reply = {"error": traceback.format_exc(limit=4)}
        jobs = None
        print(json.dumps(reply), flush=True)


class Worker:
    def __init__(self, framework):
        self.framework = framework
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", framework], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self._read()

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.framework} worker died (exit code {self.proc.wait()})")
        return json.loads(line)

    def run(self, index, parts, target):
        self.proc.stdin.write(json.dumps({"case": index, "parts": list(parts), "target": target}) + "\n")
        return self._read()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


# --- the parent --------------------------------------------------------------------------------

def _busy_fraction(dt=0.2):
    """Fraction of CPU time used by anyone during dt (Linux /proc/stat)."""
    try:
        def read():
            v = list(map(int, open("/proc/stat").readline().split()[1:]))
            return sum(v), v[3] + v[4]
        t0, i0 = read()
        time.sleep(dt)
        t1, i1 = read()
        return 1.0 - (i1 - i0) / max(1, t1 - t0)
    except OSError:
        return 0.0


def _fmt(t):
    return f"{t * 1e3:9.3f}" if t is not None else f"{'-':>9}"


def select(args):
    """[(index, case, parts)]: the cases to run and which of their parts (all, unless the filter names one)."""
    chosen = []
    for i, c in enumerate(CASES):
        if args.quick and not c.quick:
            continue
        f = (args.filter or "").lower()
        parts = c.parts if f in c.name.lower() else tuple(p for p in c.parts if f in f"{c.name} {p}".lower())
        if parts:
            chosen.append((i, c, parts))
    return chosen


def main_sweep(args):
    chosen = select(args)
    if not chosen:
        sys.exit(f"no case matches --filter {args.filter!r}")
    have_torch = not args.no_torch and importlib.util.find_spec("torch") is not None
    if not have_torch and not args.no_torch:
        print("(torch not installed: timing tinygrad_cv only)")
    busy = _busy_fraction(0.5)
    print(f"{len(chosen)} cases, {os.cpu_count()} CPU cores, {args.repeats} alternating rounds; "
          f"times in ms: fastest call (slowest in brackets); ratio = ours / torch of the fastest")
    if busy > BUSY:
        print(f"warning: the machine is {100 * busy:.0f}% busy before the start: expect noisy numbers")
    workers = {"ours": Worker("ours")}
    if have_torch:
        workers["torch"] = Worker("torch")
    header = f"{'case / part':58s} {'ours':>9} {'(max)':>9} {'torch':>9} {'(max)':>9} {'ratio':>7}"
    print(header)
    print("-" * len(header), flush=True)
    rows = []
    try:
        for index, case, parts in chosen:
            load = _busy_fraction(0.1)  # both workers idle: this is everyone else
            times = {fw: {p: [] for p in parts} for fw in workers}
            errors = {}
            for _ in range(max(1, args.repeats)):
                for fw, w in workers.items():
                    reply = w.run(index, parts, args.target)
                    if "error" in reply:
                        errors[fw] = reply["error"]
                        continue
                    for p in parts:
                        times[fw][p] += reply[p]
                load = max(load, _busy_fraction(0.05))
            flag = "*" if load > BUSY else " "
            for fw, text in errors.items():
                print(f"{case.name}: {fw} failed:\n{text}", file=sys.stderr)
            for p in parts:
                ours = times["ours"][p]
                theirs = times["torch"][p] if have_torch else []
                row = dict(case=case.name, part=p, spec=asdict(case), busy=round(load, 3),
                           ours_min=min(ours) if ours else None, ours_max=max(ours) if ours else None,
                           torch_min=min(theirs) if theirs else None, torch_max=max(theirs) if theirs else None,
                           error="; ".join(f"{k} failed" for k in errors) or None)
                row["ratio"] = (row["ours_min"] / row["torch_min"]
                                if row["ours_min"] is not None and row["torch_min"] else None)
                rows.append(row)
                ratio = f"{row['ratio']:7.2f}" if row["ratio"] is not None else f"{'error' if errors else '-':>7}"
                print(f"{flag}{case.name + ' ' + p:57s} {_fmt(row['ours_min'])} {_fmt(row['ours_max'])} "
                      f"{_fmt(row['torch_min'])} {_fmt(row['torch_max'])} {ratio}", flush=True)
    finally:
        for w in workers.values():
            w.close()
    summarise(rows, args.worst)
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu_count": os.cpu_count(), "repeats": args.repeats,
                                               "target_s": args.target, "rows": rows}, indent=1))
        print(f"wrote {args.json}")


def summarise(rows, worst):
    rated = [r for r in rows if r["ratio"]]
    if not rated:
        return
    geo = math.exp(sum(math.log(r["ratio"]) for r in rated) / len(rated))
    print()
    print(f"geometric mean of ours/torch over {len(rated)} rows: {geo:.2f}")
    by_kind = {}
    for r in rated:
        key = r["spec"]["kind"] + (" " + r["part"] if r["spec"]["kind"] == "conv" else "")
        by_kind.setdefault(key, []).append(math.log(r["ratio"]))
    print("  by kind: " + ", ".join(f"{k} {math.exp(sum(v) / len(v)):.2f} ({len(v)})" for k, v in by_kind.items()))
    print(f"worst {min(worst, len(rated))} rows (ours / torch):")
    for r in sorted(rated, key=lambda r: -r["ratio"])[:worst]:
        print(f"  {r['ratio']:7.2f}  {r['case']} {r['part']}  ({_fmt(r['ours_min']).strip()} ms vs "
              f"{_fmt(r['torch_min']).strip()} ms){'  *busy' if r['busy'] > BUSY else ''}")
    flagged = sum(1 for r in rows if r["busy"] > BUSY)
    if flagged:
        print(f"* {flagged} rows were measured while other processes used over {100 * BUSY:.0f}% of the CPU: "
              f"rerun them (--filter) on a quiet machine")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="only the 11 cases marked quick")
    ap.add_argument("--filter", default=None, help="only cases whose name (or 'name part') contains SUBSTR")
    ap.add_argument("--repeats", type=int, default=3, help="alternating rounds per case and framework")
    ap.add_argument("--target", type=float, default=0.2, help="seconds of timed calls per part and round")
    ap.add_argument("--worst", type=int, default=8, help="how many of the worst rows to list")
    ap.add_argument("--json", default=None, metavar="OUT", help="also write every row to this JSON file")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--list", action="store_true", help="print the cases and exit")
    ap.add_argument("--worker", choices=["ours", "torch"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker)
    if args.list:
        for _, c, parts in select(args):
            print(f"{c.name}   {'/'.join(parts)}" + ("   [quick]" if c.quick else ""))
        return
    main_sweep(args)


if __name__ == "__main__":
    main()
