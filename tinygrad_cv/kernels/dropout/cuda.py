"""Dropout masks, CUDA twin: xoroshiro128+ generators on the device, one per thread.

The mask is drawn on the GPU (no host-to-device copy of a mask per step).
Choice: the generator states live in a module-level cache sized for the
largest launch grid so far, and every call **reseeds** them on the device
from a 64-bit key (thread i starts from SplitMix64(SplitMix64(seed) ^ i))
instead of advancing them. So the mask is a pure function of (seed, shape,
launch grid): the same seed gives the same mask for the same shape on the
same kind of device (the grid differs between the simulator and a GPU).

GPU masks are NOT the CPU twin's masks: the CPU twin draws its uniforms
from NumPy's generator, this twin from xoroshiro128+ streams seeded by one
integer drawn from that generator. Both are reproducible under
``manual_seed``, each on its own device; a model trained with dropout on the
GPU does not repeat its CPU run bit for bit.
"""
from __future__ import annotations

import numbers

import numpy as np
from numba import cuda, uint64
from numba.cuda.random import init_xoroshiro128p_state, xoroshiro128p_dtype, xoroshiro128p_uniform_float64

from ..cuda_common import grid_1d, is_simulator

_MASK64 = (1 << 64) - 1
# RNG states, one per thread of the largest grid launched so far; reused by every call
_rng_cache: dict = {"states": None}


def _splitmix64(z: int) -> int:
    """One SplitMix64 output for ``z``: spreads nearby seeds (1, 2, 3...) over the 64-bit space."""
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _rng_states(n: int):
    if is_simulator() and not _rng_cache.get("warm"):
        # The simulator compiles numba.cuda.random's helpers (CPU object mode) on first use.
        # Doing it once here, on one thread, is ~5x faster than letting a block's 32
        # simulated threads all hit the compiler at the same time in the first launch.
        warm = cuda.device_array(1, dtype=xoroshiro128p_dtype)
        init_xoroshiro128p_state(warm, 0, np.uint64(0))
        xoroshiro128p_uniform_float64(warm, 0)
        _rng_cache["warm"] = True
    states = _rng_cache["states"]
    if states is None or states.shape[0] < n:
        states = _rng_cache["states"] = cuda.device_array(n, dtype=xoroshiro128p_dtype)
    return states


@cuda.jit
def _dropout_kernel(states, key, p, scale, out):
    """out[k] = scale where this thread's next uniform is >= p, else 0 (a grid-stride loop)."""
    i = cuda.grid(1)
    # reseed this thread's xoroshiro128+ state on the device (SplitMix64 of key ^ i, inside
    # init_xoroshiro128p_state): no host-side state setup and no host->device copy per call
    init_xoroshiro128p_state(states, i, key ^ uint64(i))
    for k in range(i, out.shape[0], cuda.gridsize(1)):
        # float64 uniforms for either dtype: P(u >= p) = 1 - p to 2**-53, like F.dropout
        if xoroshiro128p_uniform_float64(states, i) >= p:
            out[k] = scale
        else:
            out[k] = 0


def dropout_mask(shape, p, dtype, seed):
    """Inverted-dropout mask made on the device (see the contract); ``seed`` an int or a NumPy Generator.

    From a Generator one integer is drawn (``integers(2**63)``): the key of
    this mask. Then one launch.
    """
    if isinstance(seed, np.random.Generator):
        seed = int(seed.integers(2**63))
    if isinstance(shape, numbers.Integral):
        shape = (int(shape),)
    shape = tuple(int(s) for s in shape)
    dtype = np.dtype(dtype)
    out = cuda.device_array(shape, dtype=dtype)
    n = out.size
    if n == 0:
        return out
    blocks, threads = grid_1d(n)
    states = _rng_states(blocks * threads)
    scale = dtype.type(0.0 if p == 1.0 else 1.0 / (1.0 - p))
    key = np.uint64(_splitmix64(int(seed) & _MASK64))
    _dropout_kernel[blocks, threads](states, key, np.float64(p), scale, out.reshape(n))
    return out
