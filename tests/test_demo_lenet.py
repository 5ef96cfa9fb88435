"""The LeNet-5 demo end to end on synthetic IDX files: train, checkpoint, resume, evaluate."""
import json
import os

import numpy as np
import pytest

from tinygrad_cv.data.idx import write_idx
from tinygrad_cv.lenet_demo import main


@pytest.fixture()
def fake_mnist(tmp_path):
    """Tiny MNIST-format data: each class is a bright bar at its own position, so it is learnable."""
    rng = np.random.default_rng(0)

    def make(n):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = (rng.random((n, 28, 28)) * 40).astype(np.uint8)
        for i, c in enumerate(labels):
            images[i, 2 + 2 * c : 4 + 2 * c, 4:24] = 255
        return images, labels

    for split, n in (("train", 256), ("t10k", 100)):
        images, labels = make(n)
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", labels)
    return tmp_path


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
