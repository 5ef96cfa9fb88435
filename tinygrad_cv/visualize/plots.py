"""Drawing the arrays of the other modules with matplotlib, an optional extra imported only when a
``plot_*`` function is called. Each returns a `matplotlib.figure.Figure` (no pyplot, no GUI backend)."""
from __future__ import annotations

import math

import numpy as np

from .layers import filter_grid

__all__ = [
    "plot_images", "plot_filters", "plot_overlay", "plot_embeddings",
]


# =====================================================================================================
# Plotting (matplotlib, imported only here)
# =====================================================================================================
def _figure(figsize):
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError("plotting needs matplotlib, an optional extra: pip install 'tinygrad_cv[plots]'") from e
    # a Figure, not pyplot: no global state, no GUI backend; save it with fig.savefig(path)
    return Figure(figsize=figsize)


def _as_tiles(images):
    a = np.asarray(images, dtype=np.float64)
    if a.ndim == 4 and a.shape[1] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
    if a.ndim == 4 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (3, 4) or (a.ndim == 4 and a.shape[-1] != 3):
        raise ValueError(f"images must be (N, H, W), (N, H, W, 3) or (N, C, H, W) with C 1 or 3, got {np.shape(images)}")
    return a


def _normalise_rgb(a):
    lo, hi = a.min(), a.max()
    return (a - lo) / (hi - lo) if hi > lo else np.full_like(a, 0.5)


def plot_images(images, titles=None, ncols=None, cmap="gray", symmetric=False, suptitle=None, size=1.4):
    """A grid of images (each scaled on its own); ``symmetric=True`` centres the colour map on 0. Returns the Figure."""
    a = _as_tiles(images)
    n = len(a)
    ncols = int(ncols or min(n, 10))
    nrows = math.ceil(n / ncols)
    fig = _figure((size * ncols, size * nrows + (0.4 if suptitle else 0) + (0.25 * nrows if titles else 0)))
    for i in range(n):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        if a.ndim == 4:
            ax.imshow(_normalise_rgb(a[i]))
        elif symmetric:
            m = np.abs(a[i]).max() or 1.0
            ax.imshow(a[i], cmap=cmap, vmin=-m, vmax=m)
        else:
            ax.imshow(a[i], cmap=cmap)
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_filters(model, layer, mode="auto", title=None, size=4.0):
    """The filters of conv layer ``layer`` (:func:`filter_grid`) in one panel. Returns the Figure."""
    grid = filter_grid(model, layer, mode=mode)
    fig = _figure((size, size * grid.shape[0] / grid.shape[1] + 0.4))
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(grid, cmap=None if grid.ndim == 3 else "gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or f"{layer}: filters, each scaled to [0, 1]", fontsize=9)
    fig.tight_layout()
    return fig


def plot_overlay(images, heatmaps, titles=None, ncols=None, alpha=0.5, cmap="jet", suptitle=None, size=1.4):
    """Heat maps (N, H, W) drawn over grey images (N, C, H, W) or (N, H, W), each scaled to its own range."""
    imgs = _as_tiles(images)
    maps = np.asarray(heatmaps, dtype=np.float64)
    if maps.shape[0] != imgs.shape[0] or maps.shape[1:3] != imgs.shape[1:3]:
        raise ValueError(f"need one (H, W) heat map per image: images {np.shape(images)}, maps {maps.shape}")
    n = len(imgs)
    ncols = int(ncols or min(n, 10))
    nrows = math.ceil(n / ncols)
    fig = _figure((size * ncols, size * nrows + (0.4 if suptitle else 0) + (0.25 * nrows if titles else 0)))
    for i in range(n):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        base = imgs[i] if imgs.ndim == 3 else imgs[i].mean(-1)
        ax.imshow(base, cmap="gray")
        ax.imshow(maps[i], cmap=cmap, alpha=alpha)
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_embeddings(embeddings, labels, scores=None, title=None, size=2.6, point_size=4):
    """One scatter plot per layer of 2-D ``embeddings`` (name -> (N, 2)), coloured by ``labels``.

    ``scores`` (name -> number, e.g. :func:`layer_separability`) go into the panel titles.
    """
    labels = np.asarray(labels).reshape(-1)
    names = list(embeddings)
    if not names:
        raise ValueError("plot_embeddings needs at least one embedding")
    ncols = min(len(names), 4)
    nrows = math.ceil(len(names) / ncols)
    fig = _figure((size * ncols, size * nrows + (0.4 if title else 0)))
    for i, name in enumerate(names):
        e = np.asarray(embeddings[name])
        if e.shape != (len(labels), 2):
            raise ValueError(f"embedding {name!r} must have shape ({len(labels)}, 2), got {e.shape}")
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.scatter(e[:, 0], e[:, 1], c=labels, cmap="tab10", s=point_size, vmin=0, vmax=9, linewidths=0)
        ax.set_xticks([])
        ax.set_yticks([])
        label = name if scores is None or name not in scores else f"{name}: {100 * scores[name]:.1f} %"
        ax.set_title(label, fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
