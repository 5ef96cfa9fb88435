"""Hypothesis strategies shared by the gradient tests.

Finite differences only agree with a correct gradient where the function is
smooth, so values are drawn away from the points where it is not:

- kinks (relu/abs/leaky_relu at 0, clip at its bounds) by a margin of 0.1 —
  far more than gradcheck's step of 1e-6;
- ties (max/amax/maximum) by drawing *distinct* values on a grid, so moving
  one entry by 1e-6 never changes which one is the largest;
- domains (log, sqrt, pow bases) by drawing strictly positive values, and
  divisors with |b| >= 0.5 so 1/b stays well conditioned.

Shapes are small (sides 1-4, at most ``max_numel`` elements) because
gradcheck evaluates the function twice per input element.

A large share of the arrays are handed over as *non-contiguous* views
(strided, transposed, reversed): operations that silently assume C order, or
that write through a view of their input, fail on those.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinygrad_cv import Tensor, from_numpy

MAX_NUMEL = 64


# --- shapes --------------------------------------------------------------------------
@st.composite
def shapes(draw, min_dims=0, max_dims=4, min_side=1, max_side=4, allow_empty=False, max_numel=MAX_NUMEL):
    """A shape with ``min_dims..max_dims`` axes of size ``min_side..max_side``.

    The sides are drawn one after the other within what is left of
    ``max_numel``, so four axes stay cheap. With ``allow_empty`` about one
    shape in six has a zero-size axis.
    """
    ndim = draw(st.integers(min_dims, max_dims))
    shape, budget = [], max_numel
    for _ in range(ndim):
        n = draw(st.integers(min_side, max(min_side, min(max_side, budget))))
        shape.append(n)
        budget = max(budget // n, 1)
    if allow_empty and ndim and draw(st.integers(0, 5)) == 0:
        shape[draw(st.integers(0, ndim - 1))] = 0
    return tuple(shape)


@st.composite
def broadcastable_shapes(draw, n=2, min_dims=0, max_dims=4, max_numel=MAX_NUMEL, allow_empty=False):
    """``n`` shapes that broadcast together.

    Each is a base shape with some leading axes dropped and some axes set to
    1, independently, so either operand (or both) may be the one that is
    broadcast, along different axes.
    """
    base = draw(shapes(min_dims=min_dims, max_dims=max_dims, max_numel=max_numel, allow_empty=allow_empty))
    out = []
    for _ in range(n):
        drop = draw(st.integers(0, len(base)))
        kept = base[drop:]
        ones = draw(st.lists(st.booleans(), min_size=len(kept), max_size=len(kept)))
        out.append(tuple(1 if one else k for one, k in zip(ones, kept)))
    return tuple(out)


@st.composite
def reduction_dims(draw, ndim):
    """``dim`` for a reduction over a tensor with ``ndim`` axes: None, an int or a tuple (negatives too)."""
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return None
    if ndim == 0:  # a 0-d tensor accepts dim 0 / -1, as in PyTorch
        return draw(st.sampled_from([0, -1]))
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    axes = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    return tuple(a - ndim if draw(st.booleans()) else a for a in axes)


def normalize_dims(dim, ndim):
    """NumPy's ``axis`` for a reduction ``dim``: a tuple of non-negative axes (None for all)."""
    if dim is None or ndim == 0:
        return None
    dims = (dim,) if isinstance(dim, int) else dim
    return tuple(d % ndim for d in dims)


# --- values ------------------------------------------------------------------------
def _intervals(lo, hi, avoid, margin):
    """[lo, hi] minus the open windows (k - margin, k + margin) around each point k of ``avoid``."""
    pieces = [(lo, hi)]
    for k in sorted(avoid):
        pieces = [p for a, b in pieces for p in ((a, min(b, k - margin)), (max(a, k + margin), b)) if p[0] <= p[1]]
    return pieces


def floats_array(shape, lo=-2.0, hi=2.0, avoid=(), margin=0.1):
    """float64 array with entries in [lo, hi], each at least ``margin`` from every point in ``avoid``.

    The allowed set is built as a union of intervals rather than by
    filtering (hypothesis favours values such as 0, which a filter would keep
    rejecting). Entries may repeat — hypothesis likes to fill arrays with one
    value — so use :func:`distinct_array` where ties matter.
    """
    pieces = _intervals(lo, hi, avoid, margin)
    if not pieces:
        raise ValueError(f"nothing left of [{lo}, {hi}] away from {avoid}")
    elements = st.one_of(*[st.floats(a, b, allow_nan=False, allow_infinity=False) for a, b in pieces])
    return hnp.arrays(np.float64, shape, elements=elements)


def _grid(lo, hi, avoid, margin, step):
    # an irrational offset keeps the values off "nice" numbers such as 0.5
    g = np.arange(lo, hi, step) + step * (np.sqrt(2) - 1)
    g = g[g <= hi]
    for k in avoid:
        g = g[np.abs(g - k) >= margin]
    return g


@st.composite
def distinct_array(draw, shape, lo=-2.0, hi=2.0, avoid=(), margin=0.1, step=1e-2):
    """float64 array whose entries are pairwise at least ``step`` apart (no ties) and off ``avoid``.

    The values are points of a grid with spacing ``step``: strictly increasing
    grid positions (gaps of 1-3 points), then scattered over the array by a
    random permutation — no rejection sampling.
    """
    grid = _grid(lo, hi, avoid, margin, step)
    numel = int(np.prod(shape))
    gaps = draw(st.lists(st.integers(1, 3), min_size=numel, max_size=numel))
    pos = np.cumsum(gaps, dtype=np.int64) - 1
    span = int(pos[-1]) + 1 if numel else 0
    if span > grid.size:
        raise ValueError(f"{shape} needs more than the {grid.size} distinct grid values in [{lo}, {hi}]")
    pos += draw(st.integers(0, grid.size - span))
    order = draw(st.permutations(range(numel)))
    return grid[pos[np.array(order, dtype=np.int64)]].reshape(shape) if numel else np.zeros(shape)


def positive_array(shape, lo=0.5, hi=2.5):
    """Strictly positive entries: the domain of log, sqrt and pow with a real exponent."""
    return floats_array(shape, lo, hi)


def divisor_array(shape):
    """Entries with 0.5 <= |b| <= 2: 1/b and a/b^2 are well conditioned."""
    return floats_array(shape, -2.0, 2.0, avoid=(0.0,), margin=0.5)


# --- memory layouts ------------------------------------------------------------------
LAYOUTS = ("contiguous", "strided", "transposed", "reversed")


def with_layout(arr, layout):
    """A view holding the same values as ``arr`` with the given memory layout.

    - ``strided``: every other element of a larger buffer (step 2, offset 1);
    - ``transposed``: the transpose of a C-ordered transpose (Fortran order);
    - ``reversed``: a flipped copy flipped back (negative strides).
    """
    arr = np.asarray(arr, dtype=np.float64)
    if layout == "contiguous" or arr.ndim == 0:
        return np.array(arr, copy=True)
    if layout == "strided":
        big = np.full(tuple(2 * n for n in arr.shape), np.nan)
        view = big[(slice(1, None, 2),) * arr.ndim]
        view[...] = arr
        return view
    if layout == "transposed":
        return np.ascontiguousarray(arr.T).T
    if layout == "reversed":
        axes = tuple(range(arr.ndim))
        return np.flip(np.flip(arr, axes).copy(), axes)
    raise ValueError(layout)


@st.composite
def tensors(draw, values, requires_grad=True, layouts=LAYOUTS):
    """A float64 Tensor holding an array drawn from ``values``, in a random memory layout.

    The tensor wraps the (possibly non-contiguous) view itself, without a
    copy, so the operations see the strides.
    """
    arr = draw(values)
    t = from_numpy(with_layout(arr, draw(st.sampled_from(layouts))))
    return t.requires_grad_() if requires_grad else t


def as_tensor(arr, requires_grad=True):
    """A contiguous float64 leaf (for values computed in a test)."""
    return Tensor(np.asarray(arr, dtype=np.float64), dtype=np.float64, requires_grad=requires_grad)
