"""Cold start: how long the first LeNet-5 training step takes when no kernel is compiled yet.

Each run is a fresh process with ``NUMBA_CACHE_DIR`` pointing at a folder of
its own: the first run finds it empty (every kernel is compiled, as on a new
machine or after an upgrade), the next runs find it filled (kernels are
loaded from the cache). Reported per run: the import, the first and the
second training step (LeNet-5, ReLU/max-pool, batch 64, Adam, float32), and
what ``kernels.jit.compile_notice`` counted.

    python bench/cold_start.py                  # one cold run, then two warm ones
    python bench/cold_start.py --batch-size 256
    python bench/cold_start.py --kernels        # also: seconds per compiled kernel, slowest first

``--kernels`` lists, for the cold run, every outermost compilation (a kernel
called from Python) with its time, and under it the helpers and library
functions it compiled on the way (the same "numba:compile" events that
``compile_notice`` counts): where a first step's seconds go.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time

SNIPPET = textwrap.dedent("""
    import json, sys, time
    t0 = time.perf_counter()
    import numpy as np
    import tinygrad_cv as tg
    import tinygrad_cv.functional as F
    from tinygrad_cv import optim
    from tinygrad_cv.kernels.jit import compile_notice
    from tinygrad_cv.models import LeNet5
    t1 = time.perf_counter()
    batch = int(sys.argv[1])
    tg.manual_seed(0)
    model = LeNet5()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = tg.from_numpy(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32))
    y = tg.from_numpy(rng.integers(0, 10, batch))
    from numba.core import event
    stack, kernels = [], []
    class Timer(event.Listener):  # every compilation, nested ones inside their caller's
        def on_start(self, ev):
            stack.append((time.perf_counter(), []))
        def on_end(self, ev):
            start, inner = stack.pop()
            fn = ev.data["dispatcher"].py_func
            entry = [f"{fn.__module__}.{fn.__qualname__}", time.perf_counter() - start, inner]
            (stack[-1][1] if stack else kernels).append(entry)
    event.register("numba:compile", Timer())
    steps = []
    with compile_notice(write=lambda line: None) as notice:
        for _ in range(2):
            s = time.perf_counter()
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()
            steps.append(time.perf_counter() - s)
    print(json.dumps(dict(imp=t1 - t0, first=steps[0], second=steps[1], count=notice.count, seconds=notice.seconds,
                          kernels=kernels)))
""")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--warm-runs", type=int, default=2)
    ap.add_argument("--kernels", action="store_true", help="seconds per compiled kernel in the cold run")
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory(prefix="tinygrad_cv-cold-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        print(f"LeNet-5 training steps (batch {args.batch_size}, Adam, float32), each run a fresh process with "
              f"its own Numba cache folder")
        for label in ["cold (empty cache)"] + ["warm (cache filled)"] * args.warm_runs:
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", SNIPPET, str(args.batch_size)], capture_output=True,
                                  text=True, cwd=root, env=env)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                sys.exit(proc.stderr)
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"  {label:20s} import {r['imp']:5.2f} s   first step {r['first']:6.2f} s   second step "
                  f"{r['second'] * 1e3:6.1f} ms   compiled {r['count']:3d} kernels in {r['seconds']:5.1f} s   "
                  f"process {wall:5.1f} s")
            if args.kernels and r["kernels"]:
                print("    compiled (outermost kernels, slowest first; under each, what it compiled on the way "
                      "over 0.1 s):")
                for name, sec, inner in sorted(r["kernels"], key=lambda k: -k[1]):
                    print(f"      {sec:6.2f} s  {name}")
                    for iname, isec, _ in sorted(inner, key=lambda k: -k[1]):
                        if isec >= 0.1:
                            print(f"        {isec:6.2f} s  {iname}")


if __name__ == "__main__":
    main()
