"""The LeNet-5 demo end to end on synthetic IDX files: train, checkpoint, resume, evaluate."""
import json
import os

import pytest

from tinygrad_cv.lenet_demo import main


@pytest.fixture()
def fake_mnist(tmp_path, fake_mnist_files):
    """Tiny MNIST-format data (256 training / 100 test images; see conftest.write_fake_mnist)."""
    return fake_mnist_files(tmp_path, 256, 100)


def test_demo_trains_resumes_and_evaluates(fake_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--data", str(fake_mnist), "--batch-size", "32", "--out", str(out), "--no-plots", "--augment", "shift"]
    assert main(common + ["--epochs", "1"]) == 0
    assert (out / "last.safetensors").exists()
    assert main(common + ["--epochs", "2", "--resume"]) == 0
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    printed = capsys.readouterr().out
    assert "resumed from" in printed and "epoch  2:" in printed and "batch/s" in printed

    assert main(["evaluate", str(out / "last.safetensors"), "--data", str(fake_mnist)]) == 0
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and "confusion matrix" in printed
    acc = float(printed.split("test accuracy ")[1].split("%")[0])
    assert acc > 30  # 2 tiny epochs on an easy synthetic task: far above chance (10 %)


def test_demo_writes_plots_when_matplotlib_is_installed(fake_mnist, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    assert main(["--data", str(fake_mnist), "--epochs", "1", "--limit", "64", "--out", str(out), "--augment", "none"]) == 0
    assert os.path.getsize(out / "lenet_training.png") > 1000


def test_demo_says_what_is_missing_for_cuda(fake_mnist, no_cuda):
    with pytest.raises(RuntimeError, match="device 'cuda' is not available: no GPU in this test"):
        main(["--data", str(fake_mnist), "--device", "cuda"])


def test_validation_chooses_the_model_and_the_test_set_is_used_once(fake_mnist, tmp_path, monkeypatch, capsys):
    """The last tenth of the training images validates every epoch; the test set is evaluated once, at the end."""
    from tinygrad_cv import train_demo  # the trainer behind the LeNet command

    sizes = []
    real = train_demo.evaluate

    def counting(model, loader, *args, **kwargs):
        sizes.append(len(loader.dataset))
        return real(model, loader, *args, **kwargs)

    monkeypatch.setattr(train_demo, "evaluate", counting)
    out = tmp_path / "run"
    assert main(["--data", str(fake_mnist), "--epochs", "3", "--batch-size", "32", "--out", str(out), "--no-plots",
                 "--augment", "none"]) == 0
    assert sizes == [25, 25, 25, 100]  # 256 // 10 validation images each epoch, then the 100 test images once
    history = json.loads((out / "history.json").read_text())
    assert all("test_acc" not in h and 0 <= h["val_acc"] <= 1 for h in history)
    results = json.loads((out / "results.json").read_text())
    best = max(history, key=lambda h: h["val_acc"])  # max keeps the first of equals, as the demo does
    assert results["epoch"] == best["epoch"] and results["val_acc"] == best["val_acc"]
    printed = capsys.readouterr().out
    assert "231 training / 25 validation / 100 test images" in printed
    assert f"model of epoch {best['epoch']}" in printed
    # the tested weights are those saved at the chosen epoch
    from tinygrad_cv import checkpoint

    assert checkpoint.load(str(out / "best.safetensors"))["epoch"] == best["epoch"]


def test_val_size_option(fake_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    base = ["--data", str(fake_mnist), "--epochs", "1", "--batch-size", "32", "--no-plots", "--augment", "none"]
    assert main(base + ["--out", str(out), "--val-size", "56"]) == 0
    assert "200 training / 56 validation" in capsys.readouterr().out
    assert main(base + ["--out", str(tmp_path / "none"), "--val-size", "0"]) == 0
    printed = capsys.readouterr().out
    assert "256 training (no validation split)" in printed and "the last epoch; no validation split" in printed
    from tinygrad_cv.lenet_demo import UsageError

    with pytest.raises(UsageError, match="--val-size 256 leaves no training images"):
        main(base + ["--out", str(tmp_path / "all"), "--val-size", "256"])


def test_ablation_compares_on_validation_without_touching_the_test_set(fake_mnist, tmp_path, monkeypatch, capsys):
    import importlib.util

    from tinygrad_cv import train_demo

    def no_test(*args, **kwargs):
        raise AssertionError("the ablation must not evaluate the test set")

    monkeypatch.setattr(train_demo, "report_test", no_test)
    path = os.path.join(os.path.dirname(__file__), "..", "demos", "lenet_ablation.py")
    spec = importlib.util.spec_from_file_location("lenet_ablation", path)
    ablation = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ablation)
    out = tmp_path / "ablation"
    assert ablation.main(["--data", str(fake_mnist), "--epochs", "1", "--seeds", "2", "--limit", "96",
                          "--out", str(out)]) == 0
    saved = json.loads((out / "ablation.json").read_text())
    assert set(saved["val_acc"]) == {"none/none", "none/cosine", "affine/none", "affine/cosine"}
    assert all(len(v) == 2 and all(0 <= a <= 1 for a in v) for v in saved["val_acc"].values())
    printed = capsys.readouterr().out
    assert printed.count("| affine | cosine |") == 1 and "±" in printed
