"""Each convolution method of the CPU twin forced in turn, on the same layers, in one process.

    python bench/conv_methods.py                  # the 3x3 stride-1 layers of ResNets and VGGs
    python bench/conv_methods.py --repeats 15

The numbers behind the method rule of ``tinygrad_cv/kernels/conv/cpu.py``
(``_use_gemm``, ``_use_winograd``): for each layer, forward and
backward-input with each method forced (``direct``, ``gemm`` = chunked
im2col + GEMM, ``winograd`` = F(2x2, 3x3)), and the method the rule picks.
The methods take turns call by call (an A/B in one process, so the machine's
drift hits all of them alike); reported is the fastest of ``--repeats``
calls, in ms, float32, all cores. The weight gradient is left out: the rule
never gives it to Winograd.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinygrad_cv.kernels.conv import cpu as conv_cpu  # noqa: E402

# (batch, channels in, channels out, image size): 3x3, stride 1, padding 1
LAYERS = [
    (128, 16, 16, 32), (128, 32, 32, 16), (128, 64, 64, 8),      # ResNet-20 on 32x32
    (128, 16, 16, 28), (128, 32, 32, 14), (128, 64, 64, 7),      # ResNet-20 on 28x28
    (128, 64, 64, 16), (128, 128, 128, 8),                       # wider stages
    (32, 128, 128, 14), (32, 256, 256, 7),                       # ResNet-18 / VGG-like, batch 32
]
METHODS = ("direct", "gemm", "winograd")


def _time_once(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print("3x3 stride 1 padding 1, float32; fastest of", args.repeats, "alternating calls, ms (forward / input)")
    print(f"{'layer (batch)':<24}" + "".join(f"{m:>18}" for m in METHODS) + "   rule picks")
    for N, C, O, S in LAYERS:
        x = rng.standard_normal((N, C, S, S)).astype(np.float32)
        w = rng.standard_normal((O, C, 3, 3)).astype(np.float32)
        gy = rng.standard_normal((N, O, S, S)).astype(np.float32)
        calls = {}
        for m in METHODS:
            def fwd(m=m):
                conv_cpu._FORCE_STRATEGY = m
                conv_cpu.conv2d_forward(x, w, None, 1, 1, 1, 1)

            def inp(m=m):
                conv_cpu._FORCE_STRATEGY = m
                conv_cpu.conv2d_backward_input(gy, w, x.shape, 1, 1, 1, 1)
            calls[m] = (fwd, inp)
        best = {m: [np.inf, np.inf] for m in METHODS}
        for r in range(args.repeats + 1):  # round 0 compiles and warms up
            for m in METHODS:
                for part, fn in enumerate(calls[m]):
                    t = _time_once(fn)
                    if r:
                        best[m][part] = min(best[m][part], t)
        conv_cpu._FORCE_STRATEGY = None
        one, pad = (1, 1), (1, 1, 1, 1)
        picks = []
        for kind in ("forward", "input"):
            if conv_cpu._use_winograd(kind, C, O, 3, 3, one, one, 1, pad, S * S):
                picks.append("winograd")
            else:
                picks.append("gemm" if conv_cpu._use_gemm(kind, N, O, C, 3, 3, 1, S * S, True) else "direct")
        cells = "".join(f"{best[m][0] * 1e3:>9.2f} /{best[m][1] * 1e3:>6.2f}" for m in METHODS)
        print(f"{f'{C}->{O}, {S}x{S} ({N})':<24}{cells}   {' / '.join(picks)}", flush=True)


if __name__ == "__main__":
    main()
