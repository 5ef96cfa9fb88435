"""Pure-NumPy reader and writer for the safetensors format.

Layout of a ``.safetensors`` file::

    8 bytes    N, the header length, unsigned little-endian
    N bytes    UTF-8 JSON object:
                 {"__metadata__": {"key": "value", ...},            (optional)
                  "name": {"dtype": "F32", "shape": [2, 3],
                           "data_offsets": [begin, end]}, ...}
               padded with spaces so that N is a multiple of 8
    rest       the tensor bytes, little-endian, C order; offsets are relative
               to the first byte after the header

The writer produces the same bytes as the reference implementation (the
``safetensors`` package): tensors are laid out by decreasing dtype rank and
then by name, the JSON is compact with keys in that same order, and the
header is space-padded to a multiple of 8 so every tensor starts 8-byte
aligned.  The one deliberate difference is ``__metadata__``: the reference
emits its keys in hash-map order (not reproducible), this writer sorts them.

Nothing here uses pickle: a file is only ever interpreted as JSON plus raw
numbers, so loading an untrusted file cannot run code.  Reading is bounded
and in order: the length field (at most ``MAX_HEADER_SIZE``), then the
header, which is checked in full against the file's size, and only then the
tensor data it describes; every malformed file raises ``SafetensorsError``
naming the file and the fault.

BF16: NumPy has no bfloat16 dtype.  ``load_file`` refuses BF16 tensors by
default with a message that says so; ``load_file(path, bf16="float32")``
widens them to float32, which is exact (a bfloat16 is the upper half of a
float32).  ``save_file`` cannot produce BF16 for the same reason.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import time
from collections.abc import Iterator, Mapping
from typing import BinaryIO

import numpy as np

__all__ = [
    "SafetensorsError",
    "save_file",
    "save",
    "load_file",
    "load",
    "load_metadata",
    "read_file",
    "atomic_output",
]

# The reference refuses headers above this size; doing the same keeps a
# corrupt length field from making us try to parse a gigabyte of "JSON".
MAX_HEADER_SIZE = 100_000_000

# NumPy's own limits on an array: dimensions (64 since NumPy 2, 32 before)
# and elements/bytes (its index type).  A header asking for more is refused
# here, by name, rather than failing inside NumPy without the file's name.
_MAX_NDIM = 64 if int(np.__version__.split(".")[0]) >= 2 else 32
_MAX_INTP = int(np.iinfo(np.intp).max)

# A temporary file of a save that was killed is removed by a later save of
# the same target once it has been left alone this long, whoever wrote it
# (see atomic_output) ...
STALE_TEMP_AFTER_S = 3600
# ... or already after this long when its name carries the writer's process
# id and no process with that id is running on this machine.
DEAD_WRITER_TEMP_AFTER_S = 60

# safetensors dtype name -> little-endian NumPy dtype.
_NUMPY_DTYPE: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_ITEMSIZE = {name: dt.itemsize for name, dt in _NUMPY_DTYPE.items()}
_ITEMSIZE["BF16"] = 2

# Position of each dtype in the reference's Dtype enum.  Its writer orders
# tensors by this rank, descending (largest items first, which keeps every
# tensor aligned), ties broken by name; matching it is what makes the files
# byte-identical.
_DTYPE_RANK = {
    "BOOL": 0, "U8": 1, "I8": 2, "I16": 3, "U16": 4, "F16": 5, "BF16": 6,
    "I32": 7, "U32": 8, "F32": 9, "F64": 10, "I64": 11, "U64": 12,
}

# Types the format defines but this module cannot represent in NumPy.
_KNOWN_UNSUPPORTED = {"F8_E5M2", "F8_E4M3", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64"}


class SafetensorsError(ValueError):
    """A file that is not valid safetensors, or data that cannot be saved as such."""


class _BF16Refused(SafetensorsError):
    """A BF16 tensor read with ``bf16="error"``; ``tensor`` names it, so callers can word their own advice."""

    def __init__(self, message: str, tensor: str):
        super().__init__(message)
        self.tensor = tensor


# --------------------------------------------------------------------------
# atomic writes
# --------------------------------------------------------------------------

def _fsync_directory(directory: str) -> None:
    # Makes the rename itself durable on POSIX; not possible (or needed) on
    # platforms that cannot open a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temp_pattern(base: str) -> re.Pattern:
    # ".<target>.<pid>-<12 hex>.tmp", and ".<target>.<12 hex>.tmp" as written
    # before the process id was part of the name.
    return re.compile(re.escape(f".{base}.") + r"(?:([0-9]{1,10})-)?[0-9a-f]{12}\.tmp")


def _process_is_gone(pid: int) -> bool:
    """True only when no process ``pid`` runs on this machine; False whenever that cannot be told."""
    # On Windows os.kill(pid, 0) would terminate the process, so no probe there.
    if os.name != "posix" or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):  # PermissionError: it exists, as another user's
        return False
    return False


def _remove_stale_temps(directory: str, base: str) -> None:
    """Delete temporary files that killed saves of ``base`` left in ``directory`` (see atomic_output)."""
    pattern = _temp_pattern(base)
    now = time.time()
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if m is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            idle = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        pid = m.group(1)
        stale = idle >= STALE_TEMP_AFTER_S or (
            pid is not None and idle >= DEAD_WRITER_TEMP_AFTER_S and _process_is_gone(int(pid))
        )
        if stale:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, fsync: bool = True) -> Iterator[BinaryIO]:
    """Open a temporary file next to ``path``; on success rename it onto ``path``.

    Readers see either the old file or the complete new one, never a torn
    write: the data goes to a hidden temporary file in the same directory
    (so the final ``os.replace`` is a same-filesystem rename, which is atomic)
    and is only renamed into place when the ``with`` block finishes without an
    exception.  On any exception the temporary file is removed and ``path``
    is left untouched.

    The temporary file is created with mode 0o666 filtered by the umask, like
    a plain ``open(path, "wb")`` would, rather than mkstemp's 0o600.

    A process killed mid-write cannot remove its temporary file, so each
    successful write also removes the leftovers of earlier writes *of the
    same target*: files named ``.<name>.<pid>-<12 hex digits>.tmp`` (or
    ``.<name>.<12 hex digits>.tmp``, the pre-PID naming) next to ``path``
    that are either untouched for ``DEAD_WRITER_TEMP_AFTER_S`` (60 s) with
    no process ``<pid>`` running on this machine, or untouched for
    ``STALE_TEMP_AFTER_S`` (an hour) whatever wrote them — the fallback for
    Windows, where processes are not probed, and for a directory shared
    with other machines.  A write in progress keeps touching its file, so it
    is left alone, as is every file not named that way.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    while True:
        tmp = os.path.join(directory, f".{base}.{os.getpid()}-{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if fsync:
        _fsync_directory(directory)
    # Only after the new file is in place: tidying up must never cost a save.
    _remove_stale_temps(directory, base)


# --------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------

def _dtype_name(dtype: np.dtype, key: str) -> str:
    dtype = np.dtype(dtype)
    for name, ref in _NUMPY_DTYPE.items():
        if dtype.kind == ref.kind and dtype.itemsize == ref.itemsize:
            return name
    raise SafetensorsError(
        f"tensor {key!r}: dtype {dtype} has no safetensors equivalent "
        f"(supported: {', '.join(_NUMPY_DTYPE)})"
    )


def _prepare(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None):
    """Validate the inputs and return (header bytes, ordered list of arrays)."""
    if not isinstance(tensors, Mapping):
        raise TypeError(f"tensors must be a dict of name -> array, got {type(tensors).__name__}")
    entries = []
    for key, value in tensors.items():
        if not isinstance(key, str):
            raise TypeError(f"tensor names must be str, got {key!r}")
        if key == "__metadata__":
            raise SafetensorsError("'__metadata__' is reserved and cannot be a tensor name")
        arr = np.asarray(value)
        name = _dtype_name(arr.dtype, key)
        # Little-endian, C-contiguous bytes are what the format stores; this
        # also takes care of transposed / strided / big-endian inputs.
        # (np.asarray with order="C", unlike np.ascontiguousarray, keeps 0-d
        # arrays 0-d.)
        arr = np.asarray(arr, dtype=_NUMPY_DTYPE[name], order="C")
        entries.append((key, name, arr))
    entries.sort(key=lambda e: (-_DTYPE_RANK[e[1]], e[0]))

    header: dict = {}
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise TypeError(f"metadata must be a dict of str -> str, got {type(metadata).__name__}")
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(f"metadata must map str to str; got {k!r}: {v!r}")
        header["__metadata__"] = {k: metadata[k] for k in sorted(metadata)}
    offset = 0
    for key, name, arr in entries:
        header[key] = {"dtype": name, "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    # Compact separators and raw UTF-8 match serde_json's output.
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return text, [arr for _, _, arr in entries]


def _tensor_bytes(arr: np.ndarray) -> memoryview:
    # A byte view of the (already contiguous) array: written without a copy.
    return memoryview(arr.reshape(-1).view(np.uint8))


def _write(f: BinaryIO, header: bytes, arrays: list[np.ndarray]) -> None:
    f.write(len(header).to_bytes(8, "little"))
    f.write(header)
    for arr in arrays:
        f.write(_tensor_bytes(arr))


def save(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None) -> bytes:
    """Serialize ``tensors`` to safetensors bytes in memory."""
    header, arrays = _prepare(tensors, metadata)
    parts = [len(header).to_bytes(8, "little"), header]
    parts.extend(_tensor_bytes(a) for a in arrays)
    return b"".join(parts)


def save_file(
    tensors: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``tensors`` (name -> array) to ``path`` in safetensors format.

    The write is atomic: the file is assembled in a temporary file in the
    same directory, fsync'ed, then renamed over ``path``, so an interrupted
    save never leaves a truncated checkpoint and never damages the previous
    one.  ``metadata`` is an optional str -> str map stored as ``__metadata__``.
    """
    header, arrays = _prepare(tensors, metadata)
    with atomic_output(path) as f:
        _write(f, header, arrays)


# --------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------

def _no_duplicate_keys(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise SafetensorsError(f"duplicate key {k!r} in header")
        out[k] = v
    return out


def _is_uint(x) -> bool:
    # bool is an int subclass in Python; JSON true/false must not pass as 1/0.
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _short(value) -> str:
    """``repr(value)``, cut short: a hostile header must not turn an error message into megabytes."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_length(n: int, size: int, where: str) -> None:
    if n > MAX_HEADER_SIZE:
        raise SafetensorsError(f"{where}: header length {n} exceeds the {MAX_HEADER_SIZE}-byte limit (corrupt file?)")
    if 8 + n > size:
        raise SafetensorsError(
            f"{where}: header length {n} is larger than the {size - 8} bytes that follow it (file truncated?)"
        )


def _parse_header(buf: bytes | bytearray | memoryview, where: str):
    """Check the framing and the header of a whole file held in memory; return (metadata, entries, data_start)."""
    size = len(buf)
    if size < 8:
        raise SafetensorsError(f"{where}: file is {size} bytes, shorter than the 8-byte header length field")
    n = int.from_bytes(bytes(buf[:8]), "little")
    _check_length(n, size, where)
    return _validate_header(bytes(buf[8:8 + n]), size, where)


def _check_shape(shape, dtype: str, name: str, where: str) -> None:
    if not isinstance(shape, list) or not all(_is_uint(d) for d in shape):
        raise SafetensorsError(f"{where}: tensor {name!r} has invalid shape {_short(shape)} (a list of integers >= 0)")
    if len(shape) > _MAX_NDIM:
        raise SafetensorsError(f"{where}: tensor {name!r} has {len(shape)} dimensions, more than NumPy's {_MAX_NDIM}")
    # NumPy refuses an array whose nonzero dimensions multiply past its index
    # range, even when another dimension is 0 and it would hold nothing.
    nbytes = _ITEMSIZE[dtype]
    for d in shape:
        nbytes *= max(d, 1)
        if nbytes > _MAX_INTP:
            raise SafetensorsError(f"{where}: tensor {name!r} has shape {_short(shape)}, too large for an array")


def _validate_header(raw: bytes, size: int, where: str):
    """Parse and check the header bytes ``raw`` of a file of ``size`` bytes; return (metadata, entries, data_start).

    ``entries`` is a list of (name, dtype, shape, begin, end) in file order,
    ``data_start`` the file offset of the data section.  Everything that the
    data will be read with is checked here, against ``size``, so the data is
    only read once the header is known to describe it exactly.
    """
    n = len(raw)
    try:
        text = raw.decode("utf-8")
        header = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except SafetensorsError as e:
        raise SafetensorsError(f"{where}: {e}") from None
    except RecursionError:
        raise SafetensorsError(
            f"{where}: header JSON is nested too deeply (a safetensors header is 3 levels deep)"
        ) from None
    except (UnicodeDecodeError, ValueError) as e:
        raise SafetensorsError(f"{where}: header is not valid UTF-8 JSON ({e})") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{where}: header must be a JSON object, got {type(header).__name__}")

    metadata = header.pop("__metadata__", None)
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise SafetensorsError(f"{where}: __metadata__ must be an object mapping strings to strings")

    entries = []
    for name, info in header.items():
        if not isinstance(info, dict):
            raise SafetensorsError(f"{where}: entry for tensor {name!r} is not an object")
        missing = {"dtype", "shape", "data_offsets"} - info.keys()
        if missing:
            raise SafetensorsError(f"{where}: tensor {name!r} lacks {', '.join(sorted(missing))}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype, str) or dtype not in _ITEMSIZE:
            known = isinstance(dtype, str) and dtype in _KNOWN_UNSUPPORTED
            hint = " (a valid safetensors dtype, but not supported here)" if known else ""
            raise SafetensorsError(f"{where}: tensor {name!r} has unknown dtype {_short(dtype)}{hint}")
        _check_shape(shape, dtype, name, where)
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_uint(o) for o in offsets)):
            raise SafetensorsError(f"{where}: tensor {name!r} has invalid data_offsets {_short(offsets)}")
        begin, end = offsets
        if end < begin:
            raise SafetensorsError(f"{where}: tensor {name!r} has data_offsets [{begin}, {end}] with end before begin")
        expected = math.prod(shape) * _ITEMSIZE[dtype]
        if end - begin != expected:
            raise SafetensorsError(
                f"{where}: tensor {name!r}: shape {shape} of {dtype} needs {expected} bytes "
                f"but data_offsets [{begin}, {end}] span {end - begin}"
            )
        entries.append((name, dtype, tuple(shape), begin, end))

    # The reference accepts only a buffer tiled exactly by the tensors:
    # sorted by offset, each starts where the previous ended, and the last
    # ends at the end of the file.  Anything else is corruption.
    data_start = 8 + n
    data_len = size - data_start
    pos = 0
    prev = None
    for name, _, _, begin, end in sorted(entries, key=lambda e: (e[3], e[4])):
        if begin < pos:
            raise SafetensorsError(
                f"{where}: tensor {name!r} at bytes [{begin}, {end}] overlaps tensor {prev!r} ending at {pos}"
            )
        if begin > pos:
            raise SafetensorsError(f"{where}: gap of {begin - pos} unused bytes before tensor {name!r} at offset {begin}")
        if end > data_len:
            raise SafetensorsError(
                f"{where}: tensor {name!r} data_offsets [{begin}, {end}] run past the end of the "
                f"{data_len}-byte data section (file truncated?)"
            )
        pos, prev = end, name
    if pos != data_len:
        raise SafetensorsError(
            f"{where}: {data_len - pos} trailing bytes after the last tensor (data section is "
            f"{data_len} bytes, tensors cover {pos})"
        )
    return metadata, entries, data_start


def _decode(buf, metadata, entries, data_start, where: str, bf16: str):
    if bf16 not in ("error", "float32"):
        raise ValueError(f"bf16 must be 'error' or 'float32', got {bf16!r}")
    out: dict[str, np.ndarray] = {}
    for name, dtype, shape, begin, end in entries:
        start = data_start + begin
        if dtype == "BF16":
            if bf16 == "error":
                raise _BF16Refused(
                    f"{where}: tensor {name!r} is BF16, which NumPy has no dtype for; "
                    "pass bf16='float32' to widen it (exactly) to float32",
                    name,
                )
            raw = np.frombuffer(buf, dtype="<u2", count=math.prod(shape), offset=start)
            arr = (raw.astype(np.uint32) << 16).view(np.float32).reshape(shape)
        else:
            dt = _NUMPY_DTYPE[dtype]
            arr = np.frombuffer(buf, dtype=dt, count=math.prod(shape), offset=start).reshape(shape)
            if dtype == "BOOL" and arr.size and arr.view(np.uint8).max() > 1:
                raise SafetensorsError(f"{where}: BOOL tensor {name!r} holds bytes other than 0 and 1")
            # Unaligned views (possible in files from other writers) and
            # big-endian hosts get a private, native-order copy; otherwise the
            # array is a view into the (writable) file buffer.
            if not arr.flags.aligned or not dt.isnative:
                arr = arr.astype(dt.newbyteorder("="))
        out[name] = arr
    return out


def load(data: bytes | bytearray, *, bf16: str = "error") -> dict[str, np.ndarray]:
    """Parse safetensors bytes held in memory."""
    buf = bytearray(data)
    metadata, entries, start = _parse_header(buf, "<bytes>")
    return _decode(buf, metadata, entries, start, "<bytes>", bf16)


def _read_header(f: BinaryIO, size: int, where: str):
    """Read and check the header of the open file ``f`` of ``size`` bytes, reading nothing past it.

    Returns (the first 8 + N bytes of the file, metadata, entries, data_start).
    """
    if size < 8:
        raise SafetensorsError(f"{where}: file is {size} bytes, shorter than the 8-byte header length field")
    head = f.read(8)
    if len(head) != 8:
        raise SafetensorsError(f"{where}: file ended after {len(head)} bytes, in the header length field")
    n = int.from_bytes(head, "little")
    _check_length(n, size, where)  # before reading: the length field decides how much is read
    raw = f.read(n)
    if len(raw) != n:
        raise SafetensorsError(f"{where}: file ended {len(raw)} bytes into its {n}-byte header (truncated while read?)")
    metadata, entries, data_start = _validate_header(raw, size, where)
    return head + raw, metadata, entries, data_start


def _read_parts(path: str | os.PathLike, *, bf16: str = "error"):
    """Read a file in order — length, header, data — and return (tensors, metadata, header prefix).

    The header prefix is the file's first 8 + N bytes exactly as stored
    (for checksums over them).  Memory is bounded by the file: the header
    by MAX_HEADER_SIZE, the data by the size the checked header describes,
    which must equal what the file holds.
    """
    if bf16 not in ("error", "float32"):
        raise ValueError(f"bf16 must be 'error' or 'float32', got {bf16!r}")
    where = os.fspath(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        prefix, metadata, entries, data_start = _read_header(f, size, where)
        # A bytearray gives writable frombuffer views without a second copy.
        data = bytearray(size - data_start)
        view, got = memoryview(data), 0
        while got < len(data):
            k = f.readinto(view[got:])
            if not k:
                raise SafetensorsError(
                    f"{where}: file ended {got} bytes into its {len(data)}-byte data section (truncated while read?)"
                )
            got += k
    return _decode(data, metadata, entries, 0, where, bf16), metadata, prefix


def read_file(path: str | os.PathLike, *, bf16: str = "error") -> tuple[dict[str, np.ndarray], dict[str, str] | None]:
    """Load a safetensors file; return ``(tensors, metadata)``.

    The arrays are writable, native-byte-order NumPy arrays.  ``metadata`` is
    the ``__metadata__`` map, or None when the file has none.  Any structural
    problem raises :class:`SafetensorsError` (a ``ValueError``) naming the
    file and what is wrong with it.  The header is read and checked before
    any tensor data (its length is capped at ``MAX_HEADER_SIZE``), so a
    corrupt length or header costs no more than the header itself.
    """
    tensors, metadata, _ = _read_parts(path, bf16=bf16)
    return tensors, metadata


def load_file(path: str | os.PathLike, *, bf16: str = "error") -> dict[str, np.ndarray]:
    """Load every tensor of a safetensors file as a dict name -> ndarray."""
    return read_file(path, bf16=bf16)[0]


def load_metadata(path: str | os.PathLike) -> dict[str, str] | None:
    """Return the ``__metadata__`` map of a safetensors file (None if absent).

    Only the header is read, but it is validated against the file size in
    full, so a truncated file is reported here too.
    """
    where = os.fspath(path)
    with open(path, "rb") as f:
        _, metadata, _, _ = _read_header(f, os.fstat(f.fileno()).st_size, where)
    return metadata
