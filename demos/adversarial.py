"""Fooling LeNet-5 on MNIST, and training it to resist: the measurements behind chapter 17.

    python demos/adversarial.py --data DIR                 # everything, about 10-15 minutes on 2 cores
    python demos/adversarial.py --data DIR --eval-limit 1000 --pgd-steps 10   # a quick look
    python demos/adversarial.py --help

What it does, in order:

1. Loads MNIST (``--data``; default ``$TINYGRAD_CV_DATA`` or ``~/.cache/tinygrad_cv``)
   and holds out the last ``--val-size`` training images as a validation
   split. Pixels stay in [0, 1]: the model standardises its input itself
   (`PixelLeNet5`), so an attack's ε is in pixel units.
2. Trains LeNet-5 as chapter 13 does (Adam, cosine schedule, random affine
   augmentation), or loads it from ``--model`` when that checkpoint exists.
3. Trains the same network for the same epochs with adversarial training
   (``--adv-attack``: FGSM with a random start, or PGD) for each training ε
   in ``--adv-eps``, and keeps the one with the best validation accuracy
   under PGD at ``--robust-eps`` among those whose clean validation
   accuracy is at least ``--min-clean`` (a choice made on the validation
   split, never on the test set). Checkpoints are reused the same way.
4. Only then touches the test set, once: clean accuracy and accuracy under
   FGSM and PGD (L∞, ``--pgd-steps``) for every ε in ``--eps``, for both
   models; targeted PGD at ``--targeted-eps`` towards (y + 1) mod 10;
   Szegedy et al.'s L-BFGS attack on the first ``--lbfgs-images`` test
   images; fooling images for every class.
5. Writes ``results.json``, ``results.md`` and the figures
   ``adversarial_*.png`` into ``--out`` (default runs/adversarial).

``--seeds N`` repeats steps 2-4 (clean and PGD accuracy at ``--robust-eps``
only) for N training seeds and reports mean ± std; the training ε chosen
with the first seed is reused.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
from tqdm.auto import tqdm

import tinygrad_cv as tg
from tinygrad_cv.cli import UsageError, run_program
from tinygrad_cv.cli import integer as _count
from tinygrad_cv.cli import real as _real
import tinygrad_cv.functional as F
from tinygrad_cv import adversarial as adv
from tinygrad_cv import checkpoint, nn, optim
from tinygrad_cv.io.figures import pyplot, save_png
from tinygrad_cv.data import MNIST, ArrayDataset, DataLoader, IDXError
from tinygrad_cv.data import transforms as T
from tinygrad_cv.models import LeNet5

PROG = "adversarial"
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


class PixelLeNet5(nn.Module):
    """LeNet-5 that reads pixels in [0, 1] and standardises them itself: (x - mean) / std, then LeNet-5.

    Putting the normalisation inside the model keeps the attacks in pixel
    units: the box [0, 1] and ε are about what an image can show, and the
    gradient flows through the standardisation like through any layer.
    """

    def __init__(self, mean=MNIST_MEAN, std=MNIST_STD):
        super().__init__()
        self.mean, self.std = float(mean), float(std)
        self.net = LeNet5()

    def forward(self, x):
        return self.net((x - self.mean) / self.std)


# --- options ----------------------------------------------------------------------------------
_positive_int = _count(1)


def _eps_list(text):
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"every ε must be > 0, got {part}")
        values.append(value)
    return values


def build_parser():
    p = argparse.ArgumentParser(prog=PROG, description="Adversarial examples and adversarial training of LeNet-5 "
                                                        "on MNIST (chapter 17).")
    p.add_argument("--data", default=None, help="MNIST folder (default: $TINYGRAD_CV_DATA, then ~/.cache/tinygrad_cv)")
    p.add_argument("--out", default="runs/adversarial", help="output folder (default runs/adversarial)")
    p.add_argument("--model", default=None,
                   help="checkpoint of the standard model: loaded when it exists, written after training otherwise "
                        "(default OUT/lenet_standard_seedS.safetensors)")
    p.add_argument("--retrain", action="store_true", help="train even when the checkpoints exist (overwrites them)")
    p.add_argument("--epochs", type=_positive_int, default=15, help="epochs of both trainings (default 15)")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="default 64")
    p.add_argument("--lr", type=_real(0, low_open=True), default=2e-3, help="Adam's peak learning rate (default 2e-3)")
    p.add_argument("--seed", type=int, default=0, help="first training seed (default 0)")
    p.add_argument("--seeds", type=_positive_int, default=1,
                   help="number of training seeds for the mean ± std of the key numbers (default 1)")
    p.add_argument("--limit", type=_positive_int, help="use only the first N training images (validation included)")
    p.add_argument("--val-size", type=_positive_int, default=1000,
                   help="the last N training images are the validation split (default 1000)")
    p.add_argument("--eval-limit", type=_positive_int, help="evaluate on the first N test images only")
    p.add_argument("--eps", type=_eps_list, default=[0.05, 0.1, 0.2, 0.3], help="L∞ radii (default 0.05,0.1,0.2,0.3)")
    p.add_argument("--pgd-steps", type=_positive_int, default=40, help="PGD steps (default 40; step 2.5 ε / steps)")
    p.add_argument("--targeted-eps", type=_real(0, low_open=True), default=0.3, help="default 0.3")
    p.add_argument("--adv-attack", choices=["fgsm_rs", "pgd"], default="fgsm_rs",
                   help="attack of adversarial training (default fgsm_rs; pgd uses --adv-steps steps)")
    p.add_argument("--adv-steps", type=_positive_int, default=7, help="PGD steps in adversarial training (default 7)")
    p.add_argument("--adv-eps", type=_eps_list, default=[0.1, 0.2],
                   help="candidate training ε, chosen on the validation split (default 0.1,0.2)")
    p.add_argument("--robust-eps", type=_real(0, low_open=True), default=0.1,
                   help="ε at which robustness is compared and chosen (default 0.1)")
    p.add_argument("--min-clean", type=_real(0, high=1), default=0.98,
                   help="clean validation accuracy a robust candidate must keep (default 0.98)")
    p.add_argument("--lbfgs-images", type=_count(0), default=20,
                   help="test images for the L-BFGS attack (default 20; 0: skip)")
    p.add_argument("--lbfgs-iter", type=_positive_int, default=100, help="L-BFGS-B iterations per solve (default 100)")
    p.add_argument("--fooling-steps", type=_positive_int, default=200, help="default 200")
    p.add_argument("--fooling-lr", type=_real(0, low_open=True), default=0.05, help="RMS pixel change per step (0.05)")
    p.add_argument("--figure-eps", type=_real(0, low_open=True), default=0.2, help="ε of the example figure (0.2)")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--debug", action="store_true", help="on an error, show the full traceback")
    return p


# --- data ---------------------------------------------------------------------------------------
def load_data(args):
    train = MNIST(args.data, train=True)
    test = MNIST(args.data, train=False)
    images, labels = train.data, train.targets
    if args.limit:
        images, labels = images[:args.limit], labels[:args.limit]
    if args.val_size >= len(images):
        raise UsageError(f"--val-size {args.val_size} leaves no training images out of {len(images)}")
    split = len(images) - args.val_size  # the *last* images validate: the first ones train, as chapter 13's runs
    test_images, test_labels = test.data, test.targets
    if args.eval_limit:
        test_images, test_labels = test_images[:args.eval_limit], test_labels[:args.eval_limit]
    as_float = lambda a: (a.astype(np.float32) / 255.0)[:, None]  # (N, 28, 28) uint8 -> (N, 1, 28, 28) in [0, 1]
    return dict(train=(images[:split], labels[:split]), val=(as_float(images[split:]), labels[split:]),
                test=(as_float(test_images), test_labels))


# --- training -----------------------------------------------------------------------------------
def train_model(args, data, seed, attack=None, eps=None):
    """LeNet-5 trained for ``args.epochs``: standard (``attack`` None) or adversarial (``attack``, ``eps``)."""
    tg.manual_seed(seed)
    model = PixelLeNet5()
    rng = np.random.default_rng(seed)
    augment = T.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1), rng=rng)
    # interpolation can overshoot 1 by a rounding error; the attacks insist on the box, so clip
    loader = DataLoader(ArrayDataset(*data["train"]), batch_size=args.batch_size, shuffle=True, seed=seed,
                        transform=lambda b: np.clip(augment(b), 0.0, 1.0))
    opt = optim.Adam(model.parameters(), lr=args.lr)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs * len(loader))
    attack_rng = np.random.default_rng([seed, 17])  # the random starts: reproducible, apart from the data order's
    name = "standard" if attack is None else f"{attack} ε={eps:g}"
    for epoch in range(1, args.epochs + 1):
        model.train()
        bar = tqdm(loader, desc=f"{name} seed {seed} epoch {epoch}/{args.epochs}", leave=False, mininterval=0.5)
        total, seen = 0.0, 0
        for images, labels in bar:
            if attack is None:
                loss = F.cross_entropy(model(tg.from_numpy(images)), tg.from_numpy(labels))
                opt.zero_grad()
                loss.backward()
                opt.step()
                value = loss.item()
            else:
                value = adv.adversarial_training_step(model, images, labels, opt, attack=attack, eps=eps,
                                                      steps=args.adv_steps, seed=attack_rng)
            sched.step()
            total, seen = total + value * len(labels), seen + len(labels)
            bar.set_postfix(loss=f"{total / seen:.4f}")
        bar.close()
        print(f"  {name}, seed {seed}, epoch {epoch}: training loss {total / seen:.4f}")
    model.eval()
    return model


def checkpoint_path(args, kind, seed):
    if kind == "standard" and args.model and seed == args.seed:
        return args.model
    return os.path.join(args.out, f"lenet_{kind}_seed{seed}.safetensors")


def trained_model(args, data, seed, attack=None, eps=None):
    """The model from its checkpoint when there is one made with these settings, else trained and saved."""
    kind = "standard" if attack is None else f"{attack}_eps{eps:g}"
    path = checkpoint_path(args, kind, seed)
    config = dict(kind=kind, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=seed,
                  train_size=len(data["train"][1]), adv_steps=args.adv_steps if attack == "pgd" else None)
    if os.path.isfile(path) and not args.retrain:
        saved = (checkpoint.load_checkpoint(path).get("extra") or {}).get("config")
        if saved != config:
            raise UsageError(f"{path} was trained with {saved}, this run needs {config}; pass --retrain to train "
                             "again (it overwrites the file) or choose another --out")
        model = PixelLeNet5()
        checkpoint.load_checkpoint(path, model=model)
        model.eval()
        print(f"loaded {path}")
        return model, 0.0
    t0 = time.perf_counter()
    model = train_model(args, data, seed, attack, eps)
    seconds = time.perf_counter() - t0
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    checkpoint.save_checkpoint(path, model=model, epoch=args.epochs, extra=dict(config=config, seconds=seconds))
    print(f"trained {kind} (seed {seed}) in {seconds:.0f} s; saved {path}")
    return model, seconds


# --- evaluation ---------------------------------------------------------------------------------
def predict(model, x, batch=1000):
    model.eval()
    out = []
    with tg.no_grad():
        for i in range(0, len(x), batch):
            out.append(model(tg.from_numpy(np.ascontiguousarray(x[i:i + batch]))).numpy())
    return np.concatenate(out)


def attacked(model, x, y, attack, desc, batch=1000):
    """``attack(x_batch, y_batch, index)`` applied batch by batch: the adversarial images, as one array."""
    parts = []
    for k, i in enumerate(tqdm(range(0, len(x), batch), desc=desc, leave=False)):
        parts.append(attack(x[i:i + batch], y[i:i + batch], k).numpy())
    return np.concatenate(parts)


def accuracy(model, x, y):
    return float((predict(model, x).argmax(1) == y).mean())


def pgd_attack(model, eps, args, seed, **kw):
    # one Generator per evaluation, so each number can be reproduced on its own
    rng = np.random.default_rng([seed, int(round(eps * 1e6)), 1 if kw.get("targeted") else 0])
    # early_stop: an image stops at its first fooling iterate (counted as fooled; never fewer than the last
    # iterates would count) and costs nothing more; most images under large ε are fooled within a few steps
    return lambda xb, yb, k: adv.pgd(model, xb, yb, eps, steps=args.pgd_steps, seed=rng, early_stop=True, **kw)


def robustness(model, x, y, args, seed, label):
    """Clean accuracy and accuracy under FGSM and PGD at every ε of ``args.eps``."""
    result = {"clean": accuracy(model, x, y), "fgsm": {}, "pgd": {}}
    for eps in args.eps:
        x_f = attacked(model, x, y, lambda xb, yb, k: adv.fgsm(model, xb, yb, eps), f"{label} FGSM ε={eps:g}")
        x_p = attacked(model, x, y, pgd_attack(model, eps, args, seed), f"{label} PGD-{args.pgd_steps} ε={eps:g}")
        result["fgsm"][f"{eps:g}"] = accuracy(model, x_f, y)
        result["pgd"][f"{eps:g}"] = accuracy(model, x_p, y)
        print(f"  {label}: ε = {eps:g}: test accuracy under FGSM {100 * result['fgsm'][f'{eps:g}']:.2f}%, "
              f"under PGD-{args.pgd_steps} {100 * result['pgd'][f'{eps:g}']:.2f}%")
    return result


def softmax(logits):
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def choose_robust(args, data, seed):
    """Adversarial training for each candidate ε; the choice uses the validation split only."""
    xv, yv = data["val"]
    candidates, models, seconds = [], {}, 0.0
    for eps in args.adv_eps:
        model, s = trained_model(args, data, seed, args.adv_attack, eps)
        seconds += s
        x_p = attacked(model, xv, yv, pgd_attack(model, args.robust_eps, args, seed + 1000),
                       f"validation PGD ε={args.robust_eps:g}")
        row = dict(eps_train=eps, val_clean=accuracy(model, xv, yv), val_pgd=accuracy(model, x_p, yv))
        print(f"  adversarial training at ε = {eps:g}: validation accuracy clean {100 * row['val_clean']:.2f}%, "
              f"PGD-{args.pgd_steps} ε={args.robust_eps:g} {100 * row['val_pgd']:.2f}%")
        candidates.append(row)
        models[eps] = model
    keep = [r for r in candidates if r["val_clean"] >= args.min_clean]
    if keep:
        best = max(keep, key=lambda r: r["val_pgd"])
        why = (f"best validation PGD accuracy at ε = {args.robust_eps:g} among those with clean validation "
               f"accuracy ≥ {100 * args.min_clean:g}%")
    else:
        best = max(candidates, key=lambda r: r["val_clean"])
        why = f"no candidate kept {100 * args.min_clean:g}% clean validation accuracy: the most accurate one"
    print(f"chosen: training ε = {best['eps_train']:g} ({why})")
    return models[best["eps_train"]], best["eps_train"], candidates, why, seconds


def lbfgs_summary(model, x, y, args):
    target = (y + 1) % 10
    x_adv, info = adv.lbfgs_attack(model, x, target, max_iter=args.lbfgs_iter, return_info=True)
    ok = info["success"]
    norms = info["norm"][ok]
    return x_adv.numpy(), target, info, dict(
        images=int(len(x)), success=float(ok.mean()),
        mean_norm=float(norms.mean()) if ok.any() else None, std_norm=float(norms.std()) if ok.any() else None,
        median_c=float(np.nanmedian(info["c"])) if np.isfinite(info["c"]).any() else None,
        mean_linf=float(np.abs((x_adv.numpy() - x).reshape(len(x), -1)).max(1)[ok].mean()) if ok.any() else None)


# --- figures -------------------------------------------------------------------------------------
def _show(ax, img, title=None, signed=None, color="black"):
    if signed is None:
        ax.imshow(img, cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(img, cmap="RdBu_r", vmin=-signed, vmax=signed)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8, color=color)


def _save(fig, out, name):
    return save_png(fig, os.path.join(out, f"adversarial_{name}.png"), dpi=80)


def figure_examples(plt, out, model, x, y, eps, args, seed):
    x_f = adv.fgsm(model, x, y, eps).numpy()
    x_p = adv.pgd(model, x, y, eps, steps=args.pgd_steps, seed=seed).numpy()
    p0, pf, pp = (softmax(predict(model, v)) for v in (x, x_f, x_p))
    fig, axes = plt.subplots(len(x), 5, figsize=(8, 1.75 * len(x) + 0.4), gridspec_kw=dict(hspace=0.35))
    heads = ["original", "FGSM perturbation", "FGSM", f"PGD-{args.pgd_steps} perturbation", f"PGD-{args.pgd_steps}"]
    for i in range(len(x)):
        def label(p):
            k = int(p[i].argmax())
            return f"pred {k} ({100 * p[i, k]:.0f}%)", ("green" if k == y[i] else "red")

        def title(col, text=""):  # the column's name over the first row only
            return f"{heads[col]}\n{text}" if i == 0 else text

        _show(axes[i, 0], x[i, 0], title(0, label(p0)[0]), color=label(p0)[1])
        _show(axes[i, 1], x_f[i, 0] - x[i, 0], title(1), signed=eps)
        _show(axes[i, 2], x_f[i, 0], title(2, label(pf)[0]), color=label(pf)[1])
        _show(axes[i, 3], x_p[i, 0] - x[i, 0], title(3), signed=eps)
        _show(axes[i, 4], x_p[i, 0], title(4, label(pp)[0]), color=label(pp)[1])
    fig.suptitle(f"standard LeNet-5, L∞ ε = {eps:g} (perturbations: red +, blue −)", fontsize=9)
    path = _save(fig, out, "examples")
    plt.close(fig)
    return path


def figure_accuracy(plt, out, results, args):
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    eps = [0.0] + list(args.eps)
    for key, name, color in (("standard", "standard", "tab:blue"), ("adversarial", "adversarially trained", "tab:red")):
        acc = results[key]["accuracy"]
        for attack, style in (("fgsm", "--"), ("pgd", "-")):
            ys = [acc["clean"]] + [acc[attack][f"{e:g}"] for e in args.eps]
            ax.plot(eps, [100 * v for v in ys], style, marker="o", color=color,
                    label=f"{name}, {'FGSM' if attack == 'fgsm' else f'PGD-{args.pgd_steps}'}")
    ax.set(xlabel="L∞ radius ε (pixel units)", ylabel="test accuracy (%)", ylim=(-2, 102))
    ax.axvline(results["adversarial"]["eps_train"], color="tab:red", lw=0.6, ls=":")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    path = _save(fig, out, "accuracy")
    plt.close(fig)
    return path


def figure_targeted(plt, out, model, x, eps, args, seed):
    """One image pushed to every class with targeted PGD."""
    xs = np.repeat(x[:1], 10, axis=0)
    targets = np.arange(10)
    x_t = adv.pgd(model, xs, targets, eps, steps=args.pgd_steps, targeted=True, seed=seed).numpy()
    p = softmax(predict(model, x_t))
    fig, axes = plt.subplots(2, 10, figsize=(10, 2.4))
    for k in range(10):
        hit = int(p[k].argmax()) == k
        _show(axes[0, k], x_t[k, 0], f"→{k}: {100 * p[k, k]:.0f}%", color="green" if hit else "red")
        _show(axes[1, k], x_t[k, 0] - xs[k, 0], signed=eps)
    fig.suptitle(f"targeted PGD-{args.pgd_steps}, ε = {eps:g}: one test image made into every class "
                 "(top: image and confidence, bottom: perturbation)", fontsize=9)
    path = _save(fig, out, "targeted")
    plt.close(fig)
    return path


def figure_fooling(plt, out, fooled):
    fig, axes = plt.subplots(len(fooled), 10, figsize=(10, 1.25 * len(fooled) + 0.3))
    axes = np.atleast_2d(axes)
    for r, (name, (images, conf)) in enumerate(fooled.items()):
        for k in range(10):
            _show(axes[r, k], images[k, 0], f"{k}: {100 * conf[k]:.2f}%")
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.suptitle("fooling images: gradient ascent on log p(class) from uniform noise "
                 "(rows: models; titles: class and its probability)", fontsize=9)
    path = _save(fig, out, "fooling")
    plt.close(fig)
    return path


def figure_lbfgs(plt, out, x, x_adv, target, info, model, count=5):
    count = min(count, len(x))
    p = softmax(predict(model, x_adv[:count]))
    fig, axes = plt.subplots(3, count, figsize=(1.8 * count, 5.8), squeeze=False, gridspec_kw=dict(hspace=0.45))
    for i in range(count):
        r = x_adv[i, 0] - x[i, 0]
        _show(axes[0, i], x[i, 0], "original")
        _show(axes[1, i], r, f"r, ‖r‖₂ = {info['norm'][i]:.2f}", signed=max(np.abs(r).max(), 1e-6))
        k = int(p[i].argmax())
        _show(axes[2, i], x_adv[i, 0], f"target {target[i]}\npred {k} ({100 * p[i, k]:.0f}%)",
              color="green" if k == target[i] else "red")
    fig.suptitle("Szegedy et al.'s L-BFGS attack on the standard model", fontsize=9)
    path = _save(fig, out, "lbfgs")
    plt.close(fig)
    return path


# --- report --------------------------------------------------------------------------------------
def _pct(v):
    return "–" if v is None else f"{100 * v:.2f} %"


def _mean_std(values):
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def write_report(out, results, args):
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    s, a = results["standard"], results["adversarial"]
    n = results["data"]
    lines = [
        "# Adversarial examples on LeNet-5 (MNIST)", "",
        f"Command: `{results['command']}`", "",
        f"Training {n['train']} images, validation {n['val']} (the last of the training file), "
        f"test {n['test']}; {args.epochs} epochs; seed {args.seed}. PGD: {args.pgd_steps} steps of 2.5 ε / steps, "
        "random start. Test accuracy, evaluated once.", "",
        f"## Accuracy under L∞ attacks (test set)", "",
        f"| ε | standard, FGSM | standard, PGD-{args.pgd_steps} | adversarially trained, FGSM | "
        f"adversarially trained, PGD-{args.pgd_steps} |",
        "|---:|---:|---:|---:|---:|",
        f"| 0 (clean) | {_pct(s['accuracy']['clean'])} | | {_pct(a['accuracy']['clean'])} | |",
    ]
    for e in args.eps:
        k = f"{e:g}"
        lines.append(f"| {k} | {_pct(s['accuracy']['fgsm'][k])} | {_pct(s['accuracy']['pgd'][k])} | "
                     f"{_pct(a['accuracy']['fgsm'][k])} | {_pct(a['accuracy']['pgd'][k])} |")
    t = s["targeted"]
    lines += ["", f"Targeted PGD-{args.pgd_steps} at ε = {t['eps']:g} towards (y + 1) mod 10, standard model: "
                  f"success {_pct(t['success'])}; adversarially trained model: {_pct(a['targeted']['success'])}.", "",
              f"## Adversarial training ({a['attack']}), training ε chosen on the validation split", "",
              f"| training ε | validation clean | validation PGD-{args.pgd_steps} ε={args.robust_eps:g} |",
              "|---:|---:|---:|"]
    for r in a["selection"]:
        lines.append(f"| {r['eps_train']:g} | {_pct(r['val_clean'])} | {_pct(r['val_pgd'])} |")
    lines += ["", f"Chosen: ε = {a['eps_train']:g} ({a['why']}).", ""]
    if "seeds" in results:
        sd = results["seeds"]
        lines += [f"## Over {len(sd['seeds'])} training seeds ({', '.join(map(str, sd['seeds']))}), test set", "",
                  f"| model | clean | PGD-{args.pgd_steps} ε={args.robust_eps:g} |", "|---|---:|---:|"]
        for key, name in (("standard", "standard"), ("adversarial", "adversarially trained")):
            c, p = sd[key]["clean"], sd[key]["pgd"]
            lines.append(f"| {name} | {100 * c['mean']:.2f} ± {100 * c['std']:.2f} % | "
                         f"{100 * p['mean']:.2f} ± {100 * p['std']:.2f} % |")
        lines.append("")
    lines += ["## Fooling images (confidence of the wanted class)", "",
              "| model | " + " | ".join(str(k) for k in range(10)) + " | min |", "|---|" + "---:|" * 11]
    for key, conf in results["fooling"].items():
        lines.append(f"| {key} | " + " | ".join(f"{100 * c:.2f}" for c in conf) + f" | {100 * min(conf):.2f} |")
    if results.get("lbfgs"):
        lines += ["", "## L-BFGS attack (Szegedy et al.), target (y + 1) mod 10", "",
                  "| model | images | success | mean ‖r‖₂ ± std | mean ‖r‖∞ | median c |",
                  "|---|---:|---:|---:|---:|---:|"]
        for key, r in results["lbfgs"].items():
            norm = "–" if r["mean_norm"] is None else f"{r['mean_norm']:.3f} ± {r['std_norm']:.3f}"
            linf = "–" if r["mean_linf"] is None else f"{r['mean_linf']:.3f}"
            c = "–" if r["median_c"] is None else f"{r['median_c']:.3g}"
            lines.append(f"| {key} | {r['images']} | {_pct(r['success'])} | {norm} | {linf} | {c} |")
    lines += ["", "Seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in results["seconds"].items()), ""]
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(lines))


# --- the run --------------------------------------------------------------------------------------
def run(args, argv):
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        raise UsageError(f"output folder {args.out} cannot be created: {e.strerror or e}") from e
    if args.data is not None and not os.path.isdir(os.path.expanduser(args.data)):
        raise UsageError(f"data folder {args.data} does not exist")
    t_start = time.perf_counter()
    data = load_data(args)
    seconds = {}
    print(f"MNIST: {len(data['train'][1])} training, {len(data['val'][1])} validation, {len(data['test'][1])} test "
          "images; pixels in [0, 1], standardised inside the model")

    # --- training and the choices, validation only
    standard, seconds["train standard"] = trained_model(args, data, args.seed)
    val_clean = accuracy(standard, *data["val"])
    print(f"standard model: validation accuracy {100 * val_clean:.2f}%")
    robust, eps_train, selection, why, seconds["train adversarial"] = choose_robust(args, data, args.seed)

    # --- the test set, once
    t0 = time.perf_counter()
    x, y = data["test"]
    results = dict(command="python demos/adversarial.py " + " ".join(argv), config=vars(args).copy(),
                   data=dict(train=len(data["train"][1]), val=len(data["val"][1]), test=len(y)))
    print("test set:")
    acc_s = robustness(standard, x, y, args, args.seed, "standard")
    acc_a = robustness(robust, x, y, args, args.seed, "adversarially trained")
    print(f"  test accuracy: standard {100 * acc_s['clean']:.2f}%, adversarially trained {100 * acc_a['clean']:.2f}%")
    targeted = {}
    for key, model in (("standard", standard), ("adversarial", robust)):
        target = (y + 1) % 10
        x_t = attacked(model, x, target, pgd_attack(model, args.targeted_eps, args, args.seed, targeted=True),
                       f"{key} targeted PGD ε={args.targeted_eps:g}")
        targeted[key] = dict(eps=args.targeted_eps, success=float((predict(model, x_t).argmax(1) == target).mean()))
        print(f"  targeted PGD-{args.pgd_steps} at ε = {args.targeted_eps:g}, {key} model: "
              f"{100 * targeted[key]['success']:.2f}% reach (y + 1) mod 10")
    seconds["attacks"] = time.perf_counter() - t0
    results["standard"] = dict(val_clean=val_clean, accuracy=acc_s, targeted=targeted["standard"])
    results["adversarial"] = dict(attack=args.adv_attack, eps_train=eps_train, selection=selection, why=why,
                                  accuracy=acc_a, targeted=targeted["adversarial"])

    t0 = time.perf_counter()
    fooled = {}
    for key, model in (("standard", standard), ("adversarial", robust)):
        images = adv.fooling_images(model, list(range(10)), shape=(1, 28, 28), steps=args.fooling_steps,
                                    lr=args.fooling_lr, seed=args.seed).numpy()
        conf = softmax(predict(model, images))[np.arange(10), np.arange(10)]
        fooled[key] = (images, conf)
        print(f"  fooling images, {key} model: confidence " + " ".join(f"{100 * c:.2f}" for c in conf) + " (%)")
    results["fooling"] = {k: [float(c) for c in v[1]] for k, v in fooled.items()}
    seconds["fooling"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    results["lbfgs"], lbfgs_example = {}, None
    n_lb = min(args.lbfgs_images, len(y))
    if n_lb > 0:
        for key, model in (("standard", standard), ("adversarial", robust)):
            x_adv, target, info, summary = lbfgs_summary(model, x[:n_lb], y[:n_lb], args)
            results["lbfgs"][key] = summary
            if key == "standard":
                lbfgs_example = (x_adv, target, info)
            norm = "–" if summary["mean_norm"] is None else f"{summary['mean_norm']:.3f}"
            print(f"  L-BFGS attack, {key} model: {100 * summary['success']:.0f}% of {n_lb} reach their target; "
                  f"mean ‖r‖₂ {norm}")
    seconds["lbfgs"] = time.perf_counter() - t0

    # --- more seeds: the key numbers' spread over training runs
    if args.seeds > 1:
        t0 = time.perf_counter()
        seeds = [args.seed + k for k in range(args.seeds)]
        key_eps = f"{args.robust_eps:g}"
        rows = {"standard": {"clean": [], "pgd": []}, "adversarial": {"clean": [], "pgd": []}}
        for seed in seeds:
            if seed == args.seed:  # the models above, whose numbers are known already
                models = [("standard", standard, acc_s), ("adversarial", robust, acc_a)]
            else:
                models = [("standard", trained_model(args, data, seed)[0], None),
                          ("adversarial", trained_model(args, data, seed, args.adv_attack, eps_train)[0], None)]
            for key, model, known in models:
                rows[key]["clean"].append(known["clean"] if known else accuracy(model, x, y))
                if known and key_eps in known["pgd"]:
                    rows[key]["pgd"].append(known["pgd"][key_eps])
                else:
                    x_p = attacked(model, x, y, pgd_attack(model, args.robust_eps, args, seed),
                                   f"seed {seed} {key} PGD ε={key_eps}")
                    rows[key]["pgd"].append(accuracy(model, x_p, y))
            print(f"  seed {seed}: " + ", ".join(f"{k}: clean {100 * v['clean'][-1]:.2f}%, PGD ε={key_eps} "
                                                 f"{100 * v['pgd'][-1]:.2f}%" for k, v in rows.items()))
        results["seeds"] = {"seeds": seeds}
        for key, row in rows.items():
            results["seeds"][key] = {m: dict(zip(("mean", "std"), _mean_std(v)), values=v) for m, v in row.items()}
        seconds["seeds"] = time.perf_counter() - t0

    plt = None if args.no_plots else pyplot()
    if plt is not None:
        paths = [figure_examples(plt, args.out, standard, x[:5], y[:5], args.figure_eps, args, args.seed),
                 figure_accuracy(plt, args.out, results, args),
                 figure_targeted(plt, args.out, standard, x, args.targeted_eps, args, args.seed),
                 figure_fooling(plt, args.out, {"standard": fooled["standard"],
                                                f"adv. trained (ε={eps_train:g})": fooled["adversarial"]})]
        if lbfgs_example is not None:
            paths.append(figure_lbfgs(plt, args.out, x[:n_lb], *lbfgs_example, standard))
        print("figures: " + ", ".join(paths))
    seconds["total"] = time.perf_counter() - t_start
    results["seconds"] = seconds
    write_report(args.out, results, args)
    print(f"results: {os.path.join(args.out, 'results.md')} and results.json ({seconds['total']:.0f} s in all)")
    return 0


USER_ERRORS = (UsageError, checkpoint.CheckpointError, IDXError, OSError)


def main(argv=None):
    """Run the demo with the command line ``argv`` (default ``sys.argv[1:]``); returns 0.

    From the command line a user error prints one line and exits with status
    2 (``--debug``: the traceback); called with a list, the error is raised.
    """
    return run_program(build_parser(), argv, run, USER_ERRORS)


if __name__ == "__main__":
    sys.exit(main())
