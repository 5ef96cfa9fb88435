r"""``summary(model, input_size)``: a table of each layer's output shape, parameters and multiply-adds (as torchinfo).

One forward pass on zeros of ``input_size`` (batch axis included), under
``no_grad`` and in eval mode, with a forward pre-hook and a forward hook on
every module. Each module *call* becomes a row, in call order, indented by
how deeply it is nested in other calls (the model itself is depth 0)::

    s = summary(vgg16(), (1, 3, 224, 224))
    print(s)                       # the table
    s.total_params, s.total_mult_adds, s.params_size_mb
    [r for r in s.rows if r.type == "Conv2d"]     # LayerInfo rows: name, type, depth, output_shape, ...

What counts:

- **Parameters.** A row's ``params`` are those of the module and its
  submodules, each Parameter once. ``total_params`` is
  ``sum(p.numel() for p in model.parameters())``: each Parameter once, even
  when a module (or a tied weight) is used twice, and including modules the
  forward pass never calls. ``trainable_params`` are those with ``requires_grad``.
- **Multiply-adds** of one call, for the whole batch (as torchinfo), weights only:

    Conv2d           out.numel() · (C_in / groups) · kH · kW       (each output element is one dot product)
    ConvTranspose2d  in.numel() · (C_out / groups) · kH · kW       (each input element is scattered through a kernel)
    Linear           out.numel() · in_features                     (N · out_features · in_features for (N, in) input)

  and 0 for everything else (batch norm, pooling, activations, dropout,
  additions). Bias additions are not multiplications and are not counted.
  torchinfo counts a little more: it multiplies the *parameter* count
  (weight + bias) by the output positions for convolutions and by the batch
  for other layers, so biases count as one multiply-add per output element
  and batch norm as 2·C per sample. VGG-16 at 224×224: 15,470,264,320 here
  (15.47 G); adding one per conv output element (13,547,520) and per linear
  output (9,096) gives 15,483,820,936, torchinfo's 15.48 G.
- **Shared modules.** A module called twice (``self.relu`` in ResNet's
  blocks) gives a row per call; the later calls are marked ``is_recursive``
  and show "(recursive)" for their parameters, which are counted once. Their
  multiply-adds count on every call: the work is done again.
- **Functional code** inside ``forward`` (``F.relu(x)``, ``x + y``,
  ``x.flatten(1)``) belongs to no module: it makes no row and its work is not
  counted (ResNet's residual additions, for example).

A container row (a module with submodules) adds up its nested calls'
multiply-adds. The table shows rows down to ``depth`` (torchinfo's default,
3); a container whose children are hidden shows their totals, one whose
children are shown has "--" (so the visible columns add up without double
counting). The totals do not depend on ``depth``.
"""
from __future__ import annotations

import dataclasses
import numbers

import numpy as np

from . import nn
from .autograd import no_grad
from .tensor import Tensor, zeros

__all__ = ["summary", "ModelSummary", "LayerInfo"]


@dataclasses.dataclass
class LayerInfo:
    """One module call. ``mult_adds`` includes the nested calls'; ``own_mult_adds`` is this module's alone."""

    name: str                 # dotted name in the model ("" for the model itself)
    type: str                 # class name
    depth: int                # call nesting depth: the model 0, its children 1, ...
    output_shape: object      # a tuple for a Tensor output, a list of them for several outputs, else None
    params: int               # parameters of the module and its submodules (each once)
    trainable_params: int
    own_mult_adds: int = 0
    mult_adds: int = 0
    is_leaf: bool = True      # no submodules
    is_recursive: bool = False  # the module was already called earlier in this pass (shared)
    parent: int | None = None  # index in ``rows`` of the enclosing call

    @property
    def label(self):
        """``name (Type)``, or just ``Type`` for the model itself."""
        return f"{self.name} ({self.type})" if self.name else self.type


@dataclasses.dataclass
class ModelSummary:
    """What `summary` returns: ``rows`` (every call, `LayerInfo`) and the totals; ``str()`` is the table."""

    rows: list
    input_size: list
    depth: int
    total_params: int
    trainable_params: int
    total_mult_adds: int
    params_size_mb: float
    input_size_mb: float
    forward_backward_pass_size_mb: float  # 2 × the bytes of every leaf call's outputs (torchinfo's rule)

    @property
    def non_trainable_params(self):
        return self.total_params - self.trainable_params

    @property
    def total_size_mb(self):
        """Input + forward/backward activations + parameters (torchinfo's "Estimated Total Size")."""
        return self.input_size_mb + self.forward_backward_pass_size_mb + self.params_size_mb

    def visible_rows(self):
        """The rows the table shows: depth <= ``self.depth``."""
        return [r for r in self.rows if r.depth <= self.depth]

    def _cells(self, row, index, parents):
        expanded = row.depth < self.depth and index in parents  # its children are rows of the table
        shape = "--" if row.output_shape is None else _shape_str(row.output_shape)
        if row.is_recursive:
            params = "(recursive)"
        elif expanded or row.params == 0:
            params = "--"
        else:
            params = f"{row.params:,}"
        macs = "--" if expanded or row.mult_adds == 0 else f"{row.mult_adds:,}"
        return ["  " * row.depth + row.label, shape, params, macs]

    def __str__(self):
        header = ["Layer (type)", "Output Shape", "Param #", "Mult-Adds"]
        parents = {r.parent for r in self.rows}
        body = [self._cells(r, i, parents) for i, r in enumerate(self.rows) if r.depth <= self.depth]
        widths = [max(len(c) for c in col) + 3 for col in zip(header, *body)]
        total = sum(widths)

        def line(cells):
            return "".join(c.ljust(w) if k < 2 else c.rjust(w) for k, (c, w) in enumerate(zip(cells, widths))).rstrip()

        out = ["=" * total, line(header), "=" * total]
        out += [line(c) for c in body]
        out += [
            "=" * total,
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.non_trainable_params:,}",
            f"Total mult-adds{_scaled(self.total_mult_adds)}",
            "=" * total,
            f"Input size (MB): {self.input_size_mb:.2f}",
            f"Forward/backward pass size (MB): {self.forward_backward_pass_size_mb:.2f}",
            f"Params size (MB): {self.params_size_mb:.2f}",
            f"Estimated Total Size (MB): {self.total_size_mb:.2f}",
            "=" * total,
        ]
        return "\n".join(out)

    __repr__ = __str__


def _scaled(n):
    if n >= 1e9:
        return f" (G): {n / 1e9:.2f}"
    if n >= 1e6:
        return f" (M): {n / 1e6:.2f}"
    return f": {n:,}"


def _shape_str(shape):
    if isinstance(shape, list):
        return "[" + ", ".join(_shape_str(s) for s in shape) + "]"
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _output_shape(out):
    if isinstance(out, Tensor):
        return tuple(out.shape)
    if isinstance(out, (tuple, list)):
        shapes = [_output_shape(o) for o in out]
        shapes = [s for s in shapes if s is not None]
        return shapes or None
    return None


def _tensors(out):
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors(o)]
    return []


def _mult_adds(module, args, out):
    """Multiply-adds of one call of a Conv2d / ConvTranspose2d / Linear (whole batch, weights only); 0 otherwise."""
    if not isinstance(out, Tensor):
        return 0
    if isinstance(module, nn.ConvTranspose2d):
        kh, kw = module.kernel_size
        x = args[0] if args and isinstance(args[0], Tensor) else None
        return 0 if x is None else x.numel() * (module.out_channels // module.groups) * kh * kw
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return out.numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return out.numel() * module.in_features
    return 0


def _check_input_size(input_size):
    """``input_size`` as a list of shapes (one per model input), or a ValueError naming it."""
    def is_shape(s):
        return isinstance(s, (tuple, list)) and len(s) > 0 and all(
            isinstance(n, numbers.Integral) and not isinstance(n, bool) and n > 0 for n in s)

    if is_shape(input_size):
        return [tuple(int(n) for n in input_size)]
    if isinstance(input_size, (tuple, list)) and input_size and all(is_shape(s) for s in input_size):
        return [tuple(int(n) for n in s) for s in input_size]
    raise ValueError(
        f"summary: input_size must be the input's shape with the batch axis, e.g. (1, 3, 224, 224): a tuple of "
        f"positive ints (or a list of such tuples for a model with several inputs); got input_size={input_size!r}"
    )


def summary(model, input_size, dtype=None, depth=3):
    """Run ``model`` once on zeros of ``input_size`` and tabulate every module call (see the module doc).

    ``input_size``: the input shape *with* the batch axis, e.g. (1, 3, 224, 224),
    or a list of shapes for a model whose forward takes several tensors.
    ``dtype``: of the zeros; by default that of the model's first parameter
    (the default dtype when it has none); they go to that parameter's device.
    ``depth``: the deepest call level the table shows (the model is level
    0); the rows and totals are complete whatever it is. The model runs in
    eval mode under ``no_grad``; each module's training flag is restored
    afterwards, and the hooks are removed. Returns a `ModelSummary`.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"summary: model must be an nn.Module, got {type(model).__name__}")
    shapes = _check_input_size(input_size)
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or depth < 0:
        raise ValueError(f"summary: depth must be a non-negative int, got {depth!r}")
    first = next(iter(model.parameters()), None)
    if dtype is None:
        dtype = first.dtype if first is not None else None
    device = first.device if first is not None else None
    inputs = [zeros(*s, dtype=dtype, device=device) for s in shapes]

    names = {}
    for name, m in model.named_modules():
        names.setdefault(id(m), name)
    rows, stack, seen, handles = [], [], set(), []
    leaf_bytes = [0]  # the leaf calls' outputs: the activations a backward pass would keep

    def pre_hook(module, args):
        params = [p for p in module.parameters()]
        rows.append(LayerInfo(
            name=names.get(id(module), "?"), type=type(module).__name__, depth=len(stack), output_shape=None,
            params=sum(p.numel() for p in params),
            trainable_params=sum(p.numel() for p in params if p.requires_grad),
            is_leaf=not any(True for _ in module.children()), is_recursive=id(module) in seen,
            parent=stack[-1] if stack else None,
        ))
        seen.add(id(module))
        stack.append(len(rows) - 1)

    def hook(module, args, out):
        row = rows[stack.pop()]
        row.output_shape = _output_shape(out)
        row.own_mult_adds = _mult_adds(module, args, out)
        row.mult_adds += row.own_mult_adds
        if row.is_leaf:
            leaf_bytes[0] += sum(t.numel() * np.dtype(t.dtype).itemsize for t in _tensors(out))
        if row.parent is not None:
            rows[row.parent].mult_adds += row.mult_adds

    modes = [(m, m.training) for m in model.modules()]
    try:
        for m in model.modules():
            handles.append(m.register_forward_pre_hook(pre_hook))
            handles.append(m.register_forward_hook(hook))
        model.eval()
        with no_grad():
            try:
                model(*inputs)
            except Exception as e:
                shown = shapes[0] if len(shapes) == 1 else shapes
                raise ValueError(
                    f"summary: {type(model).__name__}'s forward failed on zeros of input_size={shown} "
                    f"({type(e).__name__}: {e}); is input_size the input's shape, batch axis included?"
                ) from e
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            object.__setattr__(m, "training", mode)

    params = list(model.parameters())
    return ModelSummary(
        rows=rows,
        input_size=shapes,
        depth=int(depth),
        total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        total_mult_adds=sum(r.own_mult_adds for r in rows),
        params_size_mb=sum(p.numel() * np.dtype(p.dtype).itemsize for p in params) / 1e6,
        input_size_mb=sum(t.numel() * np.dtype(t.dtype).itemsize for t in inputs) / 1e6,
        forward_backward_pass_size_mb=2 * leaf_bytes[0] / 1e6,  # torchinfo: outputs and their gradients
    )
