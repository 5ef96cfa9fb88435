"""`Tensor`: an n-dimensional array that remembers how it was computed.

The data is a NumPy array (float32 unless asked otherwise), or for a tensor on
the GPU a ``tinygrad_cv.cuda.array.CudaArray`` that speaks NumPy's array
protocols, so the same operations run on both devices; every method that
computes something goes through a `Function` from ``tinygrad_cv.ops`` so the
shared graph walk can differentiate it. Methods here only normalise arguments
(axes, dtypes, shapes) and raise clear errors at the public API — the maths and
its derivative live with each `Function`.
"""
from __future__ import annotations

import numbers

import numpy as np

from . import random as _random
from .cuda import is_cuda_array as _is_cuda  # the one "is this a GPU array?" (imports nothing heavy)
from .cuda import move as _move  # the one place data crosses between host and GPU
from .autograd import Node, RemovableHandle, _tensor_hooks, is_grad_enabled
from .ops import elementwise as E
from .ops import movement as M
from .ops import reduce as R
from .ops.device import ToDevice
from .ops.matmul import MatMul
from .ops.softmax import LogSoftmax, Softmax

float16 = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int8 = np.dtype(np.int8)
uint8 = np.dtype(np.uint8)
int16 = np.dtype(np.int16)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)

_DEFAULT_FLOAT = [float32]


def get_default_dtype():
    return _DEFAULT_FLOAT[0]


def set_default_dtype(dtype):
    """The dtype given to tensors made from Python floats (float32 unless changed)."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"default dtype must be a floating point type, got {dtype}")
    _DEFAULT_FLOAT[0] = dtype


def _broadcastable(a: tuple, b: tuple) -> bool:
    """NumPy's broadcasting rule (trailing dimensions equal or 1), without np.broadcast_shapes' ~9 us per call."""
    for m, n in zip(reversed(a), reversed(b)):
        if m != n and m != 1 and n != 1:
            return False
    return True


def _memory_root(a):
    """The object that owns ``a``'s memory when ``a`` is a view of another array, else None.

    Two arrays with the same root share memory (NumPy points a view of a view
    straight at the owner; the loop covers owners that are views themselves).
    A CUDA array's root is its device buffer.
    """
    if isinstance(a, np.ndarray):
        base = a.base
        if base is None:
            return a
        while isinstance(base, np.ndarray) and base.base is not None:
            base = base.base
        return base
    buf = getattr(a, "buf", None)
    return buf


def _is_device_name(value):
    """True for the strings PyTorch reads as a device: 'cpu', 'cuda', 'cuda:0', 'cpu:0', 'tpu'..."""
    if not isinstance(value, str):
        return False
    try:
        np.dtype(value)
    except TypeError:
        return True  # not a dtype name, so taken as a device name (and checked by _parse_device)
    return False


def _parse_device(device):
    """'cpu' or 'cuda' for a device argument; 'cuda' only where it is available (else a clear error)."""
    if device is None or device in ("cpu", "cpu:0"):
        return "cpu"
    if isinstance(device, str) and device in ("cuda", "cuda:0"):
        from . import cuda

        cuda.require()
        return "cuda"
    if isinstance(device, str) and device.startswith("cuda:"):
        raise ValueError(f"device {device!r}: only one GPU ('cuda' or 'cuda:0') is supported")
    raise ValueError(f"unknown device {device!r}; expected 'cpu' or 'cuda'")


def _to_array(data, dtype=None, copy=True):
    """Python data or an array -> ndarray with PyTorch's dtype rules.

    Python floats become the default float dtype (float32), Python ints
    int64, bools bool; NumPy arrays keep their dtype.
    """
    if isinstance(data, Tensor):
        data = data.data
    if _is_cuda(data):
        return data.astype(data.dtype if dtype is None else dtype, copy=True) if (copy or dtype is not None) else data
    if isinstance(data, np.ndarray) or isinstance(data, np.generic):
        arr = np.array(data, dtype=dtype, copy=copy) if (copy or dtype is not None) else data
        if arr.dtype.kind in "fiub":
            if not arr.dtype.isnative:  # the kernels read native byte order only: convert (torch.tensor does too)
                arr = arr.astype(arr.dtype.newbyteorder("="))
            return arr
        raise TypeError(f"unsupported dtype {arr.dtype}")
    if isinstance(data, (list, tuple)) and any(isinstance(x, Tensor) for x in _flat(data)):
        data = [x.data if isinstance(x, Tensor) else x for x in data]
    arr = np.array(data)
    if dtype is not None:
        return arr.astype(dtype)
    if arr.dtype.kind == "f":
        return arr.astype(get_default_dtype())
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "b":
        return arr
    raise TypeError(f"cannot make a tensor from {type(data).__name__} (numpy dtype {arr.dtype})")


def _flat(seq):
    for x in seq:
        if isinstance(x, (list, tuple)):
            yield from _flat(x)
        else:
            yield x


def _result_dtype(a, b):
    """PyTorch's promotion: a float beats an integer whatever their sizes."""
    if a == b:
        return a
    fa, fb = a.kind == "f", b.kind == "f"
    if fa != fb:
        return a if fa else b
    return np.promote_types(a, b)


class Tensor(Node):
    """An array with autograd. ``Tensor(data, dtype=None, requires_grad=False)``.

    ``.data`` is the NumPy array, ``.grad`` the accumulated gradient (a
    Tensor, or ``None``), ``.grad_fn`` the operation that made it.
    """

    # _vc: the version counter, a one-element list bumped by every in-place change so that
    # backward can refuse saved values changed since forward; shared by a tensor, its views
    # and its detach()ed aliases, since a change through any of them changes them all
    __slots__ = ("_vc",)
    __array_priority__ = 1000  # make ndarray <op> Tensor defer to Tensor's reflected op

    def __init__(self, data, dtype=None, requires_grad=False, device=None):
        device = _parse_device(device) if device is not None else None
        self.data = _to_array(data, dtype=None if dtype is None else np.dtype(dtype))
        if device is not None:
            self.data = _move(self.data, device)
        self._ctx = None
        self._out_index = 0
        self._grad = None
        self._retains_grad = False
        self._vc = [0]
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # --- hooks used by the graph walk ---------------------------------------------
    @classmethod
    def _wrap(cls, data):
        t = object.__new__(cls)
        t.data = data if type(data) is np.ndarray or isinstance(data, np.ndarray) or _is_cuda(data) else np.asarray(data)
        t.requires_grad = False
        t._ctx = None
        t._out_index = 0
        t._grad = None
        t._retains_grad = False
        t._vc = [0]
        return t

    _from_function = _wrap

    @property
    def _version(self):
        """How many in-place changes this tensor's memory has seen (PyTorch's ``_version``)."""
        return self._vc[0]

    def _bump_version(self):
        """Record an in-place change made to ``.data`` outside the tensor's own in-place methods."""
        self._vc[0] += 1

    def _saved_version(self):
        return self._vc[0]

    @classmethod
    def _link_views(cls, out, nodes):
        # An output whose memory belongs to an input (reshape, permute, slicing, expand...) is
        # a view: an in-place change through either must be seen by both.
        data = out.data
        if type(data) is np.ndarray and data.base is None:  # fresh memory (most results): only identity
            for n in nodes:
                if n is not None and n.data is data:
                    out._vc = n._vc
                    return
            return
        root = _memory_root(data)
        if root is None:
            return
        for n in nodes:
            if n is not None and _memory_root(n.data) is root:
                out._vc = n._vc
                return

    def detach(self):
        """The same values, cut off from the graph; shares memory and the version counter."""
        t = Tensor._wrap(self.data)
        t._vc = self._vc
        return t

    @staticmethod
    def _can_require_grad(data):
        return data.dtype.kind == "f"

    def _seed_grad(self):
        if self.data.size != 1:
            raise RuntimeError(
                f"backward() without a gradient needs a tensor with one element; this one has shape "
                f"{self.shape}. Pass the upstream gradient: y.backward(gradient) with gradient.shape == {self.shape}"
            )
        return Tensor._wrap(np.ones(self.shape, dtype=self.dtype, like=self.data))

    def _meta(self):
        return self.data.shape, self.data.dtype, self.data

    @classmethod
    def _zeros(cls, meta):
        shape, dtype, like = meta
        return cls._wrap(np.zeros(shape, dtype, like=like))

    @classmethod
    def _check_inputs(cls, fn, nodes):
        # one device per operation; a 0-d CPU tensor may join a GPU operation as a scalar (as in PyTorch)
        for n in nodes:  # the common case, all on the CPU, without a call per input (runs for every node)
            if n is not None and type(n.data) is not np.ndarray:
                break
        else:
            return
        on_gpu = [n for n in nodes if n is not None and _is_cuda(n.data)]
        if on_gpu and len(on_gpu) != sum(n is not None for n in nodes):
            for n in nodes:
                if n is not None and not _is_cuda(n.data) and n.data.ndim:
                    raise RuntimeError(
                        f"{fn.__name__}: expected all tensors to be on the same device, but found a cuda tensor "
                        f"of shape {on_gpu[0].shape} and a cpu tensor of shape {n.shape}; move one with .to()"
                    )

    def _as_grad(self, g):
        g = g if isinstance(g, Tensor) else Tensor(g, dtype=self.dtype, device=self.device)
        if g.shape != self.shape:
            raise ValueError(f"gradient has shape {g.shape} but the tensor has shape {self.shape}")
        if g.device != self.device:
            raise RuntimeError(f"gradient is on {g.device} but the tensor is on {self.device}")
        return g

    def _check_grad(self, g, fn_name):
        if g.shape != self.shape:
            raise RuntimeError(f"{fn_name}.backward returned a gradient of shape {g.shape} for an input of shape {self.shape}")

    def _store_grad(self, g, create_graph):
        if g.dtype != self.dtype:
            g = g.to(self.dtype)
        if not create_graph:
            # own, writable memory: the gradient may be a broadcast view or shared
            # with another input's gradient, and optimisers update it in place
            g = Tensor._wrap(g.data.copy() if self._grad is None else self._grad.data + g.data)
            self._grad = g
            return
        self._grad = g if self._grad is None else self._grad + g

    # --- basic properties -------------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def device(self):
        """'cpu' or 'cuda'."""
        return "cuda" if _is_cuda(self.data) else "cpu"

    @property
    def is_cuda(self):
        return _is_cuda(self.data)

    def dim(self):
        return self.data.ndim

    def numel(self):
        return self.data.size

    def size(self, dim=None):
        return self.data.shape if dim is None else self.data.shape[dim]

    def __len__(self):
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    @property
    def grad(self):
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None:
            value = value if isinstance(value, Tensor) else Tensor(value)
            if value.shape != self.shape:
                raise ValueError(f"assigned grad has shape {value.shape}, tensor has shape {self.shape}")
        self._grad = value

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` in place on a leaf; integer tensors cannot require grad."""
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating point tensors can require gradients, this one is {self.dtype}")
        if not requires_grad and self._ctx is not None:
            raise RuntimeError("requires_grad can only be turned off on leaf tensors; use detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def register_hook(self, hook):
        """Call ``hook(grad)`` whenever the gradient w.r.t. this tensor is computed; returns a handle.

        ``grad`` is the whole gradient of this backward pass (summed over
        every path). The hook may return None, or a Tensor of the same shape
        and dtype that replaces the gradient from then on: in ``.grad`` (for
        a leaf, or with ``retain_grad()``), in what flows further back, and
        in what ``tinygrad_cv.grad`` returns. Hooks run in registration
        order, under ``create_graph``'s grad mode (so a hook's arithmetic is
        differentiable with ``create_graph=True``), and must not modify
        ``grad`` in place. ``handle.remove()`` unregisters the hook.
        """
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if not callable(hook):
            raise TypeError(f"a hook must be callable, got {type(hook).__name__} {hook!r}")

        hooks = _tensor_hooks(self)
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        return handle

    def numpy(self):
        """The data as a NumPy array (shares memory; a GPU tensor is copied to the host).

        Refuses tensors that require grad, as PyTorch does.
        """
        if self.requires_grad:
            raise RuntimeError("can't call numpy() on a tensor that requires grad; use tensor.detach().numpy()")
        return _move(self.data, "cpu")

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self):
        return self.data.tolist()

    def __repr__(self):
        body = np.array2string(self.data, separator=", ", precision=4, prefix="tensor(")
        extra = ""
        if self.device != "cpu":
            extra += f", device='{self.device}'"
        if self.dtype not in (get_default_dtype(), int64, bool_):
            extra += f", dtype={self.dtype}"
        if self._ctx is not None:
            extra += f", grad_fn={self._ctx!r}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError(f"the truth value of a tensor with shape {self.shape} is ambiguous")
        return bool(self.data)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError("only integer tensors of a single element can be used as an index")
        return int(self.item())

    __hash__ = object.__hash__

    # --- dtype and copies ------------------------------------------------------------
    def to(self, device_or_dtype=None, dtype=None, *, device=None):
        """``to(dtype)`` casts, ``to("cuda")`` / ``to("cpu")`` moves; both are differentiable.

        Returns ``self`` when nothing changes, as PyTorch does.
        """
        if _is_device_name(device_or_dtype):
            device = device_or_dtype
        elif device_or_dtype is not None:
            if dtype is not None:
                raise TypeError("to() got two dtypes")
            dtype = device_or_dtype
        out = self
        if device is not None:
            device = _parse_device(device)
            if device != self.device:
                out = ToDevice.apply(out, device)
        if dtype is not None:
            dtype = np.dtype(dtype)
            if dtype != out.dtype:
                out = E.Cast.apply(out, dtype)
        return out

    def cuda(self):
        """This tensor on the GPU (``self`` when it is there already)."""
        return self.to("cuda")

    def float(self):
        return self.to(float32)

    def double(self):
        return self.to(float64)

    def long(self):
        return self.to(int64)

    def cpu(self):
        """This tensor on the host (``self`` when it is there already)."""
        return self.to("cpu")

    def clone(self):
        return self * 1 if self.dtype.kind == "f" else Tensor._wrap(self.data.copy())

    def contiguous(self):
        return self

    def type_as(self, other):
        return self.to(other.dtype)

    # --- helpers ------------------------------------------------------------------------
    def _lift(self, other):
        """Make ``other`` a Tensor; Python numbers take this tensor's dtype (no float64 upcast)."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, numbers.Number):
            dt = self.dtype
            if isinstance(other, float) and dt.kind != "f":
                dt = get_default_dtype()
            return Tensor._wrap(np.asarray(other, dtype=dt))
        if isinstance(other, (np.ndarray, np.generic, list, tuple)):
            return Tensor(other)
        raise TypeError(f"cannot combine a Tensor with {type(other).__name__}")

    def _binary(self, fn, other, reflected=False):
        other = self._lift(other)
        a, b = (other, self) if reflected else (self, other)
        if a.shape != b.shape and not _broadcastable(a.shape, b.shape):
            raise ValueError(f"{fn.__name__}: shapes {a.shape} and {b.shape} cannot be broadcast together")
        if a.dtype != b.dtype:
            dt = _result_dtype(a.dtype, b.dtype)
            a, b = a.to(dt), b.to(dt)
        return fn.apply(a, b)

    # --- arithmetic -------------------------------------------------------------------
    def __add__(self, o):
        return self._binary(E.Add, o)

    def __radd__(self, o):
        return self._binary(E.Add, o, reflected=True)

    def __sub__(self, o):
        return self._binary(E.Sub, o)

    def __rsub__(self, o):
        return self._binary(E.Sub, o, reflected=True)

    def __mul__(self, o):
        return self._binary(E.Mul, o)

    def __rmul__(self, o):
        return self._binary(E.Mul, o, reflected=True)

    def __truediv__(self, o):
        if self.dtype.kind != "f" and (not isinstance(o, Tensor) or o.dtype.kind != "f"):
            return self.to(get_default_dtype())._binary(E.Div, o)  # true division of integers
        return self._binary(E.Div, o)

    def __rtruediv__(self, o):
        return self._lift(o).__truediv__(self)

    def __pow__(self, p):
        if isinstance(p, numbers.Number) and not isinstance(p, bool):
            return E.PowScalar.apply(self, p)
        return self._binary(E.Pow, p)

    def __rpow__(self, base):
        return self._binary(E.Pow, base, reflected=True)

    def __neg__(self):
        return E.Neg.apply(self)

    def __matmul__(self, o):
        return matmul(self, o)

    def __rmatmul__(self, o):
        return matmul(self._lift(o), self)

    add, sub, mul, div, pow, neg = __add__, __sub__, __mul__, __truediv__, __pow__, __neg__

    # comparisons: boolean tensors, outside the graph
    def _compare(self, op, other):
        other = self._lift(other)
        return Tensor._wrap(op(self.data, other.data))

    def __eq__(self, o):
        return self._compare(np.equal, o)

    def __ne__(self, o):
        return self._compare(np.not_equal, o)

    def __lt__(self, o):
        return self._compare(np.less, o)

    def __le__(self, o):
        return self._compare(np.less_equal, o)

    def __gt__(self, o):
        return self._compare(np.greater, o)

    def __ge__(self, o):
        return self._compare(np.greater_equal, o)

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__

    def __invert__(self):
        return Tensor._wrap(~self.data)

    def __and__(self, o):
        return self._compare(np.logical_and, o)

    def __or__(self, o):
        return self._compare(np.logical_or, o)

    # --- unary math ----------------------------------------------------------------------
    def _float(self):
        return self if self.dtype.kind == "f" else self.to(get_default_dtype())

    def exp(self):
        return E.Exp.apply(self._float())

    def log(self):
        return E.Log.apply(self._float())

    def sqrt(self):
        return E.Sqrt.apply(self._float())

    def abs(self):
        return E.Abs.apply(self)

    __abs__ = abs  # abs(t), as PyTorch

    def tanh(self):
        return E.Tanh.apply(self._float())

    def sigmoid(self):
        return E.Sigmoid.apply(self._float())

    def relu(self):
        return E.ReLU.apply(self)

    def leaky_relu(self, negative_slope=0.01):
        return E.LeakyReLU.apply(self, negative_slope)

    def clip(self, min=None, max=None):
        """Clamp into [min, max] (either may be None)."""
        if min is None and max is None:
            raise ValueError("clip needs at least one of min and max")
        return E.Clip.apply(self, min, max)

    clamp = clip

    def maximum(self, other):
        return self._binary(E.Maximum, other)

    def minimum(self, other):
        return self._binary(E.Minimum, other)

    def square(self):
        return self * self

    # --- reductions -------------------------------------------------------------------
    def _axes(self, dim, axis):
        dim = axis if dim is None else dim
        if dim is None:
            return None
        dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
        out = []
        for d in dims:
            if not -max(self.ndim, 1) <= d < max(self.ndim, 1):
                raise IndexError(f"dimension {d} is out of range for a tensor of shape {self.shape}")
            out.append(int(d) % max(self.ndim, 1))
        if len(set(out)) != len(out):
            raise ValueError(f"repeated dimension in {dims}")
        return tuple(out) if self.ndim else None

    def sum(self, dim=None, keepdim=False, *, axis=None, keepdims=None, dtype=None):
        """Sum over ``dim`` (PyTorch) a.k.a. ``axis`` (NumPy); all axes when None."""
        keep = keepdim if keepdims is None else keepdims
        x = self if dtype is None else self.to(dtype)
        if x.dtype == bool_:
            x = x.to(int64)
        return R.Sum.apply(x, self._axes(dim, axis), bool(keep))

    def mean(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        axes = self._axes(dim, axis)
        n = self.data.size if axes is None else int(np.prod([self.shape[a] for a in axes]))
        x = self._float()
        return x.sum(axes, keepdim=keepdim, keepdims=keepdims) / n

    def var(self, dim=None, keepdim=False, *, correction=1, axis=None, keepdims=None, unbiased=None):
        """Variance with Bessel's ``correction`` (1 = unbiased, PyTorch's default; 0 = NumPy's)."""
        if unbiased is not None:
            correction = int(unbiased)
        axes = self._axes(dim, axis)
        n = self.data.size if axes is None else int(np.prod([self.shape[a] for a in axes]))
        x = self._float()
        centred = x - x.mean(axes, keepdim=True)
        return (centred * centred).sum(axes, keepdim=keepdim, keepdims=keepdims) / max(n - correction, 0)

    def std(self, dim=None, keepdim=False, *, correction=1, axis=None, keepdims=None):
        return self.var(dim, keepdim, correction=correction, axis=axis, keepdims=keepdims).sqrt()

    def amax(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """Largest value over ``dim``. Ties share the gradient evenly (as ``torch.amax``)."""
        keep = keepdim if keepdims is None else keepdims
        self._check_nonempty("amax")
        return R.Amax.apply(self, self._axes(dim, axis), bool(keep))

    def amin(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """Smallest value over ``dim``. Ties share the gradient evenly (as ``torch.amin``)."""
        keep = keepdim if keepdims is None else keepdims
        self._check_nonempty("amin")
        return R.Amin.apply(self, self._axes(dim, axis), bool(keep))

    def max(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """``max()`` is ``amax()``; ``max(dim)`` returns ``(values, indices)`` as PyTorch does.

        With a dim, the gradient goes to the element at the returned index
        (the first maximum); without one, ties share it evenly.
        """
        return self._extreme(dim, keepdim, axis, keepdims, largest=True)

    def min(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """``min()`` is ``amin()``; ``min(dim)`` returns ``(values, indices)`` as PyTorch does."""
        return self._extreme(dim, keepdim, axis, keepdims, largest=False)

    def _extreme(self, dim, keepdim, axis, keepdims, largest):
        keep = bool(keepdim if keepdims is None else keepdims)
        if dim is None and axis is None:
            return self.amax() if largest else self.amin()
        (d,) = self._axes(dim, axis) or (0,)
        if self.ndim == 0:  # dim 0 / -1 of a 0-d tensor: the value itself at index 0, as PyTorch
            values, idx = self.reshape(1)._extreme(0, False, None, None, largest)
            return MaxResult(values.reshape(()), idx.reshape(()))
        self._check_nonempty("max" if largest else "min")
        idx = (np.argmax if largest else np.argmin)(self.data, axis=d)
        idx = np.expand_dims(idx, d)
        values = M.Gather.apply(self, d, idx)
        if not keep:
            values = values.squeeze(d)
            idx = np.squeeze(idx, d)
        return MaxResult(values, Tensor._wrap(idx.astype(np.int64)))

    def _check_nonempty(self, name):
        if self.data.size == 0:
            raise ValueError(f"{name}() of an empty tensor of shape {self.shape}")

    def argmax(self, dim=None, keepdim=False):
        return self._arg(np.argmax, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return self._arg(np.argmin, dim, keepdim)

    def _arg(self, f, dim, keepdim):
        if dim is None:
            idx = f(self.data)
            return Tensor._wrap(idx.astype(np.int64) if _is_cuda(idx) else np.asarray(idx, dtype=np.int64))
        (d,) = self._axes(dim, None)
        return Tensor._wrap(f(self.data, axis=d, keepdims=keepdim).astype(np.int64))

    # --- shape --------------------------------------------------------------------------
    def reshape(self, *shape):
        shape = _shape_arg(shape)
        new = _resolve_shape(shape, self.numel())
        if new is None:
            raise ValueError(f"cannot reshape a tensor of shape {self.shape} ({self.numel()} elements) into {shape}")
        return self if new == self.shape else M.Reshape.apply(self, new)

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        if self.ndim == 0:
            return self.reshape(1)
        s = start_dim % self.ndim
        e = end_dim % self.ndim
        if s > e:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
        # the merged size spelled out: -1 is ambiguous when another axis has size 0
        merged = int(np.prod(self.shape[s : e + 1]))
        return self.reshape(self.shape[:s] + (merged,) + self.shape[e + 1 :])

    def permute(self, *dims):
        dims = _shape_arg(dims)
        if sorted(d % max(self.ndim, 1) for d in dims) != list(range(self.ndim)):
            raise ValueError(f"permute: {dims} is not a permutation of the {self.ndim} dims of shape {self.shape}")
        dims = tuple(d % self.ndim for d in dims)
        return self if dims == tuple(range(self.ndim)) else M.Permute.apply(self, dims)

    def transpose(self, dim0=-2, dim1=-1):
        """Swap two axes (the last two by default, unlike PyTorch which requires them)."""
        if self.ndim < 2:
            return self
        axes = list(range(self.ndim))
        d0, d1 = dim0 % self.ndim, dim1 % self.ndim
        axes[d0], axes[d1] = axes[d1], axes[d0]
        return self.permute(axes)

    swapaxes = transpose

    @property
    def T(self):
        return self.permute(tuple(reversed(range(self.ndim))))

    @property
    def mT(self):
        return self.transpose(-2, -1)

    def squeeze(self, dim=None):
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        dims = (dim,) if isinstance(dim, int) else tuple(dim)
        axes = {d % max(self.ndim, 1) for d in dims}
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if not (i in axes and n == 1)))

    def unsqueeze(self, dim):
        if not -self.ndim - 1 <= dim <= self.ndim:
            raise IndexError(f"unsqueeze: dim {dim} out of range for a tensor of shape {self.shape}")
        d = dim % (self.ndim + 1)
        return self.reshape(self.shape[:d] + (1,) + self.shape[d:])

    def expand(self, *shape):
        shape = _shape_arg(shape)
        lead = len(shape) - self.ndim
        if lead < 0:
            raise ValueError(f"expand: target {shape} has fewer dims than the tensor's shape {self.shape}")
        target = tuple(self.shape[i - lead] if (n == -1 and i >= lead) else n for i, n in enumerate(shape))
        try:
            np.broadcast_shapes(self.shape, target)
            ok = np.broadcast_shapes(self.shape, target) == target
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"expand: shape {self.shape} cannot be expanded to {shape}")
        return self if target == self.shape else E.BroadcastTo.apply(self, target)

    broadcast_to = expand

    def expand_as(self, other):
        return self.expand(other.shape)

    def sum_to(self, shape):
        """Sum over broadcast axes down to ``shape`` (the adjoint of ``expand``)."""
        return E.unbroadcast(self, tuple(shape))

    def __getitem__(self, key):
        key = _index_key(key, self.shape)
        try:
            return M.GetItem.apply(self, key)
        except IndexError as e:
            raise IndexError(f"invalid index for a tensor of shape {self.shape}: {e}") from None

    def gather(self, dim, index):
        """out[i][j] = self[i][index[i][j]] for dim=1 (``torch.gather``)."""
        index = index.data if isinstance(index, Tensor) else np.asarray(index)
        if index.dtype.kind not in "iu":
            raise TypeError(f"gather: index must be integer, got {index.dtype}")
        (d,) = self._axes(dim, None)
        if index.ndim != self.ndim:
            raise ValueError(f"gather: index has {index.ndim} dims, input has {self.ndim} (shape {self.shape})")
        if index.size and (index.min() < -self.shape[d] or index.max() >= self.shape[d]):
            bad = index.max() if index.max() >= self.shape[d] else index.min()
            raise IndexError(f"gather: index {bad} is out of bounds for dim {d} with size {self.shape[d]}")
        return M.Gather.apply(self, d, index % self.shape[d])

    # --- matrix and nn-ish ---------------------------------------------------------------
    def matmul(self, other):
        return matmul(self, other)

    def softmax(self, dim=-1):
        (d,) = self._axes(dim, None) or (0,)
        return Softmax.apply(self._float(), d)

    def log_softmax(self, dim=-1):
        (d,) = self._axes(dim, None) or (0,)
        return LogSoftmax.apply(self._float(), d)

    def where(self, condition, other):
        """``self`` where ``condition`` holds, else ``other`` (PyTorch's ``Tensor.where``)."""
        return where(condition, self, other)

    # --- in-place operations ----------------------------------------------------------
    # They change .data directly and are not recorded in the graph, so they are
    # allowed only where no gradient can flow through them: on tensors that do
    # not require grad, or inside no_grad() (parameter updates), as in PyTorch.
    def _inplace(self, ufunc, other, name):
        other_t = self._lift(other)
        if is_grad_enabled() and (self.requires_grad or other_t.requires_grad):
            what = "a leaf tensor that requires grad" if self.requires_grad and self.is_leaf else "a tensor in the graph"
            raise RuntimeError(
                f"in-place {name} on {what} (shape {self.shape}) would bypass autograd; "
                "wrap parameter updates in `with no_grad():`, or use the out-of-place form"
            )
        if not self.data.flags.writeable:
            raise RuntimeError(f"in-place {name}: this tensor's memory is read-only (a broadcast view); clone() it first")
        try:
            fits = np.broadcast_shapes(self.shape, other_t.shape) == self.shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"in-place {name}: shape {other_t.shape} cannot be broadcast to {self.shape}")
        if ufunc is None:
            self.data[...] = other_t.data
        else:
            ufunc(self.data, other_t.data, out=self.data, casting="same_kind")
        self._vc[0] += 1
        return self

    def __iadd__(self, other):
        return self._inplace(np.add, other, "+=")

    def __isub__(self, other):
        return self._inplace(np.subtract, other, "-=")

    def __imul__(self, other):
        return self._inplace(np.multiply, other, "*=")

    def __itruediv__(self, other):
        return self._inplace(np.divide, other, "/=")

    def add_(self, other, alpha=1):
        return self._inplace(np.add, other if alpha == 1 else self._lift(other) * alpha, "add_")

    def sub_(self, other, alpha=1):
        return self._inplace(np.subtract, other if alpha == 1 else self._lift(other) * alpha, "sub_")

    def mul_(self, other):
        return self._inplace(np.multiply, other, "mul_")

    def div_(self, other):
        return self._inplace(np.divide, other, "div_")

    def copy_(self, src):
        """Copy ``src``'s values into this tensor (broadcasting, casting to this dtype)."""
        return self._inplace(None, src, "copy_")

    def fill_(self, value):
        return self._inplace(None, value, "fill_")

    def zero_(self):
        """Fill with zeros in place."""
        return self._inplace(None, 0, "zero_")


class MaxResult(tuple):
    """``(values, indices)`` returned by ``max(dim)`` / ``min(dim)``."""

    __slots__ = ()

    def __new__(cls, values, indices):
        return super().__new__(cls, (values, indices))

    @property
    def values(self):
        return self[0]

    @property
    def indices(self):
        return self[1]


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(n) for n in shape)


def _resolve_shape(shape, numel):
    """``shape`` with one -1 filled in, or None when it cannot hold ``numel`` elements."""
    if shape.count(-1) > 1 or any(n < -1 for n in shape):
        return None
    known = int(np.prod([n for n in shape if n != -1]))
    if -1 in shape:
        if known == 0 or numel % known:
            return None
        shape = tuple(numel // known if n == -1 else n for n in shape)
    return shape if int(np.prod(shape)) == numel else None


def _index_key(key, shape):
    """Normalise an index: Tensors and lists become arrays; bounds are checked here."""
    if not isinstance(key, tuple):
        key = (key,)
    out = []
    for k in key:
        if isinstance(k, Tensor):
            k = k.data
        elif isinstance(k, list):
            k = np.asarray(k)
        if isinstance(k, np.ndarray) and k.dtype.kind not in "iub":
            raise IndexError(f"tensors used as indices must be integer or boolean, got {k.dtype}")
        out.append(k)
    return tuple(out)


def _check_device(device):
    """Validate a device argument (kept for callers that only check)."""
    _parse_device(device)


# ----------------------------------------------------------------------------
# Functions on tensors
# ----------------------------------------------------------------------------
def matmul(a, b):
    """Matrix product with NumPy's rules: 1-D operands get a unit axis added and removed."""
    if not isinstance(a, Tensor):
        a = b._lift(a)
    if not isinstance(b, Tensor):
        b = a._lift(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes {a.shape} and {b.shape}")
    a2 = a.unsqueeze(0) if a.ndim == 1 else a
    b2 = b.unsqueeze(-1) if b.ndim == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        raise ValueError(
            f"matmul: shapes {a.shape} and {b.shape} are not aligned ({a2.shape[-1]} != {b2.shape[-2]})"
        )
    try:
        np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dims of {a.shape} and {b.shape} cannot be broadcast") from None
    if a2.dtype != b2.dtype:
        dt = _result_dtype(a2.dtype, b2.dtype)
        a2, b2 = a2.to(dt), b2.to(dt)
    out = MatMul.apply(a2, b2)
    if a.ndim == 1:
        out = out.squeeze(-2)
    if b.ndim == 1:
        out = out.squeeze(-1)
    return out


def where(condition, input, other):
    """Elementwise ``input if condition else other``; the gradient flows to the chosen side."""
    cond = condition.data if isinstance(condition, Tensor) else np.asarray(condition)
    if cond.dtype != np.bool_:
        raise TypeError(f"where: condition must be boolean, got {cond.dtype}")
    ref = input if isinstance(input, Tensor) else other if isinstance(other, Tensor) else Tensor(input)
    a, b = ref._lift(input), ref._lift(other)
    if a.dtype != b.dtype:
        dt = _result_dtype(a.dtype, b.dtype)
        a, b = a.to(dt), b.to(dt)
    try:
        np.broadcast_shapes(cond.shape, a.shape, b.shape)
    except ValueError:
        raise ValueError(f"where: shapes {cond.shape}, {a.shape} and {b.shape} cannot be broadcast together") from None
    return E.Where.apply(cond, a, b)


def maximum(a, b):
    return a.maximum(b) if isinstance(a, Tensor) else b._lift(a).maximum(b)


def minimum(a, b):
    return a.minimum(b) if isinstance(a, Tensor) else b._lift(a).minimum(b)


def _common(tensors, name):
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    if not tensors:
        raise ValueError(f"{name} needs at least one tensor")
    dt = tensors[0].dtype
    for t in tensors[1:]:
        dt = _result_dtype(dt, t.dtype)
    return [t.to(dt) for t in tensors]


def concatenate(tensors, dim=0, *, axis=None):
    """Join tensors along an existing axis (``torch.cat``)."""
    tensors = _common(tensors, "concatenate")
    dim = axis if axis is not None else dim
    ref = tensors[0]
    if ref.ndim == 0:
        raise ValueError("concatenate: zero-dimensional tensors cannot be concatenated")
    d = dim % ref.ndim
    for t in tensors[1:]:
        if t.ndim != ref.ndim or any(t.shape[i] != ref.shape[i] for i in range(ref.ndim) if i != d):
            raise ValueError(f"concatenate: shapes {ref.shape} and {t.shape} differ outside dim {d}")
    return M.Concatenate.apply(*tensors, axis=d)


cat = concatenate


def stack(tensors, dim=0, *, axis=None):
    """Join tensors of equal shape along a new axis."""
    tensors = _common(tensors, "stack")
    dim = axis if axis is not None else dim
    for t in tensors[1:]:
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack: all tensors need the same shape, got {tensors[0].shape} and {t.shape}")
    return concatenate([t.unsqueeze(dim) for t in tensors], dim=dim)


# --- creation ------------------------------------------------------------------------------
def tensor(data, dtype=None, requires_grad=False, device=None):
    """A new leaf tensor holding a copy of ``data``."""
    return Tensor(data, dtype=dtype, requires_grad=requires_grad, device=device)


def from_numpy(array):
    """A tensor sharing memory with ``array``."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects an ndarray, got {type(array).__name__}")
    if array.dtype.kind not in "fiub":
        raise TypeError(f"from_numpy: unsupported dtype {array.dtype} (floating point, integer or bool arrays only)")
    if not array.dtype.isnative:
        # sharing memory rules out converting it; the kernels read native byte order only
        raise ValueError(
            f"from_numpy: the array's dtype {array.dtype.str!r} is not in this machine's byte order; "
            "convert it first with array.astype(array.dtype.newbyteorder('=')), or use tensor(array), "
            "which copies and converts"
        )
    return Tensor._wrap(array)


def _make(array, requires_grad, device):
    t = Tensor._wrap(_move(array, _parse_device(device)))
    return t.requires_grad_(True) if requires_grad else t


def _dt(dtype):
    return get_default_dtype() if dtype is None else np.dtype(dtype)


def zeros(*shape, dtype=None, requires_grad=False, device=None):
    return _make(np.zeros(_shape_arg(shape), dtype=_dt(dtype)), requires_grad, device)


def ones(*shape, dtype=None, requires_grad=False, device=None):
    return _make(np.ones(_shape_arg(shape), dtype=_dt(dtype)), requires_grad, device)


def full(shape, fill_value, dtype=None, requires_grad=False, device=None):
    if dtype is None:
        dtype = get_default_dtype() if isinstance(fill_value, float) else np.int64 if not isinstance(fill_value, bool) else np.bool_
    return _make(np.full(_shape_arg((shape,)), fill_value, dtype=np.dtype(dtype)), requires_grad, device)


def empty(*shape, dtype=None, requires_grad=False, device=None):
    return zeros(*shape, dtype=dtype, requires_grad=requires_grad, device=device)


def arange(start, end=None, step=1, dtype=None, requires_grad=False, device=None):
    if end is None:
        start, end = 0, start
    if dtype is None:
        dtype = np.int64 if all(isinstance(v, int) for v in (start, end, step)) else get_default_dtype()
    return _make(np.arange(start, end, step, dtype=np.dtype(dtype)), requires_grad, device)


def linspace(start, end, steps, dtype=None, requires_grad=False, device=None):
    return _make(np.linspace(start, end, steps, dtype=_dt(dtype)), requires_grad, device)


def eye(n, m=None, dtype=None, requires_grad=False, device=None):
    return _make(np.eye(n, m, dtype=_dt(dtype)), requires_grad, device)


def rand(*shape, dtype=None, requires_grad=False, device=None, generator=None):
    """Uniform on [0, 1), from the generator seeded by ``manual_seed``."""
    g = generator or _random.default_generator()
    return _make(g.random(_shape_arg(shape), dtype=_dt(dtype)), requires_grad, device)


def randn(*shape, dtype=None, requires_grad=False, device=None, generator=None):
    """Standard normal, from the generator seeded by ``manual_seed``."""
    g = generator or _random.default_generator()
    return _make(g.standard_normal(_shape_arg(shape), dtype=_dt(dtype)), requires_grad, device)


def randint(low, high=None, size=(), dtype=None, device=None, generator=None):
    if high is None:
        low, high = 0, low
    g = generator or _random.default_generator()
    return _make(g.integers(low, high, size=_shape_arg((size,)), dtype=np.dtype(dtype or np.int64)), False, device)


def _like(t, dtype):
    return t.dtype if dtype is None else np.dtype(dtype)


def zeros_like(t, dtype=None, requires_grad=False):
    return zeros(t.shape, dtype=_like(t, dtype), requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    return ones(t.shape, dtype=_like(t, dtype), requires_grad=requires_grad)


def full_like(t, fill_value, dtype=None, requires_grad=False):
    return full(t.shape, fill_value, dtype=_like(t, dtype), requires_grad=requires_grad)


def rand_like(t, dtype=None, requires_grad=False):
    return rand(t.shape, dtype=_like(t, dtype), requires_grad=requires_grad)


def randn_like(t, dtype=None, requires_grad=False):
    return randn(t.shape, dtype=_like(t, dtype), requires_grad=requires_grad)
