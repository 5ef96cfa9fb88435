import gzip
import os
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinygrad_cv.data.idx import IDXError, encode_idx, read_idx, write_idx

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


def header(code, dims):
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip_every_dtype(tmp_path, dtype, suffix):
    arr = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
    path = tmp_path / f"a-idx3{suffix}"
    write_idx(path, arr)
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == (suffix == ".gz")
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    assert out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)
    assert out.flags.writeable


@given(hnp.arrays(st.sampled_from(DTYPES), hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5)))
def test_round_trip_property(tmp_path_factory, arr):
    path = tmp_path_factory.mktemp("idx") / "x.gz"
    write_idx(path, arr)
    out = read_idx(path)
    assert out.dtype == arr.dtype and out.shape == arr.shape
    # Bit-exact, NaNs included.
    assert out.tobytes() == arr.astype(arr.dtype.newbyteorder("=")).tobytes()


def test_big_endian_on_disk(tmp_path):
    write_idx(tmp_path / "i", np.array([1, 258], dtype=np.int32))
    assert (tmp_path / "i").read_bytes() == header(0x0C, [2]) + b"\x00\x00\x00\x01\x00\x00\x01\x02"


def test_gzip_detected_by_magic_not_suffix(tmp_path):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    # Compressed data under a plain name...
    (tmp_path / "compressed").write_bytes(gzip.compress(encode_idx(arr)))
    np.testing.assert_array_equal(read_idx(tmp_path / "compressed"), arr)
    # ...and raw data under a .gz name (what a transparently-decompressing
    # download leaves behind).
    (tmp_path / "raw.gz").write_bytes(encode_idx(arr))
    np.testing.assert_array_equal(read_idx(tmp_path / "raw.gz"), arr)


def test_mnist_shaped_file(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    raw = gzip.decompress((tmp_path / "train-images-idx3-ubyte.gz").read_bytes())
    assert raw[:16] == struct.pack(">IIII", 2051, 7, 28, 28)


def err(path) -> str:
    with pytest.raises(ValueError) as info:
        read_idx(path)
    assert isinstance(info.value, IDXError)
    msg = str(info.value)
    assert str(path) in msg  # names the file
    return msg


def test_truncated_payload(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    data = header(0x08, [10000, 28, 28]) + bytes(1234)
    path.write_bytes(gzip.compress(data))
    msg = err(path)
    assert "expected 7840000 bytes of pixel data" in msg and "found 1234" in msg and "truncated" in msg


def test_trailing_bytes(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(header(0x08, [3]) + bytes(5))
    assert "trailing" in err(path)


@pytest.mark.parametrize("data", [b"", b"\x00\x00", header(0x08, [5, 28, 28])[:9]])
def test_truncated_header(tmp_path, data):
    path = tmp_path / "h"
    path.write_bytes(data)
    assert "truncated header" in err(path)


def test_wrong_magic(tmp_path):
    path = tmp_path / "m"
    path.write_bytes(b"PK\x03\x04" + bytes(20))
    assert "bad magic" in err(path)


def test_wrong_dtype_code(tmp_path):
    path = tmp_path / "d"
    path.write_bytes(bytes([0, 0, 0x0A, 1]) + struct.pack(">I", 1) + bytes(1))
    assert "unknown element type code 0x0A" in err(path)


def test_truncated_gzip(tmp_path):
    path = tmp_path / "t.gz"
    path.write_bytes(gzip.compress(header(0x08, [100]) + bytes(range(100)))[:-12])
    msg = err(path)
    assert "gzip" in msg and "truncated" in msg


def test_corrupt_gzip(tmp_path):
    blob = bytearray(gzip.compress(header(0x08, [1000]) + os.urandom(1000)))
    blob[30] ^= 0xFF
    blob[31] ^= 0xFF
    path = tmp_path / "c.gz"
    path.write_bytes(bytes(blob))
    assert "gzip" in err(path)


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "keep.gz"
    write_idx(path, np.zeros(3, np.uint8))
    before = path.read_bytes()

    import tinygrad_cv.io.safetensors as st_mod

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr(st_mod.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_idx(path, np.ones(5, np.uint8))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.gz"]


def test_write_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(ValueError, match="uint16"):
        write_idx(tmp_path / "x", np.zeros(2, np.uint16))
    assert not (tmp_path / "x").exists()
