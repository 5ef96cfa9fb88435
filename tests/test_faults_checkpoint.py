"""Regression tests for faults a hostile review found in checkpoints and the safetensors reader.

1. the JSON header had no checksum: bit flips changed lr, betas, epoch... silently;
2. ``load_checkpoint`` replaced the weights before finding the optimiser state unusable;
3. ``strict=False`` dropped the missing/unexpected keys;
4. the BF16 refusal named a parameter ``checkpoint.load`` did not have;
5. temporary files of killed saves piled up forever;
6. the reader read the whole file before its header, and malformed headers leaked
   TypeError / RecursionError / NumPy errors without the file's name.
"""
import json
import os
import re
import struct
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as hs

import tinygrad_cv as tg
from tinygrad_cv import checkpoint, nn, optim
from tinygrad_cv.checkpoint import CheckpointError
from tinygrad_cv.io import SafetensorsError, load_file, load_metadata, read_file, save_file
from tinygrad_cv.io import safetensors as st
from tinygrad_cv.nn.module import IncompatibleKeys
from tinygrad_cv.optim import lr_scheduler as S


# --- helpers ----------------------------------------------------------------------------------
def tiny(seed=0, opt_cls=optim.Adam, **opt_kw):
    """A one-layer model, an optimiser that has taken a step, and a scheduler."""
    tg.manual_seed(seed)
    model = nn.Linear(2, 1)
    opt = opt_cls(model.parameters(), **({"lr": 0.01} | opt_kw))
    sched = S.StepLR(opt, step_size=2)
    model(tg.ones(3, 2)).sum().backward()
    opt.step()
    sched.step()
    return model, opt, sched


def snapshot(model=None, opt=None, sched=None):
    """Everything a load could change, as plain comparable values."""
    out = {}
    if model is not None:
        out["model"] = {k: v.data.tobytes() for k, v in model.state_dict().items()}
    if opt is not None:
        sd = opt.state_dict()
        out["groups"] = repr(sd["param_groups"])
        out["state"] = {i: {k: (v.data.tobytes() if isinstance(v, tg.Tensor) else v) for k, v in e.items()}
                        for i, e in sd["state"].items()}
    if sched is not None:
        out["sched"] = repr(sched.state_dict())
    return out


def header_length(raw):
    return struct.unpack("<Q", raw[:8])[0]


def one_line_error(excinfo, *words):
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


@pytest.fixture
def tiny_ckpt(tmp_path):
    path = tmp_path / "tiny.safetensors"
    model, opt, sched = tiny()
    checkpoint.save_checkpoint(path, model=model, optimizer=opt, scheduler=sched, epoch=1, extra={"best": 0.5})
    return path


# --- 1. every bit of the file is covered by a checksum -------------------------------------------------
def flip_and_load(path, raw, pos, bit):
    """Flip one bit of the file and load it: the load must be refused, whatever the bit."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, bytes([raw[pos] ^ (1 << bit)]), pos)
        with pytest.raises(CheckpointError) as e:
            checkpoint.load(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value), (pos, bit, str(e.value))
    except (Exception, pytest.fail.Exception) as err:
        raise AssertionError(f"byte {pos} bit {bit}: {err}") from None
    finally:
        os.pwrite(fd, raw[pos:pos + 1], pos)
        os.close(fd)


def test_header_bit_flips_are_all_refused(tiny_ckpt):
    raw = tiny_ckpt.read_bytes()
    n = header_length(raw)
    # Every byte of the length field and the header, each with two of its bits
    # (all eight positions recur along the header), and every bit of the
    # parts whose silent change would hurt most: the length, the format
    # version, the optimiser's hyper-parameters and the header checksum itself.
    spots = {(pos, (pos * 3 + k) % 8) for pos in range(8 + n) for k in (0, 4)}
    text = raw[:8 + n]
    for needle in (b'"tinygrad_cv.version":"2"', b'\\"lr\\":0.01', b'\\"betas\\"', b'"tinygrad_cv.epoch":"1"',
                   b'"tinygrad_cv.header_crc32":"'):
        at = text.index(needle)
        spots |= {(pos, bit) for pos in range(at, at + len(needle) + 8) for bit in range(8)}
    spots |= {(pos, bit) for pos in range(8) for bit in range(8)}
    for pos, bit in sorted(spots):
        flip_and_load(tiny_ckpt, raw, pos, bit)
    assert checkpoint.load(tiny_ckpt)["epoch"] == 1  # the file was restored after each flip


def test_data_bit_flips_are_all_refused(tiny_ckpt):
    raw = tiny_ckpt.read_bytes()
    start = 8 + header_length(raw)
    for pos in range(start, len(raw)):
        flip_and_load(tiny_ckpt, raw, pos, pos % 8)


@given(pos=hs.integers(0, 10**6), bit=hs.integers(0, 7))
def test_any_bit_flip_is_refused(tmp_path_factory, pos, bit):
    path = tmp_path_factory.getbasetemp() / "flip.safetensors"
    model, opt, sched = tiny()
    checkpoint.save_checkpoint(path, model=model, optimizer=opt, scheduler=sched, epoch=3)
    raw = path.read_bytes()
    flip_and_load(path, raw, pos % len(raw), bit)


def test_edited_hyper_parameter_is_refused(tiny_ckpt):
    """An edit that keeps the JSON valid (lr 0.01 -> 0.09) used to load silently."""
    raw = tiny_ckpt.read_bytes()
    assert raw.count(b'\\"lr\\":0.01') == 1
    tiny_ckpt.write_bytes(raw.replace(b'\\"lr\\":0.01', b'\\"lr\\":0.09'))
    model, opt, sched = tiny(seed=1)
    before = snapshot(model, opt, sched)
    with pytest.raises(CheckpointError) as e:
        checkpoint.load_checkpoint(tiny_ckpt, model=model, optimizer=opt, scheduler=sched)
    one_line_error(e, str(tiny_ckpt), "header", "CRC-32")
    assert snapshot(model, opt, sched) == before


def test_file_without_header_checksum_is_refused(tiny_ckpt):
    raw = tiny_ckpt.read_bytes()
    # rename the checksum's key (same length, header still valid JSON)
    tiny_ckpt.write_bytes(raw.replace(b'"tinygrad_cv.header_crc32"', b'"tinygrad_cv.header_crc3X"'))
    with pytest.raises(CheckpointError) as e:
        checkpoint.load(tiny_ckpt)
    one_line_error(e, "format version 2 requires a header checksum")


def write_v1(path, model):
    """A model file as format version 1 wrote it: tensor CRCs, no header checksum."""
    tensors = {k: v.data for k, v in model.state_dict().items()}
    meta = {
        "tinygrad_cv.format": "state_dict",
        "tinygrad_cv.version": "1",
        "tinygrad_cv.model_keys": json.dumps(list(tensors)),
        "tinygrad_cv.crc32": json.dumps({k: checkpoint._crc(v) for k, v in tensors.items()}),
    }
    st.save_file(tensors, path, metadata=meta)
    return meta


def test_version_1_files_still_load(tmp_path):
    path = tmp_path / "v1.safetensors"
    model = tiny()[0]
    meta = write_v1(path, model)
    fresh = nn.Linear(2, 1)
    checkpoint.load_checkpoint(path, model=fresh)
    assert fresh.weight.data.tobytes() == model.weight.data.tobytes()
    # their tensors are still checked
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x10
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="CRC-32"):
        checkpoint.load(path)
    # a version 1 header cannot carry a header checksum (that would take 3 flipped bits from a version 2 file)
    st.save_file({k: v.data for k, v in model.state_dict().items()}, path,
                 metadata=meta | {"tinygrad_cv.header_crc32": "00000000"})
    with pytest.raises(CheckpointError, match="version 1 header with a header checksum"):
        checkpoint.load(path)


def test_unknown_version_is_named(tmp_path):
    path = tmp_path / "v7.safetensors"
    meta = write_v1(path, tiny()[0]) | {"tinygrad_cv.version": "7"}
    st.save_file({k: v.data for k, v in tiny()[0].state_dict().items()}, path, metadata=meta)
    with pytest.raises(CheckpointError) as e:
        checkpoint.load(path)
    one_line_error(e, "format version '7' is not supported", "reads versions 1, 2")


def test_stray_format_key_flip_cannot_pass_as_foreign_file(tiny_ckpt):
    raw = tiny_ckpt.read_bytes()
    tiny_ckpt.write_bytes(raw.replace(b'"tinygrad_cv.format"', b'"tinygrad_cv.formaT"'))
    with pytest.raises(CheckpointError):
        checkpoint.load(tiny_ckpt)


# --- 2. validate everything, then load; refuse another optimiser / scheduler class -------------------
def test_adam_checkpoint_into_sgd_changes_nothing(tiny_ckpt):
    model, opt, _ = tiny(seed=7, opt_cls=optim.SGD, momentum=0.9)
    before = snapshot(model, opt)
    with pytest.raises(CheckpointError) as e:
        checkpoint.load_checkpoint(tiny_ckpt, model=model, optimizer=opt)
    one_line_error(e, str(tiny_ckpt), "Adam", "SGD", "optimizer class mismatch")
    assert snapshot(model, opt) == before


def test_optimizer_state_dict_of_another_kind_changes_nothing(tmp_path):
    """Saved from a bare state_dict, the class is unknown: the missing hyper-parameters give it away."""
    path = tmp_path / "c.safetensors"
    model, adam, _ = tiny()
    checkpoint.save_checkpoint(path, model=model, optimizer=adam.state_dict())
    model2, sgd, _ = tiny(seed=3, opt_cls=optim.SGD, momentum=0.9)
    before = snapshot(model2, sgd)
    with pytest.raises(CheckpointError) as e:
        checkpoint.load_checkpoint(path, model=model2, optimizer=sgd)
    one_line_error(e, "lacks", "'momentum'", "SGD")
    assert snapshot(model2, sgd) == before


@pytest.mark.parametrize("edit, words", [
    (lambda g: g.pop("betas"), ["lacks 'betas'"]),
    (lambda g: g.update(lr=-1.0), ["does not suit Adam", "Invalid learning rate"]),
    (lambda g: g.update(betas=(0.9, 7.0)), ["does not suit Adam", "beta"]),
])
def test_bad_optimizer_group_changes_nothing(tmp_path, edit, words):
    path = tmp_path / "c.safetensors"
    model, opt, sched = tiny()
    state = opt.state_dict()
    state["param_groups"] = [dict(g) for g in state["param_groups"]]
    edit(state["param_groups"][0])
    checkpoint.save_checkpoint(path, model=model, optimizer=state, scheduler=sched)
    model2, opt2, sched2 = tiny(seed=5)
    before = snapshot(model2, opt2, sched2)
    with pytest.raises(CheckpointError) as e:
        checkpoint.load_checkpoint(path, model=model2, optimizer=opt2, scheduler=sched2)
    one_line_error(e, str(path), *words)
    assert snapshot(model2, opt2, sched2) == before


def test_scheduler_class_mismatch_changes_nothing(tiny_ckpt):
    model, opt, _ = tiny(seed=2)
    sched = S.ExponentialLR(opt, gamma=0.5)
    before = snapshot(model, opt, sched)
    with pytest.raises(CheckpointError) as e:
        checkpoint.load_checkpoint(tiny_ckpt, model=model, optimizer=opt, scheduler=sched)
    one_line_error(e, "scheduler class mismatch", "StepLR", "ExponentialLR")
    assert snapshot(model, opt, sched) == before


def test_malformed_optimizer_metadata_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "c.safetensors"
    model, opt, _ = tiny()
    for bad in ({"param_groups": [{"params": ["x"]}], "state": {}, "tensors": {}},
                {"param_groups": [], "state": {"zero": {"step": 1}}, "tensors": {}},
                {"param_groups": [], "state": [], "tensors": {}},
                {"param_groups": [], "state": {}, "tensors": {"0": "exp_avg"}}):
        meta = {"tinygrad_cv.optimizer": json.dumps(bad)}
        checkpoint._write(path, "optimizer", {}, meta)
        with pytest.raises(CheckpointError, match="optimizer metadata is malformed"):
            checkpoint.load(path)


def test_failure_while_loading_rolls_everything_back(tiny_ckpt, monkeypatch):
    model, opt, sched = tiny(seed=9)
    before = snapshot(model, opt, sched)

    def broken(*args, **kwargs):
        raise RuntimeError("device lost")

    monkeypatch.setattr(model, "load_state_dict", broken)
    with pytest.raises(RuntimeError, match="device lost"):
        checkpoint.load_checkpoint(tiny_ckpt, model=model, optimizer=opt, scheduler=sched)
    assert snapshot(model, opt, sched) == before


def test_successful_resume_still_loads_everything(tiny_ckpt):
    ref = tiny()
    model, opt, sched = tiny(seed=4)
    info = checkpoint.load_checkpoint(tiny_ckpt, model=model, optimizer=opt, scheduler=sched)
    assert info["epoch"] == 1 and info["extra"] == {"best": 0.5}
    assert snapshot(model, opt, sched) == snapshot(*ref)


# --- 3. strict=False reports what it did not load ---------------------------------------------------------
def test_incompatible_keys_are_returned(tiny_ckpt):
    class Renamed(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(2, 1)

    info = checkpoint.load_checkpoint(tiny_ckpt, model=Renamed(), strict=False)
    keys = info["incompatible_keys"]
    assert isinstance(keys, IncompatibleKeys)
    assert keys.missing_keys == ["head.weight", "head.bias"]
    assert keys.unexpected_keys == ["weight", "bias"]
    assert checkpoint.load_checkpoint(tiny_ckpt, model=nn.Linear(2, 1))["incompatible_keys"] == ([], [])
    assert checkpoint.load_checkpoint(tiny_ckpt)["incompatible_keys"] is None


# --- 4. the BF16 advice names a parameter of the function called --------------------------------------------
def bf16_file(path):
    values = np.array([[1.0, -2.5]], np.float32)
    bits = (values.view(np.uint32) >> 16).astype("<u2")
    header = json.dumps({"weight": {"dtype": "BF16", "shape": [1, 2], "data_offsets": [0, 4]},
                         "bias": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}).encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(header)) + header + bits.tobytes() + np.float32(0.5).tobytes())
    return values


def test_bf16_advice_names_real_parameters(tmp_path):
    path = tmp_path / "bf16.safetensors"
    values = bf16_file(path)
    with pytest.raises(CheckpointError) as e:
        checkpoint.load(path)
    msg = one_line_error(e, str(path), "'weight' is BF16", "bf16='float32' to checkpoint.load()")
    assert "corrupted" not in msg
    assert np.array_equal(checkpoint.load(path, bf16="float32")["weight"].data, values)

    model = nn.Linear(2, 1)
    with pytest.raises(CheckpointError) as e:
        checkpoint.load_checkpoint(path, model=model)
    one_line_error(e, "bf16='float32' to load_checkpoint()")
    checkpoint.load_checkpoint(path, model=model, bf16="float32")
    assert np.array_equal(model.weight.data, values)
    with pytest.raises(ValueError, match="bf16 must be 'error' or 'float32'"):
        checkpoint.load(path, bf16="bfloat16")


# --- 5. temporary files of killed saves are removed by a later save --------------------------------------------
def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def make_temp(directory, name, age_s):
    path = directory / name
    path.write_bytes(b"partial checkpoint")
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


@pytest.mark.skipif(os.name != "posix", reason="process ids are only probed on POSIX")
def test_stale_temp_files_are_removed_by_the_next_save(tmp_path):
    target = tmp_path / "ckpt.safetensors"
    gone, alive, hexa = dead_pid(), os.getppid(), "0123456789ab"
    stale = [
        make_temp(tmp_path, f".ckpt.safetensors.{gone}-{hexa}.tmp", 120),     # writer dead, idle 2 min
        make_temp(tmp_path, f".ckpt.safetensors.{alive}-{hexa}.tmp", 7200),   # idle 2 h, whoever wrote it
        make_temp(tmp_path, f".ckpt.safetensors.{hexa}.tmp", 7200),           # pre-PID naming, idle 2 h
    ]
    kept = [
        make_temp(tmp_path, f".ckpt.safetensors.{gone}-{hexa[::-1]}.tmp", 5),  # dead writer but touched just now
        make_temp(tmp_path, f".ckpt.safetensors.{alive}-ba9876543210.tmp", 120),  # its writer is running
        make_temp(tmp_path, f".ckpt.safetensors.{'a' * 12}.tmp", 120),         # pre-PID naming, recent
        make_temp(tmp_path, f".other.safetensors.{gone}-{hexa}.tmp", 7200),   # another target's
        make_temp(tmp_path, f".ckpt.safetensors.{gone}-notes.tmp", 7200),      # not our pattern
        make_temp(tmp_path, f"ckpt.safetensors.{gone}-{hexa}.tmp", 7200),      # not hidden: not ours
    ]
    (tmp_path / f".ckpt.safetensors.{gone}-fedcba987654.tmp").mkdir()       # a directory is never removed
    os.utime(tmp_path / f".ckpt.safetensors.{gone}-fedcba987654.tmp", (0, 0))
    checkpoint.save_checkpoint(target, model=tiny()[0], epoch=0)
    assert not [p.name for p in stale if p.exists()]
    assert all(p.exists() for p in kept)
    assert (tmp_path / f".ckpt.safetensors.{gone}-fedcba987654.tmp").is_dir()
    assert checkpoint.load(target)["epoch"] == 0


def test_temp_file_name_carries_the_process_id(tmp_path):
    target = tmp_path / "w.safetensors"
    with st.atomic_output(target) as f:
        f.write(b"x")
        names = os.listdir(tmp_path)
    assert len(names) == 1 and re.fullmatch(rf"\.w\.safetensors\.{os.getpid()}-[0-9a-f]{{12}}\.tmp", names[0])
    assert os.listdir(tmp_path) == ["w.safetensors"]


# --- 6. the reader: header first, bounded, and every malformed header is a SafetensorsError ----------------
def framed(header, data=b"", pad=True):
    """Length field + header (an object to dump as JSON, or raw bytes) + data."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


MALFORMED = {
    "empty file": (b"", "shorter than the 8-byte"),
    "header is a list": (framed([1, 2]), "must be a JSON object"),
    "header is a string": (framed("x"), "must be a JSON object"),
    "header is null": (framed(None), "must be a JSON object"),
    "empty header": (struct.pack("<Q", 0), "not valid UTF-8 JSON"),
    "dtype is a list": (framed({"a": entry(dtype=["F32"])}, bytes(8)), "unknown dtype ['F32']"),
    "dtype is an object": (framed({"a": entry(dtype={"F32": 1})}, bytes(8)), "unknown dtype"),
    "dtype is a number": (framed({"a": entry(dtype=4)}, bytes(8)), "unknown dtype 4"),
    "negative dimension": (framed({"a": entry(shape=(-2,))}, bytes(8)), "invalid shape"),
    "float dimension": (framed({"a": entry(shape=(2.0,))}, bytes(8)), "invalid shape"),
    "bool dimension": (framed({"a": entry(shape=(True, 2))}, bytes(8)), "invalid shape"),
    "string dimension": (framed({"a": entry(shape=("2",))}, bytes(8)), "invalid shape"),
    "shape not a list": (framed({"a": entry() | {"shape": 2}}, bytes(8)), "invalid shape"),
    "huge dimension": (framed({"a": entry(shape=(2**70,), offsets=(0, 8))}, bytes(8)), "too large"),
    "huge dimensions of an empty tensor": (framed({"a": entry(shape=(0, 2**62), offsets=(0, 0))}), "too large"),
    "dimension past int64": (framed({"a": entry(shape=(0, 2**64), offsets=(0, 0))}), "too large"),
    "too many dimensions": (framed({"a": entry(shape=(1,) * 65, offsets=(0, 4))}, bytes(4)), "65 dimensions"),
    "offsets overlap": (framed({"a": entry(offsets=(0, 8)), "b": entry(offsets=(4, 12))}, bytes(12)), "overlaps"),
    "offsets past the data": (framed({"a": entry(shape=(4,), offsets=(0, 16))}, bytes(8)), "past the end"),
    "offsets leave a gap": (framed({"a": entry(offsets=(0, 8)), "b": entry(offsets=(12, 20))}, bytes(20)), "gap"),
    "offsets miss the tail": (framed({"a": entry()}, bytes(12)), "trailing bytes"),
    "offsets reversed": (framed({"a": entry(offsets=(8, 0))}, bytes(8)), "end before begin"),
    "offsets float": (framed({"a": entry(offsets=(0.0, 8.0))}, bytes(8)), "invalid data_offsets"),
    "offsets negative": (framed({"a": entry(offsets=(-8, 0))}, bytes(8)), "invalid data_offsets"),
    "three offsets": (framed({"a": entry(offsets=(0, 4, 8))}, bytes(8)), "invalid data_offsets"),
    "offsets huge": (framed({"a": entry(offsets=(2**80, 2**80 + 8))}, bytes(8)), "gap of 1208925819614629174706176"),
    "nested 100000 deep": (framed(b"[" * 100_000 + b"]" * 100_000), "nested too deeply"),
    "nested inside an entry": (framed(b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":'
                                      + b"{\"k\":" * 50_000 + b"1" + b"}" * 50_000 + b"}}", bytes(8)),
                               "nested too deeply"),
    "header length beyond the file": (struct.pack("<Q", 1000) + b"{}      ", "larger than the 8 bytes"),
    "header length huge": (struct.pack("<Q", 2**64 - 1) + b"{}", "exceeds"),
    "header not UTF-8": (framed(b'{"a\xff":1}'), "not valid UTF-8 JSON"),
    "header with a BOM": (framed(b"\xef\xbb\xbf{}"), "not valid UTF-8 JSON"),
    "duplicate tensor": (framed(b'{"a":' + json.dumps(entry()).encode() + b',"a":'
                                + json.dumps(entry()).encode() + b"}", bytes(8)), "duplicate key 'a'"),
    "duplicate metadata key": (framed(b'{"__metadata__":{"k":"1","k":"2"}}'), "duplicate key 'k'"),
    "metadata not strings": (framed({"__metadata__": {"k": [1]}}), "__metadata__ must be"),
    "metadata a list": (framed({"__metadata__": ["k"]}), "__metadata__ must be"),
    "entry not an object": (framed({"a": [1, 2]}), "not an object"),
    "entry lacks keys": (framed({"a": {"dtype": "F32"}}), "lacks data_offsets, shape"),
    "NaN in shape": (framed(b'{"a":{"dtype":"F32","shape":[NaN],"data_offsets":[0,8]}}', bytes(8)), "invalid shape"),
    "integer with 5000 digits": (framed(b'{"a":{"dtype":"F32","shape":[' + b"9" * 5000
                                        + b'],"data_offsets":[0,8]}}', bytes(8)), "not valid UTF-8 JSON"),
    "long junk in dtype": (framed({"a": entry(dtype="x" * 10_000)}, bytes(8)), "unknown dtype 'xxx"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_file_is_a_safetensors_error_naming_the_file(tmp_path, name):
    blob, words = MALFORMED[name]
    path = tmp_path / "bad.safetensors"
    path.write_bytes(blob)
    for reader in (load_file, read_file, load_metadata):
        with pytest.raises(SafetensorsError) as e:
            reader(path)
        msg = str(e.value)
        assert isinstance(e.value, ValueError)
        assert msg.startswith(f"{path}: ") and words in msg, msg
        assert "\n" not in msg and len(msg) < 400, msg
    with pytest.raises(CheckpointError, match=re.escape(words)):
        checkpoint.load(path)


json_values = hs.recursive(
    hs.none() | hs.booleans() | hs.integers(-(2**70), 2**70) | hs.floats(allow_nan=False) | hs.text(max_size=5)
    | hs.sampled_from(["F32", "BF16", "I64", "BOOL", "dtype", "shape", "data_offsets", "__metadata__"]),
    lambda inner: hs.lists(inner, max_size=4) | hs.dictionaries(
        hs.sampled_from(["a", "dtype", "shape", "data_offsets", "__metadata__"]), inner, max_size=4),
    max_leaves=12,
)


@given(header=json_values, data=hs.binary(max_size=24))
def test_any_json_header_loads_or_is_a_safetensors_error(tmp_path_factory, header, data):
    path = tmp_path_factory.getbasetemp() / "fuzz.safetensors"
    path.write_bytes(framed(header, data))
    try:
        read_file(path)
    except SafetensorsError as e:
        assert str(e).startswith(f"{path}: ")


def sparse_file(path, head, size):
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)


def peak_allocation(fn):
    tracemalloc.start()
    try:
        fn()
    except SafetensorsError:
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_header_is_read_and_checked_before_the_data(tmp_path):
    size = 24 << 20
    path = tmp_path / "big.safetensors"
    # a bad header in front of 24 MB
    sparse_file(path, framed(b"{not json"), size)
    assert peak_allocation(lambda: read_file(path)) < 1 << 20
    # a good header that does not describe the 24 MB that follow it
    sparse_file(path, framed({"a": entry()}, bytes(8)), size)
    assert peak_allocation(lambda: read_file(path)) < 1 << 20
    with pytest.raises(SafetensorsError, match="trailing bytes"):
        read_file(path)
    # a header length beyond the file, in a file that is large
    sparse_file(path, struct.pack("<Q", size), size)
    with pytest.raises(SafetensorsError, match="larger than"):
        read_file(path)


def test_good_files_still_read_header_then_data(tmp_path):
    path = tmp_path / "ok.safetensors"
    tensors = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros((0, 4), np.int64),
               "c": np.array(True)}
    save_file(tensors, path, metadata={"k": "v"})
    got, meta = read_file(path)
    assert meta == {"k": "v"} and sorted(got) == ["a", "b", "c"]
    for k, v in tensors.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape and got[k].tobytes() == v.tobytes()
        assert got[k].flags.writeable
