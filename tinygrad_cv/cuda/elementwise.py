"""Elementwise CUDA kernels: one thread per output element, any strides.

A GPU runs thousands of threads at once. An elementwise operation is the
simplest thing to give them: thread ``t`` computes output element ``t`` (and,
in a *grid-stride loop*, ``t + T``, ``t + 2T``, ... with ``T`` the number of
threads launched), so one launch covers any size.

Operands are described NumPy-style, as a flat device buffer plus an offset
and per-axis strides counted in elements. Broadcasting is a stride of 0, a
transpose is permuted strides, a slice is an offset and larger strides - all
without copying. The *strided* kernels turn the flat output index back into
coordinates (``k = r % n; r //= n`` per axis, last axis first) and the
coordinates into each operand's offset. When every operand is contiguous and
of the output's shape, the *flat* kernels skip that arithmetic.

Shapes are padded in front to ``MAXD`` axes (size 1, stride 0), so one
compiled kernel serves every rank.

Each operation is a tiny ``device`` function (``a + b``, ``exp(a)``) that the
kernel factories wrap; Numba compiles one kernel per operation and dtype
combination, on first use.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from numba import cuda

from . import is_simulator
from .launch import grid_1d

MAXD = 6  # the most axes a CUDA array may have

if is_simulator():
    # the simulator runs kernels as Python: math.log(0) would raise where a GPU gives -inf
    _exp, _log, _sqrt, _tanh = np.exp, np.log, np.sqrt, np.tanh
else:
    _exp, _log, _sqrt, _tanh = math.exp, math.log, math.sqrt, math.tanh


def _device(f):
    return cuda.jit(device=True)(f)


# --- the operations, one line each --------------------------------------------------
def _add(a, b):
    return a + b


def _sub(a, b):
    return a - b


def _mul(a, b):
    return a * b


def _div(a, b):
    return a / b


def _pow(a, b):
    return a**b


def _maximum(a, b):
    return a if (a > b or a != a) else b  # NaN wins, as np.maximum


def _minimum(a, b):
    return a if (a < b or a != a) else b


def _mod(a, b):
    return a % b  # Python's rule, as NumPy: the result has the sign of b


def _floordiv(a, b):
    return a // b


def _gt(a, b):
    return a > b


def _ge(a, b):
    return a >= b


def _lt(a, b):
    return a < b


def _le(a, b):
    return a <= b


def _eq(a, b):
    return a == b


def _ne(a, b):
    return a != b


def _and(a, b):
    return bool(a) and bool(b)


def _or(a, b):
    return bool(a) or bool(b)


def _identity(a):
    return a


def _neg(a):
    return -a


def _exp_(a):
    return _exp(a)


def _log_(a):
    return _log(a)


def _sqrt_(a):
    return _sqrt(a)


def _tanh_(a):
    return _tanh(a)


def _abs(a):
    return abs(a)


def _sign(a):
    # written with a * 0 so the result keeps a's type (and NaN stays NaN)
    if a > 0:
        return a * 0 + 1
    if a < 0:
        return a * 0 - 1
    return a * 0


def _isnan(a):
    return a != a


def _isfinite(a):
    return a - a == 0  # inf - inf and nan - nan are nan


def _not(a):
    return not a


BINARY = {
    "add": _add, "subtract": _sub, "multiply": _mul, "true_divide": _div, "divide": _div, "power": _pow,
    "remainder": _mod, "floor_divide": _floordiv,
    "maximum": _maximum, "minimum": _minimum, "greater": _gt, "greater_equal": _ge, "less": _lt,
    "less_equal": _le, "equal": _eq, "not_equal": _ne, "logical_and": _and, "logical_or": _or,
    "bitwise_and": _and, "bitwise_or": _or,
}
UNARY = {
    "copy": _identity, "negative": _neg, "exp": _exp_, "log": _log_, "sqrt": _sqrt_, "tanh": _tanh_,
    "absolute": _abs, "sign": _sign, "isnan": _isnan, "isfinite": _isfinite, "logical_not": _not,
    "invert": _not,
}


# --- kernel factories ------------------------------------------------------------------
@functools.cache
def unary_kernels(name):
    fn = _device(UNARY[name])

    @cuda.jit
    def flat(x, out):
        i = cuda.grid(1)
        step = cuda.gridsize(1)
        while i < out.size:
            out[i] = fn(x[i])
            i += step

    @cuda.jit
    def strided(x, xo, xs, out, shape):
        i = cuda.grid(1)
        step = cuda.gridsize(1)
        while i < out.size:
            r = i
            ox = xo
            for d in range(MAXD - 1, -1, -1):
                k = r % shape[d]
                r = r // shape[d]
                ox += k * xs[d]
            out[i] = fn(x[ox])
            i += step

    return flat, strided


@functools.cache
def binary_kernels(name):
    fn = _device(BINARY[name])

    @cuda.jit
    def flat_aa(a, b, out):
        i = cuda.grid(1)
        step = cuda.gridsize(1)
        while i < out.size:
            out[i] = fn(a[i], b[i])
            i += step

    @cuda.jit
    def flat_as(a, s, out):
        i = cuda.grid(1)
        step = cuda.gridsize(1)
        while i < out.size:
            out[i] = fn(a[i], s)
            i += step

    @cuda.jit
    def flat_sa(s, b, out):
        i = cuda.grid(1)
        step = cuda.gridsize(1)
        while i < out.size:
            out[i] = fn(s, b[i])
            i += step

    @cuda.jit
    def strided_aa(a, ao, as_, b, bo, bs, out, shape):
        i = cuda.grid(1)
        step = cuda.gridsize(1)
        while i < out.size:
            r = i
            oa = ao
            ob = bo
            for d in range(MAXD - 1, -1, -1):
                k = r % shape[d]
                r = r // shape[d]
                oa += k * as_[d]
                ob += k * bs[d]
            out[i] = fn(a[oa], b[ob])
            i += step

    @cuda.jit
    def strided_as(a, ao, as_, s, out, shape):
        i = cuda.grid(1)
        step = cuda.gridsize(1)
        while i < out.size:
            r = i
            oa = ao
            for d in range(MAXD - 1, -1, -1):
                k = r % shape[d]
                r = r // shape[d]
                oa += k * as_[d]
            out[i] = fn(a[oa], s)
            i += step

    @cuda.jit
    def strided_sa(s, b, bo, bs, out, shape):
        i = cuda.grid(1)
        step = cuda.gridsize(1)
        while i < out.size:
            r = i
            ob = bo
            for d in range(MAXD - 1, -1, -1):
                k = r % shape[d]
                r = r // shape[d]
                ob += k * bs[d]
            out[i] = fn(s, b[ob])
            i += step

    return {"flat_aa": flat_aa, "flat_as": flat_as, "flat_sa": flat_sa,
            "strided_aa": strided_aa, "strided_as": strided_as, "strided_sa": strided_sa}


@cuda.jit
def _where_kernel(c, co, cs, a, ao, as_, b, bo, bs, out, shape):
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < out.size:
        r = i
        oc = co
        oa = ao
        ob = bo
        for d in range(MAXD - 1, -1, -1):
            k = r % shape[d]
            r = r // shape[d]
            oc += k * cs[d]
            oa += k * as_[d]
            ob += k * bs[d]
        out[i] = a[oa] if c[oc] else b[ob]
        i += step


@cuda.jit
def _copy_kernel(src, so, ss, dst, do, ds, shape, n):
    """dst[view] = src[view] for two strided views of one shape (``n`` elements)."""
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < n:
        r = i
        os_ = so
        od = do
        for d in range(MAXD - 1, -1, -1):
            k = r % shape[d]
            r = r // shape[d]
            os_ += k * ss[d]
            od += k * ds[d]
        dst[od] = src[os_]
        i += step


@cuda.jit
def _fill_kernel(out, value):
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < out.size:
        out[i] = value
        i += step


@cuda.jit
def _gather_axis_kernel(a, ao, as_, idx, out, shape, axis):
    """out[i] = a[coords of i, with coordinate ``axis`` replaced by idx[i]] (np.take_along_axis)."""
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < out.size:
        r = i
        oa = ao
        for d in range(MAXD - 1, -1, -1):
            k = r % shape[d]
            r = r // shape[d]
            oa += (idx[i] if d == axis else k) * as_[d]
        out[i] = a[oa]
        i += step


@cuda.jit
def _scatter_add_axis_kernel(src, idx, out, os_, shape, axis):
    """out[coords of i, with ``axis`` replaced by idx[i]] += src[i]; atomics make repeats add up."""
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < src.size:
        r = i
        o = 0
        for d in range(MAXD - 1, -1, -1):
            k = r % shape[d]
            r = r // shape[d]
            o += (idx[i] if d == axis else k) * os_[d]
        cuda.atomic.add(out, o, src[i])
        i += step


# --- launchers (plain device buffers and tuples in, nothing returned) --------------------
def launch(kernel, n, *args):
    if n:
        blocks, threads = grid_1d(n)
        kernel[blocks, threads](*args)


def fill(buf, value):
    launch(_fill_kernel, buf.size, buf, value)


def copy(src, so, ss, dst, do, ds, shape, n):
    launch(_copy_kernel, n, src, so, ss, dst, do, ds, shape, n)


def where(c, co, cs, a, ao, as_, b, bo, bs, out, shape):
    launch(_where_kernel, out.size, c, co, cs, a, ao, as_, b, bo, bs, out, shape)


def gather_axis(a, ao, as_, idx, out, shape, axis):
    launch(_gather_axis_kernel, out.size, a, ao, as_, idx, out, shape, axis)


def scatter_add_axis(src, idx, out, os_, shape, axis):
    launch(_scatter_add_axis_kernel, src.size, src, idx, out, os_, shape, axis)
