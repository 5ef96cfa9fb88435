"""Train a CNN (LeNet-5, CIFAR ResNets and their plain twins, a small VGG, NiN, a maxout network) on MNIST,
Fashion-MNIST or CIFAR-10: the project's training demo.

    python demos/train_cnn.py                                   # LeNet-5 on MNIST, the defaults
    python demos/train_cnn.py --arch resnet20 --dataset cifar10 --data DIR
    python demos/train_cnn.py --arch resnet20 --dataset cifar10 --data DIR --resume   # continue runs/resnet20
    python demos/train_cnn.py evaluate runs/resnet20/best.safetensors --data DIR

Also installed as the console command ``tinygrad-cv-train``;
``tinygrad-cv-lenet`` (``tinygrad_cv/lenet_demo.py``, ``demos/train_lenet_mnist.py``)
is the same trainer with the architecture fixed to LeNet-5. Each epoch shows
a progress bar (``tqdm.auto``: batches/s, running loss), then the train loss
and accuracy, the validation loss and accuracy and the time; a checkpoint
(safetensors) is written after every epoch, and with matplotlib installed a
PNG of the curves and of the first convolution's learned filters.

Architectures and datasets
--------------------------
``--arch`` picks a network from ``ARCHS`` (``lenet5`` by default; ``--variant``
chooses LeNet-5's relu or 1998 form and applies to it only); ``--dataset``
picks ``mnist``, ``fashion-mnist`` (1×28×28) or ``cifar10`` (3×32×32), and
the network is built for the dataset's channels and image size. The
defaults of the optimiser, learning rate, weight decay, batch size and
number of epochs depend on the architecture (``--help`` lists them), the
default augmentation on the dataset; any of them can be given. ``--augment``
``shift``, ``affine`` and ``elastic`` are the distortions of handwritten
digits and apply to MNIST and Fashion-MNIST; ``crop-flip`` (random crop of
the image padded by 1/8 of its side, and a horizontal flip) is CIFAR-10's
standard augmentation and applies to CIFAR-10 and Fashion-MNIST, not to
MNIST, where a mirrored digit is no digit.

Evaluation
----------
The last ``--val-size`` images of the training file (default: 5,000 of a
training set of 50,000 or more, a tenth of smaller sets) are held out as a
validation set: never trained on, evaluated after every epoch. The epoch
with the best validation accuracy (the first, on ties) is the one chosen;
its weights are kept in ``OUT/best.safetensors``. The test set is evaluated
once, at the end, on that model only (``OUT/results.json``) — it never takes
part in a choice.

Resuming
--------
The checkpoint holds, besides the weights, optimiser and schedule, the
run's configuration (its architecture included) and the state of every
random generator a training step draws from (the data order, the
augmentation, the library's global generator behind dropout and
initialisers). ``--resume`` restores all of it, so a run that is killed and
resumed ends with the same weights, bit for bit, as one that never stopped.
The checkpoint read is ``OUT/last.safetensors``, with ``OUT`` defaulting to
``runs/<arch>``: resume a ``--arch resnet20`` run with ``--arch resnet20
--resume`` (or ``--out`` naming its folder).

On ``--resume`` an option that is not given takes its saved value. These
define the run and must not change (one given with another value is refused,
naming both): ``--arch``, ``--variant``, ``--dataset``, ``--optimizer``,
``--lr``, ``--momentum``, ``--weight-decay``, ``--schedule``, ``--augment``,
``--batch-size``, ``--limit``, ``--seed``, ``--val-size``. These may change:
``--epochs``, ``--data`` (the folder, not the images: the training set must
keep its size), ``--device``, ``--no-plots``, ``--no-test`` and ``--debug``.
Checkpoints written before ``--arch`` existed resume as ``lenet5``.

A new ``--epochs`` on resume moves the end of the schedule; the learning rate
never jumps up at the resume point:

- ``cosine``: the rest of the run follows the cosine over the new total,
  scaled to start from the current rate: with ``c(t) = 1 + cos(pi t / T)``,
  ``T`` the new total of steps and ``t0`` the resume step,
  ``lr(t) = lr(t0) c(t) / c(t0)``, which reaches 0 at the new last epoch. A
  finished schedule has reached 0 already, so epochs added after it leave the
  weights unchanged (the demo says so).
- ``step``: the rate keeps dropping tenfold every third of the *original*
  number of epochs.
- ``none``: the rate stays constant.

``--epochs`` below the epochs already trained is refused.

Errors
------
A user error (an invalid option, a missing data folder, an output folder that
cannot be written, an unusable checkpoint or data file, an unavailable
device, a ``--resume`` that does not fit its checkpoint) prints one line
``tinygrad-cv-train: error: ...`` and exits with status 2, before any
training; ``--debug`` shows the full traceback instead.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np
from tqdm.auto import tqdm

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import checkpoint, models, nn, optim
from tinygrad_cv import random as tg_random
from tinygrad_cv.cuda import CudaUnavailableError
from tinygrad_cv.data import CIFAR10, MNIST, CIFARError, DataLoader, FashionMNIST, IDXError
from tinygrad_cv.data import transforms as T
from tinygrad_cv.cli import UsageError, integer
from tinygrad_cv.io.safetensors import atomic_output
from tinygrad_cv.io.figures import pyplot, save_png
from tinygrad_cv.kernels.jit import compile_notice


# --- architectures ----------------------------------------------------------------------------------
def lenet5(in_channels=1, num_classes=10, image_size=28, variant="relu"):
    """LeNet-5 (``models.LeNet5``), with its first convolution fitted to the input.

    ``models.LeNet5`` reads 1×28×28 images, padding them by 2 to the 1998
    net's 32×32 geometry. For 32×32 input (CIFAR-10) the first convolution
    gets no padding instead, which *is* that geometry (32 -> 28 -> 14 -> 10 -> 5,
    the 16·5·5 features the classifier expects), and ``in_channels`` inputs.
    The 1×28×28 net is built exactly as ``LeNet5(num_classes, variant)``, so
    its initial weights do not change with this function.
    """
    model = models.LeNet5(num_classes=num_classes, variant=variant)
    if (in_channels, image_size) != (1, 28):
        padding = {28: 2, 32: 0}.get(image_size)
        if padding is None:
            raise ValueError(f"LeNet-5 takes 28×28 or 32×32 images, not {image_size}×{image_size}")
        model.features[0] = nn.Conv2d(in_channels, 6, kernel_size=5, padding=padding)
    return model


class MaxoutNet(nn.Module):
    """A small maxout CNN (after Goodfellow et al., 2013): every activation is a max over 2 linear pieces.

    ::

        features:   conv 5×5 pad 2, 2·32 maps -> maxout 2 -> 32 maps -> maxpool 2   (28 -> 14; 32 -> 16)
                    conv 5×5 pad 2, 2·64 maps -> maxout 2 -> 64 maps -> maxpool 2   (14 -> 7;  16 -> 8)
        classifier: flatten -> dropout 0.5 -> linear -> 2·128 -> maxout 2 -> 128 -> dropout 0.5 -> linear -> classes

    Maxout has no fixed shape: each unit learns its own convex piecewise-linear
    activation from its pieces, and the paper pairs it with dropout, whose
    averaging of sub-networks maxout approximates well. 908,554 parameters
    for 1×28×28 input and 10 classes (the first linear layer, 3136 -> 256,
    holds most of them). Initialisation: the layers' defaults.
    """

    def __init__(self, in_channels=1, num_classes=10, image_size=28, pieces=2, dropout=0.5):
        super().__init__()
        side = image_size // 4  # two 2×2 pools
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32 * pieces, kernel_size=5, padding=2), nn.Maxout(pieces), nn.MaxPool2d(2),
            nn.Conv2d(32, 64 * pieces, kernel_size=5, padding=2), nn.Maxout(pieces), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout),
            nn.Linear(64 * side * side, 128 * pieces), nn.Maxout(pieces), nn.Dropout(dropout),
            nn.Linear(128, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


@dataclasses.dataclass(frozen=True)
class Arch:
    """An architecture of ``--arch``: its printed name, how to build it, and the defaults that fit it."""

    title: str
    build: Callable  # build(in_channels, num_classes, image_size) -> Module (lenet5 also takes variant=)
    defaults: dict  # options whose LeNet defaults (DEFAULTS) are wrong for this network
    stem: str = ""  # the plot's file name is STEM_training.png (default: the --arch name)


# He et al. (2016), section 4.2: SGD with momentum 0.9, learning rate 0.1, batch 128, weight decay 1e-4 (the
# paper's CIFAR value, kept so --arch resnet20 / plain20 repeat its experiment; 5e-4 is the other common choice
# for short schedules). The paper's 164 epochs with two tenfold drops become 30 epochs of cosine decay: what
# a 2-core CPU can do in a night, and cosine needs no choice of drop points.
RESNET_DEFAULTS = dict(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4, batch_size=128, epochs=30)
ARCHS = {
    "lenet5": Arch("LeNet-5", lenet5, {}, stem="lenet"),
    "resnet20": Arch("ResNet-20", lambda c, k, s: models.resnet20(num_classes=k, in_channels=c), RESNET_DEFAULTS),
    "plain20": Arch("plain-20", lambda c, k, s: models.plain20(num_classes=k, in_channels=c), RESNET_DEFAULTS),
    "resnet56": Arch("ResNet-56", lambda c, k, s: models.resnet56(num_classes=k, in_channels=c), RESNET_DEFAULTS),
    "plain56": Arch("plain-56", lambda c, k, s: models.plain56(num_classes=k, in_channels=c), RESNET_DEFAULTS),
    # Adam, not VGG's SGD: the classifier's N(0, 0.01²) initialisation (torchvision's, made for 4096-unit
    # layers) shrinks the signal through 128-unit layers so much that SGD with momentum at 0.01 or 0.05 stayed
    # at chance for 60 steps on MNIST, where Adam, whose steps do not scale with the gradient, got going at once
    "vgg_small": Arch("VGG-small", lambda c, k, s: models.vgg_small(in_channels=c, num_classes=k),
                      dict(optimizer="adam", lr=2e-3, batch_size=128, epochs=30)),
    # No batch norm, and a ReLU on the class maps before the global pool: a step that pushes every class map
    # below 0 leaves no gradient, and the net stays at chance for good. On MNIST, Adam at 1e-3 did that within
    # the first epoch (SGD with momentum at 0.01 was still at chance after 30 steps); Adam at 3e-4 kept learning.
    "nin": Arch("NiN", lambda c, k, s: models.nin(in_channels=c, num_classes=k),
                dict(optimizer="adam", lr=3e-4, batch_size=128, epochs=30)),
    "maxout": Arch("maxout CNN", lambda c, k, s: MaxoutNet(c, k, s), dict(optimizer="adam", lr=1e-3)),
}


def make_model(arch, in_channels, num_classes, image_size, variant):
    spec = ARCHS[arch]
    if arch == "lenet5":
        return spec.build(in_channels, num_classes, image_size, variant=variant)
    return spec.build(in_channels, num_classes, image_size)


# --- datasets ----------------------------------------------------------------------------------------
DIGIT_AUGMENTS = ("shift", "affine", "elastic")
AUGMENTS = ("none", *DIGIT_AUGMENTS, "crop-flip")


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A dataset of ``--dataset``: its class, normalisation, image shape and the augmentations that keep labels."""

    load: Callable  # load(root, train) -> dataset
    mean: float | tuple
    std: float | tuple
    channels: int
    size: int
    augments: tuple
    augment: str  # the default
    noun: str  # what a class is, for the confusion matrix


def _cifar10(root, train):
    # like MNIST, a missing dataset is downloaded (CIFAR10 itself defaults to download=False: 170 MB)
    return CIFAR10(root, train=train, download=True)


DATASETS = {
    # the training sets' statistics of pixel values scaled to [0, 1]
    "mnist": Dataset(lambda root, train: MNIST(root, train=train), 0.1307, 0.3081, 1, 28,
                     ("none", *DIGIT_AUGMENTS), "affine", "digit"),
    # clothes are left-right symmetric in their labels, so the flip of crop-flip keeps them
    "fashion-mnist": Dataset(lambda root, train: FashionMNIST(root, train=train), 0.2860, 0.3530, 1, 28,
                             AUGMENTS, "affine", "class"),
    "cifar10": Dataset(_cifar10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 3, 32,
                       ("none", "crop-flip"), "crop-flip", "class"),
}
NUM_CLASSES = 10  # all three datasets

# Defaults of the options a resumed run inherits from its checkpoint: LeNet-5's, overridden per architecture
# (Arch.defaults) and, for the augmentation, per dataset. The parser leaves them None, so that "not given" can
# be told apart from "given with the default value".
DEFAULTS = dict(arch="lenet5", dataset="mnist", epochs=15, batch_size=64, lr=2e-3, optimizer="adam", momentum=0.9,
                weight_decay=0.0, schedule="cosine", augment=None, variant="relu", seed=0, limit=None,
                val_size="auto")
# The options that define a run: saved in its checkpoint and fixed on --resume (see the module docstring).
FIXED_ON_RESUME = ("arch", "variant", "dataset", "optimizer", "lr", "momentum", "weight_decay", "schedule",
                   "augment", "batch_size", "limit", "seed", "val_size")
# --val-size auto: a validation set the size of MNIST's usual 5,000 held-out images on the full training set,
# a tenth of smaller ones (1,000 of the 10,000-image subset)
VAL_FULL, VAL_FULL_FROM, VAL_FRACTION = 5000, 50000, 10


def defaults_for(arch, dataset):
    """The default of every run option for ``arch`` trained on ``dataset``."""
    d = dict(DEFAULTS, **ARCHS[arch].defaults)
    d.update(arch=arch, dataset=dataset, augment=DATASETS[dataset].augment)
    if arch != "lenet5":
        d["variant"] = None  # the other networks have no variants; the checkpoint does not claim one
    return d


@dataclasses.dataclass(frozen=True)
class Program:
    """A command line built on this trainer: ``tinygrad-cv-train``, or one with the architecture fixed."""

    prog: str
    description: str
    arch: str | None = None  # None: chosen with --arch; else the only architecture it trains
    out: str | None = None  # the default output folder; None: runs/<arch>


TRAIN = Program("tinygrad-cv-train", "Train a CNN on MNIST, Fashion-MNIST or CIFAR-10 with tinygrad_cv.")


# --- option parsing ---------------------------------------------------------------------------
_integer = integer


def _real(low, high=math.inf, low_open=False, high_open=True):
    lo, hi = ("(" if low_open else "["), ("]" if not high_open else ")")
    span = f"{lo}{low:g}, {'inf' if high == math.inf else f'{high:g}'}{hi}"

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        # nan fails every comparison, so it is refused here too; inf is never a usable rate or coefficient
        ok = math.isfinite(value) and (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high)
        if not ok:
            raise argparse.ArgumentTypeError(f"must be in {span}, got {text}")
        return value

    return parse


def _val_size(text):
    return "auto" if text == "auto" else _integer(0)(text)


def resolve_val_size(val_size, n):
    """The number of images held out for validation from a training set of ``n`` (``val_size``: int or 'auto')."""
    if val_size == "auto":
        val_size = VAL_FULL if n >= VAL_FULL_FROM else n // VAL_FRACTION
    if val_size >= n:
        raise UsageError(f"--val-size {val_size} leaves no training images (the training set has {n})")
    return val_size


def _device(text):
    """'cpu' or 'cuda' (':0' accepted): checked here, so a typo is not mistaken for a dtype further down."""
    name = text.strip().lower()
    if name in ("cpu", "cpu:0"):
        return "cpu"
    if name in ("cuda", "cuda:0"):
        return "cuda"
    if name.startswith("cuda:"):
        raise argparse.ArgumentTypeError(f"device {text!r}: only one GPU is supported; use cuda (or cuda:0)")
    raise argparse.ArgumentTypeError(f"unknown device {text!r}; expected cpu or cuda")


def _arch_defaults_text():
    lines = []
    for name, spec in ARCHS.items():
        d = defaults_for(name, "mnist")
        wd = f", weight decay {d['weight_decay']:g}" if d["weight_decay"] else ""
        mom = f", momentum {d['momentum']:g}" if d["optimizer"] in ("sgd", "rmsprop") else ""
        lines.append(f"{name} ({spec.title}): {d['optimizer']} lr {d['lr']:g}{mom}{wd}, batch {d['batch_size']}, "
                     f"{d['epochs']} epochs")
    return "; ".join(lines)


def build_parser(program=TRAIN):
    fixed = program.arch
    d = DEFAULTS if fixed is None else defaults_for(fixed, DEFAULTS["dataset"])
    per_arch = "" if fixed else ", per architecture"
    p = argparse.ArgumentParser(
        prog=program.prog, description=program.description,
        epilog=("" if fixed else "Defaults per architecture (all with the cosine schedule): "
                + _arch_defaults_text() + ". ")
        + "Default augmentation: affine on mnist and fashion-mnist, crop-flip on cifar10. "
        + ("" if fixed else "--resume reads OUT/last.safetensors, and OUT defaults to runs/ARCH: resume a run "
           "with the --arch (or the --out) that started it; the other options come from the checkpoint. ")
        + "--resume restores the exact state of the run (weights, optimiser, schedule, random generators) "
        "from OUT/last.safetensors; options not given take their saved values. Only --epochs, --data, "
        "--device, --no-plots, --no-test and --debug may differ from the saved run. A new --epochs moves the end "
        "of the schedule without raising the learning rate: cosine continues from the current rate along the "
        "cosine over the new total, down to 0 at its last epoch (a finished cosine stays at 0); step keeps "
        "its original decay epochs. User errors print one line and exit with status 2 (--debug: traceback).")
    p.add_argument("mode", nargs="?", default="train", choices=["train", "evaluate"],
                   help="train (default) or evaluate a checkpoint")
    p.add_argument("checkpoint", nargs="?", help="checkpoint to evaluate (evaluate mode)")
    if fixed is None:
        p.add_argument("--arch", choices=list(ARCHS), help=f"the network (default {DEFAULTS['arch']})")
    p.add_argument("--data", default=None,
                   help="data folder, which must exist (default: $TINYGRAD_CV_DATA, then ~/.cache/tinygrad_cv); "
                        "missing files are downloaded into it (CIFAR-10: a 170 MB archive)")
    p.add_argument("--dataset", choices=list(DATASETS), help=f"default {d['dataset']}")
    p.add_argument("--epochs", type=_integer(1),
                   help=f"total number of epochs, >= 1 (default {d['epochs']}{per_arch}; on --resume, the saved "
                        "total)")
    p.add_argument("--batch-size", type=_integer(1), help=f">= 1 (default {d['batch_size']}{per_arch})")
    p.add_argument("--lr", type=_real(0, low_open=True),
                   help=f"peak learning rate, > 0 (default {d['lr']:g}{per_arch})")
    p.add_argument("--optimizer", choices=["adam", "adamw", "sgd", "rmsprop", "adagrad"],
                   help=f"default {d['optimizer']}{per_arch}")
    p.add_argument("--momentum", type=_real(0, 1), help=f"for sgd / rmsprop, in [0, 1) (default {d['momentum']})")
    p.add_argument("--weight-decay", type=_real(0),
                   help=f">= 0 (default {d['weight_decay']:g}{per_arch}; adamw uses 1e-2 when it is 0)")
    p.add_argument("--schedule", choices=["cosine", "step", "none"],
                   help=f"learning-rate schedule, stepped every batch (default {d['schedule']})")
    p.add_argument("--augment", choices=list(AUGMENTS),
                   help="training-set augmentation applied per batch: shift, affine, elastic for mnist and "
                        "fashion-mnist; crop-flip (pad by 1/8 of the side, random crop, horizontal flip) for "
                        "cifar10 and fashion-mnist (default: affine, on cifar10 crop-flip)")
    p.add_argument("--variant", choices=["relu", "1998"],
                   help="LeNet-5 only: relu+max-pool, or the 1998 tanh+avg-pool net (default relu)")
    p.add_argument("--seed", type=_integer(0), help=f">= 0 (default {d['seed']})")
    p.add_argument("--device", type=_device, default="cpu",
                   help="cpu (default), or cuda for an NVIDIA GPU (needs the [cuda] extra)")
    out = program.out or "runs/ARCH"
    p.add_argument("--out", default=None, help=f"output folder for checkpoints and plots (default {out})")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.safetensors (see below)")
    p.add_argument("--limit", type=_integer(1), help="use only the first N >= 1 training images (quick runs)")
    p.add_argument("--val-size", type=_val_size,
                   help="hold out the last N training images for validation, which chooses the epoch whose model "
                        f"is tested (default auto: {VAL_FULL} of a training set of {VAL_FULL_FROM} or more, else "
                        f"1/{VAL_FRACTION} of it; 0: no validation, the last epoch's model is tested)")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--no-test", action="store_true",
                   help="do not evaluate the test set at the end (for runs that compare settings on validation "
                        "accuracy, e.g. demos/lenet_ablation.py: the test set stays unseen)")
    p.add_argument("--debug", action="store_true", help="on an error, show the full traceback")
    return p


def _given(args):
    """The run options set on the command line (the rest are None until filled in)."""
    return {k: getattr(args, k) for k in DEFAULTS if getattr(args, k) is not None}


def _fill(args, values):
    for k, v in values.items():
        if getattr(args, k) is None:
            setattr(args, k, v)


def check_variant(given, arch):
    # checked before the resume's comparison with the saved options, which would name a saved variant of None
    if "variant" in given and arch != "lenet5":
        raise UsageError(f"--variant is an option of --arch lenet5; {arch} has no variants")


def check_combination(args):
    """Refuse options that do not fit the architecture or dataset (after the defaults are filled in)."""
    spec = DATASETS[args.dataset]
    if args.augment not in spec.augments:
        why = ("mirrors images, and a mirrored digit is no digit" if args.augment == "crop-flip"
               else "is a distortion of handwritten digits (mnist, fashion-mnist)")
        raise UsageError(f"--augment {args.augment} {why}; --dataset {args.dataset} takes "
                         f"{', '.join(spec.augments[:-1])} or {spec.augments[-1]}")


# --- building the run -----------------------------------------------------------------------------
def load_data(args):
    spec = DATASETS[args.dataset]
    return spec.load(args.data, True), spec.load(args.data, False)


def normaliser(args):
    spec = DATASETS[args.dataset]
    return T.Normalize(spec.mean, spec.std)


def augmentation(args, rng):
    if args.augment == "shift":
        return T.RandomShift(2, rng=rng)
    if args.augment == "affine":
        return T.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1), rng=rng)
    if args.augment == "elastic":
        return T.Compose([T.RandomAffine(degrees=8, translate=(0.08, 0.08), scale=(0.92, 1.08), rng=rng),
                          T.ElasticDistortion(alpha=8.0, sigma=3.0, rng=rng)])
    if args.augment == "crop-flip":
        # He et al.'s CIFAR recipe: 4 pixels of zero padding on 32×32, a random 32×32 crop, a coin-flip mirror;
        # 3 pixels (the same 1/8 of the side) on 28×28
        size = DATASETS[args.dataset].size
        return T.Compose([T.RandomCrop(size, padding=size // 8, rng=rng), T.RandomHorizontalFlip(rng=rng)])
    return None


def build_model(args):
    spec = DATASETS[args.dataset]
    return make_model(args.arch, spec.channels, NUM_CLASSES, spec.size, args.variant).to(args.device)


def model_name(args):
    title = ARCHS[args.arch].title
    return f"{title} ({args.variant})" if args.arch == "lenet5" else title


def make_optimizer(args, params):
    if args.optimizer == "adam":
        return optim.Adam(params, lr=args.lr, weight_decay=args.weight_decay)
    if args.optimizer == "adamw":
        return optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay or 1e-2)
    if args.optimizer == "sgd":
        return optim.SGD(params, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    if args.optimizer == "rmsprop":
        return optim.RMSprop(params, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    return optim.Adagrad(params, lr=args.lr, weight_decay=args.weight_decay)


def make_scheduler(args, opt, steps_per_epoch):
    if args.schedule == "cosine":  # per batch, from lr down to 0 over the whole run
        return optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(args.epochs * steps_per_epoch, 1))
    if args.schedule == "step":
        return optim.lr_scheduler.StepLR(opt, step_size=max(steps_per_epoch * max(args.epochs // 3, 1), 1), gamma=0.1)
    return None


def check_output_folder(out):
    """Create ``out`` and write (then remove) a probe file in it, so an unusable folder fails before any work."""
    try:
        os.makedirs(out, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=out)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise UsageError(f"output folder {out} cannot be written: {e.strerror or e}") from e


def check_data_folder(data):
    # an explicit folder that does not exist is almost always a typo; downloading into it would hide that
    if data is not None and not os.path.isdir(os.path.expanduser(data)):
        what = "is not a folder" if os.path.exists(os.path.expanduser(data)) else "does not exist"
        raise UsageError(f"data folder {data} {what}")


# --- random generators in the checkpoint --------------------------------------------------------
def rng_states(loader, aug_rng):
    """The state of every generator a training step draws from (JSON-able: numpy's dicts of plain ints)."""
    return {"data_order": loader.generator.bit_generator.state,
            "augment": aug_rng.bit_generator.state,
            "library": tg_random.default_generator().bit_generator.state}


def restore_rng_states(states, loader, aug_rng, where):
    gens = {"data_order": loader.generator, "augment": aug_rng, "library": tg_random.default_generator()}
    for name, gen in gens.items():
        try:
            gen.bit_generator.state = states[name]
        except (KeyError, TypeError, ValueError) as e:
            raise checkpoint.CheckpointError(
                f"{where}: the saved state of the {name} random generator is unusable ({e})") from e


# --- resume ---------------------------------------------------------------------------------------------
def _option(name):
    return "--" + name.replace("_", "-")


def saved_config(contents, where, program=TRAIN):
    """The run configuration stored in a checkpoint's ``extra`` (older demo checkpoints: from its ``args``)."""
    extra = contents.get("extra") or {}
    config = extra.get("config")
    if config is None and isinstance(extra.get("args"), dict):
        config = {k: extra["args"][k] for k in DEFAULTS if k in extra["args"]}
        config.setdefault("val_size", 0)  # older runs trained on every training image
    if isinstance(config, dict):
        config = dict(config)
        config.setdefault("arch", "lenet5")  # written before --arch existed: the LeNet demo's
    if not isinstance(config, dict) or not all(k in config for k in (*FIXED_ON_RESUME, "epochs")):
        raise UsageError(f"{where} holds no run configuration (not written by {program.prog}); cannot resume from it")
    if config["arch"] not in ARCHS:
        raise UsageError(f"{where} was trained with --arch {config['arch']}, which {program.prog} does not know")
    return config


def reconcile(args, config, where, program=TRAIN):
    """Refuse options given with values other than the saved ones; fill the others from ``config``."""
    given = _given(args)
    if program.arch is not None and config["arch"] != program.arch:
        raise UsageError(f"cannot resume {where}: it is a {config['arch']} run, and {program.prog} trains "
                         f"{program.arch} only (use {TRAIN.prog} --arch {config['arch']} --resume)")
    clashes = [k for k in FIXED_ON_RESUME if k in given and given[k] != config[k]]
    if clashes:
        saved = " ".join(f"{_option(k)} {config[k]}" for k in clashes)
        asked = " ".join(f"{_option(k)} {given[k]}" for k in clashes)
        raise UsageError(f"cannot resume {where}: it was trained with {saved}, this command asks for {asked} "
                         f"(only --epochs, --data, --device, --no-plots, --no-test and --debug may change on "
                         "resume)")
    _fill(args, {k: config[k] for k in (*FIXED_ON_RESUME, "epochs")})


# --- training -------------------------------------------------------------------------------------
def evaluate(model, loader, num_classes=NUM_CLASSES, device="cpu"):
    """Accuracy, confusion matrix (rows: true class, columns: predicted) and mean cross-entropy loss."""
    model.eval()
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    total_loss = 0.0
    with tg.no_grad():
        for images, labels in loader:
            logits = model(tg.from_numpy(images).to(device))
            total_loss += F.cross_entropy(logits, tg.from_numpy(labels).to(device)).item() * len(labels)
            np.add.at(confusion, (labels, logits.argmax(1).numpy()), 1)
    model.train()
    n = max(confusion.sum(), 1)
    return np.trace(confusion) / n, confusion, total_loss / n


def train_epoch(model, loader, opt, scheduler, epoch, epochs, device="cpu"):
    model.train()
    # tqdm.auto: a text bar in a terminal, a widget in a notebook; on stdout, with the epoch's other lines
    bar = tqdm(loader, total=len(loader), desc=f"epoch {epoch}/{epochs}", unit="batch", file=sys.stdout,
               mininterval=0.2, dynamic_ncols=True)
    total_loss, correct, seen, running = 0.0, 0, 0, None
    for images, labels in bar:
        # the batch is the one host-to-device copy of a step; everything else stays on `device`
        x, y = tg.from_numpy(images).to(device), tg.from_numpy(labels).to(device)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if scheduler is not None:
            scheduler.step()
        lv = loss.item()
        running = lv if running is None else 0.98 * running + 0.02 * lv
        total_loss += lv * len(labels)
        correct += int((logits.argmax(1) == y).sum().item())
        seen += len(labels)
        bar.set_postfix_str(f"loss {running:.4f}", refresh=False)
    bar.close()
    return total_loss / max(seen, 1), correct / max(seen, 1)


def first_conv(model):
    """The first ``Conv2d`` of ``model`` in registration order (the first one the input meets, in these nets)."""
    return next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)


MAX_FILTERS = 64  # the plot shows at most this many first-layer filters


def filter_images(weight):
    """First-layer filters (C_out, C_in, k, k) as images: RGB (k, k, 3) for 3 input channels, else channel 0.

    An RGB filter is min-max scaled as a whole to [0, 1], so the balance between its colours is kept; a
    one-channel filter is scaled by imshow, per filter, as a grey image.
    """
    images = []
    for w in weight[:MAX_FILTERS]:
        if w.shape[0] == 3:
            lo, hi = w.min(), w.max()
            images.append(np.transpose((w - lo) / (hi - lo if hi > lo else 1.0), (1, 2, 0)))
        else:
            images.append(w[0])
    return images


def save_plots(out, history, model, stem="lenet"):
    plt = pyplot()
    if plt is None:
        return None
    import matplotlib.ticker
    epochs = [h["epoch"] for h in history]
    fig = plt.figure(figsize=(13, 3.6))
    grid = fig.add_gridspec(1, 3, width_ratios=(1, 1, 1.1), wspace=0.3)
    loss_ax, acc_ax = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    loss_ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    # checkpoints of older runs have no validation loss
    if any(h.get("val_loss") is not None for h in history):
        loss_ax.plot(epochs, [h.get("val_loss") for h in history], "o-", label="validation")
    loss_ax.set(title="loss (cross-entropy)", xlabel="epoch")
    loss_ax.legend()
    acc_ax.plot(epochs, [100 * h["train_acc"] for h in history], "o-", label="train")
    if any(h.get("val_acc") is not None for h in history):
        acc_ax.plot(epochs, [100 * h["val_acc"] for h in history], "o-", label="validation")
    acc_ax.set(title="accuracy (%)", xlabel="epoch")
    acc_ax.legend()
    for ax in (loss_ax, acc_ax):  # whole epochs only: no tick at epoch 0.96
        if len(epochs) <= 12:
            ax.set_xticks(epochs)
        else:
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    conv = first_conv(model)
    if conv is not None:
        weight = conv.weight.detach().numpy()
        images = filter_images(weight)
        cols = math.ceil(math.sqrt(len(images)))  # 6 filters: 3 × 2, 16: 4 × 4, 64: 8 × 8
        rows = math.ceil(len(images) / cols)
        cells = grid[2].subgridspec(rows + 1, cols, height_ratios=(0.35, *[1] * rows), wspace=0.1, hspace=0.1)
        title = fig.add_subplot(cells[0, :])
        title.axis("off")
        shown = f"the {len(weight)}" if len(images) == len(weight) else f"{len(images)} of the {len(weight)}"
        title.set_title(f"first convolution: {shown} learned {weight.shape[2]}×{weight.shape[3]} filters")
        for k, image in enumerate(images):
            ax = fig.add_subplot(cells[1 + k // cols, k % cols])
            ax.imshow(image, cmap=None if image.ndim == 3 else "gray")
            ax.set_xticks([])
            ax.set_yticks([])
    path = save_png(fig, os.path.join(out, f"{stem}_training.png"), dpi=110)
    plt.close(fig)
    return path


def run_evaluate(args, program=TRAIN):
    if not args.checkpoint:
        raise UsageError(f"evaluate needs a checkpoint path: {program.prog} evaluate runs/ARCH/best.safetensors")
    if not os.path.isfile(args.checkpoint):
        raise UsageError(f"no checkpoint file at {args.checkpoint}")
    check_data_folder(args.data)
    state = checkpoint.load_checkpoint(args.checkpoint)
    meta = state.get("extra") or {}
    # the network and data of the checkpoint, not of the options (checkpoints before --arch: LeNet-5)
    args.arch = meta.get("arch", "lenet5")
    if args.arch not in ARCHS:
        raise UsageError(f"{args.checkpoint} holds a {args.arch} network, which {program.prog} does not know")
    args.dataset = meta.get("dataset", args.dataset or DEFAULTS["dataset"])
    if args.dataset not in DATASETS:
        raise UsageError(f"{args.checkpoint} was trained on {args.dataset}, which {program.prog} does not know")
    args.variant = meta.get("variant", args.variant or DEFAULTS["variant"])
    model = build_model(args)
    checkpoint.load_checkpoint(args.checkpoint, model=model)
    _, test = load_data(args)
    loader = DataLoader(test, batch_size=1000, transform=normaliser(args))
    acc, confusion, _ = evaluate(model, loader, device=args.device)
    noun = DATASETS[args.dataset].noun
    print(f"{model_name(args)} on {args.dataset}: test accuracy {100 * acc:.2f}% on {confusion.sum()} images")
    print(f"confusion matrix (rows: true {noun}, columns: predicted):")
    print("      " + " ".join(f"{c:5d}" for c in range(confusion.shape[1])))
    for r, row in enumerate(confusion):
        print(f"{r:5d} " + " ".join(f"{v:5d}" for v in row))
    return 0


def run_train(args, program=TRAIN):
    given = _given(args)
    if args.arch is None:
        args.arch = program.arch or DEFAULTS["arch"]
        # a fixed architecture counts as asked for, so a resume of another one is refused
        if program.arch is not None:
            given["arch"] = args.arch
    if args.out is None:
        args.out = program.out or os.path.join("runs", args.arch)
    last = os.path.join(args.out, "last.safetensors")
    saved = resumed = None
    if args.resume:
        if not os.path.isfile(last):
            raise UsageError(f"--resume: no checkpoint at {last}")
        resumed = checkpoint.load_checkpoint(last)  # integrity checks only; nothing is loaded yet
        saved = saved_config(resumed, last, program)
        if not isinstance(resumed.get("epoch"), int) or resumed["epoch"] < 1:
            raise UsageError(f"{last} records no completed epoch ({resumed.get('epoch')!r}); cannot resume from it")
        if "arch" not in given:  # the saved architecture, not the default one that named the --out folder
            args.arch = None
        check_variant(given, given.get("arch", saved["arch"]))
        reconcile(args, saved, last, program)
        if args.epochs < resumed["epoch"]:
            raise UsageError(f"--epochs {args.epochs} is fewer than the {resumed['epoch']} epochs {last} has "
                             "already trained")
    check_variant(given, args.arch)
    _fill(args, defaults_for(args.arch, args.dataset or DEFAULTS["dataset"]))
    check_combination(args)
    check_output_folder(args.out)
    check_data_folder(args.data)

    tg.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    full, test = load_data(args)
    if args.limit:
        full = _Subset(full, 0, args.limit)
    # the validation images are the last ones of the training file: never trained on, never augmented
    args.val_size = resolve_val_size(args.val_size, len(full))
    train = _Subset(full, 0, len(full) - args.val_size)
    val = _Subset(full, len(train), len(full)) if args.val_size else None
    if saved is not None and saved.get("train_size", len(train)) != len(train):
        raise UsageError(f"cannot resume {last}: it was trained on {saved['train_size']} images, the training "
                         f"set here has {len(train)} (a different --data?)")
    norm = normaliser(args)
    aug = augmentation(args, rng)
    train_tf = norm if aug is None else T.Compose([aug, norm])
    train_loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, seed=args.seed, transform=train_tf)
    val_loader = DataLoader(val, batch_size=1000, transform=norm) if val is not None else None

    model = build_model(args)
    opt = make_optimizer(args, model.parameters())
    scheduler = make_scheduler(args, opt, len(train_loader))
    best = os.path.join(args.out, "best.safetensors")
    history, start_epoch, chosen = [], 1, None
    if resumed is not None:
        state = checkpoint.load_checkpoint(last, model=model, optimizer=opt, scheduler=scheduler)
        extra = state.get("extra") or {}
        start_epoch = int(state["epoch"]) + 1
        history = extra.get("history", [])
        chosen = extra.get("chosen")
        if "rng" in extra:
            restore_rng_states(extra["rng"], train_loader, rng, last)
        else:
            print(f"note: {last} has no random-generator state (an older checkpoint); training continues, "
                  "but not exactly as an uninterrupted run would")
        print(f"resumed from {last} after epoch {start_epoch - 1}")
        if args.schedule == "cosine" and args.epochs != saved["epochs"]:
            # The recursion in CosineAnnealingLR.step() multiplies the current rate by c(t)/c(t-1) of its T_max:
            # a new T_max continues from the current rate along the new cosine, down to 0 at its end.
            scheduler.T_max = max(args.epochs * len(train_loader), 1)
            if opt.param_groups[0]["lr"] == 0 and start_epoch <= args.epochs:
                span = f"epoch {start_epoch}" if start_epoch == args.epochs else f"epochs {start_epoch}-{args.epochs}"
                print(f"note: the cosine schedule had already decayed to 0 at epoch {start_epoch - 1}, so {span} "
                      "will leave the weights unchanged")

    config = {k: getattr(args, k) for k in (*FIXED_ON_RESUME, "epochs")}
    config["train_size"] = len(train)
    n_params = sum(p.numel() for p in model.parameters())
    held = f" / {len(val)} validation" if val is not None else " (no validation split)"
    print(f"{model_name(args)}, {n_params} parameters; {args.dataset}, {len(train)} training{held} / {len(test)} "
          f"test images; {args.optimizer} lr {args.lr:g}, weight decay {args.weight_decay:g}, batch "
          f"{args.batch_size}, augment {args.augment}")
    meta = dict(arch=args.arch, variant=args.variant, dataset=args.dataset)
    for epoch in range(start_epoch, args.epochs + 1):
        # a cold cache compiles kernels during the first steps: say so, and how long it took (not on the GPU,
        # whose kernels numba-cuda compiles without these events)
        with compile_notice(write=tqdm.write) if args.device == "cpu" else contextlib.nullcontext():
            t0 = time.perf_counter()
            train_loss, train_acc = train_epoch(model, train_loader, opt, scheduler, epoch, args.epochs, args.device)
            train_time = time.perf_counter() - t0
            val_acc, _, val_loss = (evaluate(model, val_loader, device=args.device) if val_loader is not None
                                    else (None, None, None))
        history.append(dict(epoch=epoch, train_loss=train_loss, train_acc=train_acc, val_loss=val_loss,
                            val_acc=val_acc, seconds=train_time))
        shown = f"val loss {val_loss:.4f}  val acc {100 * val_acc:.2f}%  " if val_acc is not None else ""
        print(f"epoch {epoch:2d}: train loss {train_loss:.4f}  train acc {100 * train_acc:.2f}%  "
              f"{shown}({train_time:.1f} s)")
        # the model to test is chosen on validation accuracy (the first best epoch); without a
        # validation split it is the last one
        if val_acc is None or chosen is None or val_acc > chosen["val_acc"]:
            chosen = dict(epoch=epoch, val_acc=val_acc)
            checkpoint.save_checkpoint(best, model=model, epoch=epoch, extra=dict(meta, chosen=chosen))
        extra = dict(meta, history=history, config=config, chosen=chosen, rng=rng_states(train_loader, rng),
                     args=vars(args))
        checkpoint.save_checkpoint(last, model=model, optimizer=opt, scheduler=scheduler, epoch=epoch, extra=extra)
    if history and not args.no_plots:
        path = save_plots(args.out, history, model, ARCHS[args.arch].stem or args.arch)
        if path:
            print(f"plots: {path}")
    with atomic_output(os.path.join(args.out, "history.json")) as f:
        f.write(json.dumps(history, indent=1).encode())
    if chosen is not None and not args.no_test:
        report_test(args, chosen, best, test)
    return 0


def report_test(args, chosen, best, test):
    """Evaluate the chosen model on the test set — once, at the end of the run — and write results.json."""
    model = build_model(args)
    checkpoint.load_checkpoint(best, model=model)
    loader = DataLoader(test, batch_size=1000, transform=normaliser(args))
    test_acc, _, test_loss = evaluate(model, loader, device=args.device)
    why = (f"best validation accuracy {100 * chosen['val_acc']:.2f}%" if chosen["val_acc"] is not None
           else "the last epoch; no validation split")
    print(f"test accuracy {100 * test_acc:.2f}% on {len(test)} images, model of epoch {chosen['epoch']} "
          f"({why}); checkpoint {best}")
    results = dict(chosen, test_acc=test_acc, test_loss=test_loss, arch=args.arch, dataset=args.dataset)
    with atomic_output(os.path.join(args.out, "results.json")) as f:
        f.write(json.dumps(results, indent=1).encode())


# What a user can get wrong (options, files, folders, devices), as opposed to bugs, which keep their traceback.
USER_ERRORS = (UsageError, checkpoint.CheckpointError, IDXError, CIFARError, CudaUnavailableError, OSError)


def _one_line(error):
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__


def main(argv=None, program=TRAIN):
    """Run the command line ``argv`` (default ``sys.argv[1:]``) of ``program``; returns the exit status, 0.

    Invalid option values end as argparse errors do (usage, one line, ``SystemExit(2)``).
    Other user errors (see ``USER_ERRORS``) depend on the caller: as the program
    (``argv`` None: the console command, the demo scripts) they print one line
    ``tinygrad-cv-train: error: ...`` to stderr and exit with status 2, or show the
    traceback under ``--debug``; called from Python with a list, ``main`` raises them,
    so the caller can catch the exception it names.
    """
    parser = build_parser(program)
    args = parser.parse_args(argv)
    if program.arch is not None:
        args.arch = None  # no --arch option: run_train uses program.arch
    if args.mode == "train" and args.checkpoint:
        parser.error(f"unexpected argument {args.checkpoint!r}: a checkpoint path is for evaluate mode "
                     "(to continue training, use --resume)")
    try:
        if args.device != "cpu":
            tg.zeros(1).to(args.device)  # raises a clear error when the device is unavailable
        return run_evaluate(args, program) if args.mode == "evaluate" else run_train(args, program)
    except USER_ERRORS as e:
        if argv is not None or args.debug:
            raise
        parser.exit(2, f"{parser.prog}: error: {_one_line(e)}\n")


class _Subset:
    """Samples ``start`` to ``stop`` (exclusive, clipped to the dataset) of a dataset: --limit and the split."""

    def __init__(self, dataset, start, stop):
        stop = min(int(stop), len(dataset))
        self.dataset, self.start, self.n = dataset, min(int(start), stop), stop - min(int(start), stop)

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        index = self.start + np.arange(self.n)[index]
        return self.dataset[index]


if __name__ == "__main__":
    sys.exit(main())
