"""Train LeNet-5 on MNIST (or Fashion-MNIST): the project's main demo.

    python demos/train_lenet_mnist.py                     # train with the defaults
    python demos/train_lenet_mnist.py --data DIR --epochs 5
    python demos/train_lenet_mnist.py --resume            # continue OUT/last.safetensors
    python demos/train_lenet_mnist.py evaluate runs/lenet/last.safetensors

Also installed as the console command ``tinygrad-cv-lenet``. Each epoch shows
a progress bar (``tqdm.auto``: batches/s, running loss), then the train loss
and accuracy, the validation accuracy and the time; a checkpoint
(safetensors) is written after every epoch, and with matplotlib installed a
PNG of the curves and of the first layer's learned filters.

Evaluation
----------
The last ``--val-size`` images of the training file (default: 5,000 of the
60,000, a tenth of smaller sets) are held out as a validation set: never
trained on, evaluated after every epoch. The epoch with the best validation
accuracy (the first, on ties) is the one chosen; its weights are kept in
``OUT/best.safetensors``. The test set is evaluated once, at the end, on that
model only (``OUT/results.json``) — it never takes part in a choice.

Resuming
--------
The checkpoint holds, besides the weights, optimiser and schedule, the
run's configuration and the state of every random generator a training step
draws from (the data order, the augmentation, the library's global generator
behind dropout and initialisers). ``--resume`` restores all of it, so a run
that is killed and resumed ends with the same weights, bit for bit, as one
that never stopped.

On ``--resume`` an option that is not given takes its saved value. These
define the run and must not change (one given with another value is refused,
naming both): ``--variant``, ``--dataset``, ``--optimizer``, ``--lr``,
``--momentum``, ``--weight-decay``, ``--schedule``, ``--augment``,
``--batch-size``, ``--limit``, ``--seed``. These may change: ``--epochs``,
``--data`` (the folder, not the images: the training set must keep its size),
``--device``, ``--no-plots`` and ``--debug``.

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
cannot be written, an unusable checkpoint, an unavailable device, a
``--resume`` that does not fit its checkpoint) prints one line
``tinygrad-cv-lenet: error: ...`` and exits with status 2, before any
training; ``--debug`` shows the full traceback instead.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import time

import numpy as np
from tqdm.auto import tqdm

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import checkpoint, optim
from tinygrad_cv import random as tg_random
from tinygrad_cv.cuda import CudaUnavailableError
from tinygrad_cv.data import MNIST, DataLoader, FashionMNIST, IDXError
from tinygrad_cv.data import transforms as T
from tinygrad_cv.io.safetensors import atomic_output
from tinygrad_cv.kernels.jit import compile_notice
from tinygrad_cv.models import LeNet5

PROG = "tinygrad-cv-lenet"

# MNIST's training-set statistics of pixel values scaled to [0, 1]
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
FASHION_MEAN, FASHION_STD = 0.2860, 0.3530

# Defaults of the options a resumed run inherits from its checkpoint. The parser leaves them None, so that
# "not given" can be told apart from "given with the default value".
DEFAULTS = dict(dataset="mnist", epochs=15, batch_size=64, lr=2e-3, optimizer="adam", momentum=0.9,
                weight_decay=0.0, schedule="cosine", augment="affine", variant="relu", seed=0, limit=None,
                val_size="auto")
# The options that define a run: saved in its checkpoint and fixed on --resume (see the module docstring).
FIXED_ON_RESUME = ("variant", "dataset", "optimizer", "lr", "momentum", "weight_decay", "schedule", "augment",
                   "batch_size", "limit", "seed", "val_size")
# --val-size auto: a validation set the size of MNIST's usual 5,000 held-out images on the full training set,
# a tenth of smaller ones (1,000 of the 10,000-image subset)
VAL_FULL, VAL_FULL_FROM, VAL_FRACTION = 5000, 50000, 10


class UsageError(Exception):
    """A command that cannot run as given (not a bug): the CLI reports it in one line and exits with status 2."""


# --- option parsing ---------------------------------------------------------------------------
def _integer(low):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


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


def build_parser():
    d = DEFAULTS
    p = argparse.ArgumentParser(
        prog=PROG, description="Train LeNet-5 on MNIST with tinygrad_cv.",
        epilog="--resume restores the exact state of the run (weights, optimiser, schedule, random generators) "
               "from OUT/last.safetensors; options not given take their saved values. Only --epochs, --data, "
               "--device, --no-plots and --debug may differ from the saved run. A new --epochs moves the end of "
               "the schedule without raising the learning rate: cosine continues from the current rate along the "
               "cosine over the new total, down to 0 at its last epoch (a finished cosine stays at 0); step keeps "
               "its original decay epochs. User errors print one line and exit with status 2 (--debug: traceback).")
    p.add_argument("mode", nargs="?", default="train", choices=["train", "evaluate"],
                   help="train (default) or evaluate a checkpoint")
    p.add_argument("checkpoint", nargs="?", help="checkpoint to evaluate (evaluate mode)")
    p.add_argument("--data", default=None,
                   help="data folder, which must exist (default: $TINYGRAD_CV_DATA, then ~/.cache/tinygrad_cv); "
                        "missing files are downloaded into it")
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], help=f"default {d['dataset']}")
    p.add_argument("--epochs", type=_integer(1),
                   help=f"total number of epochs, >= 1 (default {d['epochs']}; on --resume, the saved total)")
    p.add_argument("--batch-size", type=_integer(1), help=f">= 1 (default {d['batch_size']})")
    p.add_argument("--lr", type=_real(0, low_open=True), help=f"peak learning rate, > 0 (default {d['lr']:g})")
    p.add_argument("--optimizer", choices=["adam", "adamw", "sgd", "rmsprop", "adagrad"],
                   help=f"default {d['optimizer']}")
    p.add_argument("--momentum", type=_real(0, 1), help=f"for sgd / rmsprop, in [0, 1) (default {d['momentum']})")
    p.add_argument("--weight-decay", type=_real(0),
                   help=f">= 0 (default {d['weight_decay']:g}; adamw uses 1e-2 when it is 0)")
    p.add_argument("--schedule", choices=["cosine", "step", "none"],
                   help=f"learning-rate schedule, stepped every batch (default {d['schedule']})")
    p.add_argument("--augment", choices=["none", "shift", "affine", "elastic"],
                   help=f"training-set augmentation applied per batch (default {d['augment']})")
    p.add_argument("--variant", choices=["relu", "1998"],
                   help=f"relu+max-pool, or the 1998 tanh+avg-pool net (default {d['variant']})")
    p.add_argument("--seed", type=_integer(0), help=f">= 0 (default {d['seed']})")
    p.add_argument("--device", type=_device, default="cpu",
                   help="cpu (default), or cuda for an NVIDIA GPU (needs the [cuda] extra)")
    p.add_argument("--out", default="runs/lenet", help="output folder for checkpoints and plots (default runs/lenet)")
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


# --- building the run -----------------------------------------------------------------------------
def load_data(args):
    cls = MNIST if args.dataset == "mnist" else FashionMNIST
    train = cls(args.data, train=True)
    test = cls(args.data, train=False)
    return train, test


def normaliser(args):
    mean, std = (MNIST_MEAN, MNIST_STD) if args.dataset == "mnist" else (FASHION_MEAN, FASHION_STD)
    return T.Normalize(mean, std)


def augmentation(args, rng):
    if args.augment == "shift":
        return T.RandomShift(2, rng=rng)
    if args.augment == "affine":
        return T.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1), rng=rng)
    if args.augment == "elastic":
        return T.Compose([T.RandomAffine(degrees=8, translate=(0.08, 0.08), scale=(0.92, 1.08), rng=rng),
                          T.ElasticDistortion(alpha=8.0, sigma=3.0, rng=rng)])
    return None


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


def saved_config(contents, where):
    """The run configuration stored in a checkpoint's ``extra`` (older demo checkpoints: from its ``args``)."""
    extra = contents.get("extra") or {}
    config = extra.get("config")
    if config is None and isinstance(extra.get("args"), dict):
        config = {k: extra["args"][k] for k in DEFAULTS if k in extra["args"]}
        config.setdefault("val_size", 0)  # older runs trained on every training image
    if not isinstance(config, dict) or not all(k in config for k in (*FIXED_ON_RESUME, "epochs")):
        raise UsageError(f"{where} holds no run configuration (not written by {PROG}); cannot resume from it")
    return config


def reconcile(args, config, where):
    """Refuse options given with values other than the saved ones; fill the others from ``config``."""
    given = _given(args)
    clashes = [k for k in FIXED_ON_RESUME if k in given and given[k] != config[k]]
    if clashes:
        saved = " ".join(f"{_option(k)} {config[k]}" for k in clashes)
        asked = " ".join(f"{_option(k)} {given[k]}" for k in clashes)
        raise UsageError(f"cannot resume {where}: it was trained with {saved}, this command asks for {asked} "
                         f"(only --epochs, --data, --device, --no-plots and --debug may change on resume)")
    _fill(args, {k: config[k] for k in (*FIXED_ON_RESUME, "epochs")})


# --- training -------------------------------------------------------------------------------------
def evaluate(model, loader, num_classes=10, device="cpu"):
    """Accuracy and confusion matrix (rows: true class, columns: predicted)."""
    model.eval()
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    with tg.no_grad():
        for images, labels in loader:
            pred = model(tg.from_numpy(images).to(device)).argmax(1).numpy()
            np.add.at(confusion, (labels, pred), 1)
    model.train()
    return np.trace(confusion) / max(confusion.sum(), 1), confusion


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


def save_plots(out, history, model):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(epochs, [h["train_loss"] for h in history], "o-")
    axes[0].set(title="training loss", xlabel="epoch")
    axes[1].plot(epochs, [100 * h["train_acc"] for h in history], "o-", label="train")
    if any(h.get("val_acc") is not None for h in history):
        axes[1].plot(epochs, [100 * h["val_acc"] for h in history], "o-", label="validation")
    axes[1].set(title="accuracy (%)", xlabel="epoch")
    axes[1].legend()
    w = model.features[0].weight.detach().numpy()[:, 0]
    axes[2].axis("off")
    axes[2].set_title("conv1: the 6 learned 5×5 filters")
    for k in range(w.shape[0]):
        ax = fig.add_axes([0.69 + 0.045 * (k % 3) * 1.6, 0.45 - 0.33 * (k // 3), 0.065, 0.3])
        ax.imshow(w[k], cmap="gray")
        ax.set_xticks([])
        ax.set_yticks([])
    path = os.path.join(out, "lenet_training.png")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def run_evaluate(args):
    if not args.checkpoint:
        raise UsageError(f"evaluate needs a checkpoint path: {PROG} evaluate runs/lenet/last.safetensors")
    if not os.path.isfile(args.checkpoint):
        raise UsageError(f"no checkpoint file at {args.checkpoint}")
    check_data_folder(args.data)
    state = checkpoint.load_checkpoint(args.checkpoint)
    meta = state.get("extra") or {}
    _fill(args, DEFAULTS)
    model = LeNet5(variant=meta.get("variant", args.variant)).to(args.device)
    checkpoint.load_checkpoint(args.checkpoint, model=model)
    args.dataset = meta.get("dataset", args.dataset)
    _, test = load_data(args)
    loader = DataLoader(test, batch_size=1000, transform=normaliser(args))
    acc, confusion = evaluate(model, loader, device=args.device)
    print(f"test accuracy {100 * acc:.2f}% on {confusion.sum()} images")
    print("confusion matrix (rows: true digit, columns: predicted):")
    print("      " + " ".join(f"{c:5d}" for c in range(confusion.shape[1])))
    for r, row in enumerate(confusion):
        print(f"{r:5d} " + " ".join(f"{v:5d}" for v in row))
    return 0


def run_train(args):
    last = os.path.join(args.out, "last.safetensors")
    saved = resumed = None
    if args.resume:
        if not os.path.isfile(last):
            raise UsageError(f"--resume: no checkpoint at {last}")
        resumed = checkpoint.load_checkpoint(last)  # integrity checks only; nothing is loaded yet
        saved = saved_config(resumed, last)
        if not isinstance(resumed.get("epoch"), int) or resumed["epoch"] < 1:
            raise UsageError(f"{last} records no completed epoch ({resumed.get('epoch')!r}); cannot resume from it")
        reconcile(args, saved, last)
        if args.epochs < resumed["epoch"]:
            raise UsageError(f"--epochs {args.epochs} is fewer than the {resumed['epoch']} epochs {last} has "
                             "already trained")
    _fill(args, DEFAULTS)
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

    model = LeNet5(variant=args.variant).to(args.device)
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
    print(f"LeNet-5 ({args.variant}), {n_params} parameters; {len(train)} training{held} / {len(test)} test "
          f"images; {args.optimizer} lr {args.lr}, batch {args.batch_size}, augment {args.augment}")
    for epoch in range(start_epoch, args.epochs + 1):
        # a cold cache compiles kernels during the first steps: say so, and how long it took (not on the GPU,
        # whose kernels numba-cuda compiles without these events)
        with compile_notice(write=tqdm.write) if args.device == "cpu" else contextlib.nullcontext():
            t0 = time.perf_counter()
            train_loss, train_acc = train_epoch(model, train_loader, opt, scheduler, epoch, args.epochs, args.device)
            train_time = time.perf_counter() - t0
            val_acc = evaluate(model, val_loader, device=args.device)[0] if val_loader is not None else None
        history.append(dict(epoch=epoch, train_loss=train_loss, train_acc=train_acc, val_acc=val_acc,
                            seconds=train_time))
        shown = f"val acc {100 * val_acc:.2f}%  " if val_acc is not None else ""
        print(f"epoch {epoch:2d}: train loss {train_loss:.4f}  train acc {100 * train_acc:.2f}%  "
              f"{shown}({train_time:.1f} s)")
        # the model to test is chosen on validation accuracy (the first best epoch); without a
        # validation split it is the last one
        if val_acc is None or chosen is None or val_acc > chosen["val_acc"]:
            chosen = dict(epoch=epoch, val_acc=val_acc)
            checkpoint.save_checkpoint(best, model=model, epoch=epoch,
                                       extra=dict(variant=args.variant, dataset=args.dataset, chosen=chosen))
        extra = dict(variant=args.variant, dataset=args.dataset, history=history, config=config, chosen=chosen,
                     rng=rng_states(train_loader, rng), args=vars(args))
        checkpoint.save_checkpoint(last, model=model, optimizer=opt, scheduler=scheduler, epoch=epoch, extra=extra)
    if history and not args.no_plots:
        path = save_plots(args.out, history, model)
        if path:
            print(f"plots: {path}")
    with atomic_output(os.path.join(args.out, "history.json")) as f:
        f.write(json.dumps(history, indent=1).encode())
    if chosen is not None and not args.no_test:
        report_test(args, chosen, best, test)
    return 0


def report_test(args, chosen, best, test):
    """Evaluate the chosen model on the test set — once, at the end of the run — and write results.json."""
    model = LeNet5(variant=args.variant).to(args.device)
    checkpoint.load_checkpoint(best, model=model)
    loader = DataLoader(test, batch_size=1000, transform=normaliser(args))
    test_acc, _ = evaluate(model, loader, device=args.device)
    why = (f"best validation accuracy {100 * chosen['val_acc']:.2f}%" if chosen["val_acc"] is not None
           else "the last epoch; no validation split")
    print(f"test accuracy {100 * test_acc:.2f}% on {len(test)} images, model of epoch {chosen['epoch']} "
          f"({why}); checkpoint {best}")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(dict(chosen, test_acc=test_acc), f, indent=1)


# What a user can get wrong (options, files, folders, devices), as opposed to bugs, which keep their traceback.
USER_ERRORS = (UsageError, checkpoint.CheckpointError, IDXError, CudaUnavailableError, OSError)


def _one_line(error):
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__


def main(argv=None):
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status, 0.

    Invalid option values end as argparse errors do (usage, one line, ``SystemExit(2)``).
    Other user errors (see ``USER_ERRORS``) depend on the caller: as the program
    (``argv`` None: the console command, the demo scripts) they print one line
    ``tinygrad-cv-lenet: error: ...`` to stderr and exit with status 2, or show the
    traceback under ``--debug``; called from Python with a list, ``main`` raises them,
    so the caller can catch the exception it names.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.mode == "train" and args.checkpoint:
        parser.error(f"unexpected argument {args.checkpoint!r}: a checkpoint path is for evaluate mode "
                     "(to continue training, use --resume)")
    try:
        if args.device != "cpu":
            tg.zeros(1).to(args.device)  # raises a clear error when the device is unavailable
        return run_evaluate(args) if args.mode == "evaluate" else run_train(args)
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
