"""Reader and writer for the IDX format used by MNIST and Fashion-MNIST.

An IDX file is::

    bytes 0-1   0x00 0x00
    byte  2     element type code (see ``DTYPE_CODES``)
    byte  3     number of dimensions, d
    4*d bytes   the dimensions, unsigned 32-bit big-endian
    rest        the elements, big-endian, C order

Files are often distributed gzip-compressed.  The reader decides by the
gzip magic bytes (1f 8b), not by the name: some browsers and proxies
decompress a download transparently but keep the ``.gz`` suffix, and a raw
file renamed to ``.gz`` should still load.

Every structural problem (truncation, bad magic, unknown type code, stray
bytes, broken gzip stream) is reported as :class:`IDXError`, a
``ValueError`` whose message starts with the file name.
"""
from __future__ import annotations

import gzip
import math
import os
import zlib

import numpy as np

from tinygrad_cv.io import atomic_output

__all__ = ["IDXError", "DTYPE_CODES", "read_idx", "write_idx"]

# IDX type code -> big-endian NumPy dtype.
DTYPE_CODES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


class IDXError(ValueError):
    """An IDX file that is truncated, corrupt, or not IDX at all."""


def _describe(payload_kind: np.dtype, ndim: int) -> str:
    # "pixel data" reads naturally for the image files, "data" elsewhere.
    if payload_kind == np.uint8 and ndim >= 3:
        return "pixel data"
    return "data"


def _decompress(raw: bytes, name: str) -> bytes:
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise IDXError(
            f"{name}: gzip stream ends early ({len(raw)} compressed bytes; file truncated?)"
        ) from None
    except (OSError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise IDXError(f"{name}: corrupt gzip data ({e})") from None


def parse_idx(data: bytes | bytearray | memoryview, name: str = "<bytes>") -> np.ndarray:
    """Decode an uncompressed IDX byte string; ``name`` is used in error messages."""
    size = len(data)
    if size < 4:
        raise IDXError(f"{name}: truncated header: {size} bytes, an IDX header needs at least 4")
    b0, b1, code, ndim = bytes(data[:4])
    if b0 != 0 or b1 != 0:
        raise IDXError(
            f"{name}: bad magic number 0x{bytes(data[:4]).hex()} (an IDX file starts with two zero bytes; "
            "not an IDX file, or a compressed file that was not recognised?)"
        )
    if code not in DTYPE_CODES:
        known = ", ".join(f"0x{c:02X}" for c in DTYPE_CODES)
        raise IDXError(f"{name}: unknown element type code 0x{code:02X} in the magic number (known: {known})")
    header_len = 4 + 4 * ndim
    if size < header_len:
        raise IDXError(
            f"{name}: truncated header: {ndim} dimensions need {header_len} header bytes, file has {size}"
        )
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = DTYPE_CODES[code]
    expected = math.prod(dims) * dtype.itemsize
    found = size - header_len
    if found != expected:
        what = _describe(dtype, ndim)
        shape = "x".join(map(str, dims)) or "scalar"
        if found < expected:
            raise IDXError(
                f"{name}: expected {expected} bytes of {what} after the header (shape {shape}, "
                f"{dtype.name}), found {found} (file truncated?)"
            )
        raise IDXError(
            f"{name}: expected {expected} bytes of {what} after the header (shape {shape}, "
            f"{dtype.name}), found {found}: {found - expected} unexpected trailing bytes"
        )
    arr = np.frombuffer(data, dtype=dtype, count=math.prod(dims), offset=header_len).reshape(dims)
    # A fresh array in native byte order: writable, and independent of the
    # (possibly large) decompressed byte string.
    return arr.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, raw or gzip-compressed, into a NumPy array.

    Returns a writable array in native byte order with the file's shape and
    element type (uint8 for the MNIST images and labels).  Raises
    :class:`IDXError` (a ``ValueError``) naming the file on any corruption,
    and ``OSError`` if the file cannot be opened.
    """
    name = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == _GZIP_MAGIC:
        raw = _decompress(raw, name)
    return parse_idx(raw, name)


def _code_for(dtype: np.dtype) -> int:
    dtype = np.dtype(dtype)
    for code, ref in DTYPE_CODES.items():
        if dtype.kind == ref.kind and dtype.itemsize == ref.itemsize:
            return code
    supported = ", ".join(dt.name for dt in DTYPE_CODES.values())
    raise ValueError(f"dtype {dtype} cannot be stored in IDX (supported: {supported})")


def encode_idx(array) -> bytes:
    """Return the uncompressed IDX encoding of ``array``."""
    arr = np.asarray(array)
    code = _code_for(arr.dtype)
    if arr.ndim > 255:
        raise ValueError(f"IDX stores at most 255 dimensions, array has {arr.ndim}")
    if any(d > 0xFFFFFFFF for d in arr.shape):
        raise ValueError(f"IDX dimensions are 32-bit; shape {arr.shape} does not fit")
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    body = np.asarray(arr, dtype=DTYPE_CODES[code], order="C").tobytes()
    return header + body


def write_idx(path: str | os.PathLike, array, *, compresslevel: int = 6) -> None:
    """Write ``array`` as IDX; gzip-compressed when ``path`` ends in ``.gz``.

    The file is written atomically (temporary file in the same directory,
    then ``os.replace``).  The gzip header carries no timestamp, so equal
    arrays give byte-identical files.
    """
    data = encode_idx(array)
    if os.fspath(path).endswith(".gz"):
        data = gzip.compress(data, compresslevel=compresslevel, mtime=0)
    with atomic_output(path) as f:
        f.write(data)
