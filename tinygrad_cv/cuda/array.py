"""``CudaArray``: an n-d array in GPU memory that NumPy code can use unchanged.

A ``Tensor`` on the GPU holds a ``CudaArray`` where a CPU tensor holds an
``ndarray``. The autograd operations are written with NumPy (``a + b``,
``np.exp(a)``, ``a.sum(axis)``, ``np.where(c, a, b)``); NumPy hands such calls
on to the array's own ``__array_ufunc__`` / ``__array_function__`` (NEP 13 and
NEP 18), which run CUDA kernels instead. So one ``Function`` serves both
devices, and a missing GPU operation fails loudly here rather than silently
copying to the host.

Layout is NumPy's: a flat device buffer, an ``offset`` and per-axis
``strides`` in elements. Transposes, broadcasts, reshapes of contiguous
arrays and basic slices are therefore free views; kernels read any layout.

Data crosses to the host only when asked: ``get()`` (``Tensor.numpy()``),
``item()``, ``tolist()``, printing, ``bool()``. Converting a ``CudaArray``
to NumPy implicitly (``np.asarray``) raises, so a host round trip can never
hide inside an operation.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
from numba import cuda

from . import elementwise as ew
from . import is_cuda_array  # noqa: F401  (re-exported: the predicate is defined, import-free, in cuda/__init__.py)
from . import matmul as mm
from . import reduction as rd

__all__ = ["CudaArray", "to_device", "empty", "full", "from_device_array", "scatter_add_along_axis", "is_cuda_array"]

MAXD = ew.MAXD


def _contiguous_strides(shape):
    strides, acc = [], 1
    for n in reversed(shape):
        strides.append(acc)
        acc *= n
    return tuple(reversed(strides))


def _pad(t, fill):
    if len(t) > MAXD:
        raise NotImplementedError(f"CUDA arrays support at most {MAXD} dimensions, got {len(t)}")
    return (fill,) * (MAXD - len(t)) + tuple(int(v) for v in t)


def _norm_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise np.exceptions.AxisError(f"axis {a} is out of bounds for array of dimension {ndim}")
        out.append(int(a) % max(ndim, 1))
    return tuple(sorted(set(out)))


class _Flags:
    __slots__ = ("c_contiguous", "writeable")

    def __init__(self, c_contiguous, writeable):
        self.c_contiguous, self.writeable = c_contiguous, writeable


class CudaArray:
    """An n-d view (shape, strides, offset) of a flat device buffer."""

    __slots__ = ("buf", "shape", "strides", "offset", "dtype")
    __array_priority__ = 2000

    def __init__(self, buf, shape, strides=None, offset=0):
        self.buf = buf
        self.shape = tuple(int(n) for n in shape)
        self.strides = _contiguous_strides(self.shape) if strides is None else tuple(int(s) for s in strides)
        self.offset = int(offset)
        self.dtype = np.dtype(buf.dtype)

    # --- basic properties ------------------------------------------------------------
    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return math.prod(self.shape)

    @property
    def nbytes(self):
        return self.size * self.dtype.itemsize

    @property
    def device(self):
        return "cuda"

    def is_contiguous(self):
        if self.size <= 1:
            return True
        want = _contiguous_strides(self.shape)
        return all(s == w for s, w, n in zip(self.strides, want, self.shape) if n != 1)

    @property
    def flags(self):
        return _Flags(self.is_contiguous(), 0 not in [s for s, n in zip(self.strides, self.shape) if n > 1])

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __repr__(self):
        return f"CudaArray({np.array2string(self.get(), separator=', ')}, dtype={self.dtype})"

    # --- host transfers (explicit only) ---------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            f"implicit conversion of a CUDA array (shape {self.shape}) to NumPy is not allowed; "
            "copy it explicitly with tensor.cpu() / tensor.numpy()"
        )

    def get(self):
        """Copy to a new host ``ndarray`` (the one explicit device-to-host transfer)."""
        flat = self.ascontiguous()
        host = flat.buf.copy_to_host() if flat.buf.size else np.empty(0, self.dtype)
        n = self.size
        return np.ascontiguousarray(host[flat.offset: flat.offset + n]).reshape(self.shape)

    def item(self):
        if self.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        return self.get().reshape(()).item()

    def tolist(self):
        return self.get().tolist()

    def __bool__(self):
        if self.size != 1:
            raise ValueError(f"the truth value of an array with shape {self.shape} is ambiguous")
        return bool(self.item())

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    # --- layout -----------------------------------------------------------------------------
    def _padded(self):
        """(buffer, offset, strides padded to MAXD) for the strided kernels."""
        return self.buf, self.offset, _pad(self.strides, 0)

    def _is_whole_buffer(self):
        return self.offset == 0 and self.size == self.buf.size and self.is_contiguous()

    def ascontiguous(self):
        if self.is_contiguous() and (self.offset == 0 or self.size == 0):
            return self
        return self.copy()

    def flat_buffer(self):
        """The contiguous data as a 1-D device array of ``size`` elements (copies if needed)."""
        a = self if self._is_whole_buffer() else self.copy()
        return a.buf

    def device_array(self):
        """The data as a C-contiguous numba device array of this shape (for the conv/pool/matmul kernels)."""
        buf = self.flat_buffer()
        return buf.reshape(self.shape) if self.shape else buf.reshape(1)

    def copy(self):
        return self.astype(self.dtype, copy=True)

    def astype(self, dtype, copy=True):
        dtype = np.dtype(dtype)
        if dtype == self.dtype and not copy:
            return self
        out = empty(self.shape, dtype)
        if self.size:
            flat, strided = ew.unary_kernels("copy")
            if self._is_whole_buffer():
                ew.launch(flat, self.size, self.buf, out.buf)
            else:
                b, o, s = self._padded()
                ew.launch(strided, self.size, b, o, s, out.buf, _pad(self.shape, 1))
        return out

    def reshape(self, *shape, order="C"):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        shape = tuple(int(n) for n in shape)
        if -1 in shape:
            known = math.prod(n for n in shape if n != -1)
            shape = tuple(self.size // known if n == -1 else n for n in shape) if known else shape
        if math.prod(shape) != self.size:
            raise ValueError(f"cannot reshape array of size {self.size} into shape {shape}")
        src = self.ascontiguous()
        return CudaArray(src.buf, shape, None, src.offset)

    def ravel(self):
        return self.reshape(-1)

    def transpose(self, *axes):
        if not axes or axes == (None,):
            axes = tuple(reversed(range(self.ndim)))
        elif len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        axes = tuple(int(a) % max(self.ndim, 1) for a in axes)
        return CudaArray(self.buf, [self.shape[a] for a in axes], [self.strides[a] for a in axes], self.offset)

    @property
    def T(self):
        return self.transpose()

    @property
    def mT(self):
        axes = list(range(self.ndim))
        axes[-1], axes[-2] = axes[-2], axes[-1]
        return self.transpose(axes)

    def broadcast_to(self, shape):
        shape = tuple(int(n) for n in shape)
        lead = len(shape) - self.ndim
        if lead < 0 or np.broadcast_shapes(self.shape, shape) != shape:
            raise ValueError(f"cannot broadcast a CUDA array of shape {self.shape} to {shape}")
        strides = [0] * lead + [0 if n == 1 and m != 1 else s for s, n, m in zip(self.strides, self.shape, shape[lead:])]
        return CudaArray(self.buf, shape, strides, self.offset)

    def squeeze(self, axis=None):
        axes = [i for i, n in enumerate(self.shape) if n == 1] if axis is None else _norm_axes(axis, self.ndim)
        for a in axes:
            if self.shape[a] != 1:
                raise ValueError(f"cannot select an axis to squeeze out which has size not equal to one (axis {a})")
        keep = [i for i in range(self.ndim) if i not in axes]
        return CudaArray(self.buf, [self.shape[i] for i in keep], [self.strides[i] for i in keep], self.offset)

    def expand_dims(self, axis):
        axes = (axis,) if isinstance(axis, int) else tuple(axis)
        nd = self.ndim + len(axes)
        axes = sorted(a % nd for a in axes)
        shape, strides = list(self.shape), list(self.strides)
        for a in axes:
            shape.insert(a, 1)
            strides.insert(a, 0)
        return CudaArray(self.buf, shape, strides, self.offset)

    # --- indexing ------------------------------------------------------------------------------
    def _view(self, key):
        """Basic indexing (ints, slices, None, Ellipsis) as a view; advanced indices are refused."""
        if not isinstance(key, tuple):
            key = (key,)
        if any(isinstance(k, (np.ndarray, CudaArray, list)) for k in key):
            raise NotImplementedError(
                "indexing a CUDA tensor with integer or boolean arrays is not supported; use gather(), "
                "or index on the CPU"
            )
        n_real = sum(1 for k in key if k is not None and k is not Ellipsis)
        if n_real > self.ndim:
            raise IndexError(f"too many indices for array: array is {self.ndim}-dimensional, but {n_real} were indexed")
        if Ellipsis in key:
            i = key.index(Ellipsis)
            key = key[:i] + (slice(None),) * (self.ndim - n_real) + key[i + 1:]
        else:
            key = key + (slice(None),) * (self.ndim - n_real)
        shape, strides, offset, d = [], [], self.offset, 0
        for k in key:
            if k is None:
                shape.append(1)
                strides.append(0)
                continue
            n, s = self.shape[d], self.strides[d]
            if isinstance(k, slice):
                start, stop, step = k.indices(n)
                count = len(range(start, stop, step))
                if count:
                    offset += start * s
                shape.append(count)
                strides.append(s * step)
            else:
                i = int(k)
                if not -n <= i < n:
                    raise IndexError(f"index {i} is out of bounds for axis {d} with size {n}")
                offset += (i % n) * s
            d += 1
        return CudaArray(self.buf, shape, strides, offset)

    def __getitem__(self, key):
        return self._view(key)

    def __setitem__(self, key, value):
        dst = self._view(key)
        _assign(dst, value)

    # --- arithmetic via NumPy's protocols ------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        name = ufunc.__name__
        if method == "__call__":
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
        if method == "reduce" and name in ("add", "maximum", "minimum"):
            op = {"add": "sum", "maximum": "max", "minimum": "min"}[name]
            return _reduce(inputs[0], op, kwargs.get("axis", 0), kwargs.get("keepdims", False))
        if method == "at" and name == "add":
            raise NotImplementedError("np.add.at with CUDA arrays is only supported through scatter_add along an axis")
        raise NotImplementedError(f"np.{name}.{method} is not implemented for CUDA arrays")

    def __array_function__(self, func, types, args, kwargs):
        handler = _FUNCTIONS.get(func)
        if handler is None:
            raise NotImplementedError(f"np.{func.__name__} is not implemented for CUDA arrays")
        return handler(*args, **kwargs)

    def __add__(self, o):
        return np.add(self, o)

    def __radd__(self, o):
        return np.add(o, self)

    def __sub__(self, o):
        return np.subtract(self, o)

    def __rsub__(self, o):
        return np.subtract(o, self)

    def __mul__(self, o):
        return np.multiply(self, o)

    def __rmul__(self, o):
        return np.multiply(o, self)

    def __truediv__(self, o):
        return np.true_divide(self, o)

    def __rtruediv__(self, o):
        return np.true_divide(o, self)

    def __pow__(self, o):
        return np.power(self, o)

    def __rpow__(self, o):
        return np.power(o, self)

    def __mod__(self, o):
        return np.remainder(self, o)

    def __floordiv__(self, o):
        return np.floor_divide(self, o)

    def __matmul__(self, o):
        return _matmul(self, o)

    def __rmatmul__(self, o):
        return _matmul(o, self)

    def __neg__(self):
        return np.negative(self)

    def __abs__(self):
        return np.absolute(self)

    def __invert__(self):
        if self.dtype != np.bool_:
            raise NotImplementedError("~ is only implemented for boolean CUDA arrays")
        return np.logical_not(self)

    def __and__(self, o):
        return np.logical_and(self, o)

    __rand__ = __and__

    def __or__(self, o):
        return np.logical_or(self, o)

    __ror__ = __or__

    def __eq__(self, o):
        return np.equal(self, o)

    def __ne__(self, o):
        return np.not_equal(self, o)

    def __lt__(self, o):
        return np.less(self, o)

    def __le__(self, o):
        return np.less_equal(self, o)

    def __gt__(self, o):
        return np.greater(self, o)

    def __ge__(self, o):
        return np.greater_equal(self, o)

    __hash__ = None

    def _inplace(self, ufunc, o):
        return ufunc(self, o, out=(self,))

    def __iadd__(self, o):
        return self._inplace(np.add, o)

    def __isub__(self, o):
        return self._inplace(np.subtract, o)

    def __imul__(self, o):
        return self._inplace(np.multiply, o)

    def __itruediv__(self, o):
        return self._inplace(np.true_divide, o)

    def fill(self, value):
        _assign(self, value)

    # --- reductions -------------------------------------------------------------------------
    def sum(self, axis=None, dtype=None, keepdims=False, **_):
        out = _reduce(self, "sum", axis, keepdims)
        return out if dtype is None else out.astype(dtype, copy=False)

    def max(self, axis=None, keepdims=False, **_):
        return _reduce(self, "max", axis, keepdims)

    def min(self, axis=None, keepdims=False, **_):
        return _reduce(self, "min", axis, keepdims)

    def mean(self, axis=None, keepdims=False, dtype=None, **_):
        axes = _norm_axes(axis, self.ndim)
        count = math.prod(self.shape[a] for a in axes)
        s = _reduce(self if self.dtype.kind == "f" else self.astype(np.float64), "sum", axis, keepdims)
        return s / s.dtype.type(count) if count else s * s.dtype.type(np.nan)

    def any(self, axis=None, keepdims=False):
        return _reduce((self != 0).astype(np.uint8), "max", axis, keepdims).astype(np.bool_, copy=False)

    def all(self, axis=None, keepdims=False):
        return _reduce((self != 0).astype(np.uint8), "min", axis, keepdims).astype(np.bool_, copy=False)

    def argmax(self, axis=None, keepdims=False):
        return _argreduce(self, True, axis, keepdims)

    def argmin(self, axis=None, keepdims=False):
        return _argreduce(self, False, axis, keepdims)


# ==========================================================================
# creation
# ==========================================================================
def empty(shape, dtype):
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(n) for n in shape)
    n = math.prod(shape)
    return CudaArray(cuda.device_array(n, dtype=np.dtype(dtype)), shape)


def full(shape, value, dtype):
    a = empty(shape, dtype)
    if a.size:
        ew.fill(a.buf, a.dtype.type(value))
    return a


def to_device(host):
    """Copy a host array (or Python data) to a new CudaArray."""
    host = np.asarray(host, order="C")  # (not ascontiguousarray: it turns 0-d into shape (1,))
    if host.dtype.kind not in "fiub":
        raise TypeError(f"cannot move an array of dtype {host.dtype} to the GPU")
    flat = host.reshape(-1)
    return CudaArray(cuda.to_device(flat) if flat.size else cuda.device_array(0, dtype=host.dtype), host.shape)


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


# ==========================================================================
# elementwise
# ==========================================================================
def _probe_dtype(ufunc, *operands):
    """NumPy's result dtype for ``ufunc`` on these operands (Python scalars are 'weak', NEP 50)."""
    probes = [np.empty(0, o.dtype) if isinstance(o, CudaArray) else o for o in operands]
    return ufunc(*probes).dtype


def _unary(name, ufunc, x):
    out = empty(x.shape, _probe_dtype(ufunc, x))
    if x.size:
        flat, strided = ew.unary_kernels(name)
        if x._is_whole_buffer():
            ew.launch(flat, x.size, x.buf, out.buf)
        else:
            b, o, s = x._padded()
            ew.launch(strided, x.size, b, o, s, out.buf, _pad(x.shape, 1))
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
            ew.launch(binary["strided_aa"], out.size, ba, oa, st_a, bb, ob, st_b, out.buf, _pad(shape, 1))
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
        ew.launch(ka["strided_" + kind], out.size, *args, out.buf, _pad(arr.shape, 1))
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
    ew.copy(bs, os_, ss, bd, od, sd, _pad(dst.shape, 1), dst.size)


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
        ew.where(*pc, *pa, *pb, out.buf, _pad(shape, 1))
    return out


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
    axes = _norm_axes(axis, x.ndim)
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
    axes = _norm_axes(axis, x.ndim)
    flat, M, R, kept_shape = _rows(x, axes)
    return CudaArray(rd.arg_rows(flat, M, R, largest), _out_shape(x.shape, axes, keepdims, kept_shape))


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


def from_device_array(d):
    """Wrap a C-contiguous numba device array (a kernel's result) without copying."""
    return CudaArray(d.reshape(d.size) if d.ndim != 1 else d, d.shape)


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
        ew.gather_axis(ba, oa, sa, idx.flat_buffer(), out.buf, _pad(idx.shape, 1), MAXD - a.ndim + axis)
    return out


def scatter_add_along_axis(src, indices, axis, shape):
    """zeros(shape) with ``src`` added at ``indices`` along ``axis`` (the adjoint of take_along_axis)."""
    axis = axis % len(shape)
    out = full(shape, 0, src.dtype)
    idx = indices.astype(np.int64, copy=False).flat_buffer()
    ew.scatter_add_axis(src.flat_buffer(), idx, out.buf, _pad(out.strides, 0), _pad(indices.shape, 1),
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


_FUNCTIONS = {
    np.sum: lambda a, axis=None, dtype=None, out=None, keepdims=False, **k: a.sum(axis, dtype, keepdims),
    np.max: lambda a, axis=None, out=None, keepdims=False, **k: a.max(axis, keepdims),
    np.min: lambda a, axis=None, out=None, keepdims=False, **k: a.min(axis, keepdims),
    np.amax: lambda a, axis=None, out=None, keepdims=False, **k: a.max(axis, keepdims),
    np.amin: lambda a, axis=None, out=None, keepdims=False, **k: a.min(axis, keepdims),
    np.mean: lambda a, axis=None, dtype=None, out=None, keepdims=False, **k: a.mean(axis, keepdims),
    np.any: lambda a, axis=None, out=None, keepdims=False, **k: a.any(axis, keepdims),
    np.all: lambda a, axis=None, out=None, keepdims=False, **k: a.all(axis, keepdims),
    np.argmax: lambda a, axis=None, out=None, keepdims=False: a.argmax(axis, keepdims),
    np.argmin: lambda a, axis=None, out=None, keepdims=False: a.argmin(axis, keepdims),
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
}
