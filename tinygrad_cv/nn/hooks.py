"""Hook plumbing: `RemovableHandle` and the machinery behind ``Module.register_full_backward_hook``.

**Handles.** Every ``register_*`` call returns a `RemovableHandle`: the hook is
stored in an ordered dict under the handle's id, and ``handle.remove()`` (or
leaving a ``with handle:`` block) takes it out again.

**Module backward hooks.** A module is not a node of the graph: its forward is
a stretch of many operations, and "the gradient w.r.t. the module's inputs" is
only known once *every* path from the module's outputs back to its inputs has
been walked. The engine already knows that moment for one node: a context's
``backward`` runs once all its outputs' gradients are summed. So a module call
with backward hooks is bracketed by two identity operations (PyTorch does the
same with its ``BackwardHookFunction``)::

    args ──> [BackwardHookInputs] ──> forward(...) ──> [BackwardHookOutputs] ──> result

- ``BackwardHookOutputs.backward`` receives the gradients w.r.t. the module's
  outputs: it records them as ``grad_output`` and runs the backward *pre*-hooks
  (which may replace them) before passing them on into the module.
- ``BackwardHookInputs.backward`` receives the summed gradients w.r.t. the
  module's inputs — every internal path has been walked by then, because the
  walk is topological — and calls the full backward hooks with
  ``(module, grad_input, grad_output)``; a returned tuple replaces
  ``grad_input``, i.e. what flows on to the layers before.

Both identities pass the same arrays through (no copy; the outputs share the
inputs' version counters), and they are only inserted when the module has such
hooks and a graph is being recorded, so modules without hooks cost nothing.
If no input requires grad (the first layer, fed an image), there is no input
identity; the hooks then fire from the output side with ``grad_input`` all
None, as in PyTorch.
"""
from __future__ import annotations

import warnings

from ..autograd import Function, RemovableHandle, is_grad_enabled  # noqa: F401  (RemovableHandle re-exported)
from ..tensor import Tensor

__all__ = ["RemovableHandle"]

def _hook_name(hook):
    return getattr(hook, "__qualname__", None) or repr(hook)


def _pack(index, values, size):
    """A ``size``-tuple with ``values`` at positions ``index`` and None elsewhere."""
    out = [None] * size
    for i, v in zip(index, values):
        out[i] = v
    return tuple(out)


class BackwardHookInputs(Function):
    """Identity on the module's inputs that require grad; its backward calls the full backward hooks."""

    @staticmethod
    def forward(ctx, *arrays, state):
        ctx.state = state
        return arrays

    @staticmethod
    def backward(ctx, *grads):
        return ctx.state.input_backward(grads)


class BackwardHookOutputs(Function):
    """Identity on the module's outputs that require grad; its backward records ``grad_output``."""

    @staticmethod
    def forward(ctx, *arrays, state):
        # an output that received no gradient must reach the hooks as None, not as zeros
        ctx.set_materialize_grads(False)
        ctx.state = state
        return arrays

    @staticmethod
    def backward(ctx, *grads):
        return ctx.state.output_backward(grads)


class BackwardHook:
    """The backward-hook state of one module call (made by ``Module.__call__``).

    ``hooks`` / ``pre_hooks`` are the module's full backward (pre-)hooks as
    registered when the call was made: as in PyTorch, removing one afterwards
    does not stop it firing for a graph already built.
    """

    def __init__(self, module, hooks, pre_hooks):
        self.module = module
        self.hooks = hooks
        self.pre_hooks = pre_hooks
        self.n_inputs = 0
        self.input_index = None  # positions of the inputs routed through BackwardHookInputs
        self.input_shapes = {}  # position -> shape, for every slot of grad_input that holds a Tensor
        self.zero_inputs = []  # (position, meta) of Tensor inputs that do not require grad
        self.n_outputs = 0
        self.output_index = None  # positions of the outputs routed through BackwardHookOutputs
        self.output_shapes = {}
        self.grad_outputs = None  # set by the output side, consumed by the input side

    # --- forward: insert the identities ---------------------------------------------------
    def setup_input_hook(self, args):
        """``args`` with each Tensor that requires grad replaced by its identity twin."""
        self.n_inputs = len(args)
        index = [i for i, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad]
        if not index or not is_grad_enabled():
            return args
        self.input_index = index
        # every Tensor argument has a slot in grad_input; as in PyTorch, those that do not require
        # grad get zeros there (they are not routed through the identity: no gradient is computed for them)
        self.input_shapes = {i: a.shape for i, a in enumerate(args) if isinstance(a, Tensor)}
        self.zero_inputs = [(i, a._meta()) for i, a in enumerate(args) if isinstance(a, Tensor) and not a.requires_grad]
        twins = BackwardHookInputs.apply(*(args[i] for i in index), state=self)
        return self._replace(args, index, twins)

    def setup_output_hook(self, result):
        """``result`` (a Tensor or a tuple) with each Tensor that requires grad replaced by its twin."""
        is_tuple = isinstance(result, tuple)
        if not is_tuple and not isinstance(result, Tensor):
            warnings.warn(
                f"for backward hooks of {type(self.module).__name__} to be called, its forward should return "
                f"a Tensor or a tuple of Tensors, but it returned {type(result).__name__}",
                stacklevel=3,
            )
            return result
        outputs = result if is_tuple else (result,)
        self.n_outputs = len(outputs)
        index = [i for i, o in enumerate(outputs) if isinstance(o, Tensor) and o.requires_grad]
        if not index or not is_grad_enabled():
            return result
        self.output_index = index
        self.output_shapes = {i: outputs[i].shape for i in index}
        twins = BackwardHookOutputs.apply(*(outputs[i] for i in index), state=self)
        outputs = self._replace(outputs, index, twins)
        return outputs if is_tuple else outputs[0]

    @staticmethod
    def _replace(seq, index, values):
        items = list(seq)
        for i, v in zip(index, values):
            items[i] = v
        # a namedtuple (or another tuple subclass) is rebuilt as itself
        return tuple(items) if type(seq) is tuple else type(seq)(*items)

    # --- backward ---------------------------------------------------------------------------
    def _checked(self, hook, what, new, old, shapes):
        """Validate a hook's replacement for the tuple ``old``: same length, Tensors of the right shapes.

        A position where ``old`` has None (a non-Tensor argument, an output
        that received no gradient) may be filled only where ``shapes`` has it.
        """
        who = f"{what} hook {_hook_name(hook)} of {type(self.module).__name__}"
        if not isinstance(new, (tuple, list)):
            raise TypeError(f"{who} returned a {type(new).__name__}; expected None or a tuple of {len(old)} gradients")
        if len(new) != len(old):
            raise RuntimeError(f"{who} returned {len(new)} gradients, but expected {len(old)} (one per position)")
        for i, g in enumerate(new):
            if g is None:
                continue
            if i not in shapes:
                raise RuntimeError(
                    f"{who} returned a gradient at position {i}, which has no gradient (it is not a Tensor "
                    "that takes part in autograd); return None there"
                )
            if not isinstance(g, Tensor):
                raise TypeError(f"{who} returned a {type(g).__name__} at position {i}; expected a Tensor or None")
            if g.shape != shapes[i]:
                raise RuntimeError(
                    f"{who} returned a gradient of shape {g.shape} at position {i}, "
                    f"but that position has shape {shapes[i]}"
                )
        return tuple(new)

    def output_backward(self, grads):
        """Gradients w.r.t. the module's outputs arrive: pre-hooks, then pass them into the module."""
        grad_outputs = _pack(self.output_index, grads, self.n_outputs)
        for hook in self.pre_hooks:
            new = hook(self.module, grad_outputs)
            if new is not None:
                grad_outputs = self._checked(hook, "full backward pre", new, grad_outputs, self.output_shapes)
        if self.input_index is None:
            # no input requires grad: nothing will arrive at the input side, so fire the hooks now
            if self.hooks:
                warnings.warn(
                    f"full backward hook of {type(self.module).__name__} is firing when the gradients w.r.t. the "
                    "module's outputs are computed, since no input of this call requires grad (grad_input is "
                    "all None)",
                    stacklevel=2,
                )
            grad_inputs = (None,) * self.n_inputs
            for hook in self.hooks:
                res = hook(self.module, grad_inputs, grad_outputs)
                if res is not None and not (isinstance(res, (tuple, list)) and all(g is None for g in res)):
                    raise RuntimeError(
                        f"full backward hook {_hook_name(hook)} of {type(self.module).__name__}: no input of this "
                        "module call requires grad, so the hook must return None (or only Nones)"
                    )
        else:
            self.grad_outputs = grad_outputs
        return tuple(grad_outputs[i] for i in self.output_index)

    def input_backward(self, grads):
        """Gradients w.r.t. the module's inputs are complete: call the hooks, pass on (their) grad_input."""
        grad_outputs = self.grad_outputs
        if grad_outputs is None:
            # the gradient reached the inputs without passing through the outputs (e.g. a double
            # backward through the inputs' graph): there is no grad_output to report
            return grads
        self.grad_outputs = None  # once per backward pass through this call
        grad_inputs = list(_pack(self.input_index, grads, self.n_inputs))
        for i, meta in self.zero_inputs:
            grad_inputs[i] = Tensor._zeros(meta)
        grad_inputs = tuple(grad_inputs)
        for hook in self.hooks:
            new = hook(self.module, grad_inputs, grad_outputs)
            if new is not None:
                grad_inputs = self._checked(hook, "full backward", new, grad_inputs, self.input_shapes)
        # only the inputs that require grad pass their (possibly replaced) gradient on
        return tuple(grad_inputs[i] for i in self.input_index)
