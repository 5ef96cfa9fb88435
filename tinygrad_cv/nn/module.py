"""`Module`: the base class of every layer and model (PyTorch's ``nn.Module``).

A module is a tree. Assigning to an attribute decides what a value is:

- a `Parameter` is registered as a parameter (found by ``parameters()``,
  updated by optimisers, saved by ``state_dict()``);
- a `Module` is registered as a child (its parameters become ours, under a
  dotted name: ``features.0.weight``);
- a tensor assigned to a name registered with ``register_buffer`` is a buffer
  (state that is saved but not trained, e.g. batch norm's running mean);
- anything else is a plain Python attribute.

Registration keeps insertion order, so ``parameters()`` and ``state_dict()``
list things in the order the constructor created them — the order an
optimiser's state refers to by position and a checkpoint relies on.
"""
from __future__ import annotations

import warnings
from collections import OrderedDict, namedtuple

import numpy as np

from ..autograd import no_grad
from ..tensor import Tensor, _is_cuda, _move, _parse_device
from .hooks import BackwardHook, RemovableHandle, _hook_name
from .parameter import Parameter

__all__ = ["Module", "IncompatibleKeys"]


class IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict`` returns: the keys it could not fill and the keys it did not use."""

    __slots__ = ()

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()


def _shape(v):
    return tuple(v.shape)


class Module:
    """Base class for layers and models: subclass it, build sub-layers in ``__init__``, write ``forward``.

    ::

        class MLP(Module):
            def __init__(self):
                super().__init__()
                self.fc1 = Linear(784, 128)
                self.fc2 = Linear(128, 10)

            def forward(self, x):
                return self.fc2(self.fc1(x).relu())

    ``super().__init__()`` must run before any attribute is assigned.
    """

    training: bool

    def __init__(self):
        # object.__setattr__: our own __setattr__ needs these dicts to exist
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())
        self._init_hooks()

    # Hook registries: handle id -> hook, in call order. They are not state: state_dict
    # never sees them; copy.deepcopy and pickling carry them along as PyTorch does.
    _HOOK_DICTS = (
        "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_forward_hooks", "_forward_hooks_with_kwargs",
        "_forward_hooks_always_called", "_backward_hooks", "_backward_pre_hooks",
    )

    def _init_hooks(self):
        for name in self._HOOK_DICTS:
            if name not in self.__dict__:
                object.__setattr__(self, name, OrderedDict())

    def __setstate__(self, state):
        # a module pickled before hooks existed lacks the registries __call__ reads
        self.__dict__.update(state)
        self._init_hooks()

    # --- the forward pass ---------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def __call__(self, *args, **kwargs):
        # the training step calls modules thousands of times: without hooks, four dict checks and forward
        if self._forward_pre_hooks or self._forward_hooks or self._backward_hooks or self._backward_pre_hooks:
            return self._call_with_hooks(args, kwargs)
        return self.forward(*args, **kwargs)

    def _call_with_hooks(self, args, kwargs):
        """``__call__`` when hooks are registered: pre-hooks, (backward hook setup), forward, forward hooks."""
        for hook_id, hook in list(self._forward_pre_hooks.items()):
            if hook_id in self._forward_pre_hooks_with_kwargs:
                res = hook(self, args, kwargs)
                if res is not None:
                    if not (isinstance(res, tuple) and len(res) == 2):
                        raise RuntimeError(
                            f"forward pre-hook {_hook_name(hook)} of {type(self).__name__} was registered with "
                            f"with_kwargs=True, so it must return None or a tuple (args, kwargs), got {res!r}"
                        )
                    args, kwargs = res
                    args = args if isinstance(args, tuple) else (args,)
            else:
                res = hook(self, args)
                if res is not None:
                    args = res if isinstance(res, tuple) else (res,)  # a single value stands for a 1-tuple
        bw_hook = None
        if self._backward_hooks or self._backward_pre_hooks:
            # the lists as they are now: hooks removed later still fire for this call's graph (as PyTorch)
            bw_hook = BackwardHook(self, list(self._backward_hooks.values()), list(self._backward_pre_hooks.values()))
            args = bw_hook.setup_input_hook(args)
        called = set()  # always_call hooks that have run, so an exception does not run them twice
        result = None
        try:
            result = self.forward(*args, **kwargs)
            for hook_id, hook in list(self._forward_hooks.items()):
                if hook_id in self._forward_hooks_always_called:
                    called.add(hook_id)
                if hook_id in self._forward_hooks_with_kwargs:
                    res = hook(self, args, kwargs, result)
                else:
                    res = hook(self, args, result)
                if res is not None:
                    result = res
        except Exception:
            for hook_id, hook in list(self._forward_hooks.items()):
                if hook_id not in self._forward_hooks_always_called or hook_id in called:
                    continue
                try:
                    if hook_id in self._forward_hooks_with_kwargs:
                        hook(self, args, kwargs, result)
                    else:
                        hook(self, args, result)
                except Exception as e:  # the forward's error is the one to report
                    warnings.warn(
                        f"forward hook {_hook_name(hook)} (always_call=True) of {type(self).__name__} raised "
                        f"{type(e).__name__}: {e}; silenced because the forward call had already failed",
                        stacklevel=2,
                    )
            raise
        if bw_hook is not None:
            result = bw_hook.setup_output_hook(result)
        return result

    # --- hooks --------------------------------------------------------------------------
    def _add_hook(self, registry, hook, prepend, flags=()):
        """Store ``hook`` in ``registry`` (and its id in each of ``flags``); return its handle."""
        if not callable(hook):
            raise TypeError(f"a hook must be callable, got {type(hook).__name__} {hook!r}")
        handle = RemovableHandle(registry, extra_dict=list(flags))
        registry[handle.id] = hook
        for flag in flags:
            flag[handle.id] = True
        if prepend:
            registry.move_to_end(handle.id, last=False)
        return handle

    def register_forward_pre_hook(self, hook, *, prepend=False, with_kwargs=False):
        """Call ``hook(module, args)`` before every ``forward``; returns a `RemovableHandle`.

        ``args`` is the tuple of positional arguments. The hook may return None
        (keep them) or the new arguments: a tuple, or a single value that is
        taken as a 1-tuple. With ``with_kwargs=True`` it is called as
        ``hook(module, args, kwargs)`` and may return ``(args, kwargs)``.
        Hooks run in registration order; ``prepend=True`` puts this one first.
        """
        flags = (self._forward_pre_hooks_with_kwargs,) if with_kwargs else ()
        return self._add_hook(self._forward_pre_hooks, hook, prepend, flags)

    def register_forward_hook(self, hook, *, prepend=False, with_kwargs=False, always_call=False):
        """Call ``hook(module, args, output)`` after every ``forward``; returns a `RemovableHandle`.

        A non-None return value replaces the output (later hooks and the caller
        see the replacement). ``with_kwargs=True``: ``hook(module, args,
        kwargs, output)``. ``always_call=True``: the hook also runs (with
        ``output=None``) when ``forward`` raises; the forward's exception is
        then re-raised. ``prepend=True`` puts this hook before the others.
        """
        flags = []
        if with_kwargs:
            flags.append(self._forward_hooks_with_kwargs)
        if always_call:
            flags.append(self._forward_hooks_always_called)
        return self._add_hook(self._forward_hooks, hook, prepend, flags)

    def register_full_backward_hook(self, hook, *, prepend=False):
        """Call ``hook(module, grad_input, grad_output)`` when the gradients w.r.t. a call's inputs are known.

        ``grad_input`` has one entry per positional argument of the call: the
        gradient w.r.t. it (zeros for a Tensor argument that does not require
        grad, as in PyTorch), or None for a non-Tensor argument. ``grad_output``
        has one entry per output (a Tensor
        output counts as one; None where no gradient arrived). The hook fires
        once per backward pass through each call of the module — after every
        path inside the module has been walked — and may return a tuple of the
        same length to replace ``grad_input`` (what flows on to earlier
        layers). It must not modify its arguments in place. If no input of a
        call requires grad, it fires as soon as ``grad_output`` is known, with
        ``grad_input`` all None, and must return None. Returns a `RemovableHandle`.
        """
        return self._add_hook(self._backward_hooks, hook, prepend)

    def register_full_backward_pre_hook(self, hook, *, prepend=False):
        """Call ``hook(module, grad_output)`` when the gradients w.r.t. a call's outputs are known.

        It runs before the gradient enters the module and may return a tuple
        of the same length to replace ``grad_output`` (for the rest of the
        backward pass through the module, and for the full backward hooks).
        Returns a `RemovableHandle`.
        """
        return self._add_hook(self._backward_pre_hooks, hook, prepend)

    # --- registration -------------------------------------------------------------------
    def _check_init(self):
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign to {type(self).__name__} before Module.__init__() is called "
                "(call super().__init__() first in your constructor)"
            )

    @staticmethod
    def _check_name(name, kind):
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
        if name == "":
            raise KeyError(f'{kind} name can\'t be empty string ""')
        if "." in name:
            raise KeyError(f'{kind} name can\'t contain ".", got {name!r}')

    def register_parameter(self, name, param):
        """Register ``param`` (a `Parameter`, or None for an absent one such as ``bias=False``)."""
        self._check_init()
        self._check_name(name, "parameter")
        if hasattr(type(self), name) or (name in self.__dict__ and name not in self._parameters):
            raise KeyError(f"attribute '{name}' already exists")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                "(Parameter or None required)"
            )
        self._buffers.pop(name, None)
        self._modules.pop(name, None)
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """Register ``tensor`` as a buffer: saved in ``state_dict`` (unless ``persistent=False``), not trained."""
        self._check_init()
        self._check_name(name, "buffer")
        if hasattr(type(self), name) or (name in self.__dict__ and name not in self._buffers):
            raise KeyError(f"attribute '{name}' already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' (Tensor or None required)")
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name, module):
        """Register ``module`` as a child called ``name`` (None is allowed, as a placeholder)."""
        self._check_init()
        self._check_name(name, "module")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        if hasattr(type(self), name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        self._parameters.pop(name, None)
        self._buffers.pop(name, None)
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name, value):
        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            self._check_init()
            self.__dict__.pop(name, None)
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as parameter '{name}' (Parameter or None expected)"
                )
            params[name] = None
        elif isinstance(value, Module):
            self._check_init()
            self.__dict__.pop(name, None)
            self._parameters.pop(name, None)
            self._buffers.pop(name, None)
            self._modules[name] = value
        elif params is not None and name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module '{name}' (Module or None expected)")
            self._modules[name] = None
        elif params is not None and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' (Tensor or None expected)")
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # only called when normal lookup fails: look in the registries
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            reg = d.get(registry)
            if reg is not None and name in reg:
                return reg[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))

    def get_submodule(self, target):
        """The sub-module at dotted path ``target`` (``""`` is ``self``)."""
        mod = self
        for part in target.split(".") if target else []:
            if part not in mod._modules or mod._modules[part] is None:
                raise AttributeError(f"{type(mod).__name__} has no submodule '{part}' (looking up '{target}')")
            mod = mod._modules[part]
        return mod

    def get_parameter(self, target):
        mod_path, _, name = target.rpartition(".")
        mod = self.get_submodule(mod_path)
        if name not in mod._parameters:
            raise AttributeError(f"{type(mod).__name__} has no parameter '{name}'")
        return mod._parameters[name]

    # --- walking the tree ---------------------------------------------------------------
    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """``(dotted name, module)`` for this module and every descendant, parents first."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is None:
                continue
            yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self):
        for _, m in self.named_children():
            yield m

    def _named_members(self, get_members, prefix, recurse, remove_duplicate):
        seen = set()
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for mod_prefix, mod in mods:
            for name, value in get_members(mod):
                if value is None:
                    continue
                if remove_duplicate:
                    # by identity: Tensor.__eq__ is elementwise, so no `in` on lists
                    if id(value) in seen:
                        continue
                    seen.add(id(value))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), value

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """``(dotted name, parameter)`` pairs; a parameter shared by two layers is listed once."""
        yield from self._named_members(lambda m: m._parameters.items(), prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        yield from self._named_members(lambda m: m._buffers.items(), prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # --- modes and gradients ------------------------------------------------------------
    def train(self, mode=True):
        """Set training mode on this module and every descendant (dropout and batch norm care)."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        """Forget every parameter's gradient (``None``), or fill it with zeros when ``set_to_none=False``."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.data[...] = 0
                p.grad._bump_version()

    def apply(self, fn):
        """Call ``fn(module)`` on every descendant, children before parents (e.g. custom initialisation)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # --- dtype / device -----------------------------------------------------------------
    def to(self, *args, **kwargs):
        """``to("cuda")`` / ``to("cpu")`` moves, ``to(float64)`` casts floating point parameters and buffers, in place.

        The Parameter objects stay the same (only their ``.data`` changes), so
        an optimiser built before the move or cast keeps working.
        """
        target = kwargs.pop("dtype", None) or kwargs.pop("device", None) or (args[0] if args else None)
        if kwargs or len(args) > 1:
            raise TypeError("to() takes one device or dtype")
        if target is None:
            return self
        if isinstance(target, str):
            device = _parse_device(target)
            for t in list(self.parameters()) + list(self.buffers()):
                t.data = _move(t.data, device)
                if t.grad is not None:
                    t.grad = Tensor._wrap(_move(t.grad.data, device))
            return self
        dtype = np.dtype(target)
        if dtype.kind != "f":
            raise TypeError(f"Module.to only accepts floating point dtypes, got {dtype}")
        for t in list(self.parameters()) + list(self.buffers()):
            if t.dtype.kind == "f" and t.dtype != dtype:  # integer buffers (counters) keep their dtype
                t.data = t.data.astype(dtype)
                if t.grad is not None:
                    t.grad = Tensor._wrap(t.grad.data.astype(dtype))
        return self

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    def half(self):
        return self.to(np.float16)

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to("cuda" if device is None else device)

    # --- state dict ---------------------------------------------------------------------
    def _own_state(self):
        """(name, tensor) for this module's own parameters, then its persistent buffers."""
        for name, p in self._parameters.items():
            if p is not None:
                yield name, p
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers:
                yield name, b

    def state_dict(self, *, destination=None, prefix="", keep_vars=False):
        """Everything needed to restore the model: dotted name -> tensor.

        Per module, parameters come first, then persistent buffers, then the
        children's entries (PyTorch's order). The tensors share memory with
        the model (detached unless ``keep_vars``); copy them if the model
        will keep training and you want a snapshot.
        """
        if destination is None:
            destination = OrderedDict()
        for name, t in self._own_state():
            destination[prefix + name] = t if keep_vars else t.detach()
        for name, child in self._modules.items():
            if child is not None:
                child.state_dict(destination=destination, prefix=f"{prefix}{name}.", keep_vars=keep_vars)
        return destination

    def _expected_state(self):
        """Dotted name -> tensor of this model, in state_dict order, without detaching."""
        return self.state_dict(keep_vars=True)

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """Copy ``state_dict``'s values into this model's parameters and buffers, in place.

        Returns ``(missing_keys, unexpected_keys)``. With ``strict=True`` any
        missing or unexpected key is an error; a shape mismatch is an error
        either way, and nothing is modified when an error is raised. Values
        are cast to the existing tensor's dtype (as ``Tensor.copy_``).
        """
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"expected a mapping of name -> tensor, got {type(state_dict).__name__}")
        own = self._expected_state()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors = []
        if strict:
            if unexpected:
                errors.append("Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ".")
            if missing:
                errors.append("Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ".")
        arrays = {}
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            array = value.data if isinstance(value, Tensor) else np.asarray(value)
            if _is_cuda(array) != _is_cuda(target.data):
                array = _move(array, target.device)  # a checkpoint read on the host, loaded into a GPU model
            if _shape(array) != _shape(target):
                errors.append(
                    f"size mismatch for {key}: copying a param with shape {_shape(array)} from checkpoint, "
                    f"the shape in current model is {_shape(target)}."
                )
                continue
            arrays[key] = array
        if errors:
            raise RuntimeError(
                f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errors)
            )
        with no_grad():
            for key, array in arrays.items():
                target = own[key]
                if assign:
                    target.data = array.astype(target.dtype, copy=True)
                else:
                    target.data[...] = array  # in place: optimisers keep pointing at the same memory
                target._bump_version()
        return IncompatibleKeys(missing, unexpected)

    # --- printing -----------------------------------------------------------------------
    def extra_repr(self):
        """The text inside the parentheses of this module's line in ``repr`` (override in layers)."""
        return ""

    def _get_name(self):
        return type(self).__name__

    def __repr__(self):
        lines = []
        extra = self.extra_repr()
        if extra:
            lines = extra.split("\n")
        for name, child in self._modules.items():
            text = repr(child).split("\n")
            # children are indented by two spaces under "(name): "
            lines.append(f"({name}): " + "\n  ".join(text))
        main = self._get_name() + "("
        if lines:
            if len(lines) == 1 and not self._modules:
                main += lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"
