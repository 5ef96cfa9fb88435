"""The ``CudaArray`` type: its layout, its views, its host transfers.

Layout is NumPy's: a flat device buffer, an ``offset`` and per-axis
``strides`` in elements, so element ``(i0, i1, ...)`` is
``buf[offset + i0*strides[0] + i1*strides[1] + ...]``. Transposes,
broadcasts (stride 0), reshapes of contiguous arrays and basic slices are
therefore free views; kernels read any layout.

The operations (elementwise, reductions, ``@``, ``np.where``, ...) are not
here: the methods hand them to NumPy's protocols (``a.sum()`` is
``np.sum(a)``, ``a + b`` is ``np.add(a, b)``, ``a[k] = v`` is
``np.copyto(a[k], v)``), and the protocols look the implementation up in
the two tables below, which ``cuda/array_functions.py`` fills.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from . import elementwise as ew

MAXD = ew.MAXD

# The tables NumPy's protocols dispatch through. cuda/array_functions.py
# imports this module and fills them as it is imported; this module never
# imports that one, so the two make no import cycle. cuda/array.py, where
# CudaArray is imported from, imports both: wherever a CudaArray can be
# made, the tables are full.
UFUNC_METHODS: dict = {}  # ufunc method ("__call__", "reduce", "at") -> impl(ufunc, *inputs, **kwargs)  (NEP 13)
FUNCTIONS: dict = {}  # NumPy function (np.sum, np.where, ...) -> impl(*args, **kwargs)  (NEP 18)


def _contiguous_strides(shape):
    strides, acc = [], 1
    for n in reversed(shape):
        strides.append(acc)
        acc *= n
    return tuple(reversed(strides))


def pad_axes(t, fill):
    """``t`` (a shape or strides) padded in front with ``fill`` to ``MAXD`` entries, the strided kernels' rank."""
    if len(t) > MAXD:
        raise NotImplementedError(f"CUDA arrays support at most {MAXD} dimensions, got {len(t)}")
    return (fill,) * (MAXD - len(t)) + tuple(int(v) for v in t)


def norm_axes(axis, ndim):
    """``axis`` (None for all, an int or a sequence; negatives count from the end) as sorted distinct axes."""
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
        return self.buf, self.offset, pad_axes(self.strides, 0)

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
                ew.launch(strided, self.size, b, o, s, out.buf, pad_axes(self.shape, 1))
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
        axes = [i for i, n in enumerate(self.shape) if n == 1] if axis is None else norm_axes(axis, self.ndim)
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
        np.copyto(self._view(key), value)

    # --- arithmetic via NumPy's protocols ------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        impl = UFUNC_METHODS.get(method)
        if impl is None:
            raise NotImplementedError(f"np.{ufunc.__name__}.{method} is not implemented for CUDA arrays")
        return impl(ufunc, *inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        impl = FUNCTIONS.get(func)
        if impl is None:
            raise NotImplementedError(f"np.{func.__name__} is not implemented for CUDA arrays")
        return impl(*args, **kwargs)

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
        return np.matmul(self, o)

    def __rmatmul__(self, o):
        return np.matmul(o, self)

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
        np.copyto(self, value)

    # --- reductions -------------------------------------------------------------------------
    def sum(self, axis=None, dtype=None, keepdims=False, **_):
        return np.sum(self, axis=axis, dtype=dtype, keepdims=keepdims)

    def max(self, axis=None, keepdims=False, **_):
        return np.max(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims=False, **_):
        return np.min(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False, dtype=None, **_):
        return np.mean(self, axis=axis, keepdims=keepdims)

    def any(self, axis=None, keepdims=False):
        return np.any(self, axis=axis, keepdims=keepdims)

    def all(self, axis=None, keepdims=False):
        return np.all(self, axis=axis, keepdims=keepdims)

    def argmax(self, axis=None, keepdims=False):
        return np.argmax(self, axis=axis, keepdims=keepdims)

    def argmin(self, axis=None, keepdims=False):
        return np.argmin(self, axis=axis, keepdims=keepdims)


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



def from_device_array(d):
    """Wrap a C-contiguous numba device array (a kernel's result) without copying."""
    return CudaArray(d.reshape(d.size) if d.ndim != 1 else d, d.shape)
