"""Train LeNet-5 on MNIST (or Fashion-MNIST): the project's main demo.

    python demos/train_lenet_mnist.py                     # train with the defaults
    python demos/train_lenet_mnist.py --data DIR --epochs 5
    python demos/train_lenet_mnist.py evaluate runs/lenet/last.safetensors

Also installed as the console command ``tinygrad-cv-lenet``. Each epoch shows
a progress bar (batches/s, running loss), then the train loss and accuracy,
the test accuracy and the time; a checkpoint (safetensors) is written after
every epoch, and with matplotlib installed a PNG of the curves and of the
first layer's learned filters.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import checkpoint, optim
from tinygrad_cv.data import MNIST, DataLoader, FashionMNIST
from tinygrad_cv.data import transforms as T
from tinygrad_cv.models import LeNet5

# MNIST's training-set statistics of pixel values scaled to [0, 1]
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
FASHION_MEAN, FASHION_STD = 0.2860, 0.3530


class ProgressBar:
    """A one-line progress bar: redrawn in place on a terminal, printed once per epoch otherwise."""

    def __init__(self, total, prefix="", stream=None, width=28):
        self.total, self.prefix, self.width = total, prefix, width
        self.stream = stream or sys.stdout
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self.last_draw = 0.0

    def line(self, done, info):
        frac = done / max(self.total, 1)
        fill = int(self.width * frac)
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        return f"{self.prefix} [{'#' * fill}{'.' * (self.width - fill)}] {done}/{self.total} {rate:6.1f} batch/s {info}"

    def update(self, done, info=""):
        now = time.perf_counter()
        if self.live and (now - self.last_draw > 0.1 or done == self.total):
            self.stream.write("\r" + self.line(done, info))
            self.stream.flush()
            self.last_draw = now

    def close(self, info=""):
        self.stream.write(("\r" if self.live else "") + self.line(self.total, info) + "\n")
        self.stream.flush()


def build_parser():
    p = argparse.ArgumentParser(prog="tinygrad-cv-lenet", description="Train LeNet-5 on MNIST with tinygrad_cv.")
    p.add_argument("mode", nargs="?", default="train", choices=["train", "evaluate"],
                   help="train (default) or evaluate a checkpoint")
    p.add_argument("checkpoint", nargs="?", help="checkpoint to evaluate (evaluate mode)")
    p.add_argument("--data", default=None,
                   help="data folder (default: $TINYGRAD_CV_DATA, then ~/.cache/tinygrad_cv; downloaded if missing)")
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--optimizer", default="adam", choices=["adam", "adamw", "sgd", "rmsprop", "adagrad"])
    p.add_argument("--momentum", type=float, default=0.9, help="for sgd / rmsprop")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--schedule", default="cosine", choices=["cosine", "step", "none"])
    p.add_argument("--augment", default="affine", choices=["none", "shift", "affine", "elastic"],
                   help="training-set augmentation applied per batch")
    p.add_argument("--variant", default="relu", choices=["relu", "1998"], help="relu+max-pool, or the 1998 tanh+avg-pool net")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, or cuda for an NVIDIA GPU (needs the [cuda] extra)")
    p.add_argument("--out", default="runs/lenet", help="output folder for checkpoints and plots")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.safetensors")
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images (quick runs)")
    p.add_argument("--no-plots", action="store_true")
    return p


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
    bar = ProgressBar(len(loader), prefix=f"epoch {epoch}/{epochs}")
    total_loss, correct, seen, running = 0.0, 0, 0, None
    for i, (images, labels) in enumerate(loader, 1):
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
        bar.update(i, f"loss {running:.4f}")
    bar.close(f"loss {running:.4f}")
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
    axes[1].plot(epochs, [100 * h["test_acc"] for h in history], "o-", label="test")
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
        raise SystemExit("evaluate needs a checkpoint path: tinygrad-cv-lenet evaluate runs/lenet/last.safetensors")
    state = checkpoint.load_checkpoint(args.checkpoint)
    meta = state.get("extra") or {}
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


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.device != "cpu":
        tg.zeros(1).to(args.device)  # raises a clear error when the device is unavailable
    if args.mode == "evaluate":
        return run_evaluate(args)

    tg.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train, test = load_data(args)
    if args.limit:
        train = _Subset(train, args.limit)
    norm = normaliser(args)
    aug = augmentation(args, rng)
    train_tf = norm if aug is None else T.Compose([aug, norm])
    train_loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, seed=args.seed, transform=train_tf)
    test_loader = DataLoader(test, batch_size=1000, transform=norm)

    model = LeNet5(variant=args.variant).to(args.device)
    opt = make_optimizer(args, model.parameters())
    scheduler = make_scheduler(args, opt, len(train_loader))
    os.makedirs(args.out, exist_ok=True)
    last = os.path.join(args.out, "last.safetensors")
    history, start_epoch = [], 1
    if args.resume:
        if not os.path.exists(last):
            raise SystemExit(f"--resume: no checkpoint at {last}")
        state = checkpoint.load_checkpoint(last, model=model, optimizer=opt, scheduler=scheduler)
        start_epoch = int(state["epoch"]) + 1
        history = (state.get("extra") or {}).get("history", [])
        print(f"resumed from {last} after epoch {start_epoch - 1}")

    n_params = sum(p.numel() for p in model.parameters())
    print(f"LeNet-5 ({args.variant}), {n_params} parameters; {len(train)} training / {len(test)} test images; "
          f"{args.optimizer} lr {args.lr}, batch {args.batch_size}, augment {args.augment}")
    for epoch in range(start_epoch, args.epochs + 1):
        t0 = time.perf_counter()
        train_loss, train_acc = train_epoch(model, train_loader, opt, scheduler, epoch, args.epochs, args.device)
        train_time = time.perf_counter() - t0
        test_acc, _ = evaluate(model, test_loader, device=args.device)
        history.append(dict(epoch=epoch, train_loss=train_loss, train_acc=train_acc, test_acc=test_acc,
                            seconds=train_time))
        print(f"epoch {epoch:2d}: train loss {train_loss:.4f}  train acc {100 * train_acc:.2f}%  "
              f"test acc {100 * test_acc:.2f}%  ({train_time:.1f} s)")
        extra = dict(variant=args.variant, dataset=args.dataset, history=history, args=vars(args))
        checkpoint.save_checkpoint(last, model=model, optimizer=opt, scheduler=scheduler, epoch=epoch, extra=extra)
    if history and not args.no_plots:
        path = save_plots(args.out, history, model)
        if path:
            print(f"plots: {path}")
    with open(os.path.join(args.out, "history.json"), "w") as f:
        json.dump(history, f, indent=1)
    if history:
        print(f"final test accuracy {100 * history[-1]['test_acc']:.2f}%; checkpoint {last}")
    return 0


class _Subset:
    """The first ``n`` samples of a dataset (for quick runs)."""

    def __init__(self, dataset, n):
        self.dataset, self.n = dataset, min(int(n), len(dataset))

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        index = np.arange(self.n)[index]
        return self.dataset[index]



if __name__ == "__main__":
    sys.exit(main())
