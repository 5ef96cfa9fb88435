"""Each convolution method of the CPU twin forced in turn, on the same layers, in one process.

    python bench/conv_methods.py
    python bench/conv_methods.py --repeats 15 --filter "3x3 s1"

The numbers behind the method rule of ``tinygrad_cv/kernels/conv/cpu.py``
(``_use_winograd``, ``_use_phases``, ``_use_gemm``) and chapter 14's tables:
for each layer, forward, backward-input and backward-weight with each method
forced (``direct``; ``gemm`` = chunked im2col + GEMM; ``winograd`` = F(2x2,
3x3), 3x3 stride-1 layers only, forward and input only; ``phase`` = the
stride-1 direct kernels on the phase-split input, strided layers only), and the method the rule
picks for each pass. The methods take turns call by call (an A/B in one
process, so the machine's drift hits them alike); reported is the fastest of
``--repeats`` calls in ms, float32, all cores.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinygrad_cv.kernels import shapes  # noqa: E402
from tinygrad_cv.kernels.conv import cpu as conv_cpu, cpu_winograd  # noqa: E402

# (name, batch, channels in, channels out, image size, kernel, stride, padding, groups)
LAYERS = [
    ("3x3 s2 16->32, 28x28", 128, 16, 32, 28, 3, 2, 1, 1),
    ("1x1 s2 16->32, 28x28", 128, 16, 32, 28, 1, 2, 0, 1),
    ("7x7 s2 3->64, 56x56", 32, 3, 64, 56, 7, 2, 3, 1),
    ("dw 3x3 s2 32, 28x28", 128, 32, 32, 28, 3, 2, 1, 32),
    ("3x3 s2 8->16, 28x28", 128, 8, 16, 28, 3, 2, 1, 1),
    ("3x3 s2 16->32, 32x32", 128, 16, 32, 32, 3, 2, 1, 1),
    ("3x3 s2 32->64, 16x16", 128, 32, 64, 16, 3, 2, 1, 1),
    ("3x3 s2 32->32, 16x16", 128, 32, 32, 16, 3, 2, 1, 1),
    ("7x7 s2 16->16, 28x28", 128, 16, 16, 28, 7, 2, 0, 1),
    ("5x5 s2 32->32, 28x28", 128, 32, 32, 28, 5, 2, 2, 1),
    ("3x3 s2 64->128, 16x16", 128, 64, 128, 16, 3, 2, 1, 1),
    ("3x3 s1 16->16, 32x32", 128, 16, 16, 32, 3, 1, 1, 1),
    ("3x3 s1 16->16, 28x28", 128, 16, 16, 28, 3, 1, 1, 1),
    ("3x3 s1 32->32, 16x16", 128, 32, 32, 16, 3, 1, 1, 1),
    ("3x3 s1 32->32, 14x14", 128, 32, 32, 14, 3, 1, 1, 1),
    ("3x3 s1 64->64, 8x8", 128, 64, 64, 8, 3, 1, 1, 1),
    ("3x3 s1 64->64, 7x7", 128, 64, 64, 7, 3, 1, 1, 1),
    ("3x3 s1 64->64, 16x16", 128, 64, 64, 16, 3, 1, 1, 1),
    ("3x3 s1 64->64, 28x28", 32, 64, 64, 28, 3, 1, 1, 1),
    ("3x3 s1 128->128, 8x8", 128, 128, 128, 8, 3, 1, 1, 1),
    ("3x3 s1 128->128, 14x14", 32, 128, 128, 14, 3, 1, 1, 1),
    ("3x3 s1 256->256, 7x7", 32, 256, 256, 7, 3, 1, 1, 1),
    ("1x1 s1 64->64, 14x14", 128, 64, 64, 14, 1, 1, 0, 1),
    ("5x5 s1 6->16, 14x14", 128, 6, 16, 14, 5, 1, 0, 1),
]
METHODS = ("direct", "gemm", "winograd", "phase")
PASSES = ("forward", "input", "weight")


def picks(N, C, O, S, k, s, p, g):
    """The method the rule picks for each pass."""
    stride, dil, pad4 = (s, s), (1, 1), (p, p, p, p)
    OH = shapes.conv_out_hw((S, S), (k, k), stride, pad4, dil)[0]
    out = []
    for kind in PASSES:
        if conv_cpu._use_winograd(kind, C, O, k, k, stride, dil, g, pad4, OH * OH):
            out.append("winograd")
        elif conv_cpu._use_phases(kind, O, C // g, k, k, stride, g):
            out.append("phase")
        else:
            out.append("gemm" if conv_cpu._use_gemm(kind, N, O, C // g, k, k, g, OH * OH, s == 1) else "direct")
    return out


def measure(layer, repeats, rng):
    """{method: [ms forward, input, weight]} (nan where a method does not apply)."""
    _, N, C, O, S, k, s, p, g = layer
    x = rng.standard_normal((N, C, S, S)).astype(np.float32)
    w = rng.standard_normal((O, C // g, k, k)).astype(np.float32)
    y = conv_cpu.conv2d_forward(x, w, None, s, p, 1, g)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    calls = [lambda: conv_cpu.conv2d_forward(x, w, None, s, p, 1, g),
             lambda: conv_cpu.conv2d_backward_input(gy, w, x.shape, s, p, 1, g),
             lambda: conv_cpu.conv2d_backward_weight(x, gy, w.shape, s, p, 1, g)]
    wino = cpu_winograd.eligible(k, k, (s, s), (1, 1), g, (p, p, p, p))
    best = {m: [np.inf] * 3 for m in METHODS}
    for r in range(repeats + 1):  # round 0 compiles and warms up
        for m in METHODS:
            for part, fn in enumerate(calls):
                if (m == "winograd" and (not wino or part == 2)) or (m == "phase" and s == 1):
                    best[m][part] = np.nan
                    continue
                conv_cpu._FORCE_STRATEGY = m
                t = time.perf_counter()
                fn()
                t = time.perf_counter() - t
                conv_cpu._FORCE_STRATEGY = None
                if r:
                    best[m][part] = min(best[m][part], t * 1e3)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--filter", default=None, help="only layers whose name contains this")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"float32, fastest of {args.repeats} alternating calls; ms forward / input / weight")
    print(f"{'layer':<24}{'batch':>6}" + "".join(f"{m:>22}" for m in METHODS) + "   rule picks")
    for layer in LAYERS:
        if args.filter and args.filter not in layer[0]:
            continue
        best = measure(layer, args.repeats, rng)

        def cell(ms):
            return " / ".join("-" if np.isnan(v) else f"{v:.1f}" for v in ms)
        print(f"{layer[0]:<24}{layer[1]:>6}" + "".join(f"{cell(best[m]):>22}" for m in METHODS)
              + "   " + " / ".join(picks(*layer[1:])), flush=True)


if __name__ == "__main__":
    main()
