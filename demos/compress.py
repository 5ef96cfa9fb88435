"""Compressing fully connected layers with a truncated SVD: the measurements behind chapter 18 (last part).

    python demos/compress.py --data DIR                         # LeNet-5 and the distillation teacher
    python demos/compress.py --data DIR --limit 30000 --teacher runs/distill/teacher_seed0.safetensors  # chapter 18
    python demos/compress.py --help

What it does, in order:

1. Loads MNIST (``--data``) and holds out the last ``--val-size`` training
   images as the validation split.
2. Gets two trained networks: LeNet-5 (trained here for ``--lenet-epochs``,
   or loaded from its checkpoint in ``--out``) and the teacher of
   ``demos/distill.py``, an MLP 784-1200-1200-10 (loaded from ``--teacher``,
   by default the checkpoint the distillation demo writes; trained here with
   the same settings when it is missing).
3. For every rank r in ``--lenet-ranks`` / ``--teacher-ranks``, replaces each
   fully connected layer W (m x n) by its rank-r truncated SVD — two layers,
   n -> r -> m, with r (m + n) weights instead of m n
   (``tinygrad_cv.compression.compress``) — where that saves parameters, and
   measures accuracy before and after a short fine-tune (``--finetune-steps``
   Adam steps of both factors and everything else).
4. Finds where the accuracy-vs-parameters curve bends, on the validation
   split: the smallest rank within ``--tolerance`` points of the uncompressed
   network's validation accuracy.
5. Writes ``results.json``, ``results.md`` and the figures ``compress_*.png``
   into ``--out`` (``--figures`` puts the figures elsewhere). The test accuracy
   of every rank is reported; no choice is made on it.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import sys
import time
from types import SimpleNamespace

import numpy as np
from tqdm.auto import tqdm

import tinygrad_cv as tg
from tinygrad_cv.cli import run_program
import tinygrad_cv.functional as F
from tinygrad_cv import checkpoint, nn, optim
from tinygrad_cv.io.figures import pyplot
from tinygrad_cv.compression import compress, singular_values
from tinygrad_cv.data import DatasetNotFoundError, IDXError
from tinygrad_cv.models import LeNet5


def _sibling(name):
    """The demo ``demos/NAME.py`` next to this file, as a module (the teacher and the data come from distill.py)."""
    spec = importlib.util.spec_from_file_location(f"{name}_demo", os.path.join(os.path.dirname(__file__), f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


distill = _sibling("distill")
UsageError = distill.UsageError
_count, _real, _list = distill._count, distill._real, distill._list
_write_atomic = distill._write_atomic

PROG = "compress"


def build_parser():
    p = argparse.ArgumentParser(prog=PROG, description="Truncated-SVD compression of the fully connected layers of "
                                                        "LeNet-5 and of an MLP teacher on MNIST.")
    p.add_argument("--data", default=None, help="MNIST folder (default: $TINYGRAD_CV_DATA, then ~/.cache/tinygrad_cv)")
    p.add_argument("--out", default="runs/compress", help="output folder (default runs/compress)")
    p.add_argument("--figures", default=None, help="folder for the figures (default: --out)")
    p.add_argument("--teacher", default="runs/distill/teacher_seed0.safetensors",
                   help="the distillation demo's teacher checkpoint; trained here (and saved there) when missing "
                        "(default runs/distill/teacher_seed0.safetensors)")
    p.add_argument("--teacher-hidden", type=_list(_count(1), "--teacher-hidden", unique=False), default=[1200, 1200],
                   help="the teacher's hidden widths, as in distill.py (default 1200,1200)")
    p.add_argument("--teacher-epochs", type=_count(1), default=40, help="as in distill.py (default 40)")
    p.add_argument("--lenet-epochs", type=_count(1), default=4, help="LeNet-5's training epochs (default 4)")
    p.add_argument("--lenet-ranks", type=_list(_count(1), "--lenet-ranks"), default=[1, 2, 4, 8, 16, 32, 64],
                   help="ranks tried for LeNet-5 (default 1,2,4,8,16,32,64)")
    p.add_argument("--teacher-ranks", type=_list(_count(1), "--teacher-ranks"),
                   default=[2, 4, 8, 16, 32, 64, 128, 256], help="ranks tried for the teacher (default 2,4,...,256)")
    p.add_argument("--finetune-steps", type=_count(0), default=300,
                   help="Adam steps of the short fine-tune after compression (default 300; 0: none)")
    p.add_argument("--finetune-lr", type=_real(0, low_open=True), default=5e-4, help="default 5e-4")
    p.add_argument("--tolerance", type=_real(0), default=0.5,
                   help="the bend: the smallest rank within this many points of the uncompressed validation "
                        "accuracy (default 0.5)")
    p.add_argument("--lr", type=_real(0, low_open=True), default=1e-3,
                   help="Adam's peak rate for training the networks (default 1e-3, as distill.py)")
    p.add_argument("--batch-size", type=_count(1), default=128, help="default 128 (as distill.py)")
    p.add_argument("--seed", type=_count(0), default=0, help="default 0")
    p.add_argument("--val-size", type=_count(1), default=5000, help="default 5000")
    p.add_argument("--limit", type=_count(1), help="use only the first N training images (validation included)")
    p.add_argument("--eval-limit", type=_count(1), help="evaluate on the first N test images only")
    p.add_argument("--retrain", action="store_true", help="train even when the checkpoints exist (overwrites them)")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--debug", action="store_true", help="on an error, show the full traceback")
    return p


class PixelLeNet5(nn.Module):
    """LeNet-5 reading pixels in [0, 1]; it standardises them itself (as the teacher does)."""

    def __init__(self):
        super().__init__()
        self.standardise = distill.Standardise()
        self.net = LeNet5()

    def forward(self, x):
        return self.net(self.standardise(x))


# --- models ------------------------------------------------------------------------------------
def get_lenet(args, data):
    path = os.path.join(args.out, f"lenet_seed{args.seed}.safetensors")
    config = dict(kind="lenet", epochs=args.lenet_epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                  train_size=len(data["train"][1]))

    def fit(model):
        err, epoch = distill.train(model, *data["train"], data["val"], args.lenet_epochs, args, args.seed, "LeNet-5")
        return dict(val_error=err, epoch=epoch)

    model, info = distill.trained(path, config, PixelLeNet5, fit, args.retrain)
    print(("loaded" if info["loaded"] else f"trained in {info['seconds']:.0f} s; saved") + f" LeNet-5 {path}")
    return model, info


def get_teacher(args, data):
    targs = SimpleNamespace(teacher_hidden=args.teacher_hidden, teacher_epochs=args.teacher_epochs, lr=args.lr,
                            batch_size=args.batch_size, seed=args.seed, retrain=args.retrain, alpha=None)
    return distill.get_teacher(targs, data, path=args.teacher)


def fc_layers(model):
    """Names of the model's Linear layers, in order."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]


def copy_of(model, build):
    new = build()
    new.load_state_dict(model.state_dict())
    new.eval()
    return new


def accuracy(model, x, y):
    return 1.0 - distill.error_rate(distill.predict(model, x), y)


def finetune(model, data, args, seed):
    if args.finetune_steps == 0:
        return
    x, y = data["train"]
    rng = np.random.default_rng([seed, 3])
    opt = optim.Adam(model.parameters(), lr=args.finetune_lr)
    tg.manual_seed(seed)
    model.train()
    for _ in range(args.finetune_steps):
        idx = rng.integers(0, len(x), args.batch_size)
        loss = F.cross_entropy(model(tg.from_numpy(x[idx])), tg.from_numpy(y[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def layer_rows(report):
    """The compression report (a list of LayerReport) as plain dicts: name, rank, params_before/after, error..."""
    return [dataclasses.asdict(r) for r in report]


def sweep(name, model, build, ranks, data, args):
    """Compress at every rank: per rank the parameter counts, the layers' errors, accuracy before/after fine-tuning."""
    (xv, yv), (xt, yt) = data["val"], data["test"]
    names = fc_layers(model)
    shapes = {n: model.get_submodule(n).weight.shape for n in names}
    total = distill.n_params(model)
    base = dict(rank=None, params=total, fc_params=sum(m * n + m for m, n in shapes.values()),
                val=accuracy(model, xv, yv), test=accuracy(model, xt, yt))
    print(f"{name}: {total} parameters ({base['fc_params']} in its FC layers); validation accuracy "
          f"{100 * base['val']:.2f}%, test {100 * base['test']:.2f}%")
    spectra = {n: np.asarray(singular_values(model.get_submodule(n)), dtype=float) for n in names}
    rows = []
    for r in tqdm(ranks, desc=f"{name}: ranks", leave=False):
        # only the layers that a rank-r factorisation makes smaller: r (m + n) < m n
        layers = [n for n in names if r * sum(shapes[n]) < shapes[n][0] * shapes[n][1]]
        if not layers:
            continue
        small = copy_of(model, build)
        report = layer_rows(compress(small, rank=r, layers=layers))
        params = distill.n_params(small)
        row = dict(rank=r, layers=report, params=params, fc_params=params - (total - base["fc_params"]),
                   val=accuracy(small, xv, yv), test=accuracy(small, xt, yt))
        # the Frobenius error of a rank-r truncation is the energy of the discarded singular values
        row["predicted_error"] = {n: float(np.sqrt((spectra[n][r:] ** 2).sum() / (spectra[n] ** 2).sum()))
                                  for n in layers}
        finetune(small, data, args, args.seed)
        row["val_ft"], row["test_ft"] = accuracy(small, xv, yv), accuracy(small, xt, yt)
        rows.append(row)
        print(f"  {name}, rank {r:4d}: {params:8d} parameters ({100 * params / total:5.1f}%); test accuracy "
              f"{100 * row['test']:.2f}% -> {100 * row['test_ft']:.2f}% after {args.finetune_steps} fine-tuning steps")
    bend = {}
    for key in ("val", "val_ft"):
        ok = [row for row in rows if row[key] >= base["val"] - args.tolerance / 100]
        bend[key] = min(ok, key=lambda row: row["rank"])["rank"] if ok else None
    return dict(base=base, rows=rows, bend=bend, spectra={n: s.tolist() for n, s in spectra.items()},
                shapes={n: list(s) for n, s in shapes.items()})


# --- report ------------------------------------------------------------------------------------
def write_report(out, results, args):
    _write_atomic(os.path.join(out, "results.json"), json.dumps(results, indent=1))
    lines = ["# Truncated-SVD compression of fully connected layers (MNIST)", "", f"Command: `{results['command']}`",
             "", f"Validation {results['data']['val']} images (the last of the training file), test "
             f"{results['data']['test']}. Every FC layer W (m x n) that a rank-r factorisation makes smaller "
             "(r (m + n) < m n) is replaced by it; the others are kept. Fine-tune: "
             f"{args.finetune_steps} Adam steps at {args.finetune_lr:g}, batch {args.batch_size}.", ""]
    for key, title in (("lenet", "LeNet-5"), ("teacher", "Teacher MLP " + "-".join(map(str, args.teacher_hidden)))):
        s = results[key]
        b = s["base"]
        lines += [f"## {title}", "",
                  "| rank | parameters | of the original | FC parameters | validation | test | validation, "
                  "fine-tuned | test, fine-tuned | layers' relative error ‖W - W_r‖_F / ‖W‖_F |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
                  f"| full | {b['params']} | 100 % | {b['fc_params']} | {100 * b['val']:.2f} | {100 * b['test']:.2f} "
                  "| | | |"]
        for row in s["rows"]:
            errs = ", ".join(f"{layer['name']}: {layer.get('relative_error', float('nan')):.3f}"
                             for layer in row["layers"])
            lines.append(f"| {row['rank']} | {row['params']} | {100 * row['params'] / b['params']:.1f} % | "
                         f"{row['fc_params']} | {100 * row['val']:.2f} | {100 * row['test']:.2f} | "
                         f"{100 * row['val_ft']:.2f} | {100 * row['test_ft']:.2f} | {errs} |")
        bend = s["bend"]
        lines += ["", f"The bend (smallest rank within {args.tolerance:g} points of the full network's validation "
                      f"accuracy): {bend['val']} without fine-tuning, {bend['val_ft']} with it.", ""]
    lines += ["Seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in results["seconds"].items()), ""]
    _write_atomic(os.path.join(out, "results.md"), "\n".join(lines))


# --- figures -----------------------------------------------------------------------------------
def figure_accuracy(plt, folder, results, args):
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, title in ((axes[0], "lenet", "LeNet-5"), (axes[1], "teacher", "teacher MLP")):
        s = results[key]
        rows, b = s["rows"], s["base"]
        p = [row["params"] for row in rows]
        ax.plot(p, [100 * row["test"] for row in rows], "o-", color="tab:blue", label="truncated SVD")
        ax.plot(p, [100 * row["test_ft"] for row in rows], "s-", color="tab:red",
                label=f"+ {args.finetune_steps} fine-tuning steps")
        for row in rows:
            ax.annotate(f"r={row['rank']}", (row["params"], 100 * row["test_ft"]), fontsize=6,
                        textcoords="offset points", xytext=(2, 4))
        ax.plot([b["params"]], [100 * b["test"]], "k*", ms=10, label="uncompressed")
        ax.axhline(100 * b["test"] - args.tolerance, color="k", lw=0.6, ls=":")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(plt.NullFormatter())  # labelled minor ticks overlap on a short log axis
        # every point on the chart (a collapsed low rank included): the table has the exact numbers
        low = min([100 * row[k] for row in rows for k in ("test", "test_ft")] + [100 * b["test"] - 5])
        ax.set(xlabel="parameters (all layers)", ylabel="test accuracy (%)", title=title,
               ylim=(max(low - 2, 0), 100.5))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    path = distill._save(fig, folder, "accuracy", prefix="compress")
    plt.close(fig)
    return path


def figure_spectrum(plt, folder, results):
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.3))
    for ax, key, title in ((axes[0], "lenet", "LeNet-5"), (axes[1], "teacher", "teacher MLP")):
        for name, s in results[key]["spectra"].items():
            s = np.asarray(s)
            m, n = results[key]["shapes"][name]
            ax.plot(np.arange(1, len(s) + 1), s / s[0], label=f"{name} ({m}x{n})")
        ax.set(xscale="log", yscale="log", xlabel="index i", ylabel="σ_i / σ_1",
               title=f"{title}: singular values of the FC weights")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    path = distill._save(fig, folder, "spectrum", prefix="compress")
    plt.close(fig)
    return path


# --- the run -----------------------------------------------------------------------------------
def run(args, argv):
    try:
        os.makedirs(args.out, exist_ok=True)
        if args.figures:
            os.makedirs(args.figures, exist_ok=True)
    except OSError as e:
        raise UsageError(f"output folder cannot be created: {e.strerror or e}") from e
    if args.data is not None and not os.path.isdir(os.path.expanduser(args.data)):
        raise UsageError(f"data folder {args.data} does not exist")
    t_start = time.perf_counter()
    seconds = {}
    data = distill.load_mnist(args.data, args.limit, args.val_size, args.eval_limit)
    print(f"MNIST: {len(data['train'][1])} training, {len(data['val'][1])} validation, {len(data['test'][1])} test")
    lenet, info = get_lenet(args, data)
    seconds["train LeNet-5"] = info["seconds"]
    teacher, info = get_teacher(args, data)
    seconds["train teacher"] = info["seconds"]

    results = dict(command="python demos/compress.py " + " ".join(argv), config=vars(args).copy(),
                   data=dict(train=len(data["train"][1]), val=len(data["val"][1]), test=len(data["test"][1])))
    t0 = time.perf_counter()
    results["lenet"] = sweep("LeNet-5", lenet, PixelLeNet5, args.lenet_ranks, data, args)
    seconds["LeNet-5 sweep"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    results["teacher"] = sweep("teacher", teacher, lambda: distill.teacher_model(args.teacher_hidden),
                               args.teacher_ranks, data, args)
    seconds["teacher sweep"] = time.perf_counter() - t0
    for key in ("lenet", "teacher"):
        print(f"{key}: the curve bends (validation, within {args.tolerance:g} points) at rank "
              f"{results[key]['bend']['val']} without fine-tuning, {results[key]['bend']['val_ft']} with it")

    plt = None if args.no_plots else pyplot()
    if plt is not None:
        folder = args.figures or args.out
        paths = [figure_accuracy(plt, folder, results, args), figure_spectrum(plt, folder, results)]
        print("figures: " + ", ".join(paths))
    seconds["total"] = time.perf_counter() - t_start
    results["seconds"] = seconds
    write_report(args.out, results, args)
    print(f"results: {os.path.join(args.out, 'results.md')} and results.json ({seconds['total']:.0f} s in all)")
    return 0


USER_ERRORS = (UsageError, checkpoint.CheckpointError, IDXError, DatasetNotFoundError, OSError)


def main(argv=None):
    """Run the demo with the command line ``argv`` (default ``sys.argv[1:]``); returns 0.

    From the command line a user error prints one line and exits with status 2 (``--debug``: the traceback);
    called with a list, the error is raised.
    """
    return run_program(build_parser(), argv, run, USER_ERRORS)


if __name__ == "__main__":
    sys.exit(main())
