"""Checkpoints: bit-exact round trips through safetensors, resuming training, and clear errors for bad files."""
import json
import os
import struct

import numpy as np
import pytest

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import checkpoint, nn, optim
from tinygrad_cv.checkpoint import CheckpointError
from tinygrad_cv.io import safetensors as st
from tinygrad_cv.optim import lr_scheduler as S


class Small(nn.Module):
    def __init__(self, hidden=6):
        super().__init__()
        self.fc1 = nn.Linear(3, hidden)
        self.bn = nn.BatchNorm1d(hidden)
        self.fc2 = nn.Linear(hidden, 2)

    def forward(self, x):
        return self.fc2(F.relu(self.bn(self.fc1(x))))


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((16, 3)).astype(np.float32)
    return tg.tensor(x), tg.tensor((x[:, 0] * x[:, 1] > 0).astype(np.int64))


def train(model, opt, sched, steps):
    x, y = data()
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        sched.step()


def setup(seed=0):
    tg.manual_seed(seed)
    model = Small()
    head = list(model.bn.parameters()) + list(model.fc2.parameters())
    opt = optim.Adam([{"params": model.fc1.parameters()}, {"params": head, "lr": 0.02}], lr=0.01, amsgrad=True)
    return model, opt, S.StepLR(opt, step_size=2, gamma=0.5)


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_round_trip_bit_exact_and_resume_identical(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    ref_model, ref_opt, ref_sched = setup()
    train(ref_model, ref_opt, ref_sched, 7)

    model, opt, sched = setup()
    train(model, opt, sched, 4)
    extra = {"best": 0.25, "history": [1, 2.5], "shape": (3, 4), "note": "ünïcode"}
    checkpoint.save_checkpoint(path, model=model, optimizer=opt, scheduler=sched, epoch=4, extra=extra)

    contents = checkpoint.load(path)
    assert contents["epoch"] == 4 and contents["extra"] == extra and isinstance(contents["extra"]["shape"], tuple)
    assert list(contents["model"]) == list(model.state_dict())
    for k, v in model.state_dict().items():
        assert same_bits(contents["model"][k].data, v.data), k
    saved_opt = opt.state_dict()
    assert contents["optimizer"]["param_groups"] == saved_opt["param_groups"]
    for idx, entries in saved_opt["state"].items():
        for name, value in entries.items():
            got = contents["optimizer"]["state"][idx][name]
            assert same_bits(got.data, value.data) if isinstance(value, tg.Tensor) else got == value, (idx, name)
    assert contents["scheduler"] == sched.state_dict()

    model2, opt2, sched2 = setup(seed=123)  # different init: everything must come from the file
    info = checkpoint.load_checkpoint(path, model=model2, optimizer=opt2, scheduler=sched2)
    assert info["epoch"] == 4
    assert opt2.param_groups[0]["betas"] == (0.9, 0.999)  # tuples survive JSON
    train(model2, opt2, sched2, 3)
    for a, b in zip(ref_model.state_dict().values(), model2.state_dict().values()):
        assert same_bits(a.data, b.data)
    assert sched2.get_last_lr() == ref_sched.get_last_lr()


def test_model_file_is_plain_pytorch_style_safetensors(tmp_path):
    path = tmp_path / "weights.safetensors"
    model = Small()
    model.bn.num_batches_tracked.data[...] = 5
    checkpoint.save(model.state_dict(), path)
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    assert set(header) - {"__metadata__"} == set(model.state_dict())
    assert header["bn.num_batches_tracked"]["dtype"] == "I64" and header["bn.num_batches_tracked"]["shape"] == []
    assert header["fc1.weight"]["dtype"] == "F32" and header["fc1.weight"]["shape"] == [6, 3]
    # any safetensors reader gets the same arrays
    plain = st.load_file(path)
    for k, v in model.state_dict().items():
        assert same_bits(plain[k], v.data)
    # and a weights file written elsewhere (no metadata) loads into the model
    other = tmp_path / "foreign.safetensors"
    st.save_file({k: v.data for k, v in model.state_dict().items()}, other)
    fresh = Small()
    checkpoint.load_checkpoint(other, model=fresh)
    assert same_bits(fresh.fc2.weight.data, model.fc2.weight.data)
    assert set(checkpoint.load(other)) == set(model.state_dict())


def test_optimizer_state_file_round_trip(tmp_path):
    model, opt, sched = setup()
    train(model, opt, sched, 2)
    path = tmp_path / "opt.safetensors"
    checkpoint.save(opt.state_dict(), path)
    keys = set(st.load_file(path))
    assert "optimizer.state.0.exp_avg" in keys and "optimizer.state.5.max_exp_avg_sq" in keys
    loaded = checkpoint.load(path)
    assert loaded["state"][0]["step"] == 2 and loaded["param_groups"][1]["lr"] == opt.param_groups[1]["lr"]
    opt2 = setup()[1]
    opt2.load_state_dict(loaded)
    assert opt2.state_dict()["param_groups"] == opt.state_dict()["param_groups"]


def write_good(tmp_path):
    path = tmp_path / "good.safetensors"
    model, opt, sched = setup()
    train(model, opt, sched, 1)
    checkpoint.save_checkpoint(path, model=model, optimizer=opt, scheduler=sched, epoch=1)
    return path


def test_truncated_file(tmp_path):
    path = write_good(tmp_path)
    raw = path.read_bytes()
    for cut in (4, 20, len(raw) - 3):
        path.write_bytes(raw[:cut])
        with pytest.raises(CheckpointError, match="corrupted or truncated"):
            checkpoint.load_checkpoint(path, model=Small())


def test_flipped_header_bytes(tmp_path):
    path = write_good(tmp_path)
    raw = bytearray(path.read_bytes())
    n = struct.unpack("<Q", raw[:8])[0]
    header = raw[8:8 + n]
    spots = {
        "length field": 0,
        "opening brace": 8,
        "a dtype": 8 + header.index(b'"F32"') + 1,
        "a shape": 8 + header.index(b'"shape":[6') + 9,
        "a key name": 8 + header.index(b'"fc1.weight"') + 2,
        "metadata JSON": 8 + header.index(b'"tinygrad_cv.epoch":"1"') + 21,
    }
    for what, pos in spots.items():
        bad = bytearray(raw)
        bad[pos] ^= 0x5A
        path.write_bytes(bytes(bad))
        with pytest.raises(CheckpointError) as e:
            checkpoint.load_checkpoint(path, model=Small())
        assert str(path) in str(e.value), what


def test_tampered_header_that_still_parses(tmp_path):
    """Edits that keep the header valid safetensors are caught by the checks against the model."""
    path = write_good(tmp_path)
    raw = path.read_bytes()

    def tamper(entry, old, new):
        start = raw.index(entry)
        end = raw.index(b"}", start)
        assert raw[start:end].count(old) == 1
        path.write_bytes(raw[:start] + raw[start:end].replace(old, new) + raw[end:])

    tamper(b'"fc1.weight"', b'"shape":[6,3]', b'"shape":[3,6]')
    with pytest.raises(CheckpointError, match=r"'fc1.weight': shape \(3, 6\) in the file, \(6, 3\) in the model"):
        checkpoint.load_checkpoint(path, model=Small())
    tamper(b'"fc2.weight"', b'"F32"', b'"I32"')  # same size: the bytes (and their checksum) are unchanged
    with pytest.raises(CheckpointError, match="'fc2.weight': dtype int32 in the file, float32 in the model"):
        checkpoint.load_checkpoint(path, model=Small())


def test_flipped_data_byte_fails_checksum(tmp_path):
    path = write_good(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="CRC-32"):
        checkpoint.load(path)


def test_missing_and_unexpected_keys(tmp_path):
    path = write_good(tmp_path)

    class Bigger(Small):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(2, 2)

    model = Bigger()
    before = model.fc1.weight.data.copy()
    with pytest.raises(CheckpointError, match=r"missing key\(s\): 'head.weight', 'head.bias'"):
        checkpoint.load_checkpoint(path, model=model)
    assert np.array_equal(model.fc1.weight.data, before)  # nothing loaded
    checkpoint.load_checkpoint(path, model=model, strict=False)  # the common part loads
    assert not np.array_equal(model.fc1.weight.data, before)

    class Smaller(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(3, 6)

    with pytest.raises(CheckpointError, match=r"unexpected key\(s\): 'bn.weight'"):
        checkpoint.load_checkpoint(path, model=Smaller())


def test_wrong_shape_and_dtype(tmp_path):
    path = write_good(tmp_path)
    with pytest.raises(CheckpointError, match=r"'fc1.weight': shape \(6, 3\) in the file, \(4, 3\) in the model"):
        checkpoint.load_checkpoint(path, model=Small(hidden=4), strict=False)
    with pytest.raises(CheckpointError, match="'fc1.weight': dtype float32 in the file, float64 in the model"):
        checkpoint.load_checkpoint(path, model=Small().double())


def test_optimizer_mismatch_detected_before_anything_loads(tmp_path):
    path = write_good(tmp_path)
    model = Small()
    before = model.fc1.weight.data.copy()
    opt = optim.Adam(model.parameters())  # one group instead of two
    with pytest.raises(CheckpointError, match="2 parameter groups in the file, 1 in the optimizer"):
        checkpoint.load_checkpoint(path, model=model, optimizer=opt)
    assert np.array_equal(model.fc1.weight.data, before)
    with pytest.raises(CheckpointError, match="no optimizer state"):
        p = tmp_path / "weights_only.safetensors"
        checkpoint.save_checkpoint(p, model=model)
        checkpoint.load_checkpoint(p, model=model, optimizer=opt)


def test_save_is_atomic(tmp_path, monkeypatch):
    path = write_good(tmp_path)
    good = path.read_bytes()

    def broken_write(f, header, arrays):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(st, "_write", broken_write)
    model, opt, sched = setup()
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save_checkpoint(path, model=model, optimizer=opt, scheduler=sched, epoch=2)
    assert path.read_bytes() == good  # the previous checkpoint is intact
    assert os.listdir(tmp_path) == [path.name]  # and no temporary file is left behind


def test_unserialisable_extra_is_refused_before_writing(tmp_path):
    path = tmp_path / "x.safetensors"
    with pytest.raises(TypeError, match="cannot store a object"):
        checkpoint.save_checkpoint(path, model=Small(), extra={"oops": object()})
    assert not path.exists()
