"""What every method of `tinygrad_cv.visualize` shares: naming a layer (:func:`get_layer`), checking the
images and targets it is given, running the model in evaluation mode, and hooking a layer's output.

Everything here but :func:`get_layer` is private to the package.
"""
from __future__ import annotations

import contextlib

import numpy as np

from .. import nn
from ..tensor import Tensor, from_numpy

__all__ = [
    "get_layer",
]


# =====================================================================================================
# Arguments: layers, images, targets
# =====================================================================================================
def get_layer(model, name):
    """The sub-module of ``model`` called ``name`` (a dotted name from ``named_modules()``).

    An unknown name is a ``ValueError`` that lists the names there are, so a
    typo is answered with the right spelling.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")
    if not isinstance(name, str):
        raise TypeError(f"a layer is named by a string such as 'features.0', got {type(name).__name__}")
    modules = dict(model.named_modules())
    if name == "" or name not in modules:
        known = ", ".join(f"{n} ({type(m).__name__})" for n, m in modules.items() if n)
        raise ValueError(f"unknown layer {name!r}; the layers of {type(model).__name__} are: {known}")
    return modules[name]


def _model_dtype_device(model):
    for p in model.parameters():
        return p.dtype, p.device
    return np.dtype(np.float32), "cpu"


def _images(x, name="x"):
    """``x`` as a float NumPy batch (N, C, H, W); anything else is refused with the fix."""
    if isinstance(x, Tensor):
        x = x.detach().numpy()
    x = np.asarray(x)
    if x.ndim != 4:
        hint = " — for one image use x[None]" if x.ndim == 3 else ""
        raise ValueError(f"{name} must be a batch of images of shape (N, C, H, W); got shape {x.shape}{hint}")
    if x.dtype.kind != "f":
        # uint8 pixels would be fed un-normalised; better to say so than to explain garbage
        raise TypeError(f"{name} must hold floating point values (normalised as for training), got {x.dtype}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {x.shape})")
    return x


def _to_model(array, model, requires_grad=False):
    dtype, device = _model_dtype_device(model)
    t = from_numpy(np.ascontiguousarray(array, dtype=dtype))
    if device != "cpu":
        t = t.to(device)
    if requires_grad:
        t.requires_grad_()
    return t


@contextlib.contextmanager
def _evaluating(model):
    """Evaluation mode inside the block; each module's own mode is put back afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)


def _targets(target, n, num_outputs, default, what="target"):
    """One index per image: None -> ``default`` (the predicted class), an int -> the same for all."""
    if target is None:
        return np.asarray(default, dtype=np.int64)
    t = np.asarray(target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{what} must be an integer or a sequence of integers, got {target!r}")
    t = np.broadcast_to(t, (n,)) if t.ndim == 0 else t
    if t.shape != (n,):
        raise ValueError(f"{what} must be one integer or one per image ({n}), got shape {t.shape}")
    if t.size and (t.min() < 0 or t.max() >= num_outputs):
        raise ValueError(f"{what} must lie in [0, {num_outputs}), got {t.tolist()}")
    return t.astype(np.int64)


def _one_hot(indices, n_classes, like):
    out = np.zeros((len(indices), n_classes), dtype=like.dtype)
    out[np.arange(len(indices)), indices] = 1
    t = Tensor._wrap(out)
    return t.to(like.device) if like.device != "cpu" else t


@contextlib.contextmanager
def _capture(model, layer):
    """Inside the block, ``store["out"]`` is ``layer``'s latest output (with its graph), via a forward hook."""
    module = get_layer(model, layer)
    store = {}

    def hook(mod, args, output):
        store["out"] = output

    handle = module.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def _extractor(model, layers):
    # imported here: tinygrad_cv.models imports nn, which this module also needs at import time
    from ..models import feature_extractor

    for name in layers:
        get_layer(model, name)  # our error message (with the list of names) for a typo
    return feature_extractor(model, list(layers))


def _objective(model, xt, target, layer):
    """The score each image's explanation is about, an (N,) Tensor with its graph, and the targets used.

    ``layer=None``: the class score (logit) S_t(x_n) of target t_n (default: the predicted class).
    ``layer`` given: unit (channel) t_n of that layer — its largest activation over positions for
    a feature map (the single strongest activation, which is what Zeiler & Fergus project down),
    the value itself for a vector layer.
    """
    if layer is None:
        logits = model(xt)
        if logits.ndim != 2:
            raise ValueError(f"the model must return scores of shape (N, classes), got {logits.shape}")
        t = _targets(target, xt.shape[0], logits.shape[1], logits.detach().cpu().numpy().argmax(1))
        return (logits * _one_hot(t, logits.shape[1], logits)).sum(1), t
    if target is None:
        raise ValueError(f"with layer={layer!r} the target is a unit (channel) of that layer; give its index")
    with _capture(model, layer) as store:
        model(xt)
    a = store["out"]
    t = _targets(target, xt.shape[0], a.shape[1], None, what="unit")
    mask = _one_hot(t, a.shape[1], a).reshape((a.shape[0], a.shape[1]) + (1,) * (a.ndim - 2))
    picked = (a * mask).sum(1)
    if picked.ndim > 1:
        picked = picked.reshape(picked.shape[0], -1).amax(1)
    return picked, t
