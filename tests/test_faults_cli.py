"""The LeNet demo's command line under faults: killed and resumed runs, changed options, user errors.

Everything runs on tiny synthetic IDX files (a bright bar per class) with a few
batches per epoch; the runs that must really die do so in a subprocess that
SIGKILLs itself at a fixed batch, so the test is deterministic.
"""
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_cv import checkpoint, optim
from tinygrad_cv import train_demo
from tinygrad_cv.lenet_demo import UsageError, build_parser, main

REPO = Path(__file__).resolve().parents[1]

# Runs the demo, but SIGKILLs the process after DIE_AFTER_BATCHES optimiser steps of epoch DIE_IN_EPOCH:
# the demo gets no chance to clean up, as with `kill -9` or the machine losing power.
DYING_DEMO = r"""
import os, signal, sys
from tinygrad_cv import lenet_demo, train_demo

class DieAfter:
    def __init__(self, loader, k):
        self.loader, self.k = loader, k
    def __len__(self):
        return len(self.loader)
    def __iter__(self):
        for i, batch in enumerate(self.loader):
            if i == self.k:
                os.kill(os.getpid(), signal.SIGKILL)
            yield batch

# the LeNet command runs train_demo's trainer, which looks train_epoch up in its own module
train_epoch = train_demo.train_epoch
def dying_train_epoch(model, loader, opt, scheduler, epoch, *rest):
    if epoch == int(os.environ["DIE_IN_EPOCH"]):
        loader = DieAfter(loader, int(os.environ["DIE_AFTER_BATCHES"]))
    return train_epoch(model, loader, opt, scheduler, epoch, *rest)
train_demo.train_epoch = dying_train_epoch
sys.exit(lenet_demo.main(sys.argv[1:]))
"""


@pytest.fixture()
def fake_mnist(tmp_path, fake_mnist_files):
    """Tiny MNIST-format data (128 training / 40 test images; see conftest.write_fake_mnist)."""
    root = tmp_path / "data"
    root.mkdir()
    return fake_mnist_files(root, 128, 40)


def _args(data, out, *extra):
    # 128 images in batches of 32: 4 optimiser steps per epoch
    return ["--data", str(data), "--out", str(out), "--batch-size", "32", "--no-plots", *extra]


def _weights(out):
    return checkpoint.load_checkpoint(os.path.join(out, "last.safetensors"))


def _run_dying(args, die_in_epoch, die_after_batches, cwd):
    env = dict(os.environ, DIE_IN_EPOCH=str(die_in_epoch), DIE_AFTER_BATCHES=str(die_after_batches),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-c", DYING_DEMO, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _cli(monkeypatch, capsys, *argv):
    """Run main() as the console command does (argv from sys.argv); return (exit status, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["tinygrad-cv-lenet", *argv])
    try:
        status = main()
    except SystemExit as e:
        status = e.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _assert_one_line_error(status, err, *fragments):
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinygrad-cv-lenet: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


# --- finding 1: resume after kill -9 is exact ---------------------------------------------------------
@pytest.mark.parametrize("augment", ["none", "affine"])
def test_resume_after_sigkill_matches_an_uninterrupted_run_bit_for_bit(fake_mnist, tmp_path, augment):
    common = ["--epochs", "3", "--augment", augment, "--seed", "3"]
    ref, run = tmp_path / "ref", tmp_path / "run"
    assert main(_args(fake_mnist, ref, *common)) == 0

    died = _run_dying(_args(fake_mnist, run, *common), die_in_epoch=2, die_after_batches=2, cwd=tmp_path)
    assert died.returncode == -signal.SIGKILL, died.stderr
    assert _weights(run)["epoch"] == 1  # the epoch-1 checkpoint survived the kill

    assert main(_args(fake_mnist, run, *common, "--resume")) == 0
    expected, got = _weights(ref), _weights(run)
    assert got["epoch"] == expected["epoch"] == 3
    assert list(got["model"]) == list(expected["model"])
    for key, value in expected["model"].items():
        a, b = got["model"][key].numpy(), value.numpy()
        same = np.array_equal(a, b)
        assert same, f"{key}: differs by up to {np.abs(a - b).max():.3g} from the uninterrupted run"
    for idx, entries in expected["optimizer"]["state"].items():
        for name, value in entries.items():
            other = got["optimizer"]["state"][idx][name]
            if hasattr(value, "numpy"):
                assert np.array_equal(other.numpy(), value.numpy()), (idx, name)
            else:
                assert other == value, (idx, name)
    assert got["scheduler"] == expected["scheduler"]
    losses = [(h["epoch"], h["train_loss"], h["val_acc"]) for h in got["extra"]["history"]]
    assert losses == [(h["epoch"], h["train_loss"], h["val_acc"]) for h in expected["extra"]["history"]]


# --- finding 2: more epochs on resume continue the schedule downwards -------------------------------------
def _record_lrs(monkeypatch):
    """The learning rate of every Adam step, in order."""
    lrs, step = [], optim.Adam.step

    def recording_step(self, *a, **k):
        lrs.append(self.param_groups[0]["lr"])
        return step(self, *a, **k)

    monkeypatch.setattr(optim.Adam, "step", recording_step)
    return lrs


def _interrupt_before_epoch(monkeypatch, stop_epoch):
    train_epoch = train_demo.train_epoch

    def interrupted(model, loader, opt, scheduler, epoch, *rest):
        if epoch == stop_epoch:
            raise KeyboardInterrupt
        return train_epoch(model, loader, opt, scheduler, epoch, *rest)

    monkeypatch.setattr(train_demo, "train_epoch", interrupted)


def test_resume_with_more_epochs_never_raises_the_cosine_rate_and_ends_at_zero(fake_mnist, tmp_path, monkeypatch):
    out = tmp_path / "run"
    lrs = _record_lrs(monkeypatch)
    with monkeypatch.context() as m:  # a 3-epoch run that stops after epoch 1
        _interrupt_before_epoch(m, 2)
        with pytest.raises(KeyboardInterrupt):
            main(_args(fake_mnist, out, "--epochs", "3", "--augment", "none"))
    first = list(lrs)
    assert len(first) == 4 and first[0] == pytest.approx(2e-3)

    lrs.clear()
    assert main(_args(fake_mnist, out, "--epochs", "6", "--resume")) == 0
    assert len(lrs) == 5 * 4
    whole = first + lrs
    assert all(b <= a for a, b in zip(whole, whole[1:])), whole  # never up, at the resume point or after
    assert lrs[0] == pytest.approx(first[-1] * (1 + np.cos(np.pi * 4 / 12)) / (1 + np.cos(np.pi * 3 / 12)))
    assert lrs[-1] < 0.01 * first[0]  # the last step is close to the bottom...
    state = _weights(out)
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-12)  # ...which it reaches
    assert state["scheduler"]["T_max"] == 6 * 4
    assert state["extra"]["config"]["epochs"] == 6


def test_resume_with_more_epochs_keeps_the_step_schedule_decay_points(fake_mnist, tmp_path, monkeypatch):
    out = tmp_path / "run"
    lrs = _record_lrs(monkeypatch)
    with monkeypatch.context() as m:
        _interrupt_before_epoch(m, 3)
        with pytest.raises(KeyboardInterrupt):
            main(_args(fake_mnist, out, "--epochs", "3", "--schedule", "step", "--augment", "none"))
    assert main(_args(fake_mnist, out, "--epochs", "5", "--resume")) == 0
    assert all(b <= a for a, b in zip(lrs, lrs[1:])), lrs
    # step size 4 steps (one third of 3 epochs): a tenfold drop after every epoch, as before the resume
    assert lrs[::4] == pytest.approx([2e-3 * 0.1**k for k in range(5)])


def test_extending_a_finished_cosine_run_says_the_rate_is_zero(fake_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_args(fake_mnist, out, "--epochs", "1", "--augment", "none")) == 0
    before = _weights(out)["model"]
    assert main(_args(fake_mnist, out, "--epochs", "2", "--resume")) == 0
    assert "already decayed to 0" in capsys.readouterr().out
    after = _weights(out)["model"]
    assert all(np.array_equal(before[k].numpy(), after[k].numpy()) for k in before)


# --- finding 3: a resume that does not fit its checkpoint is refused -------------------------------------
def test_resume_refuses_another_architecture_or_optimizer(fake_mnist, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    assert main(_args(fake_mnist, out, "--epochs", "1", "--limit", "64", "--variant", "1998")) == 0

    with pytest.raises(UsageError, match=r"trained with --variant 1998, this command asks for --variant relu"):
        main(_args(fake_mnist, out, "--epochs", "2", "--resume", "--variant", "relu"))
    with pytest.raises(UsageError, match=r"--optimizer adam.*--optimizer sgd"):
        main(_args(fake_mnist, out, "--epochs", "2", "--resume", "--optimizer", "sgd"))
    with pytest.raises(UsageError, match=r"--limit 64.*--limit 128"):
        main(_args(fake_mnist, out, "--epochs", "2", "--resume", "--limit", "128"))

    status, _, err = _cli(monkeypatch, capsys, *_args(fake_mnist, out, "--resume", "--optimizer", "sgd"))
    _assert_one_line_error(status, err, "--optimizer adam", "--optimizer sgd", "--epochs")

    # the same values again, or none at all, resume fine: the saved ones are used
    assert main(_args(fake_mnist, out, "--epochs", "2", "--resume", "--variant", "1998")) == 0
    assert main(_args(fake_mnist, out, "--epochs", "3", "--resume")) == 0
    state = _weights(out)
    assert state["epoch"] == 3 and [h["epoch"] for h in state["extra"]["history"]] == [1, 2, 3]
    config = state["extra"]["config"]
    assert (config["variant"], config["limit"], config["train_size"], config["epochs"]) == ("1998", 64, 58, 3)  # 6 of 64 held out

    with pytest.raises(UsageError, match=r"--epochs 2 is fewer than the 3 epochs"):
        main(_args(fake_mnist, out, "--epochs", "2", "--resume"))


# --- finding 4: user errors are one line and exit status 2; --debug shows the traceback ---------------------
def test_missing_data_folder_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    status, out, err = _cli(monkeypatch, capsys, "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run"))
    _assert_one_line_error(status, err, "data folder", "nope", "does not exist")
    assert "epoch" not in out


def test_bad_checkpoint_is_a_one_line_error(fake_mnist, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    status, _, err = _cli(monkeypatch, capsys, *_args(fake_mnist, out, "--resume"))
    _assert_one_line_error(status, err, "last.safetensors")
    status, _, err = _cli(monkeypatch, capsys, "evaluate", str(out / "last.safetensors"), "--data", str(fake_mnist))
    _assert_one_line_error(status, err, "last.safetensors")
    status, _, err = _cli(monkeypatch, capsys, *_args(fake_mnist, tmp_path / "empty", "--resume"))
    _assert_one_line_error(status, err, "--resume: no checkpoint at")


def test_unavailable_device_is_a_one_line_error(fake_mnist, tmp_path, monkeypatch, capsys, no_cuda):
    status, _, err = _cli(monkeypatch, capsys, *_args(fake_mnist, tmp_path / "run", "--device", "cuda"))
    _assert_one_line_error(status, err, "device 'cuda' is not available: no GPU in this test")


def test_debug_shows_the_original_exception(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["tinygrad-cv-lenet", "--data", str(tmp_path / "nope"), "--debug",
                                      "--out", str(tmp_path / "run")])
    with pytest.raises(UsageError, match="does not exist"):
        main()


def test_the_installed_program_exits_2_without_a_traceback(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, "-m", "tinygrad_cv.lenet_demo",
           "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    _assert_one_line_error(done.returncode, done.stderr, "does not exist")
    done = subprocess.run(cmd + ["--debug"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" in done.stderr and "UsageError" in done.stderr


# --- finding 5: the output folder is checked before any data is read or any step taken --------------------------
def test_output_folder_that_cannot_be_created_fails_before_training(fake_mnist, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    status, out, err = _cli(monkeypatch, capsys, *_args(fake_mnist, blocker / "run", "--epochs", "1"))
    _assert_one_line_error(status, err, "output folder", "cannot be written")
    assert "epoch" not in out and "LeNet-5" not in out


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write to a read-only folder")
def test_read_only_output_folder_fails_before_training(fake_mnist, tmp_path, monkeypatch, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        status, out, err = _cli(monkeypatch, capsys, *_args(fake_mnist, ro, "--epochs", "1"))
    finally:
        ro.chmod(0o700)
    _assert_one_line_error(status, err, "output folder", "cannot be written")
    assert "epoch" not in out


def test_output_folder_probe_leaves_nothing_behind(fake_mnist, tmp_path):
    out = tmp_path / "run"
    assert main(_args(fake_mnist, out, "--epochs", "1", "--limit", "32", "--augment", "none")) == 0
    assert sorted(p.name for p in out.iterdir()) == ["best.safetensors", "history.json", "last.safetensors",
                                                     "results.json"]


# --- finding 6: numeric options are validated like argparse's own errors ----------------------------------------
@pytest.mark.parametrize("option, value", [
    ("--epochs", "0"), ("--epochs", "-1"), ("--epochs", "2.5"), ("--limit", "-5"), ("--limit", "0"),
    ("--batch-size", "0"), ("--lr", "0"), ("--lr", "-0.1"), ("--lr", "nan"), ("--lr", "inf"),
    ("--momentum", "1"), ("--momentum", "-0.1"), ("--weight-decay", "-0.001"), ("--seed", "-1"),
])
def test_invalid_numbers_are_refused_by_the_parser(option, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([option, value, "--out", str(tmp_path / "never-created")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument {option}: " in err and "Traceback" not in err
    assert not (tmp_path / "never-created").exists()


def test_valid_edge_values_are_accepted():
    args = build_parser().parse_args(["--epochs", "1", "--limit", "1", "--momentum", "0", "--weight-decay", "0",
                                      "--lr", "1e-9", "--seed", "0"])
    assert (args.epochs, args.limit, args.momentum, args.weight_decay, args.lr, args.seed) == (1, 1, 0.0, 0.0, 1e-9, 0)


# --- finding 7: an unknown device is named as such ------------------------------------------------------------------
def test_unknown_device_is_named(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--device", "tpu"])
    assert exc.value.code == 2
    assert "argument --device: unknown device 'tpu'; expected cpu or cuda" in capsys.readouterr().err


@pytest.mark.parametrize("given, device", [("cpu", "cpu"), ("cpu:0", "cpu"), ("CUDA", "cuda"), ("cuda:0", "cuda")])
def test_device_spellings(given, device):
    assert build_parser().parse_args(["--device", given]).device == device
