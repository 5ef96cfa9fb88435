"""The general training demo (tinygrad_cv/train_demo.py, ``tinygrad-cv-train``) end to end on tiny synthetic data.

Every architecture of the registry trains for one epoch of 2 batches on 32
MNIST-format images, writes its outputs and is reloaded by evaluate mode;
CIFAR-10-format files (sparse, so 184 MB of zeros cost no disk traffic) check
the colour path. The LeNet command's own behaviour is tested in
test_demo_lenet.py and test_faults_cli.py.
"""
import importlib.util
import json
import re
import sys

import numpy as np
import pytest

from tinygrad_cv import checkpoint, lenet_demo
from tinygrad_cv.train_demo import ARCHS, DATASETS, UsageError, defaults_for, main

CIFAR_RECORD, CIFAR_PER_FILE = 3073, 10_000


@pytest.fixture(scope="module")
def fake_mnist(tmp_path_factory, fake_mnist_files):
    # the conftest's writer through its fixture: "import conftest" would find tests/data/conftest.py in a full run
    return fake_mnist_files(tmp_path_factory.mktemp("mnist"), 64, 20)


@pytest.fixture(scope="module")
def fake_cifar(tmp_path_factory):
    """CIFAR-10 binary batches: the first records of each file hold a coloured bar per class, the rest zeros.

    The reader insists on the official 10,000 records per file; truncate() makes
    each file sparse, so only the written records take space.
    """
    folder = tmp_path_factory.mktemp("cifar") / "cifar-10-batches-bin"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in [(f"data_batch_{i}.bin", 64 if i == 1 else 0) for i in range(1, 6)] + [("test_batch.bin", 20)]:
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = (rng.random((n, 3, 32, 32)) * 40).astype(np.uint8)
        for i, c in enumerate(labels):
            images[i, c % 3, 2 + 2 * c: 4 + 2 * c, 4:28] = 255
        with open(folder / name, "wb") as f:
            f.write(np.concatenate([labels[:, None], images.reshape(n, 3072)], axis=1).tobytes())
            f.truncate(CIFAR_RECORD * CIFAR_PER_FILE)
    return folder.parent


def _tiny(data, out, *extra):
    # 32 images: 3 held out for validation, 29 trained on in 2 batches
    return ["--data", str(data), "--out", str(out), "--limit", "32", "--epochs", "1", "--batch-size", "16", *extra]


@pytest.mark.parametrize("arch", list(ARCHS))
def test_every_architecture_trains_and_evaluate_mode_reloads_it(arch, fake_mnist, tmp_path, capsys):
    out = tmp_path / arch
    assert main(_tiny(fake_mnist, out, "--arch", arch, "--no-plots", "--augment", "none")) == 0
    assert sorted(p.name for p in out.iterdir()) == ["best.safetensors", "history.json", "last.safetensors",
                                                     "results.json"]
    printed = capsys.readouterr().out
    title = ARCHS[arch].title
    n_params = int(re.search(re.escape(title) + r"(?: \(relu\))?, (\d+) parameters", printed).group(1))
    assert n_params > 0 and "29 training / 3 validation / 20 test images" in printed

    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1]
    assert np.isfinite(history[0]["train_loss"]) and np.isfinite(history[0]["val_loss"])
    results = json.loads((out / "results.json").read_text())
    assert (results["arch"], results["dataset"], results["epoch"]) == (arch, "mnist", 1)

    state = checkpoint.load_checkpoint(str(out / "last.safetensors"))
    assert state["extra"]["arch"] == arch and sum(v.numel() for v in state["model"].values()) >= n_params
    config, expected = state["extra"]["config"], defaults_for(arch, "mnist")
    # the architecture's defaults, except what the command gave, are what the checkpoint records
    assert (config["arch"], config["batch_size"], config["augment"]) == (arch, 16, "none")
    assert {k: config[k] for k in ("optimizer", "lr", "weight_decay", "variant")} == \
        {k: expected[k] for k in ("optimizer", "lr", "weight_decay", "variant")}

    # evaluate mode rebuilds the network from the checkpoint alone (no --arch); the strict load would refuse
    # another one's weights, and the same model on the same images gives the run's test accuracy
    assert main(["evaluate", str(out / "best.safetensors"), "--data", str(fake_mnist)]) == 0
    printed = capsys.readouterr().out
    assert f"{title}" in printed and "on mnist" in printed and "confusion matrix" in printed
    assert f"test accuracy {100 * results['test_acc']:.2f}% on 20 images" in printed


def test_cifar10_colour_images_with_crop_flip_and_plots(fake_cifar, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_tiny(fake_cifar, out, "--dataset", "cifar10")) == 0
    printed = capsys.readouterr().out
    assert "LeNet-5 (relu)" in printed and "cifar10, 29 training / 3 validation / 10000 test images" in printed
    assert "augment crop-flip" in printed  # CIFAR-10's default augmentation
    state = checkpoint.load_checkpoint(str(out / "last.safetensors"))
    assert state["model"]["features.0.weight"].shape == (6, 3, 5, 5)  # 3 input channels, 32×32: no padding
    assert state["extra"]["config"]["dataset"] == "cifar10"
    if importlib.util.find_spec("matplotlib") is not None:  # the plots need it (the [plots] extra)
        assert (out / "lenet_training.png").stat().st_size > 1000

    assert main(["evaluate", str(out / "best.safetensors"), "--data", str(fake_cifar)]) == 0
    assert "on cifar10: test accuracy" in capsys.readouterr().out


def test_resume_refuses_another_architecture(fake_mnist, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    assert main(_tiny(fake_mnist, out, "--arch", "maxout", "--no-plots", "--no-test")) == 0
    with pytest.raises(UsageError, match=r"trained with --arch maxout, this command asks for --arch lenet5"):
        main(_tiny(fake_mnist, out, "--arch", "lenet5", "--resume", "--epochs", "2"))
    # the LeNet command names the one that continues the run
    with pytest.raises(UsageError, match=r"it is a maxout run, and tinygrad-cv-lenet trains lenet5 only \(use "
                                         r"tinygrad-cv-train --arch maxout --resume\)"):
        lenet_demo.main(["--data", str(fake_mnist), "--out", str(out), "--resume", "--epochs", "2"])

    # as the program: one line, exit status 2
    monkeypatch.setattr(sys, "argv", ["tinygrad-cv-train", *_tiny(fake_mnist, out, "--arch", "vgg_small",
                                                                  "--resume", "--epochs", "2")])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1
    assert err[0].startswith("tinygrad-cv-train: error: cannot resume") and "--arch maxout" in err[0]

    # without --arch the saved one is used
    assert main(["--data", str(fake_mnist), "--out", str(out), "--resume", "--epochs", "2", "--no-plots",
                 "--no-test"]) == 0
    state = checkpoint.load_checkpoint(str(out / "last.safetensors"))
    assert state["epoch"] == 2 and state["extra"]["config"]["arch"] == "maxout"


def test_a_checkpoint_from_before_arch_resumes_as_lenet5(fake_mnist, tmp_path):
    out = tmp_path / "run"
    assert lenet_demo.main(_tiny(fake_mnist, out, "--no-plots", "--no-test", "--augment", "none")) == 0
    last = str(out / "last.safetensors")
    saved = checkpoint.load_checkpoint(last)
    extra = saved["extra"]
    del extra["arch"], extra["config"]["arch"]  # what the LeNet demo wrote before --arch
    checkpoint.save_checkpoint(last, model=saved["model"], optimizer=saved["optimizer"],
                               scheduler=saved["scheduler"], epoch=saved["epoch"], extra=extra)
    assert main(["--out", str(out), "--data", str(fake_mnist), "--resume", "--epochs", "2", "--no-plots",
                 "--no-test"]) == 0
    state = checkpoint.load_checkpoint(last)
    assert state["epoch"] == 2 and state["extra"]["config"]["arch"] == "lenet5"
    with pytest.raises(UsageError, match="--arch lenet5, this command asks for --arch resnet20"):
        main(["--out", str(out), "--data", str(fake_mnist), "--resume", "--epochs", "3", "--arch", "resnet20"])


def test_unknown_architecture_is_an_argparse_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--arch", "resnet1000", "--out", str(tmp_path / "never")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --arch: invalid choice: 'resnet1000'" in err and "resnet20" in err
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "mnist", "--augment", "crop-flip"], "--augment crop-flip mirrors images"),
    (["--dataset", "cifar10", "--augment", "elastic"],
     "--augment elastic is a distortion of handwritten digits (mnist, fashion-mnist); --dataset cifar10 takes "
     "none or crop-flip"),
    (["--arch", "resnet20", "--variant", "1998"], "--variant is an option of --arch lenet5; resnet20 has no variants"),
])
def test_options_that_do_not_fit_the_architecture_or_dataset_are_refused(argv, message, tmp_path):
    with pytest.raises(UsageError, match=re.escape(message)):
        main(argv + ["--out", str(tmp_path / "run"), "--data", str(tmp_path)])
    assert not (tmp_path / "run").exists()  # refused before anything is written


def test_default_output_folder_and_hyperparameters_follow_the_architecture():
    from tinygrad_cv.train_demo import build_parser

    resnet = defaults_for("resnet56", "cifar10")
    assert (resnet["optimizer"], resnet["lr"], resnet["momentum"], resnet["weight_decay"], resnet["batch_size"],
            resnet["schedule"], resnet["augment"]) == ("sgd", 0.1, 0.9, 1e-4, 128, "cosine", "crop-flip")
    assert defaults_for("lenet5", "mnist")["lr"] == 2e-3 and defaults_for("lenet5", "mnist")["augment"] == "affine"
    assert set(DATASETS) == {"mnist", "fashion-mnist", "cifar10"}
    assert "runs/ARCH" in build_parser().format_help() and "--arch" not in lenet_demo.build_parser().format_help()
