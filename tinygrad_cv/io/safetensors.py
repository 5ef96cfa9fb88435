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
numbers, so loading an untrusted file cannot run code.

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
import secrets
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
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    while True:
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
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


def _parse_header(buf: bytes | bytearray | memoryview, where: str):
    """Check the framing and the header; return (metadata, entries, data_start).

    ``entries`` is a list of (name, dtype, shape, begin, end) in file order.
    """
    size = len(buf)
    if size < 8:
        raise SafetensorsError(f"{where}: file is {size} bytes, shorter than the 8-byte header length field")
    n = int.from_bytes(bytes(buf[:8]), "little")
    if n > MAX_HEADER_SIZE:
        raise SafetensorsError(f"{where}: header length {n} exceeds the {MAX_HEADER_SIZE}-byte limit (corrupt file?)")
    if 8 + n > size:
        raise SafetensorsError(
            f"{where}: header length {n} is larger than the {size - 8} bytes that follow it (file truncated?)"
        )
    try:
        text = bytes(buf[8:8 + n]).decode("utf-8")
        header = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except SafetensorsError as e:
        raise SafetensorsError(f"{where}: {e}") from None
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
        if dtype not in _ITEMSIZE:
            hint = " (a valid safetensors dtype, but not supported here)" if dtype in _KNOWN_UNSUPPORTED else ""
            raise SafetensorsError(f"{where}: tensor {name!r} has unknown dtype {dtype!r}{hint}")
        if not isinstance(shape, list) or not all(_is_uint(d) for d in shape):
            raise SafetensorsError(f"{where}: tensor {name!r} has invalid shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_uint(o) for o in offsets)):
            raise SafetensorsError(f"{where}: tensor {name!r} has invalid data_offsets {offsets!r}")
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
                raise SafetensorsError(
                    f"{where}: tensor {name!r} is BF16, which NumPy has no dtype for; "
                    "pass bf16='float32' to widen it (exactly) to float32"
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


def read_file(path: str | os.PathLike, *, bf16: str = "error") -> tuple[dict[str, np.ndarray], dict[str, str] | None]:
    """Load a safetensors file; return ``(tensors, metadata)``.

    The arrays are writable, native-byte-order NumPy arrays.  ``metadata`` is
    the ``__metadata__`` map, or None when the file has none.  Any structural
    problem raises :class:`SafetensorsError` (a ``ValueError``) naming the
    file and what is wrong with it.
    """
    where = os.fspath(path)
    with open(path, "rb") as f:
        # A bytearray gives writable frombuffer views without a second copy.
        buf = bytearray(os.fstat(f.fileno()).st_size)
        got = f.readinto(buf)
    del buf[got:]
    metadata, entries, start = _parse_header(buf, where)
    return _decode(buf, metadata, entries, start, where, bf16), metadata


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
        size = os.fstat(f.fileno()).st_size
        head = f.read(8)
        if len(head) == 8:
            n = int.from_bytes(head, "little")
            if n <= MAX_HEADER_SIZE:
                head += f.read(n)
    # _parse_header wants the whole buffer only for its length; a zero-copy
    # stand-in that reports the real size avoids reading the tensor data.
    metadata, _, _ = _parse_header(_SizedPrefix(head, size), where)
    return metadata


class _SizedPrefix:
    """The first bytes of a file, reporting the file's full length."""

    def __init__(self, prefix: bytes, size: int):
        self._prefix, self._size = prefix, size

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, item):
        return self._prefix[item]
