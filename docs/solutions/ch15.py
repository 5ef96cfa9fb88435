"""Chapter 15 — the GPU: reference solutions (run on a GPU or with NUMBA_ENABLE_CUDASIM=1)."""
import math

import numpy as np
from numba import cuda

T = 16   # threads per block: a power of two, for the tree


@cuda.jit
def block_max(x, out):
    sm = cuda.shared.array(T, np.float64)
    t = cuda.threadIdx.x
    acc = -math.inf                      # the identity of max (0 would beat negative inputs)
    k = t
    while k < x.size:                    # 1. each thread's own maximum, a block-stride loop
        acc = max(acc, x[k])
        k += T
    sm[t] = acc
    cuda.syncthreads()                   # every partial stored before anyone reads one
    s = T // 2
    while s > 0:                         # 2. the tree: log2(T) levels
        if t < s:
            sm[t] = max(sm[t], sm[t + s])
        cuda.syncthreads()               # outside the if: every thread reaches every barrier
        s //= 2
    if t == 0:
        out[0] = sm[0]
