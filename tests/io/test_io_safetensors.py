import json
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_cv.io.safetensors as st_mod
from tinygrad_cv.io import SafetensorsError, load, load_file, load_metadata, read_file, save, save_file

DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8, "BOOL": np.bool_,
}


def sample(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, n).astype(bool).reshape(shape)
    # Random bytes cover every bit pattern: NaNs, infinities, negative zero.
    raw = rng.integers(0, 256, n * dtype.itemsize, dtype=np.uint8)
    return raw.view(dtype).reshape(shape)


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("name", sorted(DTYPES))
@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (7,), (2, 3, 4)])
def test_round_trip_bit_exact(tmp_path, name, shape):
    arr = sample(DTYPES[name], shape)
    path = tmp_path / "t.safetensors"
    save_file({"x": arr}, path)
    header = json.loads((path.read_bytes()[8:]).split(b"}}", 1)[0] + b"}}")
    assert header["x"]["dtype"] == name and header["x"]["shape"] == list(shape)
    out = load_file(path)["x"]
    assert same_bits(out, arr)
    assert out.flags.writeable


def test_many_tensors_metadata_and_alignment(tmp_path):
    tensors = {f"t{i}_{n}": sample(dt, (i % 3 + 1, 5), seed=i) for i, (n, dt) in enumerate(DTYPES.items())}
    tensors["scalar"] = np.array(2.5)
    tensors["empty"] = np.zeros((0, 3), np.float32)
    meta = {"format": "np", "epoch": "3", "note": "ünïcode\n\"quoted\""}
    path = tmp_path / "m.safetensors"
    save_file(tensors, path, metadata=meta)
    loaded, got_meta = read_file(path)
    assert got_meta == meta == load_metadata(path)
    assert sorted(loaded) == sorted(tensors)
    for k, v in tensors.items():
        assert same_bits(loaded[k], v), k
        if loaded[k].size:
            assert loaded[k].flags.aligned
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    assert n % 8 == 0 and raw[8 + n - 1:8 + n] in (b" ", b"}")


def test_no_metadata(tmp_path):
    save_file({"a": np.zeros(2)}, tmp_path / "a.safetensors")
    assert load_metadata(tmp_path / "a.safetensors") is None
    assert read_file(tmp_path / "a.safetensors")[1] is None


def test_non_contiguous_and_big_endian_inputs(tmp_path):
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    tensors = {
        "transposed": base.T,
        "strided": base[::2, 1::3],
        "big_endian": np.arange(5, dtype=">i4"),
        "fortran": np.asfortranarray(base),
    }
    save_file(tensors, tmp_path / "n.safetensors")
    out = load_file(tmp_path / "n.safetensors")
    for k, v in tensors.items():
        np.testing.assert_array_equal(out[k], v)
        assert out[k].dtype.isnative and out[k].flags.c_contiguous


@given(
    hnp.arrays(
        st.sampled_from(list(DTYPES.values())),
        hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
    )
)
def test_round_trip_property(arr):
    assert same_bits(load(save({"w": arr, "b": arr[..., :1] if arr.ndim else arr}))["w"], arr)


def test_layout_matches_reference_rules():
    data = save({"b": np.zeros(1, np.uint8), "a": np.zeros(1, np.float64), "c": np.zeros(1, np.float64)})
    n = struct.unpack("<Q", data[:8])[0]
    header = data[8:8 + n]
    # Largest dtypes first, then by name; compact JSON; space padding.
    assert header.rstrip(b" ") == (
        b'{"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},'
        b'"c":{"dtype":"F64","shape":[1],"data_offsets":[8,16]},'
        b'"b":{"dtype":"U8","shape":[1],"data_offsets":[16,17]}}'
    )
    assert n % 8 == 0 and len(data) == 8 + n + 17
    assert save({}) == b"\x08" + bytes(7) + b"{}      "


def test_save_rejects_bad_input(tmp_path):
    with pytest.raises(SafetensorsError, match="complex128"):
        save({"c": np.zeros(2, np.complex128)})
    with pytest.raises(SafetensorsError, match="reserved"):
        save({"__metadata__": np.zeros(1)})
    with pytest.raises(TypeError):
        save({1: np.zeros(1)})
    with pytest.raises(TypeError):
        save({"a": np.zeros(1)}, metadata={"k": 1})
    with pytest.raises(SafetensorsError):
        save({"o": np.array([object()])})


# --------------------------------------------------------------------------
# corruption: every case is refused with a message naming the problem
# --------------------------------------------------------------------------

def build(header_obj, data: bytes = b"", pad=True, raw_header: bytes | None = None) -> bytes:
    text = raw_header if raw_header is not None else json.dumps(header_obj).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def refused(tmp_path, blob: bytes, *words):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(blob)
    with pytest.raises(ValueError) as info:
        load_file(path)
    msg = str(info.value)
    assert isinstance(info.value, SafetensorsError)
    assert str(path) in msg
    for w in words:
        assert w in msg, msg
    return msg


def entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


def test_too_short(tmp_path):
    refused(tmp_path, b"\x01\x02\x03", "shorter than the 8-byte")


def test_header_longer_than_file(tmp_path):
    refused(tmp_path, struct.pack("<Q", 1000) + b"{}", "header length 1000 is larger")


def test_header_length_absurd(tmp_path):
    refused(tmp_path, struct.pack("<Q", 2**62) + b"{}", "exceeds")


def test_header_not_json(tmp_path):
    refused(tmp_path, build(None, raw_header=b"{not json"), "not valid UTF-8 JSON")
    refused(tmp_path, build(None, raw_header=b'{"a\xff":1}'), "not valid UTF-8 JSON")


def test_header_not_object(tmp_path):
    refused(tmp_path, build([1, 2]), "must be a JSON object")


def test_duplicate_keys(tmp_path):
    raw = b'{"a":' + json.dumps(entry()).encode() + b',"a":' + json.dumps(entry()).encode() + b"}"
    refused(tmp_path, build(None, bytes(8), raw_header=raw), "duplicate key 'a'")


def test_unknown_dtype(tmp_path):
    refused(tmp_path, build({"a": entry(dtype="F17")}, bytes(8)), "unknown dtype 'F17'")
    refused(tmp_path, build({"a": entry(dtype="F8_E4M3")}, bytes(8)), "not supported here")


def test_shape_offset_mismatch(tmp_path):
    refused(tmp_path, build({"a": entry(shape=(3,))}, bytes(8)), "needs 12 bytes", "span 8")


def test_invalid_shape_and_offsets(tmp_path):
    refused(tmp_path, build({"a": entry(shape=(-2,))}, bytes(8)), "invalid shape")
    refused(tmp_path, build({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0]}}, bytes(8)), "data_offsets")
    refused(tmp_path, build({"a": {"dtype": "F32", "shape": [2]}}, bytes(8)), "lacks data_offsets")
    refused(tmp_path, build({"a": entry(offsets=(8, 0))}, bytes(8)), "end before begin")


def test_overlapping_offsets(tmp_path):
    header = {"a": entry(offsets=(0, 8)), "b": entry(offsets=(4, 12))}
    refused(tmp_path, build(header, bytes(12)), "overlaps")


def test_gap_between_tensors(tmp_path):
    header = {"a": entry(offsets=(0, 8)), "b": entry(offsets=(12, 20))}
    refused(tmp_path, build(header, bytes(20)), "gap")


def test_out_of_range_offsets(tmp_path):
    refused(tmp_path, build({"a": entry(shape=(4,), offsets=(0, 16))}, bytes(8)), "past the end")


def test_trailing_garbage(tmp_path):
    blob = save({"a": np.zeros(2, np.float32)}) + b"junk"
    refused(tmp_path, blob, "4 trailing bytes")


def test_truncated_data(tmp_path):
    blob = save({"a": np.zeros(100, np.float32)})
    refused(tmp_path, blob[:-10], "past the end")


def test_bad_metadata_and_entries(tmp_path):
    refused(tmp_path, build({"__metadata__": {"k": 3}}), "__metadata__")
    refused(tmp_path, build({"a": [1, 2]}), "not an object")


def test_invalid_bool_bytes(tmp_path):
    refused(tmp_path, build({"b": entry("BOOL", (2,), (0, 2))}, b"\x00\x07"), "BOOL")


def test_metadata_errors_name_the_file(tmp_path):
    path = tmp_path / "short.safetensors"
    path.write_bytes(save({"a": np.zeros(4)})[:-1])
    with pytest.raises(SafetensorsError, match="past the end"):
        load_metadata(path)


def test_bf16(tmp_path):
    values = np.array([1.0, -2.5, 3.140625, np.inf], np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype("<u2")
    path = tmp_path / "bf.safetensors"
    path.write_bytes(build({"w": entry("BF16", (4,), (0, 8))}, bf16.tobytes()))
    with pytest.raises(SafetensorsError, match="bf16='float32'"):
        load_file(path)
    out = load_file(path, bf16="float32")["w"]
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, values)


# --------------------------------------------------------------------------
# atomic writes
# --------------------------------------------------------------------------

def test_failed_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.safetensors"
    save_file({"w": np.arange(4.0)}, path, metadata={"v": "1"})
    before = path.read_bytes()

    calls = {"n": 0}
    real = st_mod._tensor_bytes

    def failing(arr):
        calls["n"] += 1
        if calls["n"] == 2:  # the first tensor is already on disk
            raise OSError("No space left on device")
        return real(arr)

    monkeypatch.setattr(st_mod, "_tensor_bytes", failing)
    with pytest.raises(OSError, match="No space"):
        save_file({"a": np.zeros(1000), "b": np.ones(1000)}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.safetensors"]  # temp file cleaned up
    monkeypatch.undo()
    assert load_metadata(path) == {"v": "1"}


def test_write_fsyncs_before_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = st_mod.os.fsync, st_mod.os.replace
    monkeypatch.setattr(st_mod.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(st_mod.os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    save_file({"a": np.zeros(3)}, tmp_path / "x.safetensors")
    assert events[:2] == ["fsync", "replace"]


def test_new_file_gets_normal_permissions(tmp_path):
    import os

    path = tmp_path / "p.safetensors"
    save_file({"a": np.zeros(1)}, path)
    umask = os.umask(0)
    os.umask(umask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~umask)


# --------------------------------------------------------------------------
# byte compatibility with the reference package, when it is installed
# --------------------------------------------------------------------------

def compat_tensors():
    tensors = {f"{n.lower()}_t": sample(dt, (3, 2), seed=i) for i, (n, dt) in enumerate(DTYPES.items())}
    tensors["scalar"] = np.array(1.5, np.float32)
    tensors["empty"] = np.zeros((0, 2), np.int32)
    tensors["z_same_dtype"] = sample(np.float32, (5,), seed=99)
    return tensors


@pytest.mark.parametrize("metadata", [None, {"framework": "numpy"}])
def test_byte_compatible_with_reference(tmp_path, metadata):
    ref = pytest.importorskip("safetensors.numpy")
    tensors = compat_tensors()
    # (Contiguous inputs only: the reference's NumPy binding copies raw memory
    # and mis-saves strided arrays.)
    ours = save(tensors, metadata=metadata)
    assert ours == ref.save(tensors, metadata=metadata)

    ref.save_file(tensors, str(tmp_path / "ref.safetensors"), metadata=metadata)
    loaded, meta = read_file(tmp_path / "ref.safetensors")
    assert meta == metadata
    for k, v in tensors.items():
        assert same_bits(loaded[k], v)

    save_file(tensors, tmp_path / "ours.safetensors", metadata=metadata)
    back = ref.load_file(str(tmp_path / "ours.safetensors"))
    for k, v in tensors.items():
        assert same_bits(back[k], v)
