"""Benchmark the kernel twins at LeNet-5's shapes (batch 64, float32).

    python bench/kernels.py               # timing table (+ PyTorch CPU if importable)
    python bench/kernels.py --cold-start  # first-ever vs cached import + conv fwd/bwd

Timings are the median of ``--repeats`` runs after warm-up (the minimum is
printed too: this machine has two cores and any other process running on
them shows up as noise in the median).  PyTorch is timed in a separate
process with ``torch.set_num_threads(2)``: both Numba and PyTorch use an
OpenMP runtime, and sharing one process would let one library's settings
(thread count, spin policy) leak into the other's numbers.

Columns: ``reference`` (the readable NumPy twin; "skipped" where it would take
more than a few seconds), ``fast`` (the Numba/BLAS twin), ``torch`` and
``fast/torch`` (below 1.0 means the fast twin is quicker).  Conv rows are split
into forward, backward-input and backward-weight, and summed in a ``total``
row; PyTorch's backward parts are timed with
``torch.ops.aten.convolution_backward`` and an output mask, so each part
computes only what its row names.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BATCH = 64

# name, (C_in, C_out, kernel, padding, H)
CONVS = [
    ("conv 1->6 5x5 p2 28x28", (1, 6, 5, 2, 28)),
    ("conv 6->16 5x5 14x14", (6, 16, 5, 0, 14)),
    ("conv 64->64 3x3 p1 32x32", (64, 64, 3, 1, 32)),
]
POOLS = [("maxpool 2x2 6x28x28", (6, 28)), ("maxpool 2x2 16x10x10", (16, 10))]
FCS = [(400, 120), (120, 84), (84, 10)]
REFERENCE_SKIP = {"conv 64->64 3x3 p1 32x32"}  # minutes in pure NumPy loops


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


def _wait_quiet(limit_s=10.0, threshold=0.1):
    """Give other processes on this (2-core) box a moment to finish."""
    end = time.time() + limit_s
    while time.time() < end and _busy_fraction() > threshold:
        pass


def timeit(fn, repeats, warmup=2):
    """(median, min) seconds of fn() over `repeats` runs after `warmup` runs."""
    _wait_quiet()
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), float(np.min(ts))


def make_data(seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    data = {}
    for name, (c, o, k, p, h) in CONVS:
        x = rng.standard_normal((BATCH, c, h, h), dtype=np.float32).astype(dtype)
        w = (rng.standard_normal((o, c, k, k), dtype=np.float32) * 0.1).astype(dtype)
        b = rng.standard_normal(o, dtype=np.float32).astype(dtype)
        oh = h + 2 * p - k + 1
        gy = rng.standard_normal((BATCH, o, oh, oh), dtype=np.float32).astype(dtype)
        data[name] = (x, w, b, gy, p)
    for name, (c, h) in POOLS:
        x = rng.standard_normal((BATCH, c, h, h), dtype=np.float32).astype(dtype)
        gy = rng.standard_normal((BATCH, c, h // 2, h // 2), dtype=np.float32).astype(dtype)
        data[name] = (x, gy)
    for fi, fo in FCS:
        x = rng.standard_normal((BATCH, fi), dtype=np.float32).astype(dtype)
        w = rng.standard_normal((fo, fi), dtype=np.float32).astype(dtype)
        gy = rng.standard_normal((BATCH, fo), dtype=np.float32).astype(dtype)
        data[f"fc {fi}->{fo}"] = (x, w, gy)
    return data


def numpy_jobs(k, data):
    """{row name: callable} for one kernel twin ``k``."""
    jobs = {}
    for name, _ in CONVS:
        x, w, b, gy, p = data[name]
        pad = (p, p)
        jobs[f"{name} fwd"] = lambda x=x, w=w, b=b, pad=pad: k.conv2d_forward(x, w, b, (1, 1), pad, (1, 1), 1)
        jobs[f"{name} bwd_input"] = lambda gy=gy, w=w, x=x, pad=pad: k.conv2d_backward_input(
            gy, w, x.shape, (1, 1), pad, (1, 1), 1)
        jobs[f"{name} bwd_weight"] = lambda x=x, gy=gy, w=w, pad=pad: k.conv2d_backward_weight(
            x, gy, w.shape, (1, 1), pad, (1, 1), 1)
    for name, _ in POOLS:
        x, gy = data[name]
        _, idx = k.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1), False)
        jobs[f"{name} fwd"] = lambda x=x: k.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1), False)
        jobs[f"{name} bwd"] = lambda gy=gy, idx=idx, x=x: k.max_pool2d_backward(gy, idx, x.shape)
    for fi, fo in FCS:
        name = f"fc {fi}->{fo}"
        x, w, gy = data[name]
        jobs[f"{name} fwd x@W.T"] = lambda x=x, w=w: k.matmul(x, w.T)
        jobs[f"{name} bwd gy@W"] = lambda gy=gy, w=w: k.matmul(gy, w)
        jobs[f"{name} bwd gy.T@x"] = lambda gy=gy, x=x: k.matmul(gy.T, x)
    return jobs


def torch_jobs(data):
    import torch
    import torch.nn.functional as F

    jobs = {}
    for name, (c, o, kk, p, h) in CONVS:
        x, w, b, gy, p = (torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in data[name])
        jobs[f"{name} fwd"] = lambda x=x, w=w, b=b, p=p: F.conv2d(x, w, b, padding=p)

        def bwd(mask, x=x, w=w, gy=gy, p=p, o=o):
            return torch.ops.aten.convolution_backward(
                gy, x, w, [o], [1, 1], [p, p], [1, 1], False, [0, 0], 1, mask)
        jobs[f"{name} bwd_input"] = lambda bwd=bwd: bwd([True, False, False])
        jobs[f"{name} bwd_weight"] = lambda bwd=bwd: bwd([False, True, False])
    for name, _ in POOLS:
        x, gy = (torch.from_numpy(a) for a in data[name])
        _, idx = F.max_pool2d(x, 2, return_indices=True)
        jobs[f"{name} fwd"] = lambda x=x: F.max_pool2d(x, 2, return_indices=True)
        jobs[f"{name} bwd"] = lambda gy=gy, x=x, idx=idx: torch.ops.aten.max_pool2d_with_indices_backward(
            gy, x, [2, 2], [2, 2], [0, 0], [1, 1], False, idx)
    for fi, fo in FCS:
        name = f"fc {fi}->{fo}"
        x, w, gy = (torch.from_numpy(a) for a in data[name])
        jobs[f"{name} fwd x@W.T"] = lambda x=x, w=w: x @ w.T
        jobs[f"{name} bwd gy@W"] = lambda gy=gy, w=w: gy @ w
        jobs[f"{name} bwd gy.T@x"] = lambda gy=gy, x=x: gy.T @ x
    return jobs


def repeats_for(name, base):
    return max(5, base // 4) if "64->64" in name else base


def run_torch_worker(repeats):
    import torch

    torch.set_num_threads(2)
    data = make_data()
    out = {}
    with torch.no_grad():
        for name, fn in torch_jobs(data).items():
            out[name] = timeit(fn, repeats_for(name, repeats))
    print(json.dumps(out))


def torch_times(repeats):
    try:
        import importlib.util
        if importlib.util.find_spec("torch") is None:
            return None
    except Exception:
        return None
    proc = subprocess.run(
        [sys.executable, __file__, "--torch-worker", "--repeats", str(repeats)],
        capture_output=True, text=True, cwd=ROOT,
    )
    if proc.returncode != 0:
        print("PyTorch worker failed:\n" + proc.stderr, file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fmt_ms(t):
    return f"{t * 1e3:9.3f}" if isinstance(t, float) else f"{t:>9}"


def main_table(args):
    from tinygrad_cv.kernels import cpu, reference
    from tinygrad_cv.kernels.matmul import cpu as matmul_cpu  # matmul_blocked: the teaching kernel, outside the contract

    data = make_data()
    fast_jobs = numpy_jobs(cpu, data)
    ref_jobs = numpy_jobs(reference, data)
    for fn in fast_jobs.values():  # compile everything before timing anything
        fn()
    fast = {name: timeit(fn, repeats_for(name, args.repeats)) for name, fn in fast_jobs.items()}
    ref = {}
    if not args.no_reference:
        for name, fn in ref_jobs.items():
            if any(name.startswith(s) for s in REFERENCE_SKIP):
                ref[name] = "skipped"
            else:
                ref[name] = timeit(fn, 1, warmup=0)[0]
    torch_t = None if args.no_torch else torch_times(args.repeats)

    print(f"batch {BATCH}, float32, {os.cpu_count()} CPU cores; times in ms "
          f"(median of {args.repeats} after warm-up; min in brackets)")
    header = f"{'op':44s} {'reference':>9} {'fast':>9} {'(min)':>9} {'torch':>9} {'(min)':>9} {'fast/torch':>10}"
    print(header)
    print("-" * len(header))

    def row(name, r, f, fmin, t, tmin):
        ratio = f"{f / t:10.2f}" if isinstance(t, float) and t > 0 else f"{'-':>10}"
        print(f"{name:44s} {fmt_ms(r)} {fmt_ms(f)} {fmt_ms(fmin)} {fmt_ms(t)} {fmt_ms(tmin)} {ratio}")

    groups = []
    for name, _ in CONVS:
        groups.append((name, [f"{name} fwd", f"{name} bwd_input", f"{name} bwd_weight"]))
    for name, _ in POOLS:
        groups.append((name, [f"{name} fwd", f"{name} bwd"]))
    for fi, fo in FCS:
        n = f"fc {fi}->{fo}"
        groups.append((n, [f"{n} fwd x@W.T", f"{n} bwd gy@W", f"{n} bwd gy.T@x"]))
    def total(values):
        if all(isinstance(v, float) for v in values):
            return sum(values)
        return "skipped" if "skipped" in values else "-"

    for gname, names in groups:
        cols = [[], [], [], [], []]
        for name in names:
            f, fmin = fast[name]
            t, tmin = torch_t[name] if torch_t else ("-", "-")
            vals = (ref.get(name, "-"), f, fmin, t, tmin)
            row(name, *vals)
            for col, v in zip(cols, vals):
                col.append(v)
        row(f"{gname} total", *(total(c) for c in cols))
        print()

    # hand-written blocked matmul against BLAS
    print("matmul_blocked (Numba, tiled) vs matmul (BLAS), float32, ms (median)")
    rng = np.random.default_rng(1)
    for (m, kk, n) in [(64, 400, 120), (64, 120, 84), (256, 256, 256), (512, 512, 512)]:
        a = rng.standard_normal((m, kk), dtype=np.float32)
        b = rng.standard_normal((kk, n), dtype=np.float32)
        matmul_cpu.matmul_blocked(a, b)
        tb = timeit(lambda: matmul_cpu.matmul_blocked(a, b), args.repeats)[0]
        tl = timeit(lambda: cpu.matmul(a, b), args.repeats)[0]
        print(f"  ({m}x{kk}) @ ({kk}x{n}): blocked {tb * 1e3:8.3f}  BLAS {tl * 1e3:8.3f}  ratio {tb / tl:6.1f}x")


COLD_SNIPPET = textwrap.dedent("""
    import time
    t0 = time.perf_counter()
    import numpy as np
    import tinygrad_cv.kernels.cpu as k
    t1 = time.perf_counter()
    rng = np.random.default_rng(0)
    for (c, o, h, p) in [(1, 6, 28, 2), (6, 16, 14, 0)]:
        x = rng.standard_normal((64, c, h, h), dtype=np.float32)
        w = rng.standard_normal((o, c, 5, 5), dtype=np.float32)
        b = np.zeros(o, np.float32)
        y = k.conv2d_forward(x, w, b, (1, 1), (p, p), (1, 1), 1)
        k.conv2d_backward_input(y, w, x.shape, (1, 1), (p, p), (1, 1), 1)
        k.conv2d_backward_weight(x, y, w.shape, (1, 1), (p, p), (1, 1), 1)
    t2 = time.perf_counter()
    print(f"{t1 - t0:.3f} {t2 - t1:.3f}")
""")


def cold_start():
    removed = 0
    for pattern in ("cpu*.nbi", "cpu*.nbc"):  # the CPU twins' files: kernels/<family>/cpu*.py
        for f in glob.glob(str(ROOT / "tinygrad_cv" / "kernels" / "*" / "__pycache__" / pattern)):
            os.remove(f)
            removed += 1
    print(f"removed {removed} Numba cache files of the CPU twins")
    print("import tinygrad_cv.kernels.cpu + LeNet conv1 and conv2 forward+backward (float32, batch 64), "
          "each in a fresh process")
    for label in ("first-ever (compile)", "warm (cache hit)", "warm (cache hit)"):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", COLD_SNIPPET], capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stderr)
            return
        imp, work = map(float, proc.stdout.split())
        print(f"  {label:22s} import {imp:6.2f} s   conv fwd+bwd {work:6.2f} s   process wall {wall:6.2f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--cold-start", action="store_true")
    ap.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.torch_worker:
        run_torch_worker(args.repeats)
    elif args.cold_start:
        cold_start()
    else:
        main_table(args)


if __name__ == "__main__":
    main()
