"""Per-operation GPU timings: tinygrad_cv's CUDA kernels next to PyTorch on the same GPU.

Forward + backward of LeNet-5's layers at a given batch size, plus the fused
optimizer step and the loss, in milliseconds (median of ``--repeat`` runs,
after warm-up, with ``synchronize()`` around each run so the GPU's work is
counted, not just the launches). PyTorch runs in a separate process.

    python bench/gpu_kernels.py                  # batch 64
    python bench/gpu_kernels.py --batch 256
    python bench/gpu_kernels.py --quick          # tiny shapes: a smoke test (also on the simulator)

Needs a GPU (or ``NUMBA_ENABLE_CUDASIM=1`` with ``--quick``, where timings mean nothing).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import time

import numpy as np


def cases(batch, quick=False):
    """name -> input shapes; both frameworks build the same computations from these."""
    if quick:  # tiny stand-ins with the same names: only checks that everything runs
        return {
            "conv 1->6 5x5 p2 28x28": dict(x=(1, 1, 6, 6), w=(2, 1, 3, 3), pad=1),
            "maxpool 2x2 6x28x28": dict(x=(1, 2, 4, 4), pool=2),
            "fc 400->120": dict(x=(2, 8), w=(3, 8)),
            "cross-entropy 10 classes": dict(x=(2, 10), classes=10),
            "adam step (LeNet's 61,706 params)": dict(params=50),
        }
    return {
        "conv 1->6 5x5 p2 28x28": dict(x=(batch, 1, 28, 28), w=(6, 1, 5, 5), pad=2),
        "conv 6->16 5x5 14x14": dict(x=(batch, 6, 14, 14), w=(16, 6, 5, 5), pad=0),
        "maxpool 2x2 6x28x28": dict(x=(batch, 6, 28, 28), pool=2),
        "maxpool 2x2 16x10x10": dict(x=(batch, 16, 10, 10), pool=2),
        "fc 400->120": dict(x=(batch, 400), w=(120, 400)),
        "cross-entropy 10 classes": dict(x=(batch, 10), classes=10),
        "adam step (LeNet's 61,706 params)": dict(params=61_706),
    }


def _timeit(fn, sync, repeat, warmup=3):
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def run_ours(batch, repeat, quick=False):
    import tinygrad_cv as tg
    import tinygrad_cv.functional as F
    from tinygrad_cv import optim

    rng = np.random.default_rng(0)
    out = {}
    for name, c in cases(batch, quick).items():
        if "params" in c:
            p = tg.tensor(rng.standard_normal(c["params"]).astype(np.float32), device="cuda", requires_grad=True)
            p.grad = tg.tensor(rng.standard_normal(c["params"]).astype(np.float32), device="cuda")
            opt = optim.Adam([p], lr=1e-3)
            fn = opt.step
        else:
            x = tg.tensor(rng.standard_normal(c["x"]).astype(np.float32), device="cuda", requires_grad=True)
            if "pool" in c:
                def f(x=x, k=c["pool"]):
                    return F.max_pool2d(x, k)
            elif "classes" in c:
                t = tg.tensor(rng.integers(0, c["classes"], c["x"][0]), device="cuda")

                def f(x=x, t=t):
                    return F.cross_entropy(x, t)
            elif len(c["x"]) == 2:
                w = tg.tensor(rng.standard_normal(c["w"]).astype(np.float32), device="cuda", requires_grad=True)

                def f(x=x, w=w):
                    return F.linear(x, w)
            else:
                w = tg.tensor(rng.standard_normal(c["w"]).astype(np.float32), device="cuda", requires_grad=True)

                def f(x=x, w=w, pad=c["pad"]):
                    return F.conv2d(x, w, padding=pad)
            y = f()
            g = tg.tensor(rng.standard_normal(y.shape).astype(np.float32), device="cuda")

            def fn(f=f, g=g):
                f().backward(g)
        out[name] = _timeit(fn, tg.cuda.synchronize, repeat)
    return out


def run_torch(batch, repeat, quick=False):
    import torch
    import torch.nn.functional as tF

    rng = np.random.default_rng(0)
    dev = "cuda"
    out = {}
    for name, c in cases(batch, quick).items():
        if "params" in c:
            p = torch.tensor(rng.standard_normal(c["params"]).astype(np.float32), device=dev, requires_grad=True)
            p.grad = torch.tensor(rng.standard_normal(c["params"]).astype(np.float32), device=dev)
            opt = torch.optim.Adam([p], lr=1e-3)
            fn = opt.step
        else:
            x = torch.tensor(rng.standard_normal(c["x"]).astype(np.float32), device=dev, requires_grad=True)
            if "pool" in c:
                def f(x=x, k=c["pool"]):
                    return tF.max_pool2d(x, k)
            elif "classes" in c:
                t = torch.tensor(rng.integers(0, c["classes"], c["x"][0]), device=dev)

                def f(x=x, t=t):
                    return tF.cross_entropy(x, t)
            elif len(c["x"]) == 2:
                w = torch.tensor(rng.standard_normal(c["w"]).astype(np.float32), device=dev, requires_grad=True)

                def f(x=x, w=w):
                    return tF.linear(x, w)
            else:
                w = torch.tensor(rng.standard_normal(c["w"]).astype(np.float32), device=dev, requires_grad=True)

                def f(x=x, w=w, pad=c["pad"]):
                    return tF.conv2d(x, w, padding=pad)
            y = f()
            g = torch.tensor(rng.standard_normal(tuple(y.shape)).astype(np.float32), device=dev)

            def fn(f=f, g=g):
                f().backward(g)
        out[name] = _timeit(fn, torch.cuda.synchronize, repeat)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="batch 2, 2 repeats: checks the script runs")
    ap.add_argument("--child", choices=["ours", "torch"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.repeat = 2
    if args.child:
        run = run_ours if args.child == "ours" else run_torch
        print(json.dumps(run(args.batch, args.repeat, args.quick)))
        return
    import tinygrad_cv as tg

    tg.cuda.require()

    def child(which):
        cmd = [sys.executable, __file__, "--child", which, "--batch", str(args.batch), "--repeat", str(args.repeat)]
        cmd += ["--quick"] if args.quick else []
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            raise RuntimeError(f"{which} failed:\n{res.stderr}")
        return json.loads(res.stdout.strip().splitlines()[-1])

    ours = child("ours")
    theirs = None
    if importlib.util.find_spec("torch") is not None:
        probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
                               capture_output=True, text=True)
        theirs = child("torch") if probe.stdout.strip() == "True" else None
    if theirs is None:
        print("(no PyTorch with CUDA here: printing tinygrad_cv only)")
    sim = " (CUDA simulator: timings mean nothing)" if tg.cuda.is_simulator() else ""
    print(f"forward+backward, ms, batch {args.batch}, float32, median of {args.repeat}{sim}")
    print(f"{'op':36s} {'tinygrad_cv':>12s} {'PyTorch':>9s} {'ratio':>7s}")
    for name, ms in ours.items():
        line = f"{name:36s} {ms:12.3f}"
        if theirs:
            line += f" {theirs[name]:9.3f} {ms / theirs[name]:6.2f}x"
        print(line)


if __name__ == "__main__":
    main()
