"""Checkpoints as safetensors files: model weights, optimiser state, schedule and progress — never pickle.

A checkpoint is one ``.safetensors`` file:

- the model's ``state_dict`` under its own keys (``conv1.weight``,
  ``bn.running_mean``, ``bn.num_batches_tracked`` as int64...), so the file is
  what PyTorch's tooling expects of a model's weights;
- the optimiser's tensors under ``optimizer.state.<index>.<name>``
  (``optimizer.state.0.exp_avg``), the index being the parameter's position in
  the optimiser's groups, as in its ``state_dict``;
- everything that is not a tensor — the optimiser's ``param_groups`` and
  step counts, the scheduler's state, the optimiser's and scheduler's class
  names, the epoch, an ``extra`` dict — as JSON in the file's
  ``__metadata__`` (keys ``tinygrad_cv.*``), together with the model's key
  order and a CRC-32 of every tensor.

Integrity (format version 2): besides each tensor's CRC-32, the metadata
entry ``tinygrad_cv.header_crc32`` holds the CRC-32, as 8 lowercase hex
digits, of the file's first 8 + N bytes — the length field and the whole
JSON header — computed with those 8 digits set to ``00000000``. Every byte
of the file is covered by one checksum or the other, so any single flipped
bit (and any burst up to 32 bits) is refused on loading instead of, say,
silently changing a learning rate. The header checksum is over the bytes as
written, so a file rewritten by another tool (which may reorder the
metadata) is refused as altered. Version 1 files (no header checksum) are
still read, with only their tensors checked.

Loading reads nothing but JSON and raw numbers, so an untrusted file cannot
run code. Writes are atomic (a temporary file renamed into place): a crash
mid-save leaves the previous checkpoint intact, and a later save of the same
file removes the temporary files such crashes leave (see
``tinygrad_cv.io.atomic_output`` for the exact rule).

::

    save_checkpoint("ckpt.safetensors", model=model, optimizer=opt, scheduler=sched, epoch=3)
    info = load_checkpoint("ckpt.safetensors", model=model, optimizer=opt, scheduler=sched)
    start_epoch = info["epoch"] + 1
"""
from __future__ import annotations

import copy
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
_VERSION = "2"
_VERSIONS_READ = ("1", "2")  # 1: no header checksum
_HEADER_CRC = _NS + "header_crc32"
_HEADER_CRC_MARK = b'"' + _HEADER_CRC.encode() + b'":"'
_HEADER_CRC_PLACEHOLDER = b"00000000"
_OPT_TYPE = _NS + "optimizer_type"
_SCHED_TYPE = _NS + "scheduler_type"
_OPT_PREFIX = "optimizer.state."
_BF16_CHOICES = ("error", "float32")


class CheckpointError(ValueError):
    """A checkpoint file that is corrupted, or that does not fit the model/optimiser it is loaded into."""


class _HeaderChecksumError(CheckpointError):
    """The header fails its checksum; carries what was read, so a loader can say more about the damage."""

    def __init__(self, message, tensors, meta):
        super().__init__(message)
        self.tensors, self.meta = tensors, meta


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
    except RecursionError:
        raise CheckpointError(
            f"{path}: metadata entry '{where}' is JSON nested too deeply; the file is corrupted"
        ) from None
    except (ValueError, TypeError) as e:  # TypeError: a malformed __tuple__/__items__ tag
        raise CheckpointError(
            f"{path}: metadata entry '{where}' is not valid JSON ({e}); the file is corrupted"
        ) from None


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


def _header_crc_span(prefix, where):
    """Where, in the file's first 8 + N bytes, the 8 hex digits of the header checksum are."""
    at = prefix.find(_HEADER_CRC_MARK)
    # The key can only appear once unescaped: inside a JSON string every '"' is escaped.
    if at < 0 or prefix.find(_HEADER_CRC_MARK, at + 1) >= 0:
        raise CheckpointError(f"{where}: the header checksum entry is missing or repeated; the header was altered")
    start = at + len(_HEADER_CRC_MARK)
    return start, start + len(_HEADER_CRC_PLACEHOLDER)


def _header_crc(prefix, start, end):
    return f"{zlib.crc32(prefix[:start] + _HEADER_CRC_PLACEHOLDER + prefix[end:]):08x}".encode()


def _write(path, kind, tensors, meta):
    meta[_FORMAT] = kind
    meta[_NS + "version"] = _VERSION
    meta[_NS + "crc32"] = json.dumps({k: _crc(v) for k, v in tensors.items()}, separators=(",", ":"))
    meta[_HEADER_CRC] = _HEADER_CRC_PLACEHOLDER.decode()
    header, arrays = _st._prepare(tensors, meta)
    prefix = len(header).to_bytes(8, "little") + header
    start, end = _header_crc_span(prefix, os.fspath(path))
    header = header[:start - 8] + _header_crc(prefix, start, end) + header[end - 8:]  # same length: N unchanged
    with _st.atomic_output(path) as f:  # atomic: temporary file + rename
        _st._write(f, header, arrays)


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
    """Write model, optimiser and scheduler state (objects or their state dicts), ``epoch`` and ``extra`` atomically.

    When the optimiser and scheduler are given as objects their class names
    are recorded too, and :func:`load_checkpoint` refuses to load the state
    into an object of another class.
    """
    tensors, meta = {}, {}
    if optimizer is not None:
        opt_state = _state_of(optimizer)
        if not _is_optimizer_state(opt_state):
            raise TypeError("optimizer must be an Optimizer or its state_dict()")
        _encode_optimizer(opt_state, tensors, meta)
        if opt_state is not optimizer:  # an object, not a bare state dict: record its class
            meta[_OPT_TYPE] = type(optimizer).__name__
    if model is not None:
        _encode_model(_state_of(model), tensors, meta)
    if scheduler is not None:
        sched_state = _state_of(scheduler)
        meta[_NS + "scheduler"] = _dumps(sched_state, "scheduler state_dict")
        if sched_state is not scheduler:
            meta[_SCHED_TYPE] = type(scheduler).__name__
    meta[_NS + "epoch"] = _dumps(epoch, "epoch")
    meta[_NS + "extra"] = _dumps(extra if extra is not None else {}, "extra")
    _write(path, "checkpoint", tensors, meta)


# --- decoding -------------------------------------------------------------------------------
def _check_bf16(bf16):
    if bf16 not in _BF16_CHOICES:
        raise ValueError(f"bf16 must be 'error' or 'float32', got {bf16!r}")


def _check_header(prefix, tensors, meta, where):
    """Check the format version and, from version 2, the header's CRC-32 (see the module docstring)."""
    version = meta.get(_NS + "version")
    if version not in _VERSIONS_READ:
        raise CheckpointError(
            f"{where}: checkpoint format version {version!r} is not supported "
            f"(this tinygrad_cv reads versions {', '.join(_VERSIONS_READ)}; a newer one may have written it, "
            "or the header is corrupted)"
        )
    if version == "1":  # written before headers had a checksum
        if _HEADER_CRC in meta:
            raise CheckpointError(f"{where}: a format version 1 header with a header checksum; the header was altered")
    else:
        if _HEADER_CRC not in meta:
            raise CheckpointError(
                f"{where}: format version {version} requires a header checksum ('{_HEADER_CRC}'), "
                "which is missing; the header was altered or corrupted"
            )
        start, end = _header_crc_span(prefix, where)
        stored = prefix[start:end]
        if prefix[end:end + 1] != b'"' or stored.decode("latin-1") != meta[_HEADER_CRC]:
            raise CheckpointError(f"{where}: the header checksum entry is malformed; the header was altered")
        if _header_crc(prefix, start, end) != stored:
            raise _HeaderChecksumError(
                f"{where}: the header (metadata, names, shapes, offsets) fails its CRC-32 check; "
                "the file is corrupted, or was edited or rewritten by another tool",
                tensors, meta,
            )
    if _FORMAT not in meta:
        raise CheckpointError(f"{where}: the checkpoint metadata has no '{_FORMAT}' entry; the header was altered")


def _read(path, bf16="error", caller="load"):
    """Read and integrity-check a file; return (tensors, metadata, path as text)."""
    _check_bf16(bf16)
    where = os.fspath(path)
    try:
        tensors, meta, prefix = _st._read_parts(path, bf16=bf16)
    except _st._BF16Refused as e:
        raise CheckpointError(
            f"{where}: tensor {e.tensor!r} is BF16, which NumPy has no dtype for; "
            f"pass bf16='float32' to {caller}() to widen it (exactly) to float32"
        ) from None
    except _st.SafetensorsError as e:
        detail = str(e).removeprefix(f"{where}: ")
        raise CheckpointError(f"{where}: not a valid safetensors checkpoint (corrupted or truncated file?): {detail}") from None
    meta = meta or {}
    # Any entry of ours makes the file ours, so a flipped bit in the format
    # key cannot pass the file off as an unchecked foreign one.
    if any(k.startswith(_NS) for k in meta):
        _check_header(prefix, tensors, meta, where)
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
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise CheckpointError(f"{where}: metadata entry 'model_keys' is malformed (not a list of names)")
    out = OrderedDict()
    for key in keys:
        if key not in tensors:
            raise CheckpointError(f"{where}: model key '{key}' is listed but its tensor is missing")
        out[key] = Tensor._wrap(tensors[key])
    return out


def _index(key, where, what):
    """A parameter index as stored in JSON (a decimal string) -> int."""
    if not (isinstance(key, str) and key.isdecimal() and key.isascii()):
        raise CheckpointError(f"{where}: optimizer metadata is malformed: {what} key {key!r} is not a parameter index")
    return int(key)


def _decode_optimizer(tensors, meta, where):
    if _NS + "optimizer" not in meta:
        return None
    info = _loads(meta[_NS + "optimizer"], "optimizer", where)
    if not isinstance(info, dict) or not {"param_groups", "state", "tensors"} <= set(info):
        raise CheckpointError(f"{where}: optimizer metadata is malformed")
    groups, scalars, names = info["param_groups"], info["state"], info["tensors"]
    if not isinstance(groups, list) or not all(
        isinstance(g, dict) and isinstance(g.get("params"), list)
        and all(isinstance(i, int) and not isinstance(i, bool) for i in g["params"])
        for g in groups
    ):
        raise CheckpointError(f"{where}: optimizer metadata is malformed: param_groups must be a list of "
                              "dicts, each with a list of parameter indices under 'params'")
    if not isinstance(scalars, dict) or not all(isinstance(v, dict) for v in scalars.values()):
        raise CheckpointError(f"{where}: optimizer metadata is malformed: 'state' must map indices to dicts")
    if not isinstance(names, dict) or not all(
        isinstance(v, list) and all(isinstance(n, str) for n in v) for v in names.values()
    ):
        raise CheckpointError(f"{where}: optimizer metadata is malformed: 'tensors' must map indices to lists of names")
    state = {}
    for idx, entries in scalars.items():
        state.setdefault(_index(idx, where, "state"), {}).update(entries)
    for idx, entry_names in names.items():
        for name in entry_names:
            key = f"{_OPT_PREFIX}{idx}.{name}"
            if key not in tensors:
                raise CheckpointError(f"{where}: optimizer tensor '{key}' is missing")
            state.setdefault(_index(idx, where, "tensors"), {})[name] = Tensor._wrap(tensors[key])
    return {"state": dict(sorted(state.items())), "param_groups": groups}


def load(path, *, bf16="error"):
    """Read a file written by :func:`save` or :func:`save_checkpoint` (or any safetensors file).

    Returns a model ``state_dict`` (OrderedDict name -> Tensor, in the saved
    order), an optimiser ``state_dict``, or for a checkpoint a dict with
    ``model``, ``optimizer``, ``scheduler``, ``epoch`` and ``extra``. A
    safetensors file from elsewhere loads as a plain name -> Tensor dict;
    its BF16 tensors are refused unless ``bf16="float32"``, which widens
    them (exactly) to float32. A corrupted file raises CheckpointError.
    """
    tensors, meta, where = _read(path, bf16, "checkpoint.load")
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


def _check_type(obj, saved_type, part, where):
    if saved_type is not None and saved_type != type(obj).__name__:
        raise CheckpointError(
            f"{where}: {part} class mismatch: the file holds {saved_type} state, the {part} given is "
            f"{type(obj).__name__} (resume with {saved_type}, or pass no {part} to load the rest)"
        )


def check_optimizer_state(optimizer, state, where="optimizer state_dict", saved_type=None):
    """Raise CheckpointError unless ``state`` fits ``optimizer`` (before anything is loaded).

    Checks the class (when ``saved_type``, the class name recorded in the
    file, is known), the groups and their sizes, that each saved group has
    every hyper-parameter ``optimizer`` uses and values it accepts, and the
    shapes and dtypes of the state tensors.
    """
    _check_type(optimizer, saved_type, "optimizer", where)
    name = type(optimizer).__name__
    groups, saved = optimizer.param_groups, state["param_groups"]
    if len(groups) != len(saved):
        raise CheckpointError(f"{where}: {len(saved)} parameter groups in the file, {len(groups)} in the optimizer")
    params = {}
    validate = getattr(optimizer, "_validate_group", None)
    for i, (g, s) in enumerate(zip(groups, saved)):
        if len(g["params"]) != len(s["params"]):
            raise CheckpointError(
                f"{where}: parameter group {i} has {len(s['params'])} parameters in the file, "
                f"{len(g['params'])} in the optimizer"
            )
        missing = [k for k in getattr(optimizer, "defaults", {}) if k not in s]
        if missing:
            raise CheckpointError(
                f"{where}: parameter group {i} in the file lacks " + ", ".join(f"'{k}'" for k in missing)
                + f", which {name} needs (state saved by another kind of optimizer?)"
            )
        if validate is not None:
            # What optimizer.load_state_dict will check, tried on a copy now so that it cannot fail later.
            merged = copy.deepcopy({k: v for k, v in s.items() if k != "params"})
            merged["params"] = g["params"]
            try:
                validate(merged)
            except (KeyError, TypeError, ValueError) as e:
                reason = f"no '{e.args[0]}'" if isinstance(e, KeyError) and e.args else str(e)
                raise CheckpointError(
                    f"{where}: parameter group {i} in the file does not suit {name}: {reason}"
                ) from None
        params.update({int(idx): p for idx, p in zip(s["params"], g["params"])})
    for idx, entries in state["state"].items():
        p = params.get(int(idx))
        if p is None:
            raise CheckpointError(f"{where}: state for parameter {idx}, which no parameter group contains")
        for key, value in entries.items():
            if isinstance(value, (Tensor, np.ndarray)):
                arr = _array(value, key)
                if arr.ndim and arr.shape != p.shape:
                    raise CheckpointError(
                        f"{where}: 'optimizer.state.{idx}.{key}' has shape {arr.shape}, parameter {idx} has {p.shape}"
                    )
                if arr.dtype.kind == "f" and arr.dtype != p.dtype:
                    raise CheckpointError(
                        f"{where}: 'optimizer.state.{idx}.{key}' has dtype {arr.dtype}, parameter {idx} is {p.dtype}"
                    )


def _check_scheduler_state(scheduler, state, where, saved_type=None):
    _check_type(scheduler, saved_type, "scheduler", where)
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise CheckpointError(f"{where}: the scheduler state in the file is not a dict of named values")


def _explain_damage(error, model, strict):
    """If the model state of a header that failed its checksum does not fit ``model`` either, say both in one error.

    Returns (and the caller raises ``error`` as it is) when the header is too
    damaged to read a model state from, or when that state fits.
    """
    try:
        state = _decode_model(error.tensors, error.meta, "")
    except CheckpointError:
        return  # too damaged to say more than the checksum does
    if state is None:
        return
    try:
        check_model_state(model, state, "read anyway, its model state", strict=strict)
    except CheckpointError as fit:
        raise CheckpointError(f"{error}; {fit}") from None


def _contents(path, bf16, caller):
    """Read any file this module writes (or a foreign weights file) as checkpoint contents, plus its metadata."""
    tensors, meta, where = _read(path, bf16, caller)
    kind = meta.get(_FORMAT)
    empty = {"model": None, "optimizer": None, "scheduler": None, "epoch": None, "extra": {}}
    if kind is None:  # a plain weights file from elsewhere: model state only
        contents = dict(empty, model=OrderedDict((k, Tensor._wrap(v)) for k, v in tensors.items()))
    elif kind == "checkpoint":
        contents = _decode_checkpoint(tensors, meta, where)
    elif kind == "state_dict":
        contents = dict(empty, model=_decode_model(tensors, meta, where))
    elif kind == "optimizer":
        contents = dict(empty, optimizer=_decode_optimizer(tensors, meta, where))
    else:
        raise CheckpointError(f"{where}: unknown checkpoint kind {kind!r}")
    return contents, meta, where


def _restorer(obj, names=None):
    """A function that puts ``obj``'s attributes ``names`` back as they are now.

    With ``names`` None, the whole instance ``__dict__`` is put back,
    attributes added in the meantime removed.
    """
    whole = names is None
    before = dict(vars(obj)) if whole else {name: getattr(obj, name) for name in names}

    def restore():
        if whole:
            vars(obj).clear()
            vars(obj).update(before)
        else:
            for name, value in before.items():
                setattr(obj, name, value)

    return restore


def load_checkpoint(path, model=None, optimizer=None, scheduler=None, strict=True, *, bf16="error"):
    """Load a checkpoint written by :func:`save_checkpoint` into the given objects; return its contents.

    Everything is checked first — the file's integrity, then the model's
    keys, shapes and dtypes, the optimiser's class, groups, hyper-parameters
    and state, the scheduler's class and state — and only then is anything
    modified: a load that raises leaves ``model``, ``optimizer`` and
    ``scheduler`` as they were. Problems raise :class:`CheckpointError`
    naming the file and what does not fit.

    Returns a dict with ``model``, ``optimizer``, ``scheduler`` (the saved
    states), ``epoch``, ``extra`` and ``incompatible_keys``: what
    ``model.load_state_dict`` returned, a named tuple
    ``(missing_keys, unexpected_keys)`` as in PyTorch — with
    ``strict=False`` the way to see which weights were not loaded — or None
    when no model was given. ``bf16="float32"`` widens BF16 tensors of a
    foreign weights file to float32 instead of refusing them.
    """
    try:
        contents, meta, where = _contents(path, bf16, "load_checkpoint")
    except _HeaderChecksumError as e:
        if model is not None:
            _explain_damage(e, model, strict)
        raise
    for obj, part in ((model, "model"), (optimizer, "optimizer"), (scheduler, "scheduler")):
        if obj is not None and contents[part] is None:
            raise CheckpointError(f"{where}: the file holds no {part} state")
    if model is not None:
        check_model_state(model, contents["model"], where, strict=strict)
    if optimizer is not None:
        check_optimizer_state(optimizer, contents["optimizer"], where, saved_type=meta.get(_OPT_TYPE))
    if scheduler is not None:
        _check_scheduler_state(scheduler, contents["scheduler"], where, saved_type=meta.get(_SCHED_TYPE))

    # Everything is validated; should a load still fail, undo what was done
    # before it. Optimizer.load_state_dict rebinds state and param_groups
    # (it never mutates them) and the schedulers update their __dict__, so
    # keeping the old references restores them; the model goes last because
    # its load_state_dict changes nothing when it raises.
    undo = []
    try:
        if optimizer is not None:
            undo.append(_restorer(optimizer, ("state", "param_groups")))
            optimizer.load_state_dict(contents["optimizer"])
        if scheduler is not None:
            undo.append(_restorer(scheduler, None if hasattr(scheduler, "__dict__") else ()))
            scheduler.load_state_dict(contents["scheduler"])
        incompatible = model.load_state_dict(contents["model"], strict=strict) if model is not None else None
    except BaseException:
        for restore in reversed(undo):
            restore()
        raise
    contents["incompatible_keys"] = incompatible
    return contents
