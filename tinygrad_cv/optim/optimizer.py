"""`Optimizer`: the base class that keeps parameter groups and per-parameter state.

An optimiser holds

- ``param_groups``: a list of dicts, each with its ``"params"`` (a list of
  tensors) and its own hyper-parameters (``lr``, ``momentum``...), so one
  model can train its backbone and its head at different rates;
- ``state``: per-parameter dicts (momentum buffers, running averages, step
  counts), keyed by the parameter tensor itself (tensors hash by identity).

``step()`` updates every parameter that has a gradient, in place, on its
NumPy ``.data`` — no graph is recorded. ``state_dict()`` uses PyTorch's
format, with parameters replaced by their position in the groups::

    {"state": {0: {"momentum_buffer": Tensor, ...}, ...},
     "param_groups": [{"lr": 0.1, ..., "params": [0, 1, 2]}, ...]}
"""
from __future__ import annotations

import copy
from itertools import chain

import numpy as np

from ..autograd import enable_grad, no_grad
from ..tensor import Tensor

__all__ = ["Optimizer", "required"]


class _Required:
    """Marks a hyper-parameter without a default (it must be given, per group or globally)."""

    def __repr__(self):
        return "<required parameter>"


required = _Required()


def _check(condition, message):
    if not condition:
        raise ValueError(message)


class Optimizer:
    """Base class: subclasses pass their ``defaults`` and implement :meth:`_update` for one parameter."""

    def __init__(self, params, defaults):
        self.defaults = defaults
        self.state = {}
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or dicts, "
                f"but got {type(params).__name__}"
            )
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # --- groups ----------------------------------------------------------------------------
    def _validate_group(self, group):
        """Raise ValueError for a bad hyper-parameter (subclasses check theirs)."""

    def add_param_group(self, param_group):
        """Add a group of parameters with its own options; missing options take the defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the ordering of "
                "tensors in sets will change between runs. Please use a list instead."
            )
        else:
            params = list(params)
        # named parameters, e.g. model.named_parameters(): keep the names next to the tensors
        if params and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in params):
            group["param_names"] = [name for name, _ in params]
            params = [p for _, p in params]
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but parameter {i} is a {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
            if p.dtype.kind != "f":
                raise TypeError(f"optimizer can only optimize floating point Tensors, parameter {i} is {p.dtype}")
        group["params"] = params
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {name}")
            group.setdefault(name, default)
        ids = {id(p) for p in params}
        if len(ids) != len(params):
            raise ValueError("a parameter appears more than once in one parameter group")
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if existing & ids:
            raise ValueError("some parameters appear in more than one parameter group")
        self._validate_group(group)
        self.param_groups.append(group)

    # --- gradients and steps ---------------------------------------------------------------
    def zero_grad(self, set_to_none=True):
        """Forget the gradients (``None``) or zero them in place (``set_to_none=False``)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.data[...] = 0
                    p.grad._bump_version()

    def step(self, closure=None):
        """Update every parameter that has a gradient. ``closure`` (optional) recomputes and returns the loss."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    state = self.state.get(p)
                    if state is None:
                        state = {}
                        self._update(p, p.grad.data, state, group)
                        if state:  # stateless updates (plain SGD) leave no entry, as in PyTorch
                            self.state[p] = state
                    else:
                        self._update(p, p.grad.data, state, group)
                    p._bump_version()  # a graph that saved p before the step must not backprop through it
        return loss

    def _update(self, p, grad, state, group):  # pragma: no cover - abstract
        """Update ``p.data`` in place from ``grad`` (an ndarray; do not modify it) and ``state``."""
        raise NotImplementedError

    # --- state dict -------------------------------------------------------------------------
    def state_dict(self):
        """PyTorch's format: parameters replaced by their index (counted across groups, in order).

        The state tensors are the optimiser's own (not copies), as in PyTorch.
        """
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            ids = []
            for p in group["params"]:
                if id(p) not in index:
                    index[id(p)] = len(index)
                ids.append(index[id(p)])
            packed["params"] = ids
            groups.append(packed)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state:
                    state[index[id(p)]] = self.state[p]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore state and hyper-parameters saved by :meth:`state_dict`, onto this optimiser's parameters.

        Groups must match in number and size. State arrays are copied (never
        shared with ``state_dict``) and cast to their parameter's dtype.
        """
        try:
            saved_groups = state_dict["param_groups"]
            saved_state = state_dict["state"]
        except (KeyError, TypeError):
            raise ValueError("optimizer state_dict must be a dict with 'state' and 'param_groups'") from None
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has {len(saved_groups)} parameter groups, the optimizer has "
                f"{len(self.param_groups)}"
            )
        for i, (g, s) in enumerate(zip(self.param_groups, saved_groups)):
            if len(g["params"]) != len(s["params"]):
                raise ValueError(
                    f"loaded state dict contains a parameter group that doesn't match the size of optimizer's "
                    f"group: group {i} has {len(s['params'])} parameters in the state dict, "
                    f"{len(g['params'])} in the optimizer"
                )
        by_index = {
            int(old): p
            for old, p in zip(chain.from_iterable(s["params"] for s in saved_groups),
                              chain.from_iterable(g["params"] for g in self.param_groups))
        }
        new_state = {}
        for key, values in saved_state.items():
            idx = int(key)  # JSON turns integer keys into strings
            if idx not in by_index:
                raise ValueError(f"optimizer state refers to parameter {idx}, which no parameter group contains")
            p = by_index[idx]
            new_state[p] = {name: self._load_value(name, v, p, idx) for name, v in values.items()}
        new_groups = []
        for g, s in zip(self.param_groups, saved_groups):
            merged = copy.deepcopy({k: v for k, v in s.items() if k != "params"})
            merged["params"] = g["params"]
            if "param_names" in g:
                merged["param_names"] = g["param_names"]
            self._validate_group(merged)
            new_groups.append(merged)
        self.state = new_state
        self.param_groups = new_groups

    @staticmethod
    def _load_value(name, value, p, idx):
        if isinstance(value, (Tensor, np.ndarray)):
            array = value.data if isinstance(value, Tensor) else value
            if array.ndim and array.shape != p.shape:
                raise ValueError(
                    f"optimizer state '{name}' of parameter {idx} has shape {array.shape}, "
                    f"but the parameter has shape {p.shape}"
                )
            dtype = p.dtype if array.dtype.kind == "f" else array.dtype
            return Tensor(array, dtype=dtype, device=p.device)  # a copy, on the parameter's device
        return copy.deepcopy(value)

    # --- printing ---------------------------------------------------------------------------
    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key not in ("params", "param_names"):
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)

    # --- helpers for subclasses ---------------------------------------------------------------
    @staticmethod
    def _zeros_like(p):
        return Tensor._wrap(np.zeros_like(p.data))
