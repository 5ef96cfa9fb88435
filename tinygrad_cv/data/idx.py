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
bytes, broken gzip stream, impossible dimensions) is reported as
:class:`IDXError`, a ``ValueError`` whose message starts with the file name.

Reading is bounded by the header, not by the file: the header is read
first, the exact payload size follows from it, and no more than that (plus
a small probe for trailing bytes) is ever decompressed or allocated.  A
header that claims more than ``MAX_PAYLOAD_BYTES`` (1 GiB; ``max_bytes=``
overrides it), more than the file could hold, or dimensions that cannot form
an array is refused before anything is allocated.  So a small gzip "bomb"
costs memory in proportion to the array its header declares, never to what
it would decompress to.
"""
from __future__ import annotations

import gzip
import io
import math
import os
import stat
import zlib

import numpy as np

from tinygrad_cv.io import atomic_output

__all__ = ["IDXError", "DTYPE_CODES", "MAX_PAYLOAD_BYTES", "read_idx", "write_idx"]

# IDX type code -> big-endian NumPy dtype.
DTYPE_CODES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# Default limit on the payload a header may claim.  The MNIST family is at
# most 47 MB per file and EMNIST's largest about 550 MB; anything above this
# is far more likely a corrupt or hostile header than data.
MAX_PAYLOAD_BYTES = 1 << 30

# Every NumPy version supports 32 dimensions (NumPy 2 allows 64); IDX's
# one-byte count would allow 255.
MAX_NDIM = 32

# Deflate cannot expand by more than 1032:1 (at best a 258-byte match costs
# two bits), so a gzip file of C bytes never decompresses to more than
# 1032 * C bytes.  A header claiming more describes a file that is truncated
# or lying, and is refused before the payload is allocated.
_DEFLATE_MAX_RATIO = 1032

_GZIP_MAGIC = b"\x1f\x8b"
_READ_CHUNK = 1 << 20
# How far past the payload the reader looks to report trailing bytes; it
# stops there, so a stream that goes on forever costs only this much.
_TRAILING_PROBE = 1 << 16
_INTP_MAX = np.iinfo(np.intp).max


class IDXError(ValueError):
    """An IDX file that is truncated, corrupt, or not IDX at all."""


def _describe(payload_kind: np.dtype, ndim: int) -> str:
    # "pixel data" reads naturally for the image files, "data" elsewhere.
    if payload_kind == np.uint8 and ndim >= 3:
        return "pixel data"
    return "data"


def _fmt_shape(dims: tuple[int, ...]) -> str:
    return "x".join(map(str, dims)) or "scalar"


def _read_upto(stream, n: int) -> bytes:
    """Read ``n`` bytes, fewer only at end of stream (a read may return short)."""
    parts, got = [], 0
    while got < n:
        part = stream.read(n - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


class _Source:
    """Where the bytes come from, for the plausibility checks and messages.

    ``raw_size``: exact size of the uncompressed IDX data, when known (a
    regular raw file, a byte string).  ``compressed_size``: size of the gzip
    file, when the data is compressed and the size is known.
    """

    def __init__(self, name: str, raw_size: int | None = None, compressed_size: int | None = None):
        self.name, self.raw_size, self.compressed_size = name, raw_size, compressed_size


def _read_header(stream, name: str, max_bytes: int):
    """Parse and validate the header; return ``(dtype, dims, header_len, payload_bytes)``."""
    head = _read_upto(stream, 4)
    if len(head) < 4:
        raise IDXError(f"{name}: truncated header: {len(head)} bytes, an IDX header needs at least 4")
    b0, b1, code, ndim = head
    if b0 != 0 or b1 != 0:
        raise IDXError(
            f"{name}: bad magic number 0x{head.hex()} (an IDX file starts with two zero bytes; "
            "not an IDX file, or a compressed file that was not recognised?)"
        )
    if code not in DTYPE_CODES:
        known = ", ".join(f"0x{c:02X}" for c in DTYPE_CODES)
        raise IDXError(f"{name}: unknown element type code 0x{code:02X} in the magic number (known: {known})")
    header_len = 4 + 4 * ndim
    raw_dims = _read_upto(stream, 4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise IDXError(
            f"{name}: truncated header: {ndim} dimensions need {header_len} header bytes, "
            f"file has {4 + len(raw_dims)}"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw_dims, dtype=">u4"))
    dtype = DTYPE_CODES[code]
    shape = _fmt_shape(dims)
    if ndim > MAX_NDIM:
        raise IDXError(
            f"{name}: header declares {ndim} dimensions (shape {shape}); at most {MAX_NDIM} are supported"
        )
    # NumPy refuses a shape whose non-zero dimensions multiply past the
    # address space even when another dimension is 0, so test that first.
    if math.prod(d for d in dims if d) * dtype.itemsize > _INTP_MAX:
        raise IDXError(
            f"{name}: dimensions {shape} ({dtype.name}) do not form a valid array: "
            f"they multiply to more than this machine can address (corrupt header?)"
        )
    payload = math.prod(dims) * dtype.itemsize
    if payload > max_bytes:
        raise IDXError(
            f"{name}: header claims shape {shape} ({dtype.name}), {payload} bytes of data, more than "
            f"the limit of {max_bytes} bytes (corrupt header? pass max_bytes= to read_idx to raise the limit)"
        )
    return dtype, dims, header_len, payload


def _length_error(name, expected, what, dims, dtype, found: int | str, truncated: bool) -> IDXError:
    shape = _fmt_shape(dims)
    lead = f"{name}: expected {expected} bytes of {what} after the header (shape {shape}, {dtype.name}), "
    if truncated:
        return IDXError(lead + f"found {found} (file truncated?)")
    if isinstance(found, str):
        return IDXError(lead + f"found {found}: unexpected trailing bytes")
    return IDXError(lead + f"found {found}: {found - expected} unexpected trailing bytes")


def _read_stream(stream, src: _Source, max_bytes: int) -> np.ndarray:
    """Decode IDX data from a binary stream, reading no more than the header allows."""
    name = src.name
    if max_bytes < 0:
        raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
    dtype, dims, header_len, expected = _read_header(stream, name, max_bytes)
    what = _describe(dtype, len(dims))
    if src.raw_size is not None:
        # Exact size known: report truncation or trailing bytes without reading.
        found = src.raw_size - header_len
        if found != expected:
            raise _length_error(name, expected, what, dims, dtype, found, truncated=found < expected)
    elif src.compressed_size is not None and header_len + expected > src.compressed_size * _DEFLATE_MAX_RATIO:
        # The file cannot hold what the header claims, so do not allocate
        # it: count what is there through a small reusable buffer to report
        # the truncation exactly.  The count ends at the end of the stream,
        # which the ratio bound puts below ``expected``.
        scratch = memoryview(bytearray(_READ_CHUNK))
        found = 0
        while found < expected and (n := stream.readinto(scratch)):
            found += n
        raise _length_error(name, expected, what, dims, dtype, found, truncated=True)

    count = math.prod(dims)
    arr = np.empty(count, dtype=dtype)
    buf = memoryview(arr.view(np.uint8))
    got = 0
    while got < expected:
        n = stream.readinto(buf[got : got + _READ_CHUNK])
        if not n:
            break
        got += n
    if got < expected:
        raise _length_error(name, expected, what, dims, dtype, got, truncated=True)
    if src.raw_size is None:
        # Unknown length (compressed, or not a regular file): look a bounded
        # distance past the payload instead of reading to the end.
        extra = len(_read_upto(stream, _TRAILING_PROBE))
        if extra:
            seen: int | str = expected + extra
            if _read_upto(stream, 1):
                seen = f"more than {expected + extra} (stopped reading there)"
            raise _length_error(name, expected, what, dims, dtype, seen, truncated=False)

    native = dtype.newbyteorder("=")
    if native != dtype:
        # In place, so the payload is held once, not twice.
        arr = arr.byteswap(inplace=True).view(native)
    return arr.reshape(dims)


def parse_idx(
    data: bytes | bytearray | memoryview, name: str = "<bytes>", *, max_bytes: int = MAX_PAYLOAD_BYTES
) -> np.ndarray:
    """Decode an uncompressed IDX byte string; ``name`` is used in error messages.

    Returns a fresh, writable array in native byte order.  Raises
    :class:`IDXError` as :func:`read_idx` does.
    """
    data = memoryview(data).cast("B")
    return _read_stream(io.BytesIO(data), _Source(name, raw_size=len(data)), max_bytes)


def read_idx(path: str | os.PathLike, *, max_bytes: int = MAX_PAYLOAD_BYTES) -> np.ndarray:
    """Read an IDX file, raw or gzip-compressed, into a NumPy array.

    Returns a writable array in native byte order with the file's shape and
    element type (uint8 for the MNIST images and labels).  Raises
    :class:`IDXError` (a ``ValueError``) naming the file on any corruption,
    and ``OSError`` if the file cannot be opened.

    At most the header, the payload it declares and a 64 KiB probe for
    trailing bytes are read or decompressed, so memory use is bounded by the
    declared array size.  A header declaring more than ``max_bytes`` of data
    (default ``MAX_PAYLOAD_BYTES``, 1 GiB), more than the file can hold, or
    dimensions no array can have is refused before anything is allocated.
    """
    name = os.fspath(path)
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        size = st.st_size if stat.S_ISREG(st.st_mode) else None
        if f.peek(2)[:2] != _GZIP_MAGIC:
            return _read_stream(f, _Source(name, raw_size=size), max_bytes)
        src = _Source(name, compressed_size=size)
        try:
            with gzip.GzipFile(fileobj=f, mode="rb") as g:
                return _read_stream(g, src, max_bytes)
        except EOFError:
            where = f"{size} compressed bytes; " if size is not None else ""
            raise IDXError(f"{name}: gzip stream ends early ({where}file truncated?)") from None
        except (gzip.BadGzipFile, zlib.error) as e:
            # Only the decoder's errors: an I/O error stays an OSError.
            raise IDXError(f"{name}: corrupt gzip data ({e})") from None


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
