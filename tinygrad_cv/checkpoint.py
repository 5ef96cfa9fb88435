"""Checkpoints as safetensors files: model weights, optimiser state, schedule and progress — never pickle.

A checkpoint is one ``.safetensors`` file:

- the model's ``state_dict`` under its own keys (``conv1.weight``,
  ``bn.running_mean``, ``bn.num_batches_tracked`` as int64...), so the file is
  what PyTorch's tooling expects of a model's weights;
- the optimiser's tensors under ``optimizer.state.<index>.<name>``
  (``optimizer.state.0.exp_avg``), the index being the parameter's position in
  the optimiser's groups, as in its ``state_dict``;
- everything that is not a tensor — the optimiser's ``param_groups`` and
  step counts, the scheduler's state, the epoch, an ``extra`` dict — as JSON
  in the file's ``__metadata__``, together with the model's key order and a
  CRC-32 of every tensor, so that silent corruption of the data is caught too.

Loading reads nothing but JSON and raw numbers, so an untrusted file cannot
run code. Writes are atomic (a temporary file renamed into place): a crash
mid-save leaves the previous checkpoint intact.

::

    save_checkpoint("ckpt.safetensors", model=model, optimizer=opt, scheduler=sched, epoch=3)
    info = load_checkpoint("ckpt.safetensors", model=model, optimizer=opt, scheduler=sched)
    start_epoch = info["epoch"] + 1
"""
from __future__ import annotations

import json
import os
import zlib
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from .io import safetensors as _st
from .tensor import Tensor

__all__ = ["CheckpointError", "save", "load", "save_checkpoint", "load_checkpoint"]

_NS = "tinygrad_cv."
_FORMAT = _NS + "format"
_VERSION = "1"
_OPT_PREFIX = "optimizer.state."


class CheckpointError(ValueError):
    """A checkpoint file that is corrupted, or that does not fit the model/optimiser it is loaded into."""


# --- JSON for the non-tensor parts --------------------------------------------------------
def _to_json(obj, where):
    """Plain JSON types; tuples are tagged so they come back as tuples (``betas``)."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple):
        return {"__tuple__": [_to_json(v, where) for v in obj]}
    if isinstance(obj, list):
        return [_to_json(v, where) for v in obj]
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) for k in obj):
            if "__tuple__" in obj or "__items__" in obj:
                raise TypeError(f"{where}: the keys '__tuple__' and '__items__' are reserved")
            return {k: _to_json(v, where) for k, v in obj.items()}
        return {"__items__": [[_to_json(k, where), _to_json(v, where)] for k, v in obj.items()]}
    raise TypeError(
        f"{where}: cannot store a {type(obj).__name__} in a checkpoint's JSON metadata "
        "(numbers, strings, lists, tuples, dicts and None only; tensors belong in a state dict)"
    )


def _from_json_hook(d):
    if len(d) == 1 and "__tuple__" in d:
        return tuple(d["__tuple__"])
    if len(d) == 1 and "__items__" in d:
        return {(tuple(k) if isinstance(k, list) else k): v for k, v in d["__items__"]}
    return d


def _dumps(obj, where):
    return json.dumps(_to_json(obj, where), separators=(",", ":"))


def _loads(text, where, path):
    try:
        return json.loads(text, object_hook=_from_json_hook)
    except ValueError as e:
        raise CheckpointError(f"{path}: metadata entry '{where}' is not valid JSON ({e}); the file is corrupted") from None


# --- encoding -------------------------------------------------------------------------------
def _array(value, key):
    if isinstance(value, Tensor):
        return value.detach().numpy()  # a GPU tensor is copied to the host here
    if isinstance(value, np.ndarray):
        return value
    raise TypeError(f"state entry '{key}' is a {type(value).__name__}, expected a Tensor or an ndarray")


def _crc(array):
    return zlib.crc32(np.ascontiguousarray(array).reshape(-1).view(np.uint8))


def _is_optimizer_state(state):
    return isinstance(state, Mapping) and set(state) == {"state", "param_groups"}


def _encode_optimizer(opt_state, tensors, meta):
    scalars, tensor_names = {}, {}
    for idx, entries in opt_state["state"].items():
        idx = int(idx)
        for name, value in entries.items():
            if isinstance(value, (Tensor, np.ndarray)):
                tensors[f"{_OPT_PREFIX}{idx}.{name}"] = _array(value, name)
                tensor_names.setdefault(str(idx), []).append(name)
            else:
                scalars.setdefault(str(idx), {})[name] = value
    meta[_NS + "optimizer"] = _dumps(
        {"param_groups": list(opt_state["param_groups"]), "state": scalars, "tensors": tensor_names},
        "optimizer state_dict",
    )


def _encode_model(model_state, tensors, meta):
    for key, value in model_state.items():
        if not isinstance(key, str):
            raise TypeError(f"state_dict keys must be strings, got {key!r}")
        if key in tensors:
            raise ValueError(f"state_dict key '{key}' collides with an optimizer entry of the checkpoint")
        tensors[key] = _array(value, key)
    meta[_NS + "model_keys"] = _dumps(list(model_state), "model keys")


def _write(path, kind, tensors, meta):
    meta[_FORMAT] = kind
    meta[_NS + "version"] = _VERSION
    meta[_NS + "crc32"] = json.dumps({k: _crc(v) for k, v in tensors.items()}, separators=(",", ":"))
    _st.save_file(tensors, path, metadata=meta)  # atomic: temporary file + rename


def save(state, path):
    """Save a model ``state_dict`` (name -> tensor) or an optimiser ``state_dict`` to ``path``.

    A model's file holds exactly its keys (loadable by any safetensors
    reader); ``load`` gives back the same kind of dict.
    """
    tensors, meta = {}, {}
    if _is_optimizer_state(state):
        _encode_optimizer(state, tensors, meta)
        _write(path, "optimizer", tensors, meta)
    elif isinstance(state, Mapping):
        _encode_model(state, tensors, meta)
        _write(path, "state_dict", tensors, meta)
    else:
        raise TypeError(f"save expects a state_dict (a dict), got {type(state).__name__}")


def _state_of(obj):
    return obj.state_dict() if hasattr(obj, "state_dict") else obj


def save_checkpoint(path, model=None, optimizer=None, scheduler=None, epoch=None, extra=None):
    """Write model, optimiser and scheduler state (objects or their state dicts), ``epoch`` and ``extra`` atomically."""
    tensors, meta = {}, {}
    if optimizer is not None:
        opt_state = _state_of(optimizer)
        if not _is_optimizer_state(opt_state):
            raise TypeError("optimizer must be an Optimizer or its state_dict()")
        _encode_optimizer(opt_state, tensors, meta)
    if model is not None:
        _encode_model(_state_of(model), tensors, meta)
    if scheduler is not None:
        meta[_NS + "scheduler"] = _dumps(_state_of(scheduler), "scheduler state_dict")
    meta[_NS + "epoch"] = _dumps(epoch, "epoch")
    meta[_NS + "extra"] = _dumps(extra if extra is not None else {}, "extra")
    _write(path, "checkpoint", tensors, meta)


# --- decoding -------------------------------------------------------------------------------
def _read(path):
    where = os.fspath(path)
    try:
        tensors, meta = _st.read_file(path)
    except _st.SafetensorsError as e:
        detail = str(e).removeprefix(f"{where}: ")
        raise CheckpointError(f"{where}: not a valid safetensors checkpoint (corrupted or truncated file?): {detail}") from None
    meta = meta or {}
    if _FORMAT in meta:
        version = meta.get(_NS + "version")
        if version != _VERSION:
            raise CheckpointError(f"{where}: checkpoint format version {version!r} is not supported (expected {_VERSION})")
        crcs = _loads(meta.get(_NS + "crc32", "{}"), "crc32", where)
        if not isinstance(crcs, dict):
            raise CheckpointError(f"{where}: metadata entry 'crc32' is malformed; the file is corrupted")
        for key in tensors:
            if key not in crcs:
                raise CheckpointError(f"{where}: tensor '{key}' has no checksum; the header was altered")
        for key, crc in crcs.items():
            if key not in tensors:
                raise CheckpointError(f"{where}: tensor '{key}' is missing from the file")
            if _crc(tensors[key]) != crc:
                raise CheckpointError(f"{where}: the data of tensor '{key}' fails its CRC-32 check; the file is corrupted")
    return tensors, meta, where


def _decode_model(tensors, meta, where):
    if _NS + "model_keys" not in meta:
        return None
    keys = _loads(meta[_NS + "model_keys"], "model_keys", where)
    out = OrderedDict()
    for key in keys:
        if key not in tensors:
            raise CheckpointError(f"{where}: model key '{key}' is listed but its tensor is missing")
        out[key] = Tensor._wrap(tensors[key])
    return out


def _decode_optimizer(tensors, meta, where):
    if _NS + "optimizer" not in meta:
        return None
    info = _loads(meta[_NS + "optimizer"], "optimizer", where)
    if not isinstance(info, dict) or not {"param_groups", "state", "tensors"} <= set(info):
        raise CheckpointError(f"{where}: optimizer metadata is malformed")
    state = {}
    for idx, entries in info["state"].items():
        state.setdefault(int(idx), {}).update(entries)
    for idx, names in info["tensors"].items():
        for name in names:
            key = f"{_OPT_PREFIX}{idx}.{name}"
            if key not in tensors:
                raise CheckpointError(f"{where}: optimizer tensor '{key}' is missing")
            state.setdefault(int(idx), {})[name] = Tensor._wrap(tensors[key])
    return {"state": dict(sorted(state.items())), "param_groups": info["param_groups"]}


def load(path):
    """Read a file written by :func:`save` or :func:`save_checkpoint` (or any safetensors file).

    Returns a model ``state_dict`` (OrderedDict name -> Tensor, in the saved
    order), an optimiser ``state_dict``, or for a checkpoint a dict with
    ``model``, ``optimizer``, ``scheduler``, ``epoch`` and ``extra``. A
    safetensors file from elsewhere loads as a plain name -> Tensor dict.
    """
    tensors, meta, where = _read(path)
    kind = meta.get(_FORMAT)
    if kind is None:
        return OrderedDict((k, Tensor._wrap(v)) for k, v in tensors.items())
    if kind == "state_dict":
        return _decode_model(tensors, meta, where)
    if kind == "optimizer":
        return _decode_optimizer(tensors, meta, where)
    if kind == "checkpoint":
        return _decode_checkpoint(tensors, meta, where)
    raise CheckpointError(f"{where}: unknown checkpoint kind {kind!r}")


def _decode_checkpoint(tensors, meta, where):
    return {
        "model": _decode_model(tensors, meta, where),
        "optimizer": _decode_optimizer(tensors, meta, where),
        "scheduler": _loads(meta[_NS + "scheduler"], "scheduler", where) if _NS + "scheduler" in meta else None,
        "epoch": _loads(meta.get(_NS + "epoch", "null"), "epoch", where),
        "extra": _loads(meta.get(_NS + "extra", "{}"), "extra", where),
    }


# --- validation against live objects ----------------------------------------------------------
def check_model_state(model, state, where="state_dict", strict=True):
    """Raise CheckpointError unless ``state`` fits ``model`` exactly: keys (when strict), shapes and dtypes."""
    own = model.state_dict(keep_vars=True)
    problems = []
    if strict:
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if missing:
            problems.append("missing key(s): " + ", ".join(f"'{k}'" for k in missing))
        if unexpected:
            problems.append("unexpected key(s): " + ", ".join(f"'{k}'" for k in unexpected))
    for key, target in own.items():
        if key not in state:
            continue
        got = _array(state[key], key)
        if got.shape != target.shape:
            problems.append(f"'{key}': shape {got.shape} in the file, {target.shape} in the model")
        elif got.dtype != target.dtype:
            problems.append(f"'{key}': dtype {got.dtype} in the file, {target.dtype} in the model")
    if problems:
        raise CheckpointError(f"{where} does not fit {type(model).__name__}: " + "; ".join(problems))


def check_optimizer_state(optimizer, state, where="optimizer state_dict"):
    """Raise CheckpointError unless ``state`` fits ``optimizer``'s groups and parameters (before anything is loaded)."""
    groups, saved = optimizer.param_groups, state["param_groups"]
    if len(groups) != len(saved):
        raise CheckpointError(f"{where}: {len(saved)} parameter groups in the file, {len(groups)} in the optimizer")
    params = {}
    for i, (g, s) in enumerate(zip(groups, saved)):
        if len(g["params"]) != len(s["params"]):
            raise CheckpointError(
                f"{where}: parameter group {i} has {len(s['params'])} parameters in the file, "
                f"{len(g['params'])} in the optimizer"
            )
        params.update({int(idx): p for idx, p in zip(s["params"], g["params"])})
    for idx, entries in state["state"].items():
        p = params.get(int(idx))
        if p is None:
            raise CheckpointError(f"{where}: state for parameter {idx}, which no parameter group contains")
        for name, value in entries.items():
            if isinstance(value, (Tensor, np.ndarray)):
                arr = _array(value, name)
                if arr.ndim and arr.shape != p.shape:
                    raise CheckpointError(
                        f"{where}: 'optimizer.state.{idx}.{name}' has shape {arr.shape}, parameter {idx} has {p.shape}"
                    )
                if arr.dtype.kind == "f" and arr.dtype != p.dtype:
                    raise CheckpointError(
                        f"{where}: 'optimizer.state.{idx}.{name}' has dtype {arr.dtype}, parameter {idx} is {p.dtype}"
                    )


def load_checkpoint(path, model=None, optimizer=None, scheduler=None, strict=True):
    """Load a checkpoint written by :func:`save_checkpoint` into the given objects; return its contents.

    Everything is checked first — the file's integrity, then keys, shapes
    and dtypes against ``model`` and the optimiser's groups — and only then
    is anything modified, so a failed load leaves the objects untouched.
    """
    tensors, meta, where = _read(path)
    kind = meta.get(_FORMAT)
    if kind is None:  # a plain weights file from elsewhere: model state only
        contents = {"model": OrderedDict((k, Tensor._wrap(v)) for k, v in tensors.items()),
                    "optimizer": None, "scheduler": None, "epoch": None, "extra": {}}
    elif kind == "checkpoint":
        contents = _decode_checkpoint(tensors, meta, where)
    elif kind == "state_dict":
        contents = {"model": _decode_model(tensors, meta, where), "optimizer": None, "scheduler": None,
                    "epoch": None, "extra": {}}
    elif kind == "optimizer":
        contents = {"model": None, "optimizer": _decode_optimizer(tensors, meta, where), "scheduler": None,
                    "epoch": None, "extra": {}}
    else:
        raise CheckpointError(f"{where}: unknown checkpoint kind {kind!r}")
    for obj, part in ((model, "model"), (optimizer, "optimizer"), (scheduler, "scheduler")):
        if obj is not None and contents[part] is None:
            raise CheckpointError(f"{where}: the file holds no {part} state")
    if model is not None:
        check_model_state(model, contents["model"], where, strict=strict)
    if optimizer is not None:
        check_optimizer_state(optimizer, contents["optimizer"], where)
    if model is not None:
        model.load_state_dict(contents["model"], strict=strict)
    if optimizer is not None:
        optimizer.load_state_dict(contents["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(contents["scheduler"])
    return contents
