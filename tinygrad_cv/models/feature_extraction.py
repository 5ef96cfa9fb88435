"""Intermediate activations of a model, by layer name (torchvision's ``models.feature_extraction``).

::

    fx = feature_extractor(model, ["features.2", "features.5"], return_output=True)
    feats = fx(x)                     # OrderedDict: "features.2", "features.5", "output"
    score = feats["output"][0, 3]
    (g,) = tinygrad_cv.grad(score, [feats["features.5"]])   # Grad-CAM's gradient

torchvision traces the model into a new graph; here a forward hook on each
requested sub-module records its output during an ordinary call of the model.
The hooks exist only for the duration of that call (they are removed even when
the forward raises), so the model is left exactly as it was, and the recorded
outputs are the model's own tensors: they keep their graph, so gradients of
anything computed from them, w.r.t. the input or to them, work as usual.
"""
from __future__ import annotations

from collections import OrderedDict

from ..nn.module import Module

__all__ = ["feature_extractor", "FeatureExtractor"]

OUTPUT_KEY = "output"


class FeatureExtractor:
    """A callable returning the outputs of chosen sub-modules of ``model``; made by `feature_extractor`.

    ``fx(*args, **kwargs)`` calls ``model(*args, **kwargs)`` once and returns an
    ``OrderedDict`` {key: output of that sub-module}, in the order the layers
    were given (plus ``"output"``: the model's result, last, with
    ``return_output=True``). Each requested sub-module must be called exactly
    once per forward; one that is not called, or called twice (a shared
    layer), is an error, because its output would be missing or ambiguous.
    """

    def __init__(self, model, layers, return_output=False):
        self.model = model
        self.layers = layers  # OrderedDict: module name -> key in the result
        self.return_output = return_output

    @property
    def layer_names(self):
        return list(self.layers)

    def __call__(self, *args, **kwargs):
        modules = dict(self.model.named_modules(remove_duplicate=False))
        outputs = {}
        handles = []

        def recorder(name):
            def record(module, inputs, output):
                if name in outputs:
                    raise RuntimeError(
                        f"feature_extractor: layer {name!r} ({type(module).__name__}) was called more than once "
                        "in one forward pass, so its output is ambiguous; give each use its own module"
                    )
                outputs[name] = output

            return record

        try:
            for name in self.layers:
                if name not in modules:  # the model was changed since the extractor was made
                    raise KeyError(_unknown_message([name], modules))
                # appended last: the recorded output is what the rest of the model receives
                handles.append(modules[name].register_forward_hook(recorder(name)))
            result = self.model(*args, **kwargs)
        finally:
            for handle in handles:
                handle.remove()
        missing = [name for name in self.layers if name not in outputs]
        if missing:
            raise RuntimeError(
                f"feature_extractor: layer(s) {missing} were not called during the forward pass of "
                f"{type(self.model).__name__}, so they have no output to return"
            )
        features = OrderedDict((key, outputs[name]) for name, key in self.layers.items())
        if self.return_output:
            features[OUTPUT_KEY] = result
        return features

    def __repr__(self):
        extra = ", return_output=True" if self.return_output else ""
        return f"FeatureExtractor({type(self.model).__name__}, layers={list(self.layers.values())}{extra})"


def _unknown_message(unknown, modules):
    valid = ", ".join(repr(n) for n in modules)
    return f"unknown layer name(s) {unknown}; the model's sub-modules are named: {valid}"


def feature_extractor(model, layer_names, return_output=False):
    """A callable ``fx`` with ``fx(x)`` = OrderedDict {layer name: that layer's output for input ``x``}.

    ``layer_names``: names as in ``model.named_modules()`` (``"features.0"``;
    ``""`` is the model itself), as a list — the result's keys, in that order —
    or a dict {layer name: key to use in the result}, as torchvision's
    ``return_nodes``. With ``return_output=True`` the model's own result is
    added last under ``"output"``. Unknown or repeated names raise at once,
    listing the valid names. The outputs are not detached: they stay in the
    graph, for saliency maps and Grad-CAM.
    """
    if not isinstance(model, Module):
        raise TypeError(f"feature_extractor needs a Module, got {type(model).__name__}")
    if isinstance(layer_names, str):
        raise TypeError(f"layer_names must be a list of names (or a dict), got the string {layer_names!r}")
    if isinstance(layer_names, dict):
        pairs = list(layer_names.items())
    else:
        try:
            pairs = [(name, name) for name in layer_names]
        except TypeError:
            raise TypeError(f"layer_names must be a list of names (or a dict), got {type(layer_names).__name__}") from None
    if not pairs:
        raise ValueError("layer_names is empty: name at least one layer")
    for name, key in pairs:
        if not isinstance(name, str) or not isinstance(key, str):
            raise TypeError(f"layer names and keys must be strings, got {name!r}: {key!r}")
    modules = dict(model.named_modules(remove_duplicate=False))
    unknown = [name for name, _ in pairs if name not in modules]
    if unknown:
        raise KeyError(_unknown_message(unknown, modules))
    layers = OrderedDict()
    for name, key in pairs:
        if name in layers:
            raise ValueError(f"layer {name!r} is named twice in layer_names")
        layers[name] = key
    keys = list(layers.values())
    if return_output:
        keys.append(OUTPUT_KEY)
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(
            f"result key(s) {repeated} would appear twice"
            + (f" ({OUTPUT_KEY!r} is taken by return_output=True)" if OUTPUT_KEY in repeated and return_output else "")
        )
    return FeatureExtractor(model, layers, return_output=bool(return_output))
