"""The labs of chapter 18 (demos/transfer.py, demos/distill.py, demos/compress.py) on tiny synthetic data.

Each demo runs end to end on a few hundred fake MNIST images (conftest's
``write_fake_mnist``: each class a bright bar at its own height) with tiny
networks and a handful of steps, so every test takes a few seconds: they
check the plumbing — splits, choices on the validation set, reports,
checkpoint reuse, figures — not the numbers, which the chapter reports from
the full runs.
"""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def no_temporary_files(folder):
    """The demos write atomically (a temporary file renamed into place): none may be left behind."""
    return not [f for f in os.listdir(folder) if f.endswith(".tmp")]


def load_demo(name):
    spec = importlib.util.spec_from_file_location(f"{name}_lab_demo", ROOT / "demos" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fake_mnist(tmp_path_factory, fake_mnist_files):
    # the conftest's writer through its fixture: "import conftest" would find tests/data/conftest.py in a full run
    return fake_mnist_files(tmp_path_factory.mktemp("mnist"), 300, 80)


# --- transfer ------------------------------------------------------------------------------------
TRANSFER_TINY = ["--labels", "1,2", "--seeds", "2", "--val-per-class", "2", "--pretrain-epochs", "1",
                 "--source-val", "20", "--max-steps", "6", "--min-steps", "3", "--eval-every", "3",
                 "--probe-steps", "5", "--l2", "0.1", "--lrs", "0.001,0.01"]


def test_transfer_lab_runs_end_to_end(fake_mnist, tmp_path, capsys):
    demo = load_demo("transfer")
    out = tmp_path / "run"
    args = ["--data", str(fake_mnist), "--out", str(out), "--no-plots", "--no-hog"] + TRANSFER_TINY
    assert demo.main(args) == 0
    results = json.loads((out / "results.json").read_text())
    summary = results["summary"]
    for method in ("scratch", "finetune/head", "finetune/fc", "finetune/all", "finetune/convs", "random_fc",
                   "frozen/pretrained/logistic", "frozen/pretrained/svm", "frozen/random/logistic",
                   "probe/raw/pixels/logistic", "probe/raw/pixels/svm"):
        assert set(summary[method]) == {"1", "2"}, method
        assert len(summary[method]["1"]["values"]) == 2  # one per seed
        assert 0.0 <= summary[method]["2"]["mean"] <= 1.0
    for layer in ("pool1", "pool2", "fc1", "fc2"):
        assert f"probe/pretrained/{layer}/svm" in summary and f"probe/random/{layer}/logistic" in summary
    assert not any("hog" in k for k in summary)  # --no-hog
    cell = results["cells"]["2"]["0"]
    assert cell["scratch"]["lr"] in (0.001, 0.01) and cell["probe/raw/pixels/logistic"]["l2"] == 0.1
    assert cell["frozen/pretrained/logistic"]["layer"] in ("pool1", "pool2", "fc1", "fc2")
    assert set(results["ordering"]) == {"1", "2"}
    for row in results["ordering"].values():
        assert row["holds"] == (row["scratch"] < row["frozen"] < row["finetune"])
        assert row["holds_convs"] == (row["scratch"] < row["frozen"] < row["finetune_convs"])
    for n, per_seed in results["cells"].items():
        for res in per_seed.values():
            # every network's rate and stopping step were chosen on validation, within the step budget
            for method in ("scratch", "finetune/all", "finetune/convs", "finetune/head", "random_fc"):
                assert res[method]["lr"] in (0.001, 0.01) and 0 <= res[method]["step"] <= 6
                assert 0.0 <= res[method]["val"] <= 1.0
    assert no_temporary_files(out)
    report = (out / "results.md").read_text()
    assert report.startswith("# Transfer") and "| from scratch" in report and "HOG: skipped" in report
    # a second run (a smaller one: the checkpoint does not depend on the label counts) finds the pretrained network
    capsys.readouterr()
    assert demo.main(args + ["--labels", "1", "--seeds", "1"]) == 0
    printed = capsys.readouterr().out
    assert "loaded" in printed and "pretrained in" not in printed


def test_transfer_lab_from_another_source_with_figures(fake_mnist, fake_mnist_files, tmp_path):
    pytest.importorskip("matplotlib")
    (tmp_path / "fashion").mkdir()
    fashion = fake_mnist_files(tmp_path / "fashion", 200, 40)  # stands in for Fashion-MNIST: ten classes
    demo = load_demo("transfer")
    figures = tmp_path / "figures"
    assert demo.main(["--data", str(fake_mnist), "--source", "fashion", "--source-data", str(fashion),
                      "--out", str(tmp_path / "run"), "--figures", str(figures)] + TRANSFER_TINY) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["pretrain"]["train"] == 200 - 20
    for name in ("accuracy_fashion", "layers_fashion"):
        assert (figures / f"transfer_{name}.png").stat().st_size > 1000


def test_transfer_split_is_fixed_nested_and_disjoint():
    demo = load_demo("transfer")
    y = np.repeat(np.arange(5), 40)
    val, draws = demo.split_target(y, [1, 3, 10], 5, [0, 1])
    val_again, _ = demo.split_target(y, [2], 5, [7])
    assert np.array_equal(val, val_again)  # the same validation images whatever the labels and seeds
    assert len(val) == 25 and all((y[val] == c).sum() == 5 for c in range(5))
    for seed in (0, 1):
        sets = [set(draws[seed][n].tolist()) for n in (1, 3, 10)]
        assert sets[0] < sets[1] < sets[2]  # nested
        assert not sets[2] & set(val.tolist())  # never a validation image
        assert all((y[draws[seed][10]] == c).sum() == 10 for c in range(5))
    assert set(draws[0][10].tolist()) != set(draws[1][10].tolist())
    with pytest.raises(demo.UsageError, match="need 41 training images each"):
        demo.split_target(y, [37], 4, [0])


def test_linear_probes_fit_separable_features():
    demo = load_demo("transfer")
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 20)) * 3
    y = np.tile(np.arange(5), 12)
    x = (centres[y] + rng.normal(size=(60, 20))).astype(np.float32)
    args = demo.resolve(demo.build_parser().parse_args(["--l2", "0.001,1", "--probe-steps", "100"]))
    for kind in demo.PROBES:
        predict, l2, scores = demo.fit_probe(kind, x[:40], y[:40], x[40:], y[40:], args, seed=0)
        assert set(scores) == {0.001, 1.0} and l2 in scores
        assert (predict(x[40:]).argmax(1) == y[40:]).mean() == 1.0, kind


def test_transfer_lab_refuses_bad_options(fake_mnist, tmp_path, capsys):
    demo = load_demo("transfer")
    for argv, message in ((["--labels", "0,1"], "must be at least 1"), (["--labels", "1,1"], "a value is repeated"),
                          (["--lrs", "-1"], "--lrs: must be > 0"), (["--source", "cifar"], "invalid choice"),
                          (["--backbone-lr-scale", "2"], "<= 1")):
        with pytest.raises(SystemExit):
            demo.build_parser().parse_args(argv)
        assert message in capsys.readouterr().err, argv
    with pytest.raises(demo.UsageError, match="does not exist"):
        demo.main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    with pytest.raises(demo.UsageError, match="training images each"):
        demo.main(["--data", str(fake_mnist), "--out", str(tmp_path / "o"), "--labels", "100"] + TRANSFER_TINY[2:])
    with pytest.raises(demo.UsageError, match="below --min-steps"):
        demo.main(["--data", str(fake_mnist), "--out", str(tmp_path / "o"), "--max-steps", "5", "--min-steps", "9"])


# --- distillation --------------------------------------------------------------------------------
DISTILL_TINY = ["--teacher-hidden", "32,32", "--student-hidden", "16", "--teacher-epochs", "1",
                "--student-epochs", "1", "--temperatures", "1,4", "--seeds", "2", "--val-size", "60",
                "--batch-size", "32"]


def test_distill_lab_runs_end_to_end(fake_mnist, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    demo = load_demo("distill")
    out = tmp_path / "run"
    args = ["--data", str(fake_mnist), "--out", str(out)] + DISTILL_TINY
    assert demo.main(args) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["chosen_T"] in (1.0, 4.0)
    assert set(r["distilled"]) == {"1", "4"} and len(r["hard"]["test"]["values"]) == 2
    assert r["teacher"]["params"] == 784 * 32 + 32 + 32 * 32 + 32 + 32 * 10 + 10
    w = r["withheld"]
    assert w["digit"] == 3 and 0 < w["transfer_size"] < r["data"]["train"]
    for key in ("hard", "distilled"):
        assert {"test_error", "test_error_digit", "test_error_bias", "delta_val", "delta_test"} <= set(w[key])
        # the correction is chosen on validation: it never makes the validation error worse than δ = 0
        assert all(d >= 0 for d in w[key]["delta_val"]["values"])
    assert (out / "results.md").read_text().startswith("# Knowledge distillation")
    for key in ("hard", *r["distilled"]):
        s = r["hard"] if key == "hard" else r["distilled"][key]
        assert all(0.0 <= v <= 1.0 for v in s["test"]["values"] + s["val"]["values"])
    # T was chosen on the validation errors (mean over seeds), not on the test errors
    assert r["chosen_T"] == min((r["distilled"][k]["val"]["mean"], float(k)) for k in r["distilled"])[1]
    assert no_temporary_files(out)
    for name in ("temperature", "soft_targets", "withheld"):
        assert (out / f"distill_{name}.png").stat().st_size > 1000
    # every network was saved; a second run trains nothing
    capsys.readouterr()
    assert demo.main(args + ["--no-plots"]) == 0
    assert "epoch" not in capsys.readouterr().out


def test_distill_students_never_see_the_withheld_digit(fake_mnist, tmp_path, monkeypatch):
    demo = load_demo("distill")
    seen = []
    real_train = demo.train

    def spy(model, x, y, *args, **kwargs):
        seen.append((kwargs.get("temperature"), set(np.unique(y).tolist()), kwargs.get("teacher_logits")))
        if kwargs.get("teacher_logits") is not None:
            assert len(kwargs["teacher_logits"]) == len(y)
        return real_train(model, x, y, *args, **kwargs)

    monkeypatch.setattr(demo, "train", spy)
    assert demo.main(["--data", str(fake_mnist), "--out", str(tmp_path / "run"), "--no-plots", "--withheld", "7"]
                     + DISTILL_TINY + ["--seeds", "1"]) == 0
    # teacher, hard, T=1, T=4, then the two students without the 7s
    assert len(seen) == 6
    assert 7 in seen[0][1] and 7 in seen[1][1]
    assert 7 not in seen[-1][1] and 7 not in seen[-2][1]
    assert seen[-1][2] is not None or seen[-2][2] is not None  # one of them is distilled


def test_bias_correction_is_chosen_to_recover_a_suppressed_class():
    demo = load_demo("distill")
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 20)
    logits = rng.normal(size=(200, 10)) + 6.0 * np.eye(10)[y]
    logits[:, 3] -= 5.0  # what a student that never saw a 3 does: the class's bias is far too low
    deltas = np.arange(0.0, 10.01, 0.25)
    delta, errs = demo.choose_bias(logits, y, 3, deltas)
    assert 3.0 <= delta <= 8.0 and errs[int(np.flatnonzero(deltas == delta)[0])] == min(errs)
    fixed = demo.with_bias(logits, 3, delta)
    assert demo.error_rate(fixed, y) < demo.error_rate(logits, y)
    assert demo.error_rate(fixed[y == 3], y[y == 3]) < 0.2


def test_distill_lab_refuses_bad_options(tmp_path):
    demo = load_demo("distill")
    for argv in (["--temperatures", "0,1"], ["--alpha", "1.5"], ["--withheld", "10"], ["--student-hidden", "0"]):
        with pytest.raises(SystemExit):
            demo.build_parser().parse_args(argv)
    with pytest.raises(demo.UsageError, match="does not exist"):
        demo.main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])


# --- compression ---------------------------------------------------------------------------------
def test_compress_lab_runs_end_to_end(fake_mnist, tmp_path):
    pytest.importorskip("matplotlib")
    demo = load_demo("compress")
    out = tmp_path / "run"
    teacher = tmp_path / "teacher.safetensors"
    args = ["--data", str(fake_mnist), "--out", str(out), "--teacher", str(teacher), "--teacher-hidden", "24,24",
            "--teacher-epochs", "1", "--lenet-epochs", "1", "--lenet-ranks", "1,4", "--teacher-ranks", "2,8",
            "--finetune-steps", "2", "--val-size", "60", "--batch-size", "32"]
    assert demo.main(args) == 0
    assert teacher.is_file()  # trained and saved where distill.py would have put it
    r = json.loads((out / "results.json").read_text())
    for key, ranks in (("lenet", [1, 4]), ("teacher", [2, 8])):
        s = r[key]
        assert [row["rank"] for row in s["rows"]] == ranks
        assert all(row["params"] < s["base"]["params"] for row in s["rows"])
        assert s["rows"][0]["params"] < s["rows"][1]["params"]
        for row in s["rows"]:
            assert 0.0 <= row["test"] <= 1.0 and 0.0 <= row["test_ft"] <= 1.0
            # Eckart-Young: the measured relative error of each layer is that of the discarded singular values
            assert all(layer["replaced"] for layer in row["layers"])
            for layer in row["layers"]:
                assert layer["relative_error"] == pytest.approx(row["predicted_error"][layer["name"]], abs=1e-6)
    assert (out / "results.md").read_text().startswith("# Truncated-SVD")
    assert no_temporary_files(out)
    for name in ("accuracy", "spectrum"):
        assert (out / f"compress_{name}.png").stat().st_size > 1000


def test_compress_lab_refuses_bad_options(tmp_path):
    demo = load_demo("compress")
    for argv in (["--lenet-ranks", "0"], ["--finetune-steps", "-1"], ["--tolerance", "-1"]):
        with pytest.raises(SystemExit):
            demo.build_parser().parse_args(argv)
    with pytest.raises(demo.UsageError, match="does not exist"):
        demo.main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])


# --- the command line --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["transfer", "distill", "compress"])
def test_lab_command_line_reports_user_errors_in_one_line(name, tmp_path):
    """From the command line a user error is one line on stderr and exit status 2, not a traceback."""
    cmd = [sys.executable, str(ROOT / "demos" / f"{name}.py"), "--data", str(tmp_path / "nowhere"),
           "--out", str(tmp_path / "o")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == f"{name}: error: " + (
        f"--data folder {tmp_path / 'nowhere'} does not exist" if name == "transfer"
        else f"data folder {tmp_path / 'nowhere'} does not exist")
    done = subprocess.run(cmd[:2] + ["--seed", "-1"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--seed: must be at least 0, got -1" in done.stderr


# --- deeper ablation ---------------------------------------------------------------------------
DEEPER_TINY = ["--train-size", "40", "--val-size", "20", "--epochs", "1", "--lrs", "0.05,1e6", "--bn-epochs", "1",
               "--small-size", "30", "--reg-epochs", "2", "--seeds", "2"]


def test_deeper_ablation_runs_end_to_end_on_validation_data_only(fake_mnist, tmp_path, monkeypatch, capsys):
    demo = load_demo("deeper_ablation")
    splits = []
    real = demo.FashionMNIST

    def spy(root, train=True, **kwargs):  # the test split must never be read
        splits.append(train)
        return real(root, train=train, **kwargs)

    monkeypatch.setattr(demo, "FashionMNIST", spy)
    out = tmp_path / "run"
    assert demo.main(["--data", str(fake_mnist), "--out", str(out)] + DEEPER_TINY) == 0
    assert splits == [True]
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())["results"]
    assert list(results) == ["degradation", "batchnorm", "regularisers"]
    assert list(results["degradation"]) == ["plain20", "plain56", "resnet20", "resnet56"]
    # plain and residual twins have the same parameters (option A shortcuts carry none)
    deg = results["degradation"]
    assert deg["plain20"]["params"] == deg["resnet20"]["params"] < deg["plain56"]["params"] == deg["resnet56"]["params"]
    for r in deg.values():
        assert len(r["history"]) == 1 and 0 <= r["history"][0]["train_acc"] <= 1
    # a learning rate of a million is refused as unstable, with and without batch norm, and the table says so
    bn = results["batchnorm"]
    assert not bn["plain/1e+06"]["stable"] and not bn["bn/1e+06"]["stable"]
    assert "(unstable)" in printed and "| 1e+06 |" in printed
    reg = results["regularisers"]
    assert list(reg) == ["none", "dropout", "dropconnect", "maxout", "maxout+dropout"]
    assert all(len(r["runs"]) == 2 for r in reg.values())
    for r in reg.values():  # the validation loss after the last epoch is the last point of its curve
        assert all(x["val_loss"] == x["loss_curve"][-1] > 0 for x in r["runs"])
    assert "| validation loss |" in printed
    assert reg["maxout"]["params"] > reg["none"]["params"] == reg["dropout"]["params"] == reg["dropconnect"]["params"]
    assert (out / "results.md").read_text().strip() in printed
    if importlib.util.find_spec("matplotlib") is not None:
        assert {f"deeper_{n}.png" for n in ("degradation", "batchnorm", "regularisers")} <= set(os.listdir(out))
    assert no_temporary_files(out)


def test_deeper_ablation_models():
    demo = load_demo("deeper_ablation")
    import tinygrad_cv as tg

    tg.manual_seed(0)
    x = tg.randn(3, 1, 28, 28)
    for bn in (False, True):
        net = demo.vgg_net(bn)
        assert net(x).shape == (3, 10)
        assert any(type(m).__name__ == "BatchNorm2d" for m in net.modules()) == bn
    for kind in demo.REGULARISERS:
        net = demo.mlp(kind, hidden=16)
        net.eval()
        a, b = net(x).detach().numpy(), net(x).detach().numpy()
        assert a.shape == (3, 10) and np.array_equal(a, b)  # evaluation is deterministic
        net.train()
        c, d = net(x).detach().numpy(), net(x).detach().numpy()
        # the stochastic regularisers draw a new mask each call in training mode; the others do not
        assert np.array_equal(c, d) == (kind in ("none", "maxout")), kind


def test_deeper_ablation_refuses_bad_options(fake_mnist, tmp_path):
    demo = load_demo("deeper_ablation")
    for argv in (["--data", "d", "--lrs", "0.1,-1"], ["--data", "d", "--epochs", "0"], ["--data", "d", "--lr", "0"],
                 ["--data", "d", "--only", "everything"]):
        with pytest.raises(SystemExit):
            demo.build_parser().parse_args(argv)
    with pytest.raises(demo.UsageError, match="does not exist"):
        demo.main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    with pytest.raises(demo.UsageError, match="more than the 300 images"):
        demo.main(["--data", str(fake_mnist), "--out", str(tmp_path / "o"), "--train-size", "290", "--val-size", "20"])
