"""The operations of ``CudaArray``: what NumPy's protocols run on the GPU.

NumPy hands ``np.add(a, b)``, ``a + b``, ``np.exp(a)``, ``np.add.reduce``
to ``CudaArray.__array_ufunc__`` (NEP 13) and ``np.sum``, ``np.where``,
``np.concatenate``, ... to ``__array_function__`` (NEP 18); both look the
implementation up in the tables of ``cuda/array_type.py``, and this module
fills them (at its end) as it is imported. The array's methods go the same
way (``a.sum()`` is ``np.sum(a)``), so each operation is written once, here.

Results follow NumPy's: the dtype of ``ufunc(a, b)`` is what NumPy gives for
arrays of those dtypes, with Python scalars "weak" (NEP 50), so
``float32_array * 2.0`` stays float32. A reduction arranges its input as
rows, ``(M, R)`` = (kept elements, reduced elements), and reduces each row
(``cuda/reduction.py``); ``a @ b`` is the tiled kernel of ``cuda/matmul.py``,
once per broadcast batch index.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from . import elementwise as ew
from . import matmul as mm
from . import reduction as rd
from .array_type import (FUNCTIONS, MAXD, UFUNC_METHODS, CudaArray, empty, from_device_array, full, norm_axes,
                         pad_axes)

__all__ = ["where", "scatter_add_along_axis"]


# ==========================================================================
# operands
# ==========================================================================
def _scalar_value(x):
    """A Python/NumPy scalar or 0-d host array as a Python scalar, else None."""
    if isinstance(x, (numbers.Number, np.generic)):
        return x
    if isinstance(x, np.ndarray):
        if x.ndim == 0:
            return x[()]
        raise TypeError(
            f"cannot combine a CUDA array with a CPU array of shape {x.shape}: move it to the GPU first "
            "(Tensor.to('cuda'))"
        )
    return None


def _as_operand(x, dtype):
    """Device operand of at least 0-d: scalars become one-element device arrays of ``dtype``."""
    if isinstance(x, CudaArray):
        return x
    v = _scalar_value(x)
    if v is None:
        raise TypeError(f"cannot combine a CUDA array with {type(x).__name__}")
    return full((), v, dtype)


def _probe_dtype(ufunc, *operands):
    """NumPy's result dtype for ``ufunc`` on these operands (Python scalars are 'weak', NEP 50)."""
    probes = [np.empty(0, o.dtype) if isinstance(o, CudaArray) else o for o in operands]
    return ufunc(*probes).dtype



# ==========================================================================
# elementwise
# ==========================================================================
def _unary(name, ufunc, x):
    out = empty(x.shape, _probe_dtype(ufunc, x))
    if x.size:
        flat, strided = ew.unary_kernels(name)
        if x._is_whole_buffer():
            ew.launch(flat, x.size, x.buf, out.buf)
        else:
            b, o, s = x._padded()
            ew.launch(strided, x.size, b, o, s, out.buf, pad_axes(x.shape, 1))
    return out


def _binary(name, ufunc, a, b, dtype=None):
    sa, sb = _scalar_value(a) if not isinstance(a, CudaArray) else None, \
        _scalar_value(b) if not isinstance(b, CudaArray) else None
    if not isinstance(a, CudaArray) and sa is None or not isinstance(b, CudaArray) and sb is None:
        bad = b if isinstance(a, CudaArray) else a
        raise TypeError(f"cannot combine a CUDA array with {type(bad).__name__}")
    out_dtype = np.dtype(dtype) if dtype is not None else _probe_dtype(ufunc, a if sa is None else sa, b if sb is None else sb)
    ka = binary = ew.binary_kernels(name)
    if sa is None and sb is None:
        shape = np.broadcast_shapes(a.shape, b.shape)
        out = empty(shape, out_dtype)
        if out.size == 0:
            return out
        if a.shape == b.shape == shape and a._is_whole_buffer() and b._is_whole_buffer():
            ew.launch(binary["flat_aa"], out.size, a.buf, b.buf, out.buf)
        else:
            ba, oa, st_a = a.broadcast_to(shape)._padded()
            bb, ob, st_b = b.broadcast_to(shape)._padded()
            ew.launch(binary["strided_aa"], out.size, ba, oa, st_a, bb, ob, st_b, out.buf, pad_axes(shape, 1))
        return out
    arr, s, kind = (a, sb, "as") if sa is None else (b, sa, "sa")
    # the scalar is typed like the computation (float32 stays float32: no float64 constants in the kernel)
    compute = np.result_type(arr.dtype, s) if out_dtype == np.bool_ else out_dtype
    s = compute.type(s)
    out = empty(arr.shape, out_dtype)
    if out.size == 0:
        return out
    if arr._is_whole_buffer():
        args = (arr.buf, s) if kind == "as" else (s, arr.buf)
        ew.launch(ka["flat_" + kind], out.size, *args, out.buf)
    else:
        bx, ox, st = arr._padded()
        args = (bx, ox, st, s) if kind == "as" else (s, bx, ox, st)
        ew.launch(ka["strided_" + kind], out.size, *args, out.buf, pad_axes(arr.shape, 1))
    return out


def _assign(dst, value):
    """dst[...] = value (broadcast, cast to dst's dtype) for a strided view ``dst``."""
    if not isinstance(dst, CudaArray):
        raise TypeError(f"cannot write a CUDA array into {type(dst).__name__}; copy it with .get() first")
    if dst.size == 0:
        return
    if not isinstance(value, CudaArray):
        v = _scalar_value(value)
        if v is None:
            raise TypeError(f"cannot assign {type(value).__name__} to a CUDA array")
        value = full((), v, dst.dtype)
    elif value.dtype != dst.dtype:
        value = value.astype(dst.dtype)
    src = value.broadcast_to(dst.shape)
    bs, os_, ss = src._padded()
    bd, od, sd = dst._padded()
    ew.copy(bs, os_, ss, bd, od, sd, pad_axes(dst.shape, 1), dst.size)


def where(cond, a, b):
    if not isinstance(cond, CudaArray):
        raise TypeError("np.where on the GPU needs a CUDA condition array")
    dtype = _probe_dtype(np.add, a if isinstance(a, CudaArray) else _scalar_value(a),
                         b if isinstance(b, CudaArray) else _scalar_value(b))
    a, b = _as_operand(a, dtype), _as_operand(b, dtype)
    if a.dtype != dtype:
        a = a.astype(dtype)
    if b.dtype != dtype:
        b = b.astype(dtype)
    shape = np.broadcast_shapes(cond.shape, a.shape, b.shape)
    out = empty(shape, dtype)
    if out.size:
        pc, pa, pb = (x.broadcast_to(shape)._padded() for x in (cond, a, b))
        ew.where(*pc, *pa, *pb, out.buf, pad_axes(shape, 1))
    return out


# ==========================================================================
# ufuncs (NEP 13): ufunc(*inputs), ufunc.reduce, ufunc.at
# ==========================================================================
def _ufunc_call(ufunc, *inputs, out=None, **kwargs):
    """``ufunc(*inputs)``, written into ``out`` if given: an elementwise kernel, or ``a @ b``."""
    name = ufunc.__name__
    if name == "matmul":
        return _matmul(*inputs)
    if kwargs.get("where", True) is not True:
        return NotImplemented
    if ufunc.nin == 2 and name in ew.BINARY:
        res = _binary(name, ufunc, inputs[0], inputs[1], kwargs.get("dtype"))
    elif ufunc.nin == 1 and name in ew.UNARY:
        res = _unary(name, ufunc, inputs[0])
    else:
        raise NotImplementedError(f"np.{name} is not implemented for CUDA arrays")
    if out is not None:
        (target,) = out
        _assign(target, res)
        return target
    return res


_REDUCTIONS = {"add": "sum", "maximum": "max", "minimum": "min"}


def _ufunc_reduce(ufunc, x, **kwargs):
    """``np.add.reduce(x, axis=0)`` (likewise ``maximum``, ``minimum``): a sum, max or min over ``axis``."""
    op = _REDUCTIONS.get(ufunc.__name__)
    if op is None:
        raise NotImplementedError(f"np.{ufunc.__name__}.reduce is not implemented for CUDA arrays")
    return _reduce(x, op, kwargs.get("axis", 0), kwargs.get("keepdims", False))


def _ufunc_at(ufunc, *inputs, **kwargs):
    """Refused: unbuffered ``ufunc.at`` has no kernel (a scatter-add along an axis has: ``scatter_add_along_axis``)."""
    if ufunc.__name__ == "add":
        raise NotImplementedError("np.add.at with CUDA arrays is only supported through scatter_add along an axis")
    raise NotImplementedError(f"np.{ufunc.__name__}.at is not implemented for CUDA arrays")


# ==========================================================================
# reductions
# ==========================================================================
def _rows(x, axes):
    """x rearranged as a contiguous (M, R) buffer: kept axes first, reduced axes last."""
    kept = [d for d in range(x.ndim) if d not in axes]
    M = math.prod(x.shape[d] for d in kept)
    R = math.prod(x.shape[d] for d in axes)
    return x.transpose(kept + list(axes)).flat_buffer(), M, R, [x.shape[d] for d in kept]


def _out_shape(shape, axes, keepdims, kept_shape):
    return tuple(1 if i in axes else n for i, n in enumerate(shape)) if keepdims else tuple(kept_shape)


def _reduce(x, op, axis, keepdims):
    axes = norm_axes(axis, x.ndim)
    if x.dtype == np.bool_:
        x = x.astype(np.int64 if op == "sum" else np.uint8)
        if op != "sum":
            return _reduce(x, op, axis, keepdims).astype(np.bool_)
    acc = x.dtype if (op != "sum" or x.dtype.kind == "f") else np.dtype(np.int64)
    if x.dtype != acc:
        x = x.astype(acc)
    flat, M, R, kept_shape = _rows(x, axes)
    if R == 0 and op != "sum":
        raise ValueError(f"zero-size array to reduction operation {op} which has no identity")
    res = rd.reduce_rows(flat, M, R, op, acc)
    return CudaArray(res, _out_shape(x.shape, axes, keepdims, kept_shape))


def _argreduce(x, largest, axis, keepdims):
    if x.size == 0:
        raise ValueError(f"attempt to get {'argmax' if largest else 'argmin'} of an empty sequence")
    if x.dtype == np.bool_:
        x = x.astype(np.uint8)
    if axis is None:
        res = rd.arg_rows(x.flat_buffer(), 1, x.size, largest)
        out = CudaArray(res, ())
        return out.reshape((1,) * x.ndim) if keepdims else out
    axes = norm_axes(axis, x.ndim)
    flat, M, R, kept_shape = _rows(x, axes)
    return CudaArray(rd.arg_rows(flat, M, R, largest), _out_shape(x.shape, axes, keepdims, kept_shape))


def _sum(a, axis=None, dtype=None, out=None, keepdims=False, **_):
    s = _reduce(a, "sum", axis, keepdims)
    return s if dtype is None else s.astype(dtype, copy=False)


def _mean(a, axis=None, dtype=None, out=None, keepdims=False, **_):
    axes = norm_axes(axis, a.ndim)
    count = math.prod(a.shape[d] for d in axes)
    s = _reduce(a if a.dtype.kind == "f" else a.astype(np.float64), "sum", axis, keepdims)
    return s / s.dtype.type(count) if count else s * s.dtype.type(np.nan)


def _any(a, axis=None, out=None, keepdims=False, **_):
    return _reduce((a != 0).astype(np.uint8), "max", axis, keepdims).astype(np.bool_, copy=False)


def _all(a, axis=None, out=None, keepdims=False, **_):
    return _reduce((a != 0).astype(np.uint8), "min", axis, keepdims).astype(np.bool_, copy=False)


# ==========================================================================
# matrix products (the tiled kernel: cuda/matmul.py)
# ==========================================================================
def _matmul(a, b):
    if not (isinstance(a, CudaArray) and isinstance(b, CudaArray)):
        raise TypeError("matmul on the GPU needs two CUDA arrays")
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(f"matmul on CUDA arrays needs operands of 2 or more dims, got {a.shape} and {b.shape}")
    if a.dtype != b.dtype or a.dtype.kind != "f":
        raise TypeError(f"matmul on CUDA arrays needs two float32 or two float64 operands, got {a.dtype} and {b.dtype}")
    if a.shape[-1] != b.shape[-2]:
        sa, sb = a.shape[-2:], b.shape[-2:]
        raise ValueError(f"matmul shape mismatch: {sa} @ {sb} (inner dimensions {sa[1]} != {sb[0]})")
    if a.ndim == 2 and b.ndim == 2:
        return from_device_array(mm.tiled_matmul(a.device_array(), b.device_array()))
    # batched: one 2-D product per broadcast batch index
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a = a.broadcast_to(batch + a.shape[-2:])
    b = b.broadcast_to(batch + b.shape[-2:])
    out = empty(batch + (a.shape[-2], b.shape[-1]), a.dtype)
    for idx in np.ndindex(*batch):
        out[idx] = from_device_array(mm.tiled_matmul(a[idx].device_array(), b[idx].device_array()))
    return out


# ==========================================================================
# NumPy functions (NEP 18 dispatch)
# ==========================================================================
def _like_creation(fill_value):
    def make(shape, dtype=float, order="C", *, like=None, **_):
        return full(shape, fill_value, dtype)

    return make


def _full_fn(shape, fill_value, dtype=None, order="C", *, like=None):
    return full(shape, fill_value, np.result_type(fill_value) if dtype is None else dtype)


def _concatenate(arrays, axis=0, **_):
    arrays = list(arrays)
    axis = axis % arrays[0].ndim
    dtype = np.result_type(*[a.dtype for a in arrays])
    shape = list(arrays[0].shape)
    shape[axis] = sum(a.shape[axis] for a in arrays)
    out = empty(shape, dtype)
    start = 0
    for a in arrays:
        n = a.shape[axis]
        out[(slice(None),) * axis + (slice(start, start + n),)] = a
        start += n
    return out


def _pad_fn(a, pad_width, mode="constant", constant_values=0):
    if mode != "constant":
        raise NotImplementedError(f"np.pad mode {mode!r} is not implemented for CUDA arrays")
    widths = np.broadcast_to(np.asarray(pad_width), (a.ndim, 2))
    shape = [n + int(b) + int(e) for n, (b, e) in zip(a.shape, widths)]
    out = full(shape, constant_values, a.dtype)
    out[tuple(slice(int(b), int(b) + n) for n, (b, _) in zip(a.shape, widths))] = a
    return out


def _take_along_axis(a, indices, axis):
    if not isinstance(indices, CudaArray):
        raise TypeError("take_along_axis on the GPU needs CUDA indices")
    axis = axis % a.ndim
    idx = indices.astype(np.int64, copy=False).ascontiguous()
    out = empty(idx.shape, a.dtype)
    if out.size:
        ba, oa, sa = a._padded()
        ew.gather_axis(ba, oa, sa, idx.flat_buffer(), out.buf, pad_axes(idx.shape, 1), MAXD - a.ndim + axis)
    return out


def scatter_add_along_axis(src, indices, axis, shape):
    """zeros(shape) with ``src`` added at ``indices`` along ``axis`` (the adjoint of take_along_axis)."""
    axis = axis % len(shape)
    out = full(shape, 0, src.dtype)
    idx = indices.astype(np.int64, copy=False).flat_buffer()
    ew.scatter_add_axis(src.flat_buffer(), idx, out.buf, pad_axes(out.strides, 0), pad_axes(indices.shape, 1),
                        MAXD - len(shape) + axis)
    return out


def _clip(a, a_min=None, a_max=None, **_):
    out = a
    if a_min is not None:
        out = np.maximum(out, a_min)
    if a_max is not None:
        out = np.minimum(out, a_max)
    return out if out is not a else a.copy()


def _moveaxis(a, source, destination):
    src = [s % a.ndim for s in ((source,) if isinstance(source, int) else source)]
    dst = [d % a.ndim for d in ((destination,) if isinstance(destination, int) else destination)]
    order = [n for n in range(a.ndim) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return a.transpose(order)


def _array2string(a, *args, **kwargs):
    return np.array2string(a.get(), *args, **kwargs)


def _copyto(dst, src, **_):
    _assign(dst, src)


# ==========================================================================
# the tables of cuda/array_type.py, filled as this module is imported
# ==========================================================================
UFUNC_METHODS.update({"__call__": _ufunc_call, "reduce": _ufunc_reduce, "at": _ufunc_at})

FUNCTIONS.update({
    np.sum: _sum,
    np.max: lambda a, axis=None, out=None, keepdims=False, **k: _reduce(a, "max", axis, keepdims),
    np.min: lambda a, axis=None, out=None, keepdims=False, **k: _reduce(a, "min", axis, keepdims),
    np.amax: lambda a, axis=None, out=None, keepdims=False, **k: _reduce(a, "max", axis, keepdims),
    np.amin: lambda a, axis=None, out=None, keepdims=False, **k: _reduce(a, "min", axis, keepdims),
    np.mean: _mean,
    np.any: _any,
    np.all: _all,
    np.argmax: lambda a, axis=None, out=None, keepdims=False: _argreduce(a, True, axis, keepdims),
    np.argmin: lambda a, axis=None, out=None, keepdims=False: _argreduce(a, False, axis, keepdims),
    np.where: where,
    np.broadcast_to: lambda a, shape, subok=False: a.broadcast_to(shape),
    np.reshape: lambda a, shape=None, order="C", **k: a.reshape(shape),
    np.transpose: lambda a, axes=None: a.transpose(axes),
    np.squeeze: lambda a, axis=None: a.squeeze(axis),
    np.expand_dims: lambda a, axis: a.expand_dims(axis),
    np.moveaxis: _moveaxis,
    np.concatenate: _concatenate,
    np.pad: _pad_fn,
    np.take_along_axis: _take_along_axis,
    np.clip: _clip,
    np.copyto: _copyto,
    np.array2string: _array2string,
    np.zeros: _like_creation(0),
    np.ones: _like_creation(1),
    np.empty: _like_creation(0),
    np.full: _full_fn,
    np.zeros_like: lambda a, dtype=None, **k: full(a.shape, 0, a.dtype if dtype is None else dtype),
    np.ones_like: lambda a, dtype=None, **k: full(a.shape, 1, a.dtype if dtype is None else dtype),
    np.empty_like: lambda a, dtype=None, **k: empty(a.shape, a.dtype if dtype is None else dtype),
    np.full_like: lambda a, fill_value, dtype=None, **k: full(a.shape, fill_value, a.dtype if dtype is None else dtype),
    np.shape: lambda a: a.shape,
    np.ndim: lambda a: a.ndim,
    np.size: lambda a, axis=None: a.size if axis is None else a.shape[axis],
})
