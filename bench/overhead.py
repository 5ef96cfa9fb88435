"""Python overhead: microseconds per graph node when the arrays are tiny.

At batch 1 (or on scalars) the arithmetic takes nanoseconds and the time of a
training step is the framework's bookkeeping: creating the output tensor,
recording the node, walking the graph backwards, accumulating gradients. This
script measures it two ways, next to PyTorch (each framework in its own
process, alternating, best of ``--repeats``):

* ``chain``: y = x; then ``--nodes`` times y = y * 1.0001 + 0.5 on a
  1-element tensor (2 nodes per round), then y.sum().backward(); time per
  node, forward and backward separately;
* ``lenet``: one LeNet-5 training step (forward, backward, Adam) at batch 1,
  time per step and per recorded node.

    python bench/overhead.py
    python bench/overhead.py --profile       # where our per-node time goes (cProfile, top entries)
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

WORKER = r'''
import json, sys, time
import numpy as np
fw, nodes, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if fw == "torch":
    import torch
    torch.set_num_threads(2)
    T = lambda a, rg=False: torch.tensor(a, requires_grad=rg)
    from torch import nn, optim
    import torch.nn.functional as F
    def lenet():
        return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                             nn.Linear(84, 10))
else:
    import tinygrad_cv as tg
    from tinygrad_cv import optim
    import tinygrad_cv.functional as F
    from tinygrad_cv.models import LeNet5
    T = lambda a, rg=False: tg.tensor(a, requires_grad=rg)
    lenet = LeNet5
x = T(np.ones(1, np.float32), True)
fwd, bwd = [], []
for _ in range(reps):
    t0 = time.perf_counter()
    y = x
    for _ in range(nodes // 2):
        y = y * 1.0001 + 0.5
    s = y.sum()
    t1 = time.perf_counter()
    s.backward()
    t2 = time.perf_counter()
    fwd.append(t1 - t0); bwd.append(t2 - t1)
    x.grad = None
model = lenet()
opt = optim.Adam(model.parameters(), lr=1e-3)
xi = T(np.random.default_rng(0).standard_normal((1, 1, 28, 28)).astype(np.float32))
yi = T(np.array([3]))
steps = []
for _ in range(reps + 3):
    t0 = time.perf_counter()
    loss = F.cross_entropy(model(xi), yi)
    opt.zero_grad()
    loss.backward()
    opt.step()
    steps.append(time.perf_counter() - t0)
print(json.dumps(dict(fwd=min(fwd) / nodes, bwd=min(bwd) / nodes, step=min(steps[3:]))))
'''


def run(fw, nodes, reps):
    out = subprocess.run([sys.executable, "-c", WORKER, fw, str(nodes), str(reps)], capture_output=True, text=True)
    if out.returncode:
        sys.exit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3, help="alternating runs per framework")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    if args.profile:
        import cProfile
        import pstats
        import numpy as np
        import tinygrad_cv as tg
        x = tg.tensor(np.ones(1, np.float32), requires_grad=True)

        def chain():
            for _ in range(20):
                y = x
                for _ in range(args.nodes // 2):
                    y = y * 1.0001 + 0.5
                y.sum().backward()
        chain()  # warm-up
        prof = cProfile.Profile()
        prof.runcall(chain)
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
        return
    try:
        import torch  # noqa: F401
        frameworks = ["tinygrad_cv", "torch"]
    except ImportError:
        frameworks = ["tinygrad_cv"]
    best = {}
    for _ in range(args.repeats):
        for fw in frameworks:
            r = run(fw, args.nodes, 20)
            best[fw] = {k: min(v, best.get(fw, {}).get(k, v)) for k, v in r.items()}
    print(f"per graph node, 1-element tensors, chain of {args.nodes} nodes (best of {args.repeats} runs):")
    for fw in frameworks:
        b = best[fw]
        print(f"  {fw:12s} forward {b['fwd'] * 1e6:6.2f} us   backward {b['bwd'] * 1e6:6.2f} us   "
              f"LeNet-5 step at batch 1 {b['step'] * 1e3:6.2f} ms")
    if "torch" in best:
        o, t = best["tinygrad_cv"], best["torch"]
        print(f"  ratio        forward {o['fwd'] / t['fwd']:6.2f}x     backward {o['bwd'] / t['bwd']:6.2f}x     "
              f"LeNet-5 step {o['step'] / t['step']:6.2f}x")


if __name__ == "__main__":
    main()
