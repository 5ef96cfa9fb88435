"""Look inside a trained CNN: every method of ``tinygrad_cv.visualize`` on MNIST, as PNG figures.

    python demos/look_inside.py --data DIR                  # train LeNet-5 and GapNet, then draw everything
    python demos/look_inside.py --data DIR --model runs/look_inside/lenet.safetensors \\
                                --gap-model runs/look_inside/gapnet.safetensors   # reuse trained networks
    python demos/look_inside.py --help

What it does, in order:

1. reads MNIST from ``--data`` (the four IDX files; without it, ``$TINYGRAD_CV_DATA`` or
   ``~/.cache/tinygrad_cv``, downloading when missing) and holds out ``--val`` random training
   images as a validation split;
2. trains LeNet-5 and GapNet (a conv stack, global average pooling and one linear layer — the
   shape class activation maps need) on the rest, printing the validation accuracy after every
   epoch, or loads them with ``--model`` / ``--gap-model``; the checkpoints go to ``--out``;
3. measures each network's accuracy on the test set, once;
4. draws, on the first test image of each digit: the filters, feature maps, the top-9 patches
   of units of conv1/conv2, deconvnet and guided backpropagation, saliency and SmoothGrad,
   occlusion, CAM (GapNet) and Grad-CAM (LeNet-5), class-model visualisations of the ten
   digits, and inversions of four layers' representations;
5. embeds ``--embed`` validation images at every layer of LeNet-5 with PCA (and ``--tsne`` of
   them with t-SNE, when scikit-learn is installed) and scores how well each layer separates
   the digits (k-NN and a linear probe, fitted on one half of those images, scored on the other).

Figures go to ``--out`` as ``inside_*.png``, the numbers to ``results.json`` and
``separability.md``. The separability is measured on validation images the networks
did not train on — unless a network loaded with ``--model`` was trained on them (the
LeNet demo trains on every training image), which the demo cannot know.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
from tqdm.auto import tqdm

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import checkpoint, optim
from tinygrad_cv import visualize as V
from tinygrad_cv.data import MNIST, ArrayDataset, DataLoader
from tinygrad_cv.data import transforms as T
from tinygrad_cv.models import GapNet, LeNet5

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
PIXEL_RANGE = ((0 - MNIST_MEAN) / MNIST_STD, (1 - MNIST_MEAN) / MNIST_STD)  # [0, 1] pixels, normalised

# LeNet-5's layers by the names the figures use (after each ReLU: what the next layer sees)
LENET_LAYERS = {"conv1": "features.1", "pool1": "features.2", "conv2": "features.4", "pool2": "features.5",
                "fc1": "classifier.2", "fc2": "classifier.4", "logits": "classifier.5"}


class UsageError(Exception):
    """A command that cannot run as given: reported in one line."""


def parse_args(argv):
    p = argparse.ArgumentParser(prog="look_inside.py", description=__doc__.split("\n")[0])
    p.add_argument("--data", help="folder with the MNIST IDX files (default: $TINYGRAD_CV_DATA or ~/.cache/tinygrad_cv)")
    p.add_argument("--out", default=os.path.join("runs", "look_inside"), help="folder for figures, checkpoints, numbers")
    p.add_argument("--model", help="a LeNet-5 checkpoint to load instead of training one")
    p.add_argument("--gap-model", help="a GapNet checkpoint to load instead of training one")
    p.add_argument("--epochs", type=int, default=10, help="LeNet-5 training epochs (default 10)")
    p.add_argument("--gap-epochs", type=int, default=8, help="GapNet training epochs (default 8)")
    p.add_argument("--val", type=int, default=1000, help="training images held out for validation (default 1000)")
    p.add_argument("--limit", type=int, help="use only the first N training images (quick runs)")
    p.add_argument("--steps", type=int, default=300, help="gradient steps of class models and inversions (default 300)")
    p.add_argument("--embed", type=int, default=1000, help="validation images embedded per layer (default 1000)")
    p.add_argument("--tsne", type=int, default=500, help="of those, how many t-SNE embeds (default 500; it is slow)")
    p.add_argument("--top-images", type=int, default=10000, help="test images searched for top activations")
    p.add_argument("--no-tsne", action="store_true", help="skip t-SNE even when scikit-learn is installed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    args = p.parse_args(argv)
    for name in ("epochs", "gap_epochs", "steps"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0")
    for name in ("val", "embed", "top_images"):
        if getattr(args, name) < 10:
            p.error(f"--{name.replace('_', '-')} must be at least 10")
    if args.tsne < 0 or 0 < args.tsne < 10:
        p.error("--tsne must be 0 (no t-SNE) or at least 10")
    if args.limit is not None and args.limit <= args.val:
        p.error(f"--limit {args.limit} leaves no training images after --val {args.val}")
    return args


# --- data and training -----------------------------------------------------------------------------------
def check_data_folder(args):
    if args.data is not None and not os.path.isdir(os.path.expanduser(args.data)):
        raise UsageError(f"data folder {args.data} does not exist")


def load_data(args):
    check_data_folder(args)
    train, test = MNIST(args.data, train=True), MNIST(args.data, train=False)
    n = len(train) if args.limit is None else min(args.limit, len(train))
    order = np.random.default_rng(args.seed).permutation(n)
    val_idx, train_idx = np.sort(order[:args.val]), np.sort(order[args.val:])
    to_float = T.ToFloat()
    norm = T.Normalize(MNIST_MEAN, MNIST_STD)

    def arrays(images, labels):
        return norm(to_float(images)).astype(np.float32), np.asarray(labels, dtype=np.int64)

    x_train_raw, y_train = train.data[train_idx], train.targets[train_idx]
    x_val, y_val = arrays(train.data[val_idx], train.targets[val_idx])
    x_test, y_test = arrays(test.data, test.targets)
    return (x_train_raw, y_train), (x_val, y_val), (x_test, y_test)


def accuracy(model, x, y, batch_size=1000):
    model.eval()
    with tg.no_grad():
        pred = np.concatenate([model(tg.from_numpy(x[s:s + batch_size])).numpy().argmax(1)
                               for s in range(0, len(x), batch_size)])
    return float((pred == y).mean())


def train(model, name, train_set, val, epochs, seed):
    """Adam (lr 2e-3, cosine to 0), batch 64, random affine augmentation; validation accuracy per epoch."""
    x_raw, y = train_set
    rng = np.random.default_rng(seed)
    transform = T.Compose([T.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1), rng=rng),
                           T.Normalize(MNIST_MEAN, MNIST_STD)])
    loader = DataLoader(ArrayDataset(x_raw, y), batch_size=64, shuffle=True, seed=seed, transform=transform)
    opt = optim.Adam(model.parameters(), lr=2e-3)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs * len(loader), 1))
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        t0 = time.perf_counter()
        bar = tqdm(loader, desc=f"{name} epoch {epoch}/{epochs}", leave=False)
        for images, labels in bar:
            loss = F.cross_entropy(model(tg.from_numpy(images)), tg.from_numpy(labels))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        val_acc = accuracy(model, *val)
        history.append({"epoch": epoch, "val_acc": val_acc, "seconds": time.perf_counter() - t0})
        tqdm.write(f"{name} epoch {epoch:2d}: validation accuracy {100 * val_acc:.2f}% "
                   f"({history[-1]['seconds']:.1f} s)")
    model.eval()
    return history


def trained(cls, name, path, args, train_set, val, epochs):
    """A ``cls()`` network: loaded from ``path``, or trained and saved to OUT/<name>.safetensors."""
    tg.manual_seed(args.seed)
    model = cls()
    if path:
        if not os.path.isfile(path):
            raise UsageError(f"no checkpoint file at {path}")
        checkpoint.load_checkpoint(path, model=model)
        print(f"{name}: loaded {path}")
        return model.eval(), []
    history = train(model, name, train_set, val, epochs, args.seed)
    checkpoint.save_checkpoint(os.path.join(args.out, f"{name.lower().replace('-', '')}.safetensors"), model=model,
                               epoch=epochs, extra={"history": history, "val": args.val, "seed": args.seed,
                                                    "limit": args.limit})
    return model, history


# --- figures ---------------------------------------------------------------------------------------------
def probabilities(model, x):
    """Softmax of the model's scores for the images ``x`` (float64)."""
    with tg.no_grad():
        z = model(tg.from_numpy(x)).numpy().astype(np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def pixels(x):
    """Normalised images back to [0, 1] pixels, for display."""
    return np.clip(np.asarray(x) * MNIST_STD + MNIST_MEAN, 0, 1)


def rows_figure(rows, path, size=1.15, title=None):
    """One row of panels per entry ``(row label, [(image (h, w), panel title, kind), ...])``; saved to ``path``.

    ``kind``: "gray" (scaled to its own range), "pixels" ([0, 1]), "signed" (blue-white-red, centred on 0),
    "heat" (a heat map), or ("overlay", heat map) to draw a heat map over the grey image.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    ncols = max(len(panels) for _, panels in rows)
    titled = sum(any(sub for _, sub, _ in panels) for _, panels in rows)  # rows with panel titles need room
    height = size * len(rows) + 0.3 * titled + (0.4 if title else 0.1)
    fig = Figure(figsize=(size * ncols + 0.9, height))
    for r, (label, panels) in enumerate(rows):
        for c, (img, sub, kind) in enumerate(panels):
            ax = fig.add_subplot(len(rows), ncols, r * ncols + c + 1)
            img = np.asarray(img, dtype=np.float64)
            if kind == "pixels":
                ax.imshow(img, cmap="gray", vmin=0, vmax=1)
            elif kind == "signed":
                m = np.abs(img).max() or 1.0
                ax.imshow(img, cmap="bwr", vmin=-m, vmax=m)
            elif kind == "heat":
                ax.imshow(img, cmap="inferno")
            elif kind == "heat01":
                ax.imshow(img, cmap="inferno", vmin=0, vmax=1)
            elif isinstance(kind, tuple) and kind[0] == "overlay":
                ax.imshow(img, cmap="gray", vmin=0, vmax=1)
                ax.imshow(kind[1], cmap="jet", alpha=0.5)
            else:
                ax.imshow(img, cmap="gray")
            ax.set_xticks([])
            ax.set_yticks([])
            if sub:
                ax.set_title(sub, fontsize=7, pad=2)
            if c == 0 and label:
                ax.set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    # the panels stay below the title's band
    fig.tight_layout(pad=0.3, h_pad=0.6, w_pad=0.2, rect=(0, 0, 1, 1 - (0.3 / height if title else 0)))
    if titled:  # square panels leave tight_layout no room to move: make the gap for the panel titles
        fig.subplots_adjust(hspace=0.3)
    fig.savefig(path, dpi=90)
    return path


def figure_filters(lenet, gapnet, out):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 5.2))
    panels = [(lenet, "features.0", "LeNet-5 conv1: 6 filters 5×5", 3),
              (gapnet, "features.0", "GapNet conv1: 16 filters 3×3", 4),
              (lenet, "features.3", "LeNet-5 conv2: 16 filters × 6 input maps", None)]
    grid = fig.add_gridspec(2, 2, width_ratios=[1, 1.2])
    axes = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[:, 1])]
    for ax, (model, layer, title, ncols) in zip(axes, panels):
        ax.imshow(V.filter_grid(model, layer, ncols=ncols), cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    path = os.path.join(out, "inside_filters.png")
    fig.savefig(path, dpi=90)
    return path


def figure_feature_maps(lenet, image, out):
    conv1 = V.feature_maps(lenet, "features.1", image)[0]
    conv2 = V.feature_maps(lenet, "features.4", image)[0]
    rows = [("conv1", [(pixels(image[0, 0]), "input", "pixels")] + [(m, f"#{k}", "gray") for k, m in enumerate(conv1)]),
            ("conv2", [(m, f"#{k}", "gray") for k, m in enumerate(conv2[:8])]),
            ("", [(m, f"#{k + 8}", "gray") for k, m in enumerate(conv2[8:])])]
    return rows_figure(rows, os.path.join(out, "inside_feature_maps.png"),
                       title="LeNet-5 feature maps of one test digit (after the ReLU; white = strong)")


def figure_top_patches(lenet, x_test, out, n_images):
    rows = []
    for label, layer, units in (("conv1", "features.1", range(6)), ("conv2", "features.4", range(6))):
        top = V.top_activations(lenet, layer, x_test[:n_images], units=list(units), k=9)
        rf = V.receptive_field(lenet, layer)
        panels = []
        for u, unit in enumerate(top.units):
            mosaic = V.image_grid(pixels(top.patches[u, :, 0]), ncols=3, pad=1, pad_value=0.5)
            panels.append((mosaic, f"unit {unit} ({rf.size[0]}×{rf.size[1]})", "pixels"))
        rows.append((label, panels))
    return rows_figure(rows, os.path.join(out, "inside_top_patches.png"), size=1.5,
                       title=f"the 9 test patches (of {n_images} images) that excite each unit most")


def figure_backprop_rules(lenet, x, y, x_units, units, out):
    """Class scores of ``x`` (digit ``y``), then units of conv2, each in the test image that excites it most."""
    rows = []
    for what, images, targets, layer in (("digit", x, y, None), ("conv2 unit", x_units, units, "features.4")):
        plain = V.input_gradient(lenet, images, targets, layer)
        deconv = V.deconvnet(lenet, images, targets, layer)
        guided = V.guided_backprop(lenet, images, targets, layer)
        for i in range(len(images)):
            first = i == 0 and what == "digit"
            rows.append((f"{what} {targets[i]}", [(pixels(images[i, 0]), "input" if first else "", "pixels"),
                                                  (plain[i, 0], "gradient" if first else "", "signed"),
                                                  (deconv[i, 0], "deconvnet" if first else "", "signed"),
                                                  (guided[i, 0], "guided backprop" if first else "", "signed")]))
    return rows_figure(rows, os.path.join(out, "inside_deconv_guided.png"), size=1.3,
                       title="∂S/∂x under three ReLU rules (red +, blue −)")


def figure_saliency(lenet, x, y, out):
    sal, smooth = V.saliency(lenet, x, y), V.smoothgrad(lenet, x, y, n_samples=50, noise=0.15, seed=0)
    rows = [("input", [(pixels(x[i, 0]), str(y[i]), "pixels") for i in range(len(x))]),
            ("saliency", [(sal[i], "", "heat") for i in range(len(x))]),
            ("SmoothGrad", [(smooth[i], "", "heat") for i in range(len(x))])]
    return rows_figure(rows, os.path.join(out, "inside_saliency.png"),
                       title="|∂S_c/∂x| (Simonyan et al.) and its average over 50 noisy copies (Smilkov et al.)")


def figure_occlusion(lenet, x, y, out, patch=8):
    maps = V.occlusion(lenet, x, y, patch=patch, stride=1, fill=0.0)
    p = probabilities(lenet, x)[np.arange(len(x)), y]
    rows = [("input", [(pixels(x[i, 0]), f"p({y[i]}) = {p[i]:.3f}", "pixels") for i in range(len(x))]),
            ("drop of p", [(maps[i], f"max {maps[i].max():.2f}", "heat01") for i in range(len(x))])]
    return rows_figure(rows, os.path.join(out, "inside_occlusion.png"),
                       title=f"occlusion: p(true digit) minus p with an {patch}×{patch} grey square centred on each "
                             "pixel (black 0 or below, white 1)")


def figure_cam(lenet, gapnet, x, y, out):
    cam = V.class_activation_map(gapnet, x, y)
    gc = V.grad_cam(lenet, x, "features.4", y)
    rows = [("input", [(pixels(x[i, 0]), str(y[i]), "pixels") for i in range(len(x))]),
            ("GapNet CAM", [(pixels(x[i, 0]), "", ("overlay", cam[i])) for i in range(len(x))]),
            ("LeNet Grad-CAM", [(pixels(x[i, 0]), "", ("overlay", gc[i])) for i in range(len(x))])]
    return rows_figure(rows, os.path.join(out, "inside_cam.png"),
                       title="where the evidence for the true digit lies: CAM (GapNet, 7×7) and Grad-CAM (LeNet-5 conv2, 10×10)")


def figure_class_models(models, out, steps, seed):
    rows, scores = [], {}
    for name, model in models:
        history = []
        imgs = V.activation_maximization(model, range(10), (1, 28, 28), steps=steps, lr=0.1, l2=0.01, jitter=1,
                                         blur_every=4, blur_sigma=0.5, clip=PIXEL_RANGE, seed=seed, history=history)
        p = probabilities(model, imgs)
        scores[name] = {"start": history[0].tolist(), "end": history[-1].tolist(),
                        "p_class": p[np.arange(10), np.arange(10)].tolist()}
        rows.append((name, [(pixels(imgs[c, 0]), f"{c}: p={p[c, c]:.2f}", "pixels") for c in range(10)]))
    path = rows_figure(rows, os.path.join(out, "inside_class_models.png"),
                       title=f"class models: argmax S_c(x) − λ‖x‖² with jitter and blur ({steps} steps)")
    return path, scores


def figure_inversion(lenet, x, out, steps, seed):
    layers = [("conv1", "features.1"), ("conv2", "features.4"), ("fc1", "classifier.2"), ("fc2", "classifier.4")]
    recon, losses = {}, {}
    for label, layer in tqdm(layers, desc="inversions", leave=False):
        history = []
        recon[label] = V.invert_representation(lenet, layer, x, steps=steps, lr=0.05, tv_weight=0.5, tv_beta=2.0,
                                               clip=PIXEL_RANGE, seed=seed, history=history)
        losses[label] = {"start": history[0] / len(x), "end": history[-1] / len(x)}
    rows = [("", [(pixels(x[i, 0]), "original" if i == 0 else "", "pixels")]
             + [(pixels(recon[label][i, 0]), (f"from {label}" if i == 0 else ""), "pixels") for label, _ in layers])
            for i in range(len(x))]
    path = rows_figure(rows, os.path.join(out, "inside_inversion.png"), size=1.3,
                       title="images whose representation matches the original's")
    return path, losses


def embeddings_and_separability(lenet, x_val, y_val, out, n, n_tsne, seed):
    x, y = x_val[:n], y_val[:n]
    layers = ["input"] + list(LENET_LAYERS.values())
    names = {v: k for k, v in LENET_LAYERS.items()}
    names["input"] = "pixels"
    knn = V.layer_separability(lenet, layers, x, y, holdout=0.5, method="knn", k=5, seed=seed)
    probe = V.layer_separability(lenet, layers, x, y, holdout=0.5, method="linear", seed=seed)
    feats = V.layer_features(lenet, layers, x)
    sep = {names[k]: {"layer": k, "dims": int(feats[k].shape[1]), "knn": knn[k], "linear": probe[k]} for k in layers}
    paths = []
    pcs = {names[k]: V.pca(feats[k]) for k in layers}
    scores = {names[k]: knn[k] for k in layers}
    fig = V.plot_embeddings(pcs, y, scores=scores, title=f"PCA of {n} validation images at each layer "
                                                          "(title: 5-NN accuracy on a held-out half)")
    paths.append(os.path.join(out, "inside_embeddings_pca.png"))
    fig.savefig(paths[-1], dpi=65)
    if n_tsne:
        try:
            emb = {names[k]: V.tsne(feats[k][:n_tsne], seed=seed) for k in tqdm(layers, desc="t-SNE", leave=False)}
        except ImportError as e:
            print(f"t-SNE skipped: {e}")
        else:
            fig = V.plot_embeddings(emb, y[:n_tsne], scores=scores, point_size=6,
                                    title=f"t-SNE of {n_tsne} of those images (title: the same 5-NN accuracy)")
            paths.append(os.path.join(out, "inside_embeddings_tsne.png"))
            fig.savefig(paths[-1], dpi=65)
    return sep, paths


def separability_table(sep, n):
    lines = [f"| layer | module | features | 5-NN accuracy | linear probe accuracy |",
             "|---|---|---:|---:|---:|"]
    for name, s in sep.items():
        lines.append(f"| {name} | `{s['layer']}` | {s['dims']} | {100 * s['knn']:.1f} % | {100 * s['linear']:.1f} % |")
    return "\n".join(lines) + f"\n\n({n} validation images, fitted on one half, scored on the other.)\n"


# --- main ------------------------------------------------------------------------------------------------
def run(args):
    check_data_folder(args)  # the option mistakes first, then what the machine lacks
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("this demo draws figures: it needs matplotlib (pip install 'tinygrad_cv[viz]')") from None
    os.makedirs(args.out, exist_ok=True)
    t_start = time.perf_counter()
    train_set, val, (x_test, y_test) = load_data(args)
    print(f"{len(train_set[0])} training, {len(val[0])} validation, {len(x_test)} test images")

    lenet, lenet_hist = trained(LeNet5, "LeNet-5", args.model, args, train_set, val, args.epochs)
    gapnet, gap_hist = trained(GapNet, "GapNet", args.gap_model, args, train_set, val, args.gap_epochs)
    t_trained = time.perf_counter()
    # the test set, once per network
    results = {"command": " ".join(["python demos/look_inside.py"] + sys.argv[1:]),
               "test_accuracy": {"LeNet-5": accuracy(lenet, x_test, y_test), "GapNet": accuracy(gapnet, x_test, y_test)},
               "val_accuracy": {"LeNet-5": accuracy(lenet, *val), "GapNet": accuracy(gapnet, *val)},
               "history": {"LeNet-5": lenet_hist, "GapNet": gap_hist}}
    for name in ("LeNet-5", "GapNet"):
        print(f"{name}: validation {100 * results['val_accuracy'][name]:.2f}%, "
              f"test {100 * results['test_accuracy'][name]:.2f}%")

    # the first test image of each digit
    first = np.array([np.flatnonzero(y_test == d)[0] for d in range(10)])
    x10, y10 = x_test[first], y_test[first]
    x4, y4 = x10[[0, 2, 4, 7]], y10[[0, 2, 4, 7]]
    stages = tqdm(total=10, desc="figures", leave=False)
    paths, seconds = [], {}
    clock = [time.perf_counter()]

    def done(path):
        paths.append(path)
        now = time.perf_counter()
        seconds[os.path.basename(path)] = round(now - clock[0], 1)
        clock[0] = now
        stages.update(1)

    done(figure_filters(lenet, gapnet, args.out))
    done(figure_feature_maps(lenet, x10[3:4], args.out))
    done(figure_top_patches(lenet, x_test, args.out, min(args.top_images, len(x_test))))
    top = V.top_activations(lenet, "features.4", x_test[:min(args.top_images, len(x_test))], units=[1, 6, 12], k=1)
    done(figure_backprop_rules(lenet, x4, y4, x_test[top.indices[:, 0]], top.units, args.out))
    done(figure_saliency(lenet, x10, y10, args.out))
    done(figure_occlusion(lenet, x10, y10, args.out))
    done(figure_cam(lenet, gapnet, x10, y10, args.out))
    path, results["class_models"] = figure_class_models([("LeNet-5", lenet), ("GapNet", gapnet)], args.out,
                                                        args.steps, args.seed)
    done(path)
    path, results["inversion_loss"] = figure_inversion(lenet, x10[[1, 3, 8]], args.out, args.steps, args.seed)
    done(path)
    sep, emb_paths = embeddings_and_separability(lenet, *val, args.out, min(args.embed, len(val[0])),
                                                 0 if args.no_tsne else min(args.tsne, args.embed), args.seed)
    paths += emb_paths
    seconds["embeddings and separability"] = round(time.perf_counter() - clock[0], 1)
    stages.update(1)
    stages.close()
    results["separability"] = sep
    results["seconds"] = {"training": t_trained - t_start, "total": time.perf_counter() - t_start, "figures": seconds}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    table = separability_table(sep, min(args.embed, len(val[0])))
    with open(os.path.join(args.out, "separability.md"), "w") as f:
        f.write(table)
    print("\nhow well each LeNet-5 layer separates the digits:\n" + table)
    print("figures:\n  " + "\n  ".join(paths))
    print(f"total {results['seconds']['total']:.0f} s (training {results['seconds']['training']:.0f} s)")
    return 0


def main(argv=None):
    args = parse_args(argv)
    try:
        return run(args)
    except (UsageError, checkpoint.CheckpointError, OSError) as e:
        if argv is not None or args.debug:
            raise
        print(f"look_inside.py: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
