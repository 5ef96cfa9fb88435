"""What going deeper buys, measured: chapter 19's three ablations, sized for two cores.

    python demos/deeper_ablation.py --data DIR                        # Fashion-MNIST, all three experiments
    python demos/deeper_ablation.py --data DIR --only degradation     # one of them
    python demos/deeper_ablation.py --data DIR --quick                # a first look, a few minutes
    python demos/deeper_ablation.py --help

Every number comes from the validation split (the last ``--val-size``
training images); the test set is never read, because these runs compare
settings, and comparing is choosing.

1. **degradation** (He et al. 2016, Fig. 1 and 6): plain-20, plain-56,
   ResNet-20 and ResNet-56 (``tinygrad_cv.models``) trained the same way:
   SGD with momentum 0.9, learning rate ``--lr`` with a cosine schedule,
   weight decay 1e-4, batch 128, on the first ``--train-size`` training
   images. Per epoch: the training loss and error (averaged over the epoch's
   batches, in training mode, as the paper plots them) and the validation
   error. The claim: the deeper *plain* network has the higher **training**
   error, so it is not overfitting but harder to optimise; with shortcuts
   the deeper network is at least as good.
2. **batchnorm**: the same small VGG-style network (six 3×3 convolutions,
   16-32-64 maps, global average pooling) with and without batch norm after
   each convolution, trained with SGD and momentum at each rate of
   ``--lrs`` for ``--bn-epochs`` epochs. Per run: the validation accuracy
   after every epoch (convergence speed), and whether it stayed stable (the
   training loss finite and, in the last epoch, below ln 10, chance). The
   claim: with batch norm the network learns faster and tolerates larger
   learning rates.
3. **regularisers**: on a *small* training set (``--small-size`` images,
   where a 784-512-512-10 MLP overfits), the same MLP with no
   regulariser, dropout 0.5 on the hidden units, DropConnect 0.5 on the
   hidden layers' weights, maxout (2 pieces, the same number of units) and
   maxout with dropout, trained with Adam for ``--reg-epochs`` epochs, over
   ``--seeds`` seeds. Per run: the final training and validation accuracy,
   and their gap.

Writes ``OUT/results.json``, ``OUT/results.md`` (the tables, printed too)
and, with matplotlib, ``OUT/deeper_degradation.png``,
``OUT/deeper_batchnorm.png`` and ``OUT/deeper_regularisers.png``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np
from tqdm.auto import tqdm

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import models, nn, optim
from tinygrad_cv.cli import UsageError, run_program
from tinygrad_cv.cli import integer as _count
from tinygrad_cv.cli import number_list as _list
from tinygrad_cv.cli import real as _real
from tinygrad_cv.data import MNIST, DatasetNotFoundError, FashionMNIST, IDXError
from tinygrad_cv.io import atomic_output
from tinygrad_cv.io.figures import pyplot, save_png

PROG = "deeper_ablation"
EXPERIMENTS = ("degradation", "batchnorm", "regularisers")
DEPTH_ARCHS = ("plain20", "plain56", "resnet20", "resnet56")
REGULARISERS = ("none", "dropout", "dropconnect", "maxout", "maxout+dropout")
DEFAULTS = dict(train_size=5_000, epochs=10, lr=0.1, lrs=[0.01, 0.03, 0.1, 0.3, 1.0], bn_epochs=3,
                small_size=1_000, reg_epochs=60, seeds=3)
QUICK = dict(train_size=2_000, epochs=4, lr=0.1, lrs=[0.03, 0.3, 1.0], bn_epochs=2, small_size=500,
             reg_epochs=20, seeds=2)
USER_ERRORS = (UsageError, DatasetNotFoundError, IDXError)
_positive = _real(0, low_open=True)


def build_parser():
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="folder with the dataset's four IDX files (.gz or not)")
    p.add_argument("--dataset", choices=["fashion-mnist", "mnist"], default="fashion-mnist")
    p.add_argument("--only", choices=EXPERIMENTS, action="append",
                   help="run only this experiment (may be given more than once; default: all three)")
    p.add_argument("--val-size", type=_count(1), default=5000, help="the last N training images (default 5000)")
    p.add_argument("--quick", action="store_true", help="smaller defaults: " + ", ".join(
        f"{k.replace('_', '-')} {v}" for k, v in QUICK.items()))
    p.add_argument("--train-size", type=_count(1), help=f"degradation: training images (default {DEFAULTS['train_size']})")
    p.add_argument("--epochs", type=_count(1), help=f"degradation: epochs (default {DEFAULTS['epochs']})")
    p.add_argument("--lr", type=_positive, help=f"degradation: peak learning rate (default {DEFAULTS['lr']})")
    p.add_argument("--lrs", type=_list(_positive, "learning rate"), help="batchnorm: the learning rates, comma-separated "
                   f"(default {','.join(map(str, DEFAULTS['lrs']))})")
    p.add_argument("--bn-epochs", type=_count(1), help=f"batchnorm: epochs (default {DEFAULTS['bn_epochs']})")
    p.add_argument("--small-size", type=_count(1),
                   help=f"regularisers: training images (default {DEFAULTS['small_size']})")
    p.add_argument("--reg-epochs", type=_count(1), help=f"regularisers: epochs (default {DEFAULTS['reg_epochs']})")
    p.add_argument("--seeds", type=_count(1), help=f"regularisers: seeds (default {DEFAULTS['seeds']})")
    p.add_argument("--out", default="runs/deeper_ablation", help="output folder (default runs/deeper_ablation)")
    p.add_argument("--debug", action="store_true", help="on an error, show the full traceback")
    return p


def resolve(args):
    for key, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


# --- data -------------------------------------------------------------------------------------------
def load(args):
    """{train, val}: (images (N, 1, 28, 28) float32 standardised with the training split's statistics, labels)."""
    kind = FashionMNIST if args.dataset == "fashion-mnist" else MNIST
    full = kind(os.path.expanduser(args.data), train=True)
    x, y = full.data.astype(np.float32) / 255.0, full.targets.astype(np.int64)
    n_train = max(args.train_size, args.small_size)
    if args.val_size + n_train > len(x):
        raise UsageError(f"--val-size {args.val_size} plus {n_train} training images is more than the "
                         f"{len(x)} images of the training set")
    val = slice(len(x) - args.val_size, len(x))  # the last images, as the demos hold them out
    mean, std = float(x[:n_train].mean()), float(x[:n_train].std())
    norm = lambda a: ((a - mean) / std)[:, None].astype(np.float32)
    return dict(train=(norm(x[:n_train]), y[:n_train]), val=(norm(x[val]), y[val]))


# --- models -----------------------------------------------------------------------------------------
def depth_model(arch):
    return getattr(models, arch)(num_classes=10, in_channels=1)


def vgg_net(batch_norm):
    """Six 3×3 convolutions (16, 16, 32, 32, 64, 64 maps; max pool after each pair but the last), global
    average pooling, a linear layer: conv -> [BatchNorm2d] -> ReLU, He initialisation. With batch norm the
    convolutions drop their bias (the norm's own replaces it)."""
    layers, c_in = [], 1
    for i, c in enumerate((16, 16, 32, 32, 64, 64)):
        conv = nn.Conv2d(c_in, c, 3, padding=1, bias=not batch_norm)
        nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        layers += [conv] + ([nn.BatchNorm2d(c)] if batch_norm else []) + [nn.ReLU()]
        if i in (1, 3):
            layers.append(nn.MaxPool2d(2))
        c_in = c
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    return nn.Sequential(*layers)


def mlp(kind, hidden=512):
    """784-512-512-10 with ReLU; ``kind`` in REGULARISERS chooses what regularises the two hidden layers."""
    layers, width = [nn.Flatten()], 28 * 28
    for _ in range(2):
        if kind == "dropconnect":
            layers += [nn.DropConnectLinear(width, hidden, p=0.5), nn.ReLU()]
        elif kind.startswith("maxout"):
            layers += [nn.Linear(width, 2 * hidden), nn.Maxout(2)]
        else:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
        if kind in ("dropout", "maxout+dropout"):
            layers.append(nn.Dropout(0.5))
        width = hidden
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def n_params(model):
    return int(sum(p.numel() for p in model.parameters()))


# --- training ---------------------------------------------------------------------------------------
def accuracy_and_loss(model, x, y, batch=1000):
    model.eval()
    correct, loss = 0, 0.0
    with tg.no_grad():
        for i in range(0, len(x), batch):
            logits = model(tg.from_numpy(np.ascontiguousarray(x[i:i + batch])))
            loss += F.cross_entropy(logits, tg.from_numpy(y[i:i + batch])).item() * len(y[i:i + batch])
            correct += int((logits.numpy().argmax(1) == y[i:i + batch]).sum())
    return correct / len(x), loss / len(x)


def fit(model, data, opt, epochs, batch, seed, desc, schedule=True):
    """Train ``model`` with ``opt`` (and a cosine schedule stepped per batch); one history entry per epoch.

    Each entry: train_loss and train_acc averaged over the epoch's batches (training mode, as they were
    computed), val_acc and val_loss. A loss that is not finite stops the run (``diverged``).
    """
    steps = epochs * math.ceil(len(data["train"][0]) / batch)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps) if schedule else None
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run overflows: it is caught and reported
        return _epochs(model, data, opt, scheduler, epochs, batch, np.random.default_rng(seed), desc)


def _epochs(model, data, opt, scheduler, epochs, batch, rng, desc):
    (x, y), history, diverged = data["train"], [], False
    for epoch in range(1, epochs + 1):
        model.train()
        order = rng.permutation(len(x))
        losses, correct = [], 0
        for i in tqdm(range(0, len(x), batch), desc=f"{desc} {epoch}/{epochs}", leave=False, unit="batch"):
            idx = order[i:i + batch]
            logits = model(tg.from_numpy(x[idx]))
            loss = F.cross_entropy(logits, tg.from_numpy(y[idx]))
            value = loss.item()
            if not math.isfinite(value):
                diverged = True
                break
            opt.zero_grad()
            loss.backward()
            opt.step()
            if scheduler is not None:
                scheduler.step()
            losses.append(value * len(idx))
            correct += int((logits.detach().numpy().argmax(1) == y[idx]).sum())
        if diverged:
            history.append(dict(epoch=epoch, train_loss=float("nan"), train_acc=float("nan"),
                                val_acc=float("nan"), val_loss=float("nan")))
            break
        val_acc, val_loss = accuracy_and_loss(model, *data["val"])
        history.append(dict(epoch=epoch, train_loss=sum(losses) / len(x), train_acc=correct / len(x),
                            val_acc=val_acc, val_loss=val_loss))
    return history, diverged


def sgd(model, lr):
    return optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)


# --- the experiments --------------------------------------------------------------------------------
def degradation(args, data):
    runs = {}
    for arch in DEPTH_ARCHS:
        tg.manual_seed(0)
        model = depth_model(arch)
        start = time.perf_counter()
        history, diverged = fit(model, data, sgd(model, args.lr), args.epochs, 128, seed=0, desc=arch)
        runs[arch] = dict(params=n_params(model), history=history, diverged=diverged,
                          seconds=time.perf_counter() - start)
        last = history[-1]
        print(f"{arch:9s} train error {100 * (1 - last['train_acc']):5.2f}%  validation error "
              f"{100 * (1 - last['val_acc']):5.2f}%  ({runs[arch]['seconds']:.0f} s)", flush=True)
    return runs


def batchnorm(args, data):
    runs = {}
    for bn in (False, True):
        for lr in args.lrs:
            tg.manual_seed(0)
            model = vgg_net(bn)
            history, diverged = fit(model, data, sgd(model, lr), args.bn_epochs, 128, seed=0,
                                    desc=f"{'BN' if bn else 'no BN'} lr {lr:g}")
            stable = not diverged and history[-1]["train_loss"] < math.log(10)
            runs[f"{'bn' if bn else 'plain'}/{lr:g}"] = dict(batch_norm=bn, lr=lr, history=history,
                                                             diverged=diverged, stable=stable)
            print(f"{'with' if bn else 'without':7s} batch norm, lr {lr:<5g} validation accuracy per epoch "
                  + " ".join(f"{100 * h['val_acc']:5.1f}" for h in history) + ("" if stable else "  unstable"),
                  flush=True)
    return runs


def regularisers(args, data):
    x, y = data["train"]
    small = dict(train=(x[:args.small_size], y[:args.small_size]), val=data["val"])
    runs = {}
    for kind in REGULARISERS:
        results = []
        for seed in range(args.seeds):
            tg.manual_seed(seed)
            model = mlp(kind)
            opt = optim.Adam(model.parameters(), lr=1e-3)
            history, _ = fit(model, small, opt, args.reg_epochs, 100, seed=seed, desc=f"{kind} seed {seed}",
                             schedule=False)
            train_acc, _ = accuracy_and_loss(model, *small["train"])  # eval mode: the network that is used
            results.append(dict(train_acc=train_acc, val_acc=history[-1]["val_acc"],
                                val_loss=history[-1]["val_loss"], curve=[h["val_acc"] for h in history],
                                loss_curve=[h["val_loss"] for h in history]))
        runs[kind] = dict(params=n_params(mlp(kind)), runs=results)
        tr, va, vl = (np.array([r[k] for r in results]) for k in ("train_acc", "val_acc", "val_loss"))
        print(f"{kind:15s} train {100 * tr.mean():5.1f}%  validation {100 * va.mean():5.1f} ± "
              f"{100 * va.std(ddof=1) if len(va) > 1 else 0:.1f}%  gap {100 * (tr - va).mean():4.1f}  "
              f"validation loss {vl.mean():.3f}", flush=True)
    return runs


RUNS = dict(degradation=degradation, batchnorm=batchnorm, regularisers=regularisers)


# --- report -----------------------------------------------------------------------------------------
def _mean_std(values, scale=100):
    """Mean and sample standard deviation of ``scale * values`` (percent by default)."""
    a = scale * np.asarray(values, dtype=float)
    return a.mean(), (a.std(ddof=1) if len(a) > 1 else 0.0)


def tables(results, args):
    lines = []
    if "degradation" in results:
        lines += [f"Degradation: {args.train_size} training images, {args.epochs} epochs, SGD lr {args.lr:g} cosine, "
                  "one seed; errors after the last epoch", "",
                  "| network | parameters | training error | validation error | time |", "|---|---:|---:|---:|---:|"]
        for arch, r in results["degradation"].items():
            h = r["history"][-1]
            lines.append(f"| {arch} | {r['params']:,} | {100 * (1 - h['train_acc']):.2f} % | "
                         f"{100 * (1 - h['val_acc']):.2f} % | {r['seconds']:.0f} s |")
        lines.append("")
    if "batchnorm" in results:
        runs = results["batchnorm"]
        lines += [f"Batch norm: VGG-style net, {args.train_size} training images, {args.bn_epochs} epochs, "
                  "validation accuracy after each epoch", "",
                  "| learning rate | without batch norm | with batch norm |", "|---:|---|---|"]
        for lr in args.lrs:
            cells = []
            for key in ("plain", "bn"):
                r = runs[f"{key}/{lr:g}"]
                accs = " → ".join(f"{100 * h['val_acc']:.1f}" for h in r["history"])
                cells.append(accs + ("" if r["stable"] else " (unstable)"))
            lines.append(f"| {lr:g} | {cells[0]} | {cells[1]} |")
        for key, name in (("plain", "without"), ("bn", "with")):
            stable = [runs[f"{key}/{lr:g}"]["lr"] for lr in args.lrs if runs[f"{key}/{lr:g}"]["stable"]]
            lines.append(f"\nLargest stable learning rate {name} batch norm: {max(stable):g}" if stable else
                         f"\nNo stable learning rate {name} batch norm")
        lines.append("")
    if "regularisers" in results:
        lines += [f"Regularisers: MLP 784-512-512-10 on {args.small_size} training images, Adam 1e-3, "
                  f"{args.reg_epochs} epochs, mean ± std over {args.seeds} seeds", "",
                  "| regulariser | parameters | training accuracy | validation accuracy | gap | validation loss |",
                  "|---|---:|---:|---:|---:|---:|"]
        for kind, r in results["regularisers"].items():
            tr, va, vl = ([x[k] for x in r["runs"]] for k in ("train_acc", "val_acc", "val_loss"))
            gap = [a - b for a, b in zip(tr, va)]
            lines.append("| {} | {:,} | {:.1f} ± {:.1f} % | {:.1f} ± {:.1f} % | {:.1f} ± {:.1f} | "
                         "{:.3f} ± {:.3f} |".format(kind, r["params"], *_mean_std(tr), *_mean_std(va),
                                                    *_mean_std(gap), *_mean_std(vl, scale=1)))
    return "\n".join(lines)


def _save(plt, fig, out, name):
    save_png(fig, os.path.join(out, f"deeper_{name}.png"), dpi=80)
    plt.close(fig)


def figures(results, out):
    plt = pyplot()
    if plt is None:
        return
    if "degradation" in results:
        fig, (ax_t, ax_v) = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
        for arch, r in results["degradation"].items():
            ep = [h["epoch"] for h in r["history"]]
            style = dict(color="tab:red" if arch.startswith("plain") else "tab:blue",
                         linestyle="-" if arch.endswith("56") else "--", label=arch)
            ax_t.plot(ep, [100 * (1 - h["train_acc"]) for h in r["history"]], **style)
            ax_v.plot(ep, [100 * (1 - h["val_acc"]) for h in r["history"]], **style)
        ax_t.set(title="training error", xlabel="epoch", ylabel="error (%)")
        ax_v.set(title="validation error", xlabel="epoch")
        ax_t.legend()
        for ax in (ax_t, ax_v):
            ax.grid(alpha=0.3)
        _save(plt, fig, out, "degradation")
    if "batchnorm" in results:
        fig, ax = plt.subplots(figsize=(5.4, 3.4))
        runs = list(results["batchnorm"].values())
        for bn, color in ((False, "tab:red"), (True, "tab:blue")):
            rs = [r for r in runs if r["batch_norm"] == bn]
            first = [100 * r["history"][0]["val_acc"] if r["stable"] else np.nan for r in rs]
            last = [100 * r["history"][-1]["val_acc"] if r["stable"] else np.nan for r in rs]
            name = "with" if bn else "without"
            ax.semilogx([r["lr"] for r in rs], last, "o-", color=color, label=f"{name} batch norm, last epoch")
            ax.semilogx([r["lr"] for r in rs], first, "o:", color=color, label=f"{name} batch norm, first epoch")
        ax.set(xlabel="learning rate", ylabel="validation accuracy (%)",
               title="missing points: unstable runs")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        _save(plt, fig, out, "batchnorm")
    if "regularisers" in results:
        fig, (ax, ax_l) = plt.subplots(1, 2, figsize=(10, 3.4))
        kinds = list(results["regularisers"])
        tr = [_mean_std([x["train_acc"] for x in results["regularisers"][k]["runs"]]) for k in kinds]
        va = [_mean_std([x["val_acc"] for x in results["regularisers"][k]["runs"]]) for k in kinds]
        pos = np.arange(len(kinds))
        ax.bar(pos - 0.2, [m for m, _ in tr], 0.4, yerr=[s for _, s in tr], label="training")
        ax.bar(pos + 0.2, [m for m, _ in va], 0.4, yerr=[s for _, s in va], label="validation")
        low = min(m - s for m, s in va)
        ax.set(xticks=pos, ylim=(max(0, low - 5), 104), ylabel="accuracy (%)")
        ax.set_xticklabels(kinds, fontsize=8)
        ax.legend(loc="upper center", ncol=2, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        for kind in kinds:  # the mean over seeds of the validation loss after each epoch
            curves = np.array([x["loss_curve"] for x in results["regularisers"][kind]["runs"]], dtype=float)
            ax_l.plot(np.arange(1, curves.shape[1] + 1), np.nanmean(curves, axis=0), label=kind)
        ax_l.set(xlabel="epoch", ylabel="validation loss", title="mean over seeds")
        ax_l.legend(fontsize=8)
        ax_l.grid(alpha=0.3)
        fig.tight_layout()
        _save(plt, fig, out, "regularisers")


def _finite(value):
    """``value`` with NaN (a diverged run's numbers) as None: strict JSON."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def run(args, argv):
    args = resolve(args)
    if not os.path.isdir(os.path.expanduser(args.data)):
        raise UsageError(f"data folder {args.data} does not exist")
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        raise UsageError(f"output folder cannot be created: {e.strerror or e}") from e
    data = load(args)
    chosen = args.only or list(EXPERIMENTS)
    results = {}
    for name in EXPERIMENTS:
        if name in chosen:
            print(f"--- {name}", flush=True)
            results[name] = RUNS[name](args, data)
    text = tables(results, args)
    print(text)
    settings = {k: getattr(args, k) for k in ("dataset", "val_size", *DEFAULTS)}
    with atomic_output(os.path.join(args.out, "results.json")) as f:
        f.write(json.dumps(_finite(dict(settings=settings, command=argv, results=results)), indent=1).encode())
    with atomic_output(os.path.join(args.out, "results.md")) as f:
        f.write((text + "\n").encode())
    figures(results, args.out)
    return 0


def main(argv=None):
    return run_program(build_parser(), argv, run, USER_ERRORS)


if __name__ == "__main__":
    raise SystemExit(main())
