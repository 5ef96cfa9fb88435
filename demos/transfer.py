"""Transfer learning with few labels: the measurements behind chapter 18 (first part).

    python demos/transfer.py --data DIR                       # everything, about 16 minutes on 2 cores
    python demos/transfer.py --data DIR --probe-steps 100 --l2 1e-3,1e-2,1e-1,1   # chapter 18's run (full MNIST)
    python demos/transfer.py --data DIR --quick               # a first look, 2-3 minutes
    python demos/transfer.py --data DIR --source fashion --source-data /usr/share/datasets/fashion-mnist
    python demos/transfer.py --help

The setting: a LeNet-5 is pretrained on a *source* task and its features are
reused for a *target* task with few labels. The target task is always the
MNIST digits 5-9 (five classes); the source is

- ``digits`` (default): the MNIST digits 0-4 — the same kind of images, other
  classes, like ImageNet -> PASCAL VOC in the lecture;
- ``fashion``: Fashion-MNIST (ten classes of clothing) — another domain.

What it does, in order:

1. Pretrains LeNet-5 on the source training images (the last ``--source-val``
   of them choose the epoch), or loads it from its checkpoint in ``--out``.
2. Splits the target training images (MNIST digits 5-9): a fixed validation
   set of ``--val-per-class`` images per class, the same for every label count
   and seed, and, per seed, a labelled pool drawn from the rest: the first
   n of a per-class random order, so the sets for n = 1, 10, 100, 1000 are
   nested.
3. For every label count n (``--labels``) and seed (``--seeds``), trains and
   chooses on the validation set only:

   - ``scratch``: LeNet-5 from random weights;
   - linear probes on frozen features — logistic regression and a linear SVM
     (a Linear layer with the multi-class hinge loss) — on every layer of the
     pretrained network (pool1, pool2, fc1, fc2), on the same layers of a
     randomly initialised LeNet-5 (``random filters``), on raw pixels and on
     HOG features (when scikit-image is installed); the L2 strength per probe
     and the layer per method are chosen on the validation set;
   - ``head``: fine-tuning only a new output layer of the pretrained network;
   - ``fc``: fine-tuning the fully connected layers, convolutions frozen;
   - ``all``: fine-tuning the whole network (the pretrained layers at
     ``--backbone-lr-scale`` times the head's rate);
   - ``convs``: the same with only the convolutions transferred: the fully
     connected layers start from random weights, as the upper layers of a
     network are the most specific to its source task (Yosinski et al. 2014);
   - ``random_fc``: the fully connected layers trained on top of frozen
     *random* convolutions.

   Every network training stops at the step with the best validation accuracy
   (checked every ``--eval-every`` steps).
4. Evaluates each chosen model once on the MNIST test digits 5-9, and writes
   ``results.json``, ``results.md`` and the figures ``transfer_*.png`` into
   ``--out`` (``--figures`` puts the figures elsewhere).
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
from tinygrad_cv.cli import number_list as _list
from tinygrad_cv.cli import real as _real
import tinygrad_cv.functional as F
from tinygrad_cv import checkpoint, nn, optim
from tinygrad_cv.io import atomic_output
from tinygrad_cv.io.figures import pyplot, save_png
from tinygrad_cv.data import MNIST, DatasetNotFoundError, FashionMNIST, IDXError
from tinygrad_cv.models import LeNet5

PROG = "transfer"
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
TARGET_CLASSES = (5, 6, 7, 8, 9)
# the frozen layers a probe reads (after each ReLU / pooling: what the next layer sees)
LAYERS = {"pool1": "features.2", "pool2": "features.5", "fc1": "classifier.2", "fc2": "classifier.4"}
PROBES = ("logistic", "svm")
QUICK = dict(labels=[1, 10, 100], pretrain_epochs=2, max_steps=300, probe_steps=100, l2=[1e-3, 1e-2, 1e-1])
DEFAULTS = dict(labels=[1, 10, 100, 1000], pretrain_epochs=4, max_steps=400, probe_steps=200,
                l2=[1e-4, 1e-3, 1e-2, 1e-1, 1.0])


# --- options ----------------------------------------------------------------------------------
def build_parser():
    p = argparse.ArgumentParser(prog=PROG, description="Transfer learning with few labels: LeNet-5 pretrained on "
                                                        "MNIST 0-4 (or Fashion-MNIST), reused for MNIST 5-9.")
    p.add_argument("--data", default=None, help="MNIST folder (default: $TINYGRAD_CV_DATA, then ~/.cache/tinygrad_cv)")
    p.add_argument("--source", choices=["digits", "fashion"], default="digits",
                   help="pretraining task: MNIST digits 0-4 (default) or Fashion-MNIST")
    p.add_argument("--source-data", default=None, help="Fashion-MNIST folder for --source fashion (default: as --data "
                                                       "finds it, e.g. a fashion-mnist subfolder)")
    p.add_argument("--out", default="runs/transfer", help="output folder (default runs/transfer)")
    p.add_argument("--figures", default=None, help="folder for the figures (default: --out)")
    p.add_argument("--quick", action="store_true",
                   help="a first look: labels 1,10,100, 2 pretraining epochs, shorter trainings, 3 L2 strengths")
    p.add_argument("--labels", type=_list(_count(1), "--labels"), default=None,
                   help="labelled images per target class (default 1,10,100,1000)")
    p.add_argument("--seeds", type=_count(1), default=3, help="label draws / initialisations (default 3)")
    p.add_argument("--seed", type=_count(0), default=0, help="first seed; also the pretraining seed (default 0)")
    p.add_argument("--val-per-class", type=_count(1), default=20,
                   help="fixed validation images per target class, disjoint from the labelled pool (default 20)")
    p.add_argument("--pretrain-epochs", type=_count(1), default=None, help="default 4 (--quick 2)")
    p.add_argument("--source-val", type=_count(1), default=2000,
                   help="last N source training images choose the pretraining epoch (default 2000)")
    p.add_argument("--limit", type=_count(1), help="use only the first N images of each training file (quick runs)")
    p.add_argument("--test-limit", type=_count(1), help="evaluate on the first N target test images only")
    p.add_argument("--batch-size", type=_count(1), default=64, help="default 64")
    p.add_argument("--lrs", type=_list(_real(0, low_open=True), "--lrs"), default=[1e-3, 3e-3, 1e-2],
                   help="Adam learning rates tried for every network training, chosen on validation "
                        "(default 1e-3,3e-3,1e-2)")
    p.add_argument("--backbone-lr-scale", type=_real(0, low_open=True, high=1), default=1.0,
                   help="pretrained layers' rate, relative to the head's, when the whole network is fine-tuned "
                        "(default 1: one rate for all)")
    p.add_argument("--epochs", type=_count(1), default=30,
                   help="epochs over the labelled images per network training, within the step limits (30)")
    p.add_argument("--min-steps", type=_count(1), default=100, help="fewest steps of a network training (100)")
    p.add_argument("--max-steps", type=_count(1), default=None, help="most steps of a network training (400)")
    p.add_argument("--eval-every", type=_count(1), default=20, help="validation check every N steps (20)")
    p.add_argument("--l2", type=_list(_real(0, low_open=True), "--l2"), default=None,
                   help="L2 strengths tried for each probe, chosen on validation (default 1e-4,1e-3,1e-2,1e-1,1)")
    p.add_argument("--probe-steps", type=_count(1), default=None,
                   help="full-batch Adam steps per probe and L2 strength (default 200)")
    p.add_argument("--no-hog", action="store_true", help="skip the HOG baseline even when scikit-image is there")
    p.add_argument("--retrain", action="store_true", help="pretrain even when the checkpoint exists")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--debug", action="store_true", help="on an error, show the full traceback")
    return p


def resolve(args):
    """Fill the options that --quick changes; returns args."""
    preset = QUICK if args.quick else DEFAULTS
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.max_steps < args.min_steps:
        raise UsageError(f"--max-steps {args.max_steps} is below --min-steps {args.min_steps}")
    return args


# --- data ---------------------------------------------------------------------------------------
def standardise(images):
    """(N, 28, 28) uint8 -> (N, 1, 28, 28) float32, standardised with MNIST's statistics (for every dataset)."""
    return ((images.astype(np.float32) / 255.0 - MNIST_MEAN) / MNIST_STD)[:, None]


def load_data(args):
    mnist_train, mnist_test = MNIST(args.data, train=True), MNIST(args.data, train=False)
    xs, ys = mnist_train.data, mnist_train.targets
    if args.limit:
        xs, ys = xs[:args.limit], ys[:args.limit]
    target_mask = ys >= TARGET_CLASSES[0]
    test_x, test_y = mnist_test.data, mnist_test.targets
    test_mask = test_y >= TARGET_CLASSES[0]
    tx, ty = test_x[test_mask], test_y[test_mask] - TARGET_CLASSES[0]
    if args.test_limit:
        tx, ty = tx[:args.test_limit], ty[:args.test_limit]
    if args.source == "digits":
        sx, sy = xs[~target_mask], ys[~target_mask]
        src_test = (test_x[~test_mask], test_y[~test_mask])
        n_src_classes = TARGET_CLASSES[0]
    else:
        root = args.source_data if args.source_data is not None else args.data
        fm_train, fm_test = FashionMNIST(root, train=True), FashionMNIST(root, train=False)
        sx, sy = fm_train.data, fm_train.targets
        if args.limit:
            sx, sy = sx[:args.limit], sy[:args.limit]
        src_test = (fm_test.data, fm_test.targets)
        n_src_classes = 10
    if args.source_val >= len(sx):
        raise UsageError(f"--source-val {args.source_val} leaves no source training images out of {len(sx)}")
    split = len(sx) - args.source_val
    return dict(
        source=dict(train=(standardise(sx[:split]), sy[:split]), val=(standardise(sx[split:]), sy[split:]),
                    test=(standardise(src_test[0]), src_test[1]), classes=n_src_classes),
        target=dict(train=(standardise(xs[target_mask]), ys[target_mask] - TARGET_CLASSES[0]),
                    test=(standardise(tx), ty), raw_train=xs[target_mask], raw_test=tx))


def split_target(y, labels, val_per_class, seeds):
    """The fixed validation indices and, per seed, the nested labelled sets {n: indices}.

    The validation images (``val_per_class`` of each class) are drawn once, with a generator that depends on
    nothing else, so every label count and seed is judged on the same images. For each seed a random order of
    each class's remaining images is drawn; the labelled set for n is the first n of every class's order, so
    the sets for growing n are nested.
    """
    classes = np.unique(y)
    need = max(labels) + val_per_class
    short = {int(c): int((y == c).sum()) for c in classes if (y == c).sum() < need}
    if len(classes) < len(TARGET_CLASSES) or short:
        raise UsageError(f"the target classes need {need} training images each ({max(labels)} labelled + "
                         f"{val_per_class} validation); too few: {short or 'some classes are missing'}")
    rng = np.random.default_rng(20240518)  # the validation draw: fixed, independent of --seed
    val, rest = [], {}
    for c in classes:
        idx = rng.permutation(np.flatnonzero(y == c))
        val.append(idx[:val_per_class])
        rest[c] = idx[val_per_class:]
    val = np.sort(np.concatenate(val))
    draws = {}
    for seed in seeds:
        order = {c: np.random.default_rng([seed, int(c)]).permutation(rest[c]) for c in classes}
        draws[seed] = {n: np.concatenate([order[c][:n] for c in classes]) for n in labels}
    return val, draws


# --- networks -----------------------------------------------------------------------------------
def predict(module, x, batch=1000):
    module.eval()
    out = []
    with tg.no_grad():
        for i in range(0, len(x), batch):
            out.append(module(tg.from_numpy(np.ascontiguousarray(x[i:i + batch]))).numpy())
    return np.concatenate(out)


def accuracy(module, x, y):
    return float((predict(module, x).argmax(1) == y).mean())


def snapshot(module):
    return {k: v.numpy().copy() for k, v in module.state_dict().items()}


def train_steps(module, groups, x, y, val, steps, args, seed, lr):
    """Adam (rate ``lr``) on ``groups`` for ``steps`` mini-batches of (x, y); keeps the state with the best
    validation accuracy.

    Returns (best validation accuracy, the step it was reached at). The module is left in that state.
    """
    opt = optim.Adam(groups, lr=lr)
    rng = np.random.default_rng([seed, 99])
    bs = min(args.batch_size, len(x))
    best_acc, best_step, best_state = accuracy(module, *val), 0, snapshot(module)
    order, pos = rng.permutation(len(x)), 0
    for step in range(1, steps + 1):
        if pos + bs > len(order):
            order, pos = rng.permutation(len(x)), 0
        idx = order[pos:pos + bs]
        pos += bs
        module.train()
        loss = F.cross_entropy(module(tg.from_numpy(x[idx])), tg.from_numpy(y[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % args.eval_every == 0 or step == steps:
            acc = accuracy(module, *val)
            if acc > best_acc:  # the first best: ties keep the earlier (shorter) training
                best_acc, best_step, best_state = acc, step, snapshot(module)
    module.load_state_dict(best_state)
    module.eval()
    return best_acc, best_step


def n_steps(n_images, args):
    per_epoch = math.ceil(n_images / min(args.batch_size, n_images))
    return int(min(args.max_steps, max(args.min_steps, args.epochs * per_epoch)))


def pretrain(args, data):
    """LeNet-5 on the source task; the epoch with the best source-validation accuracy is kept."""
    src = data["source"]
    path = os.path.join(args.out, f"pretrained_{args.source}_seed{args.seed}.safetensors")
    config = dict(source=args.source, epochs=args.pretrain_epochs, batch_size=args.batch_size, seed=args.seed,
                  train_size=len(src["train"][1]), classes=src["classes"])
    model = LeNet5(num_classes=src["classes"])
    if os.path.isfile(path) and not args.retrain:
        saved = (checkpoint.load_checkpoint(path).get("extra") or {}).get("config")
        if saved != config:
            raise UsageError(f"{path} was trained with {saved}, this run needs {config}; pass --retrain to train "
                             "again (it overwrites the file) or choose another --out")
        checkpoint.load_checkpoint(path, model=model)
        model.eval()
        print(f"loaded {path}")
        return model, 0.0
    t0 = time.perf_counter()
    tg.manual_seed(args.seed)
    model = LeNet5(num_classes=src["classes"])
    x, y = src["train"]
    rng = np.random.default_rng(args.seed)
    steps_per_epoch = math.ceil(len(x) / args.batch_size)
    opt = optim.Adam(model.parameters(), lr=2e-3)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.pretrain_epochs * steps_per_epoch)
    best = (-1.0, 0, None)
    for epoch in range(1, args.pretrain_epochs + 1):
        model.train()
        order = rng.permutation(len(x))
        bar = tqdm(range(steps_per_epoch), desc=f"pretraining ({args.source}) epoch {epoch}/{args.pretrain_epochs}",
                   leave=False, mininterval=0.5)
        for k in bar:
            idx = order[k * args.batch_size:(k + 1) * args.batch_size]
            loss = F.cross_entropy(model(tg.from_numpy(x[idx])), tg.from_numpy(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        bar.close()
        acc = accuracy(model, *src["val"])
        print(f"  pretraining on {args.source}, epoch {epoch}: source validation accuracy {100 * acc:.2f}%")
        if acc > best[0]:
            best = (acc, epoch, snapshot(model))
    model.load_state_dict(best[2])
    model.eval()
    seconds = time.perf_counter() - t0
    os.makedirs(args.out, exist_ok=True)
    checkpoint.save_checkpoint(path, model=model, epoch=best[1],
                               extra=dict(config=config, val_acc=best[0], seconds=seconds))
    print(f"pretrained in {seconds:.0f} s (epoch {best[1]} kept); saved {path}")
    return model, seconds


def layer_features(model, x, batch=1000):
    """{layer: (N, d) float32}: a LeNet-5's activations at the probed layers, flattened (pool2 and fc2 are also
    the cached inputs of the fine-tuned fully connected layers and of the new head)."""
    from tinygrad_cv.models import feature_extractor

    fx = feature_extractor(model, list(LAYERS.values()))
    model.eval()
    parts = {name: [] for name in LAYERS}
    with tg.no_grad():
        for i in range(0, len(x), batch):
            feats = fx(tg.from_numpy(np.ascontiguousarray(x[i:i + batch])))
            for name, key in LAYERS.items():
                parts[name].append(feats[key].numpy().reshape(len(feats[key]), -1))
    return {name: np.concatenate(v) for name, v in parts.items()}


def hog_features(images):
    """HOG descriptors (scikit-image) of (N, 28, 28) uint8 images, or None without scikit-image."""
    try:
        from skimage.feature import hog
    except ImportError:
        return None
    return np.stack([hog(im, orientations=9, pixels_per_cell=(7, 7), cells_per_block=(2, 2), feature_vector=True)
                     for im in tqdm(images, desc="HOG", leave=False, mininterval=0.5)]).astype(np.float32)


# --- linear probes ------------------------------------------------------------------------------
def fit_probe(kind, xtr, ytr, xval, yval, args, seed, classes=len(TARGET_CLASSES)):
    """A linear classifier on fixed features: logistic regression or a linear SVM, L2 strength chosen on validation.

    The features are centred with the training images' mean and divided by one number, their RMS (not per
    feature: with one image per class most per-feature deviations would be noise). The objective is the mean
    cross-entropy (``logistic``) or the mean multi-class hinge loss (``svm``, F.multi_margin_loss) plus
    ``l2 / 2 * ||W||²``, minimised full-batch with Adam; the strengths in ``args.l2`` are tried from the
    strongest down, each warm-started from the previous solution.

    Returns (predict function, chosen l2, {l2: validation accuracy}).
    """
    mean = xtr.mean(0, keepdims=True)
    scale = float(np.sqrt(((xtr - mean) ** 2).mean())) or 1.0
    prep = lambda a: ((a - mean) / scale).astype(np.float32)
    xt, xv = tg.from_numpy(prep(xtr)), tg.from_numpy(prep(xval))
    yt = tg.from_numpy(ytr)
    tg.manual_seed(seed)
    layer = nn.Linear(xtr.shape[1], classes)
    layer.weight.data[...] = 0.0
    layer.bias.data[...] = 0.0
    scores, best = {}, (-1.0, None, None)
    for l2 in sorted(args.l2, reverse=True):
        opt = optim.Adam(layer.parameters(), lr=0.05)
        sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.probe_steps)
        for _ in range(args.probe_steps):
            logits = layer(xt)
            data = F.cross_entropy(logits, yt) if kind == "logistic" else F.multi_margin_loss(logits, yt)
            loss = data + (0.5 * l2) * (layer.weight * layer.weight).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        with tg.no_grad():
            acc = float((layer(xv).numpy().argmax(1) == yval).mean())
        scores[l2] = acc
        if acc > best[0]:  # ties keep the stronger regularisation (tried first)
            best = (acc, l2, (layer.weight.detach().numpy().copy(), layer.bias.detach().numpy().copy()))
    w, b = best[2]
    return (lambda a: prep(a) @ w.T + b), best[1], scores


# --- one cell: one label count, one seed ----------------------------------------------------------
def head_of(model):
    """The pretrained network with a new, randomly initialised 84 -> 5 output layer (a deep copy)."""
    net = LeNet5(num_classes=model.classifier[5].out_features)
    net.load_state_dict(model.state_dict())
    net.classifier[5] = nn.Linear(84, len(TARGET_CLASSES))
    return net


def run_cell(args, pre, rnd_model, feats, test_feats, target, val_idx, lab_idx, n, seed):
    """Every method for one labelled set; returns {method: dict(val=..., test=..., ...)}."""
    xs, ys = target["train"]
    xt, yt = target["test"]
    xl, yl = xs[lab_idx], ys[lab_idx]
    val = (xs[val_idx], ys[val_idx])
    steps = n_steps(len(lab_idx), args)
    res = {}

    # linear probes on frozen features
    for source, fmap in feats.items():
        for layer, f in fmap.items():
            for kind in PROBES:
                fn, l2, scores = fit_probe(kind, f[lab_idx], yl, f[val_idx], ys[val_idx], args, seed)
                res[f"probe/{source}/{layer}/{kind}"] = dict(
                    val=max(scores.values()), l2=l2, test=float((fn(test_feats[source][layer]).argmax(1) == yt).mean()))

    # Networks: a new head only / the fully connected layers / everything; random convolutions + FC; scratch.
    # The frozen part of a network runs once: what is trained reads its cached output (the same computation).
    def fit(build, x_train, x_val, x_test):
        """Train ``build(lr) -> (module, param groups)`` at every rate of --lrs; keep the best on validation."""
        best = None
        for lr in args.lrs:
            tg.manual_seed(seed)  # the same initial weights for every rate
            module, groups = build(lr)
            acc, step = train_steps(module, groups, x_train, yl, (x_val, ys[val_idx]), steps, args, seed, lr=lr)
            if best is None or acc > best[0]:  # ties keep the smaller rate (tried first)
                best = (acc, step, lr, module)
        acc, step, lr, module = best
        return dict(val=acc, step=step, lr=lr, test=accuracy(module, x_test, yt))

    def cached(source, layer, shape=None):
        f, t = feats[source][layer], test_feats[source][layer]
        r = (lambda a: a) if shape is None else (lambda a: a.reshape(shape))
        return r(f[lab_idx]), r(f[val_idx]), r(t)

    def new_head(lr):
        head = head_of(pre).classifier[5]
        return head, head.parameters()

    def fc_part(base):
        def build(lr):
            net = head_of(base) if base is not None else LeNet5(num_classes=len(TARGET_CLASSES))
            return net.classifier, net.classifier.parameters()

        return build

    def whole(lr):
        net = head_of(pre)
        head_params = list(net.classifier[5].parameters())
        ids = {id(p) for p in head_params}
        backbone = [p for p in net.parameters() if id(p) not in ids]
        return net, [{"params": backbone, "lr": lr * args.backbone_lr_scale}, {"params": head_params}]

    def convs(lr):
        # Yosinski et al. (2014): transfer only the first layers when the upper ones are specific to the source
        # task. The fully connected layers start afresh (the same initial weights as scratch's, by the seed).
        net = LeNet5(num_classes=len(TARGET_CLASSES))
        net.features.load_state_dict(pre.features.state_dict())
        return net, [{"params": list(net.features.parameters()), "lr": lr * args.backbone_lr_scale},
                     {"params": list(net.classifier.parameters())}]

    def scratch(lr):
        net = LeNet5(num_classes=len(TARGET_CLASSES))
        return net, net.parameters()

    maps = (-1, 16, 5, 5)
    res["finetune/head"] = fit(new_head, *cached("pretrained", "fc2"))
    res["finetune/fc"] = fit(fc_part(pre), *cached("pretrained", "pool2", maps))
    res["random_fc"] = fit(fc_part(None), *cached("random", "pool2", maps))
    res["finetune/all"] = fit(whole, xl, val[0], xt)
    res["finetune/convs"] = fit(convs, xl, val[0], xt)
    res["scratch"] = fit(scratch, xl, val[0], xt)

    # the best layer of each probe family, chosen on validation (ties: the deeper layer)
    for source in ("pretrained", "random"):
        for kind in PROBES:
            keys = [f"probe/{source}/{layer}/{kind}" for layer in reversed(list(LAYERS))]
            best = max(keys, key=lambda k: res[k]["val"])
            res[f"frozen/{source}/{kind}"] = dict(res[best], layer=best.split("/")[2])
    return res


# --- report -------------------------------------------------------------------------------------
def _mean_std(values):
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def summarise(cells, labels):
    """{method: {n: dict(mean, std, values)}} of the test accuracies over seeds."""
    methods = list(next(iter(next(iter(cells.values())).values())))
    out = {}
    for m in methods:
        out[m] = {}
        for n in labels:
            vals = [cells[n][s][m]["test"] for s in cells[n]]
            mean, std = _mean_std(vals)
            out[m][n] = dict(mean=mean, std=std, values=vals)
    return out


MAIN_ROWS = [
    ("scratch", "from scratch (LeNet-5, random init)"),
    ("frozen/pretrained/logistic", "frozen pretrained features + logistic regression (layer chosen on val)"),
    ("frozen/pretrained/svm", "frozen pretrained features + linear SVM (layer chosen on val)"),
    ("finetune/head", "fine-tune the new output layer only"),
    ("finetune/fc", "fine-tune the FC layers (convolutions frozen)"),
    ("finetune/all", "fine-tune the whole network"),
    ("finetune/convs", "fine-tune the whole network, FC layers re-initialised (convolutions transferred)"),
    ("random_fc", "random frozen convolutions + trained FC layers"),
    ("frozen/random/logistic", "random frozen features + logistic regression (layer chosen on val)"),
    ("probe/raw/pixels/logistic", "raw pixels + logistic regression"),
    ("probe/raw/pixels/svm", "raw pixels + linear SVM"),
    ("probe/raw/hog/logistic", "HOG + logistic regression"),
    ("probe/raw/hog/svm", "HOG + linear SVM"),
]


def _cell(s):
    return f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f}"


def ordering(summary, labels):
    """Per label count: is scratch < frozen (logistic) < fine-tuned, by the means? For fine-tuning the whole
    network as the lecture does it (``holds``), and with the FC layers re-initialised (``holds_convs``)."""
    rows = {}
    for n in labels:
        a, b, c, d = (summary[k][n]["mean"] for k in ("scratch", "frozen/pretrained/logistic", "finetune/all",
                                                        "finetune/convs"))
        rows[n] = dict(scratch=a, frozen=b, finetune=c, finetune_convs=d, holds=bool(a < b < c),
                       holds_convs=bool(a < b < d))
    return rows


def write_report(out, results, args):
    _write_atomic(os.path.join(out, "results.json"), json.dumps(results, indent=1))
    labels, summ = args.labels, results["summary"]
    src = "MNIST digits 0-4" if args.source == "digits" else "Fashion-MNIST"
    lines = [f"# Transfer: {src} -> MNIST digits 5-9", "", f"Command: `{results['command']}`", "",
             f"Pretraining: {results['pretrain']['train']} source images, {args.pretrain_epochs} epochs; source "
             f"validation accuracy {100 * results['pretrain']['val_acc']:.2f}%, source test accuracy "
             f"{100 * results['pretrain']['test_acc']:.2f}%. Target: validation {results['data']['val']} images "
             f"(fixed), test {results['data']['test']} images. Seeds {', '.join(map(str, results['seeds']))}; "
             "test accuracy (%), mean ± std over the seeds.", "",
             "## Test accuracy against labelled images per class", "",
             "| method | " + " | ".join(f"n = {n}" for n in labels) + " |", "|---|" + "---:|" * len(labels)]
    for key, name in MAIN_ROWS:
        if key in summ:
            lines.append(f"| {name} | " + " | ".join(_cell(summ[key][n]) for n in labels) + " |")
    if "probe/raw/hog/logistic" not in summ:
        lines += ["", "HOG: skipped (scikit-image is not installed, or --no-hog)."]
    lines += ["", "## The lecture's ordering: scratch < frozen features < fine-tuning", "",
              "| n | scratch | frozen + logistic | fine-tune all | holds | fine-tune all, new FC layers | holds |",
              "|---:|---:|---:|---:|---|---:|---|"]
    for n, r in results["ordering"].items():
        lines.append(f"| {n} | {100 * r['scratch']:.1f} | {100 * r['frozen']:.1f} | {100 * r['finetune']:.1f} | "
                     f"{'yes' if r['holds'] else 'no'} | {100 * r['finetune_convs']:.1f} | "
                     f"{'yes' if r['holds_convs'] else 'no'} |")
    lines += ["", "(ILSVRC -> VOC 2007, Agrawal et al. 2014 / R-CNN: 40.7 < 45.5 < 54.1 mAP.)", ""]
    for kind in PROBES:
        lines += [f"## Per-layer probes ({'logistic regression' if kind == 'logistic' else 'linear SVM'}), test "
                  "accuracy (%)", "", "| features | layer | " + " | ".join(f"n = {n}" for n in labels) + " |",
                  "|---|---|" + "---:|" * len(labels)]
        for source in ("pretrained", "random", "raw"):
            for layer in results["layers"][source]:
                key = f"probe/{source}/{layer}/{kind}"
                lines.append(f"| {source} | {layer} | " + " | ".join(_cell(summ[key][n]) for n in labels) + " |")
        lines.append("")
    lines += ["Layers chosen on validation (per seed): " + "; ".join(
        f"n = {n}: " + ", ".join(results["cells"][n][s]["frozen/pretrained/logistic"]["layer"]
                                 for s in results["seeds"]) for n in labels), "",
              "Seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in results["seconds"].items()), ""]
    _write_atomic(os.path.join(out, "results.md"), "\n".join(lines))


# --- figures ------------------------------------------------------------------------------------
def _write_atomic(path, data):
    """Write ``data`` (bytes or str) to ``path`` atomically: a reader (or a run killed half-way) never sees a torn
    results file or figure; the old one stays until the new one is complete (tinygrad_cv.io.atomic_output)."""
    with atomic_output(path) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)


def _save(fig, folder, name):
    """Save a figure as ``folder/transfer_name.png`` (atomically, a palette PNG: ``io.figures.save_png``)."""
    return save_png(fig, os.path.join(folder, f"transfer_{name}.png"))


def figure_accuracy(plt, folder, summary, labels, source):
    panels = [
        ("transfer from " + ("MNIST 0-4" if source == "digits" else "Fashion-MNIST"),
         [("scratch", "from scratch", "k", "o-"), ("frozen/pretrained/logistic", "frozen + logistic", "tab:blue", "s-"),
          ("frozen/pretrained/svm", "frozen + linear SVM", "tab:cyan", "s--"),
          ("finetune/head", "fine-tune head", "tab:orange", "^-"),
          ("finetune/fc", "fine-tune FC layers", "tab:brown", "v-"),
          ("finetune/all", "fine-tune all", "tab:red", "D-"),
          ("finetune/convs", "fine-tune all, new FC layers", "tab:olive", "P--")]),
        ("baselines without pretraining",
         [("scratch", "from scratch", "k", "o-"), ("random_fc", "random convs + trained FC", "tab:purple", "^-"),
          ("frozen/random/logistic", "random features + logistic", "tab:pink", "s-"),
          ("probe/raw/pixels/logistic", "pixels + logistic", "tab:gray", "x-"),
          ("probe/raw/pixels/svm", "pixels + linear SVM", "tab:gray", "x--"),
          ("probe/raw/hog/logistic", "HOG + logistic", "tab:green", "+-"),
          ("probe/raw/hog/svm", "HOG + linear SVM", "tab:green", "+--")]),
    ]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, (title, rows) in zip(axes, panels):
        for key, name, color, style in rows:
            if key not in summary:
                continue
            m = [100 * summary[key][n]["mean"] for n in labels]
            s = [100 * summary[key][n]["std"] for n in labels]
            ax.errorbar(labels, m, yerr=s, fmt=style, color=color, label=name, capsize=3, ms=4, lw=1.2)
        ax.set_xscale("log")
        ax.set(title=title, xlabel="labelled images per class", xticks=labels)
        ax.set_xticklabels([str(n) for n in labels])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("test accuracy, MNIST 5-9 (%)")
    path = _save(fig, folder, "accuracy" if source == "digits" else "accuracy_fashion")
    plt.close(fig)
    return path


def figure_layers(plt, folder, summary, labels, layers, source):
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(labels)))
    xs = np.arange(len(layers))
    for ax, kind in zip(axes, PROBES):
        for n, color in zip(labels, colors):
            for feat, style in (("pretrained", "o-"), ("random", "o:")):
                m = [100 * summary[f"probe/{feat}/{layer}/{kind}"][n]["mean"] for layer in layers]
                s = [100 * summary[f"probe/{feat}/{layer}/{kind}"][n]["std"] for layer in layers]
                ax.errorbar(xs, m, yerr=s, fmt=style, color=color, capsize=2, ms=4,
                            label=f"n = {n}, {feat}" if feat == "pretrained" or n == labels[-1] else None)
        ax.set(title=f"{'logistic regression' if kind == 'logistic' else 'linear SVM'} on one frozen layer",
               xticks=xs, xlabel="layer (solid: pretrained, dotted: random weights)")
        ax.set_xticklabels(layers)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy, MNIST 5-9 (%)")
    axes[1].legend(fontsize=7, loc="lower left", ncol=2)
    path = _save(fig, folder, "layers" if source == "digits" else "layers_fashion")
    plt.close(fig)
    return path


# --- the run ------------------------------------------------------------------------------------
def run(args, argv):
    resolve(args)
    try:
        os.makedirs(args.out, exist_ok=True)
        if args.figures:
            os.makedirs(args.figures, exist_ok=True)
    except OSError as e:
        raise UsageError(f"output folder cannot be created: {e.strerror or e}") from e
    for opt, folder in (("--data", args.data), ("--source-data", args.source_data)):
        if folder is not None and not os.path.isdir(os.path.expanduser(folder)):
            raise UsageError(f"{opt} folder {folder} does not exist")
    t_start = time.perf_counter()
    seconds = {}
    data = load_data(args)
    target = data["target"]
    seeds = [args.seed + k for k in range(args.seeds)]
    val_idx, draws = split_target(target["train"][1], args.labels, args.val_per_class, seeds)
    print(f"target MNIST 5-9: {len(target['train'][1])} training images ({len(val_idx)} of them the fixed "
          f"validation set), {len(target['test'][1])} test images; source {args.source}: "
          f"{len(data['source']['train'][1])} training images")

    pre, seconds["pretraining"] = pretrain(args, data)
    pre_val = accuracy(pre, *data["source"]["val"])
    pre_test = accuracy(pre, *data["source"]["test"])
    print(f"pretrained LeNet-5: source validation accuracy {100 * pre_val:.2f}%, source test {100 * pre_test:.2f}%")

    # features of every target image, once: pretrained network, pixels, HOG; the random network's per seed
    t0 = time.perf_counter()
    xs, xt = target["train"][0], target["test"][0]
    raw = {"pixels": (xs.reshape(len(xs), -1), xt.reshape(len(xt), -1))}
    hog = None if args.no_hog else hog_features(target["raw_train"])
    if hog is not None:
        raw["hog"] = (hog, hog_features(target["raw_test"]))
    elif not args.no_hog:
        print("HOG baseline skipped: scikit-image is not installed (pip install scikit-image)")
    pre_train, pre_test_f = layer_features(pre, xs), layer_features(pre, xt)
    seconds["features"] = time.perf_counter() - t0

    cells = {n: {} for n in args.labels}
    t0 = time.perf_counter()
    for seed in seeds:
        tg.manual_seed(seed + 1000)
        rnd = LeNet5(num_classes=len(TARGET_CLASSES))  # the random-filters baseline: one per seed
        feats = {"pretrained": pre_train, "random": layer_features(rnd, xs),
                 "raw": {k: v[0] for k, v in raw.items()}}
        test_feats = {"pretrained": pre_test_f, "random": layer_features(rnd, xt),
                      "raw": {k: v[1] for k, v in raw.items()}}
        for n in args.labels:
            t1 = time.perf_counter()
            res = run_cell(args, pre, rnd, feats, test_feats, target, val_idx, draws[seed][n], n, seed)
            cells[n][seed] = res
            print(f"  seed {seed}, n = {n:4d}: test accuracy scratch {100 * res['scratch']['test']:.1f}%, "
                  f"frozen+logistic ({res['frozen/pretrained/logistic']['layer']}) "
                  f"{100 * res['frozen/pretrained/logistic']['test']:.1f}%, fine-tune head "
                  f"{100 * res['finetune/head']['test']:.1f}%, all {100 * res['finetune/all']['test']:.1f}%, "
                  f"all with new FC {100 * res['finetune/convs']['test']:.1f}%, "
                  f"pixels {100 * res['probe/raw/pixels/logistic']['test']:.1f}% "
                  f"({time.perf_counter() - t1:.0f} s)")
    seconds["cells"] = time.perf_counter() - t0

    summary = summarise(cells, args.labels)
    results = dict(command="python demos/transfer.py " + " ".join(argv), config=vars(args).copy(), seeds=seeds,
                   data=dict(target_train=len(target["train"][1]), val=len(val_idx), test=len(target["test"][1])),
                   pretrain=dict(train=len(data["source"]["train"][1]), val_acc=pre_val, test_acc=pre_test),
                   layers={"pretrained": list(LAYERS), "random": list(LAYERS), "raw": list(raw)},
                   summary=summary, ordering=ordering(summary, args.labels), cells=cells)
    print("test accuracy, mean ± std over seeds:")
    for key, name in MAIN_ROWS:
        if key in summary:
            print(f"  {name:75s} " + "  ".join(f"n={n}: {_cell(summary[key][n])}" for n in args.labels))

    plt = None if args.no_plots else pyplot()
    if plt is not None:
        folder = args.figures or args.out
        paths = [figure_accuracy(plt, folder, summary, args.labels, args.source),
                 figure_layers(plt, folder, summary, args.labels, list(LAYERS), args.source)]
        print("figures: " + ", ".join(paths))
    seconds["total"] = time.perf_counter() - t_start
    results["seconds"] = seconds
    write_report(args.out, results, args)  # results.json: the label counts and seeds become string keys
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
