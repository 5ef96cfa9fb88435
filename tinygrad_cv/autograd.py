"""One graph, one walk: the reverse-mode engine shared by `Scalar` and `Tensor`.

Every differentiable operation is a :class:`Function` with a ``forward`` that
computes on raw values (Python floats for `Scalar`, NumPy arrays for `Tensor`)
and a ``backward`` that receives the upstream gradient as a *node* (a `Scalar`
or `Tensor`) and returns one gradient node per input. Because gradients are
nodes built from ordinary differentiable operations, running the backward pass
with ``create_graph=True`` records a graph of its own: gradients of gradients
(double backprop, Hessian-vector products) fall out for free.

Calling ``SomeFunction.apply(a, b)`` runs ``forward`` and, when gradients are
being tracked, records a :class:`Context` (the node of the graph, PyTorch's
``grad_fn``). The output node points to its context, the context points to
its inputs — never the other way round (outputs are held weakly), so a graph
is freed as soon as nothing refers to its result, without reference cycles.

The graph walk (:func:`run_backward`) visits contexts in reverse topological
order: a context's backward may run only once the gradients from *all* of its
outputs' consumers have been added up (the multivariate chain rule sums over
every path). The order is found with an explicit stack, so a chain of a
million nodes needs no recursion.
"""
from __future__ import annotations

import collections
import contextlib
import copy
import itertools
import threading
import weakref

__all__ = [
    "Function",
    "Context",
    "Node",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
    "backward",
    "grad",
    "once_differentiable",
    "RemovableHandle",
]


# ----------------------------------------------------------------------------
# Grad mode
# ----------------------------------------------------------------------------
class _GradMode(threading.local):
    """Whether operations record a graph — one flag per thread, as in PyTorch.

    A process-wide flag would let ``no_grad()`` in an evaluation thread (or the
    one inside ``optimizer.step()``) switch recording off under a training
    thread's feet. Each new thread starts with recording on.
    """

    enabled = True


_grad_mode = _GradMode()


def is_grad_enabled() -> bool:
    """True when new operations record a graph for backpropagation (in the calling thread)."""
    return _grad_mode.enabled


class set_grad_enabled(contextlib.ContextDecorator):
    """Turn graph recording on or off inside a ``with`` block or decorated function."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self.prev = None

    def __enter__(self):
        self.prev = _grad_mode.enabled
        _grad_mode.enabled = self.mode
        return self

    def __exit__(self, *exc):
        _grad_mode.enabled = self.prev
        return False

    def _recreate_cm(self):
        # Used as a decorator, one instance serves every call; a call nested in
        # another (recursion) would overwrite the outer call's saved mode, so
        # each call gets its own copy.
        return copy.copy(self)


class _ModeDecorator(set_grad_enabled):
    """Usable as ``with m():``, ``@m()`` and bare ``@m`` (as in PyTorch)."""

    mode = True

    def __new__(cls, func=None):
        self = super().__new__(cls)
        if func is not None:
            if not callable(func):
                raise TypeError(f"{cls.__name__}() takes no arguments (got {func!r})")
            self.__init__()
            return self(func)
        return self

    def __init__(self, func=None):
        super().__init__(self.mode)


class no_grad(_ModeDecorator):
    """Context manager and decorator: operations inside record no graph.

    Use it for evaluation and for parameter updates::

        with no_grad():
            y = model(x)          # y.requires_grad is False
    """

    mode = False


class enable_grad(_ModeDecorator):
    """Context manager and decorator: re-enable recording inside ``no_grad``."""

    mode = True


# ----------------------------------------------------------------------------
# Nodes
# ----------------------------------------------------------------------------
class Node:
    """What `Scalar` and `Tensor` have in common as far as the graph is concerned.

    ``data`` is the raw value; ``_ctx`` is the context of the operation that
    produced it (``None`` for a leaf) and ``_out_index`` which of that
    operation's outputs it is. Subclasses say how to wrap a raw value
    (:meth:`_wrap`) and how to make the gradient ``1`` to start a walk from.
    """

    # _backward_hooks (a leaf's Tensor.register_hook hooks) is deliberately left unset by
    # constructors: it is read with a default, and only set when a hook is registered
    __slots__ = (
        "data", "requires_grad", "_ctx", "_out_index", "_grad", "_retains_grad", "_backward_hooks", "__weakref__",
    )

    # --- hooks for subclasses -------------------------------------------------
    @classmethod
    def _wrap(cls, data):  # pragma: no cover - abstract
        """A new constant node (no graph, no grad) holding ``data``."""
        raise NotImplementedError

    def _seed_grad(self):  # pragma: no cover - abstract
        """The gradient dself/dself, used when ``backward()`` gets no gradient."""
        raise NotImplementedError

    @classmethod
    def _zeros(cls, meta):  # pragma: no cover - abstract
        """A zero gradient for an output described by ``meta`` (see :meth:`_meta`)."""
        raise NotImplementedError

    def _meta(self):
        """What is needed to build a zero gradient for this node later, without keeping it alive."""
        return None

    @staticmethod
    def _can_require_grad(data) -> bool:
        return True

    def _saved_version(self):
        """This node's in-place change counter when saved for backward (None: cannot change in place)."""
        return None

    @classmethod
    def _link_views(cls, out, nodes):
        """Let an output that is a view of an input's memory share that input's version counter."""

    @classmethod
    def _from_function(cls, data):
        """Wrap the raw result of a ``forward`` (no copy)."""
        return cls._wrap(data)

    @classmethod
    def _check_inputs(cls, fn, nodes):
        """Refuse inputs that cannot meet in one operation (e.g. different devices)."""

    def _check_grad(self, g, fn_name):
        """Catch a ``backward`` that returns a gradient of the wrong kind for this input."""

    def _as_grad(self, g):
        """Turn a user-supplied upstream gradient into a node of the right kind."""
        return g

    def _store_grad(self, g, create_graph):
        """Accumulate ``g`` into ``self._grad`` (leaves, and non-leaves that retain it)."""
        if create_graph:
            self._grad = g if self._grad is None else self._grad + g
        else:  # plain values: no graph is needed for the running sum
            self._grad = g.detach() if self._grad is None else type(g)._wrap(self._grad.data + g.data)

    # --- shared API -----------------------------------------------------------
    @property
    def is_leaf(self) -> bool:
        """A leaf was made by the user, not by an operation that records a graph."""
        return self._ctx is None

    @property
    def grad_fn(self):
        """The context of the operation that made this node (``None`` for leaves)."""
        return self._ctx

    def backward(self, gradient=None, retain_graph=False, create_graph=False):
        """Backpropagate from this node: add d(self)/d(leaf) into every leaf's ``.grad``.

        ``gradient`` is the upstream gradient dL/d(self); it may be left out
        only when ``self`` holds a single number. The graph's saved values are
        freed afterwards unless ``retain_graph=True``; ``create_graph=True``
        records the backward pass itself so the gradients can be differentiated
        again (and implies ``retain_graph``).
        """
        backward([self], None if gradient is None else [gradient], retain_graph=retain_graph, create_graph=create_graph)

    def detach(self):
        """The same value, cut off from the graph (shares memory for tensors)."""
        return type(self)._wrap(self.data)

    def retain_grad(self):
        """Ask for ``.grad`` to be filled in on this non-leaf node too."""
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on a node that does not require grad")
        self._retains_grad = True
        return self


# ----------------------------------------------------------------------------
# Functions and their contexts
# ----------------------------------------------------------------------------
class Context:
    """The record one application of a `Function` leaves in the graph.

    ``forward`` may stash anything on it (``ctx.shape = x.shape``) and call
    :meth:`save_for_backward`; ``backward`` reads ``ctx.saved_tensors`` and
    ``ctx.needs_input_grad`` (one bool per positional argument of ``apply``).
    """

    # slots for the engine's own fields keep the graph light; a __dict__ is only
    # created when a forward stashes something of its own (``ctx.shape = ...``)
    __slots__ = (
        "fn", "inputs", "needs_input_grad", "outputs", "out_meta", "freed", "_to_save", "_saved", "_versions",
        "_hooks", "__dict__",
    )

    # Outputs that receive no gradient are handed to ``backward`` as zeros unless a
    # forward calls ``ctx.set_materialize_grads(False)`` (the instance attribute then
    # shadows this class default, so ordinary contexts pay nothing for the option).
    _materialize_grads = True

    def __init__(self, fn, inputs, needs_input_grad):
        self.fn = fn
        self.inputs = inputs
        self.needs_input_grad = needs_input_grad
        self.outputs = ()
        self.freed = False
        self._to_save = ()
        self._saved = ()
        self._versions = ()
        # {output index: OrderedDict of Tensor.register_hook hooks}; kept here and not on the
        # output node, which the context holds only weakly: as in PyTorch, a hook registered
        # on an intermediate result still fires after the Python object is gone
        self._hooks = None

    @property
    def name(self) -> str:
        return self.fn.__name__

    def __repr__(self):
        return f"<{self.fn.__name__}Backward>"

    def set_materialize_grads(self, value: bool):
        """Whether outputs that received no gradient reach ``backward`` as zeros (default) or as None.

        Call it from ``forward``. With ``False``, ``backward`` must cope with
        ``None`` among its gradients (PyTorch's ``ctx.set_materialize_grads``).
        """
        self._materialize_grads = bool(value)

    def save_for_backward(self, *values):
        """Keep values for ``backward``.

        Pass the raw inputs or outputs of ``forward`` and ``saved_tensors``
        gives back the graph nodes themselves — so a backward written with
        them is differentiable again (needed for ``create_graph``). Any other
        value comes back wrapped as a constant node.
        """
        self._to_save = values

    @property
    def saved_tensors(self):
        if self.freed:
            raise RuntimeError(
                f"{self.name}: trying to backward through the graph a second time, or to read saved "
                "values after they were freed. Pass retain_graph=True to the first backward() if you "
                "need to walk the graph again."
            )
        out = []
        for item, version in zip(self._saved, self._versions):
            if type(item) is weakref.ref:  # a saved output, held weakly to avoid a cycle
                item = item()
                if item is None:  # the output died; nothing can reach this context any more
                    raise RuntimeError(f"{self.name}: a saved output was freed")
            if version is not None and item._version != version:
                # the values backward would read are no longer the ones forward used
                raise RuntimeError(
                    f"{self.name}: one of the variables needed for gradient computation has been modified "
                    f"by an inplace operation: a tensor of shape {item.shape} saved for the backward pass "
                    f"is at version {item._version}; expected version {version} instead. The change may "
                    "have gone through a view or a detach()ed alias sharing its memory. Modify a copy "
                    "(x.clone()) instead, or make the change after backward()."
                )
            out.append(item)
        return tuple(out)

    saved_values = saved_tensors  # the name reads better for the Scalar engine

    def _resolve_saved(self, raw_inputs, raw_outputs, outputs, node_type):
        """Turn the raw values given to ``save_for_backward`` into nodes, noting each one's version.

        A raw input is saved as its input node, a raw output weakly as its
        output node, anything else as a new constant. The version of every
        node (its in-place change counter, shared with its views) is recorded
        so that ``saved_tensors`` can refuse values changed since.
        """
        saved, versions, used = [], [], set()
        for value in self._to_save:
            hit = None
            for i, r in enumerate(raw_inputs):
                if r is value and self.inputs[i] is not None:
                    if i not in used:
                        hit = i
                        break
                    if hit is None:
                        hit = i
            if hit is not None:
                used.add(hit)
                node = self.inputs[hit]
                saved.append(node)
                versions.append(node._saved_version())
                continue
            for k, r in enumerate(raw_outputs):
                if r is value:
                    saved.append(weakref.ref(outputs[k]))
                    versions.append(outputs[k]._saved_version())
                    break
            else:
                saved.append(value if isinstance(value, Node) else node_type._wrap(value))
                versions.append(None)
        self._saved = tuple(saved)
        self._versions = tuple(versions)
        self._to_save = ()

    def _free(self):
        self._saved = ()
        self._versions = ()
        self.freed = True


class Function:
    """Base class of every differentiable operation (PyTorch's ``autograd.Function``).

    Subclass it with two static methods::

        class Square(Function):
            @staticmethod
            def forward(ctx, x):            # raw values in, raw value out
                ctx.save_for_backward(x)
                return x * x

            @staticmethod
            def backward(ctx, grad):        # nodes in, nodes out
                (x,) = ctx.saved_tensors
                return grad * 2 * x         # d(x^2)/dx = 2x, times the upstream gradient

        y = Square.apply(t)

    ``backward`` returns one gradient per positional argument of ``apply``
    (``None`` for arguments that are not nodes or need no gradient); each has
    the shape of its input. Keyword arguments are passed to ``forward`` only.
    """

    @staticmethod
    def forward(ctx, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grad_outputs):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        # This runs for every node of every graph (and, in backward, for every
        # operation a backward method uses), so it is written as one pass over
        # the arguments with no helper calls on the common path: a training
        # step at batch 1 is mostly this bookkeeping.
        node_type = None
        raw, needs, nodes = [], [], []
        for a in args:
            if isinstance(a, Node):
                if node_type is None:
                    node_type = type(a)
                raw.append(a.data)
                needs.append(a.requires_grad)
                nodes.append(a)
            else:
                raw.append(a)
                needs.append(False)
                nodes.append(None)
        if node_type is None:
            raise TypeError(f"{cls.__name__}.apply needs at least one Scalar or Tensor argument")
        nodes = tuple(nodes)
        node_type._check_inputs(cls, nodes)
        ctx = Context(cls, nodes, tuple(needs))
        result = cls.forward(ctx, *raw, **kwargs)
        track = True in needs and _grad_mode.enabled
        if type(result) is not tuple:
            out = node_type._from_function(result)
            node_type._link_views(out, nodes)
            if track and out._can_require_grad(result):
                out.requires_grad = True
                out._ctx = ctx
                ctx.outputs = (weakref.ref(out),)
                ctx.out_meta = (None,)  # a single output always receives a gradient
                if ctx._to_save:
                    ctx._resolve_saved(raw, (result,), (out,), node_type)
            return out
        outputs = tuple(node_type._from_function(r) for r in result)
        for o in outputs:
            node_type._link_views(o, nodes)
        if track:
            ctx.outputs = tuple(weakref.ref(o) for o in outputs)
            # outputs that cannot carry a gradient (integer indices) get None in backward,
            # differentiable ones that received nothing get zeros
            ctx.out_meta = tuple((node_type, o._meta()) if o._can_require_grad(o.data) else None for o in outputs)
            for k, o in enumerate(outputs):
                if o._can_require_grad(o.data):
                    o.requires_grad = True
                    o._ctx = ctx
                    o._out_index = k
            ctx._resolve_saved(raw, result, outputs, node_type)
        return outputs


# ----------------------------------------------------------------------------
# once_differentiable
# ----------------------------------------------------------------------------
def once_differentiable(fn=None, *, fallback=None):
    """Mark a Function's ``backward`` as first-order only (PyTorch's ``once_differentiable``).

    The decorated backward runs with graph recording off: it may compute on
    raw values (``grad.data``, ``x.data``) and return raw arrays or floats,
    which are wrapped as nodes of the gradient's kind. A first-order walk
    (``backward()``, ``grad()``) records nothing anyway, so it simply runs it.

    When a graph *is* being recorded (``create_graph=True``):

    * without ``fallback``, it refuses with a RuntimeError if any input of
      the Function or any incoming gradient requires grad: its result could
      not be differentiated again;
    * with ``fallback`` (the composite backward, written with differentiable
      operations), the engine runs that instead, so gradients of gradients
      work. The fused operations declare their fast kernel path this way::

          class Linear(Function):
              @staticmethod
              def composite_backward(ctx, grad):      # differentiable operations
                  ...

              @staticmethod
              @once_differentiable(fallback=composite_backward)
              def backward(ctx, grad):                # the kernels, on raw values
                  ...

    Usable bare (``@once_differentiable``) or called (``@once_differentiable()``).
    The undecorated function is kept as ``.first_order``, the fallback as ``.fallback``.
    """
    if isinstance(fallback, staticmethod):  # referenced inside the class body
        fallback = fallback.__func__
    if fn is None:
        return lambda f: once_differentiable(f, fallback=fallback)
    if isinstance(fn, staticmethod):
        fn = fn.__func__

    def backward(ctx, *grads):
        if _grad_mode.enabled:  # create_graph: a graph of the backward pass is wanted
            if fallback is not None:
                return fallback(ctx, *grads)
            if any(isinstance(n, Node) and n.requires_grad for n in (*grads, *ctx.inputs)):
                name = getattr(ctx, "name", fn.__qualname__)
                raise RuntimeError(
                    f"{name}.backward is decorated with @once_differentiable: it cannot be differentiated "
                    "again, so it cannot run with create_graph=True. Use create_graph=False, or give it a "
                    "differentiable composite with @once_differentiable(fallback=...)"
                )
            with set_grad_enabled(False):
                result = fn(ctx, *grads)
        else:
            result = fn(ctx, *grads)
        return _wrap_grads(result, grads)

    backward.__name__ = getattr(fn, "__name__", "backward")
    backward.__qualname__ = getattr(fn, "__qualname__", backward.__name__)
    backward.__doc__ = fn.__doc__
    backward.__module__ = getattr(fn, "__module__", __name__)
    backward.__wrapped__ = fn
    backward.first_order = fn
    backward.fallback = fallback
    backward.once_differentiable = True
    return backward


def _wrap_grads(result, grads):
    """Wrap the raw values a once-differentiable backward returned as nodes of the gradients' kind."""
    node_type = next((type(g) for g in grads if isinstance(g, Node)), None)
    if node_type is None:
        return result

    def wrap(g):
        return g if g is None or isinstance(g, Node) else node_type._wrap(g)

    if isinstance(result, tuple):
        return tuple(wrap(g) for g in result)
    return wrap(result)


# ----------------------------------------------------------------------------
# The graph walk
# ----------------------------------------------------------------------------
def _topological_order(roots):
    """Contexts reachable from ``roots``, each after every context that consumes it.

    Depth-first with an explicit stack (no recursion limit): a context is
    appended once all its inputs' contexts are finished, then the list is
    reversed so consumers come before producers.
    """
    order, seen = [], set()
    for root in roots:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(root.inputs))]
        while stack:
            ctx, it = stack[-1]
            for inp in it:
                child = inp._ctx if inp is not None else None
                if child is not None and child not in seen:
                    seen.add(child)
                    stack.append((child, iter(child.inputs)))
                    break
            else:
                stack.pop()
                order.append(ctx)
    order.reverse()
    return order


def _add(acc, g):
    return g if acc is None else acc + g


def _add_values(acc, g):
    """Sum two gradients without recording a graph (the usual, first-order case)."""
    return g if acc is None else type(g)._wrap(acc.data + g.data)


# ----------------------------------------------------------------------------
# Tensor hooks (``Tensor.register_hook``)
# ----------------------------------------------------------------------------
# A leaf's hooks live on the leaf (``_backward_hooks``, a slot left unset until the first
# hook: Tensor, Parameter and Scalar constructors need not know about it); a non-leaf's
# live on the context that produced it (``Context._hooks``). So a hook that refers to its
# own tensor makes an ordinary cycle, freed with the tensor. This index of the leaves that
# have hooks is weak; it only lets a walk skip all hook work when it is empty.
_hooked_leaf_refs = {}  # id(leaf) -> weakref to the leaf, dropped when the leaf dies


def _no_hooks():
    return None


class _LeafHookDict(collections.OrderedDict):
    """A leaf's hooks; belongs to that one object, so a copy or a pickle of the leaf carries none.

    (``copy.deepcopy`` of a Tensor copies its slots; without this the copy
    would hold hooks that the walk, which knows leaves by identity, never runs.)
    """

    def __reduce__(self):
        return _no_hooks, ()

    def __deepcopy__(self, memo):
        return None


def _leaf_hooks_of(node):
    """``node._backward_hooks``, or None where no hook was ever registered."""
    return getattr(node, "_backward_hooks", None)


# --- hook handles (tensors here, modules in nn/hooks.py share them) ----------------------------
_next_handle_id = itertools.count()  # one counter for every dict: an id never means two hooks


class RemovableHandle:
    """Removes the hook it was returned for: ``handle.remove()``, or use it as a context manager.

    ``RemovableHandle(hooks_dict, *, extra_dict=None)``: the handle's ``id``
    is the key of the hook in ``hooks_dict`` (and in the ``extra_dict``
    dicts, which hold per-hook flags such as ``with_kwargs``). The dicts are
    held weakly, so a handle never keeps a module or a graph alive;
    ``remove()`` is idempotent and harmless once they are gone.
    """

    __slots__ = ("id", "hooks_dict_ref", "extra_dict_ref")

    def __init__(self, hooks_dict, *, extra_dict=None):
        self.id = next(_next_handle_id)
        self.hooks_dict_ref = weakref.ref(hooks_dict)
        if extra_dict is None:
            extra_dict = ()
        elif not isinstance(extra_dict, (list, tuple)):
            extra_dict = (extra_dict,)
        self.extra_dict_ref = tuple(weakref.ref(d) for d in extra_dict)

    def remove(self):
        """Unregister the hook (again: nothing happens)."""
        for ref in (self.hooks_dict_ref, *self.extra_dict_ref):
            d = ref()
            if d is not None:
                d.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False

    def __repr__(self):
        return f"<RemovableHandle id={self.id}>"


def _tensor_hooks(node):
    """The ordered dict of gradient hooks of ``node`` (created on first use), for a handle to add to."""
    ctx = node._ctx
    if ctx is None:
        hooks = _leaf_hooks_of(node)
        if hooks is None:
            hooks = node._backward_hooks = _LeafHookDict()
        key = id(node)
        ref = _hooked_leaf_refs.get(key)
        if ref is None or ref() is not node:

            # the index is bound now: at interpreter exit the module global may already be None
            def forget(ref, key=key, index=_hooked_leaf_refs):
                if index.get(key) is ref:
                    del index[key]

            _hooked_leaf_refs[key] = weakref.ref(node, forget)
        return hooks
    if ctx._hooks is None:
        ctx._hooks = {}
    hooks = ctx._hooks.get(node._out_index)
    if hooks is None:
        hooks = ctx._hooks[node._out_index] = collections.OrderedDict()
    return hooks


def _call_tensor_hooks(hooks, g):
    """Run ``hooks`` in registration order on gradient ``g``; each may return a replacement."""
    for hook in tuple(hooks.values()):  # a snapshot: a hook may remove itself (or another) while running
        new = hook(g)
        if new is None:
            continue
        if not isinstance(new, Node):
            raise TypeError(
                f"tensor hook {getattr(hook, '__name__', hook)!r} returned {type(new).__name__}; "
                f"a hook must return None or a gradient of the same kind as it received ({type(g).__name__})"
            )
        old_shape, new_shape = getattr(g, "shape", None), getattr(new, "shape", None)
        if new_shape != old_shape:
            raise RuntimeError(
                f"tensor hook {getattr(hook, '__name__', hook)!r} changed the shape of the gradient "
                f"from {old_shape} to {new_shape}; a replacement must have the tensor's shape"
            )
        old_dtype, new_dtype = getattr(g, "dtype", None), getattr(new, "dtype", None)
        if new_dtype != old_dtype:
            raise RuntimeError(
                f"tensor hook {getattr(hook, '__name__', hook)!r} changed the dtype of the gradient "
                f"from {old_dtype} to {new_dtype}; cast the replacement back with .to({old_dtype})"
            )
        g = new
    return g


def _hooked_leaves(roots, order, capture):
    """Leaves with live hooks that this walk can reach, and when each is complete.

    A leaf's hooks must see its *whole* gradient, summed over every path, once
    (PyTorch's AccumulateGrad runs when all its inputs are in). Returns
    ``({id(leaf): [leaf, None]}, {position in order: [leaf, ...]})``: the leaf
    is complete once the context at that position, the last one that
    consumes it, has run (position -1: only a root delivers to it).
    With ``capture``, only captured leaves count: ``grad`` never reaches the others.
    """
    live = {}
    for key, ref in list(_hooked_leaf_refs.items()):  # a copy: a weakref callback may change the index
        leaf = ref()
        if leaf is not None and _leaf_hooks_of(leaf) and (capture is None or ("leaf", key) in capture):
            live[key] = leaf
    if not live:
        return None, None
    last = {}
    for node in roots:
        if node._ctx is None and id(node) in live:
            last[id(node)] = -1
    for i, ctx in enumerate(order):
        for inp, need in zip(ctx.inputs, ctx.needs_input_grad):
            if need and inp is not None and inp._ctx is None and id(inp) in live:
                last[id(inp)] = i
    if not last:
        return None, None
    slots, due = {}, {}
    for key, i in last.items():
        slots[key] = [live[key], None]
        due.setdefault(i, []).append(live[key])
    return slots, due


def _needed_contexts(order, capture):
    """Which contexts ``grad`` visits, and which of those it runs.

    Returns ``(visited, run)``. ``run``: the contexts whose ``backward`` leads
    to a node ``grad`` was asked about; ``visited`` adds those with a captured
    output (their hooks fire and the gradient is captured, but their
    ``backward`` is not needed). As in PyTorch, ``grad`` does no work, and fires
    no hook, off the paths to the nodes it returns.
    """
    run, visited = set(), set()
    for ctx in reversed(order):  # producers first: a context's input contexts are decided before it
        for k in range(len(ctx.outputs)):
            if ("out", id(ctx), k) in capture:
                visited.add(ctx)
                break
        for inp, need in zip(ctx.inputs, ctx.needs_input_grad):
            if not need or inp is None:
                continue
            child = inp._ctx
            if child is None:
                if ("leaf", id(inp)) in capture:
                    run.add(ctx)
                    break
            elif child in run or ("out", id(child), inp._out_index) in capture:
                run.add(ctx)
                break
    visited |= run
    return visited, run


# ----------------------------------------------------------------------------
# The walk
# ----------------------------------------------------------------------------
def run_backward(roots, root_grads, retain_graph, create_graph, capture=None):
    """Propagate ``root_grads`` from ``roots`` back through the graph.

    Without ``capture``, gradients of leaves that require grad are added into
    their ``.grad``. With ``capture`` (a dict keyed by the nodes wanted, see
    :func:`grad`) they are collected there instead and no ``.grad`` changes.

    Tensor hooks run on the summed gradient of their node before it is used:
    a non-leaf's just before its producer's ``backward`` (and before
    ``retain_grad`` stores it), a leaf's once its last consumer has run
    (before it is added into ``.grad`` or captured).
    """
    pending = {}  # context -> list with one summed gradient per output
    add = _add if create_graph else _add_values
    order = _topological_order([r._ctx for r in roots if r._ctx is not None])
    # both None unless some leaf of this graph has hooks: the usual walk pays one dict check
    leaf_slots, leaf_due = _hooked_leaves(roots, order, capture) if _hooked_leaf_refs else (None, None)
    visited, needed = _needed_contexts(order, capture) if capture is not None else (None, None)

    def finish_leaf(node, g):
        if capture is not None:
            key = ("leaf", id(node))
            if key in capture:
                capture[key] = add(capture[key], g)
        elif node.requires_grad:
            node._store_grad(g, create_graph)

    def deliver(node, g):
        ctx = node._ctx
        if ctx is None:
            slot = leaf_slots.get(id(node)) if leaf_slots is not None else None
            if slot is not None:  # hooked: hold the gradient until the leaf is complete
                slot[1] = add(slot[1], g)
            else:
                finish_leaf(node, g)
            return
        if visited is not None and ctx not in visited:
            return  # grad(): no path from here to a node it was asked about
        slot = pending.get(ctx)
        if slot is None:
            slot = pending[ctx] = [None] * len(ctx.outputs)
        slot[node._out_index] = add(slot[node._out_index], g)

    def complete_leaves(position):
        for leaf in leaf_due.get(position, ()):
            g = leaf_slots.pop(id(leaf))[1]
            if g is not None:
                hooks = _leaf_hooks_of(leaf)
                if hooks:
                    g = _call_tensor_hooks(hooks, g)
                finish_leaf(leaf, g)

    with set_grad_enabled(create_graph):
        for node, g in zip(roots, root_grads):
            deliver(node, g)
        if leaf_due is not None:
            complete_leaves(-1)
        for position, ctx in enumerate(order):
            grads = pending.pop(ctx, None)
            if grads is not None:
                _run_context(ctx, grads, deliver, add, retain_graph, create_graph, capture, needed)
            if leaf_due is not None:
                complete_leaves(position)


def _run_context(ctx, grads, deliver, add, retain_graph, create_graph, capture, needed):
    """One step of the walk: hooks, retained or captured gradients, then ``ctx``'s backward."""
    runs = needed is None or ctx in needed
    if ctx.freed and runs:
        raise RuntimeError(
            f"trying to backward through the graph a second time ({ctx.name} was already freed); "
            "pass retain_graph=True to the first backward() to walk it again"
        )
    hooks = ctx._hooks
    if hooks is not None:
        for k, output_hooks in hooks.items():
            if output_hooks and grads[k] is not None:
                grads[k] = _call_tensor_hooks(output_hooks, grads[k])
    if capture is None:
        for ref, g in zip(ctx.outputs, grads):
            out = ref()
            if g is not None and out is not None and out._retains_grad:
                out._store_grad(g, create_graph)
    else:
        for k, g in enumerate(grads):
            if g is not None:
                key = ("out", id(ctx), k)
                if key in capture:
                    capture[key] = add(capture[key], g)
        if not runs:
            return
    if ctx._materialize_grads:
        for k, g in enumerate(grads):
            if g is None and ctx.out_meta[k] is not None:
                node_type, meta = ctx.out_meta[k]
                grads[k] = node_type._zeros(meta)
    in_grads = ctx.fn.backward(ctx, *grads)
    if not isinstance(in_grads, tuple):
        in_grads = (in_grads,)
    if len(in_grads) != len(ctx.inputs):
        raise RuntimeError(
            f"{ctx.name}.backward returned {len(in_grads)} gradients for {len(ctx.inputs)} inputs"
        )
    for inp, need, g in zip(ctx.inputs, ctx.needs_input_grad, in_grads):
        if need and g is not None:
            inp._check_grad(g, ctx.name)
            deliver(inp, g)
    if not retain_graph:
        ctx._free()


def _capture_key(node):
    return ("leaf", id(node)) if node._ctx is None else ("out", id(node._ctx), node._out_index)


def _prepare(outputs, grad_outputs):
    if isinstance(outputs, Node):
        outputs = [outputs]
    outputs = list(outputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Node) or not isinstance(grad_outputs, (list, tuple)):
        grad_outputs = [grad_outputs]
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"got {len(grad_outputs)} gradients for {len(outputs)} outputs")
    seeds = []
    for out, g in zip(outputs, grad_outputs):
        if not out.requires_grad:
            raise RuntimeError(
                "backward() on a value that does not require grad: it was computed under no_grad() "
                "or from inputs none of which has requires_grad=True"
            )
        seeds.append(out._seed_grad() if g is None else out._as_grad(g))
    return outputs, seeds


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False):
    """Backpropagate from several outputs at once (``torch.autograd.backward``)."""
    if retain_graph is None:
        retain_graph = create_graph
    tensors, seeds = _prepare(tensors, grad_tensors)
    run_backward(tensors, seeds, retain_graph=retain_graph or create_graph, create_graph=create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """The gradients of ``outputs`` with respect to ``inputs``, returned, not stored.

    Like ``torch.autograd.grad``: leaves' ``.grad`` are left alone. With
    ``create_graph=True`` the returned gradients are themselves part of a graph
    and can be differentiated again::

        (g,) = grad(y, [x], create_graph=True)   # dy/dx as a node
        (h,) = grad(g, [x])                      # d2y/dx2
    """
    if retain_graph is None:
        retain_graph = create_graph
    single = isinstance(inputs, Node)
    inputs = [inputs] if single else list(inputs)
    outputs, seeds = _prepare(outputs, grad_outputs)
    capture = {_capture_key(x): None for x in inputs}
    run_backward(outputs, seeds, retain_graph=retain_graph, create_graph=create_graph, capture=capture)
    result = []
    for i, x in enumerate(inputs):
        g = capture[_capture_key(x)]
        if g is None and not allow_unused:
            raise RuntimeError(
                f"input {i} was not used to compute the outputs; pass allow_unused=True to get None for it"
            )
        result.append(g)
    return result

