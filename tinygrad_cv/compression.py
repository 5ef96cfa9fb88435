r"""Low-rank compression of trained layers by truncated SVD (Denton et al. 2014; Jaderberg, Vedaldi & Zisserman 2014).

A weight matrix W (m × n) with singular value decomposition W = U S Vᵀ is
best approximated at rank r — in Frobenius (and spectral) norm, Eckart–Young
— by keeping the r largest singular values: W_r = U_r S_r V_rᵀ, with

    ‖W − W_r‖_F² = Σ_{i > r} s_i²          (the discarded "energy").

Written as two thinner factors, W_r = B A with A = S_r^{1/2} V_rᵀ (r × n)
and B = U_r S_r^{1/2} (m × r), one layer of m n weights becomes two with
r (m + n): a saving whenever r < m n / (m + n).

**Linear** (``svd_linear``): y = W x + b becomes y = B (A x) + b, i.e.
``Sequential(Linear(n, r, bias=False), Linear(r, m))``.

**Conv2d** (``svd_conv2d``): the weight W[o, c, kh, kw] is read as the
(C·KH) × (O·KW) matrix M[(c, kh), (o, kw)] and factored the same way. The
left factor is a *vertical* KH × 1 convolution from C to r channels, the
right one a *horizontal* 1 × KW convolution from r to O channels (Jaderberg
et al.'s scheme 2): C·KH·r + r·O·KW weights instead of O·C·KH·KW. Stride,
padding and dilation split by axis (the vertical ones go to the first layer,
the horizontal ones to the second); the padding mode is kept by both, which
stays exact since every padding mode pads rows and columns independently.
At full rank r = min(C·KH, O·KW) the pair computes the same function as the
original layer (up to rounding).

**Choice of the split.** Each factor gets √S (balanced factors): the two
new layers then have weights of comparable scale, so fine-tuning them with
one learning rate and one weight decay treats them alike, and neither layer
carries the whole dynamic range of the spectrum.

**Choosing the rank.** Either ``rank=r`` or ``energy=e`` (0 < e ≤ 1): the
smallest r with Σ_{i ≤ r} s_i² ≥ e · Σ_i s_i² (the fraction of the squared
Frobenius norm kept; for an all-zero weight, r = 1).

The new layers get fresh ``Parameter`` objects (an optimiser built before
compressing must be rebuilt), in the original weight's dtype and device,
with the original ``requires_grad`` flags (a frozen layer stays frozen) and
train/eval mode. Hooks registered on the original layer are not carried
over. Building them draws nothing from the global random generator.
"""
from __future__ import annotations

import numbers
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from . import cuda as _cuda
from . import random as _random
from .nn.container import Sequential
from .nn.conv import Conv2d
from .nn.linear import Linear
from .nn.module import Module
from .nn.parameter import Parameter
from .tensor import Tensor

__all__ = ["svd_linear", "svd_conv2d", "singular_values", "compress", "LayerReport", "CompressionReport"]


# --- the matrices ------------------------------------------------------------------------
def _host64(t):
    return np.asarray(_cuda.move(t.data, "cpu"), dtype=np.float64)


def _check_layer(module, name):
    """Raise for anything but a Linear or an ungrouped Conv2d."""
    if isinstance(module, Conv2d):
        if module.groups != 1:
            raise NotImplementedError(
                f"{name}: grouped convolutions (groups={module.groups}) are not supported; "
                "factor each group separately"
            )
        return "Conv2d"
    if isinstance(module, Linear):
        return "Linear"
    raise TypeError(f"{name}: expected an nn.Linear or nn.Conv2d, got {type(module).__name__}")


def _matrix(module):
    """The float64 host matrix whose SVD is taken: W (out, in), or M[(c, kh), (o, kw)] = W[o, c, kh, kw]."""
    w = _host64(module.weight)
    if isinstance(module, Conv2d):
        o, c, kh, kw = w.shape
        return w.transpose(1, 2, 0, 3).reshape(c * kh, o * kw)
    return w


def singular_values(module):
    """The singular values (float64 NumPy array, descending) of a Linear's weight or a Conv2d's M matrix.

    For a Conv2d this is the (C·KH) × (O·KW) matrix ``svd_conv2d`` factors,
    so ``np.cumsum(s**2) / np.sum(s**2)`` is the energy kept at each rank.
    """
    _check_layer(module, "singular_values")
    return np.linalg.svd(_matrix(module), compute_uv=False)


def _params(module):
    return sum(p.numel() for p in module.parameters())


def _choose_rank(s, rank, energy, name, clip):
    """The rank from exactly one of ``rank`` / ``energy``, validated against len(s) (clipped if ``clip``)."""
    full = len(s)
    if (rank is None) == (energy is None):
        raise ValueError(f"{name}: give exactly one of rank and energy (got rank={rank!r}, energy={energy!r})")
    if rank is not None:
        if isinstance(rank, bool) or not isinstance(rank, numbers.Integral) or rank < 1:
            raise ValueError(f"{name}: rank must be an integer >= 1, got {rank!r}")
        rank = int(rank)
        if rank > full and not clip:
            raise ValueError(f"{name}: rank {rank} exceeds the full rank {full} of the weight matrix")
        return min(rank, full)
    if isinstance(energy, bool) or not isinstance(energy, numbers.Real) or not 0.0 < energy <= 1.0:
        raise ValueError(f"{name}: energy must be in (0, 1], got {energy!r}")
    cum = np.cumsum(s.astype(np.float64) ** 2)
    if cum[-1] == 0:
        return 1
    # cum[-1] is the total summed in the same order, so energy = 1 is reached exactly at the last index
    return int(np.searchsorted(cum / cum[-1], energy, side="left")) + 1


def _relative_error(s, r):
    total = float(np.sum(s**2))
    return float(np.sqrt(np.sum(s[r:] ** 2) / total)) if total > 0 else 0.0


@contextmanager
def _keep_random_state():
    """New layers initialise themselves randomly (on the CPU) before being overwritten: keep the generator untouched."""
    gen = _random.default_generator()
    state = gen.bit_generator.state
    try:
        yield
    finally:
        gen.bit_generator.state = state


def _param(values, like):
    """A fresh Parameter holding ``values`` in ``like``'s dtype and device, with ``like``'s requires_grad."""
    data = Tensor(np.ascontiguousarray(values).astype(like.dtype), device=like.device)
    return Parameter(data, requires_grad=like.requires_grad)


def _factors(m, r):
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    root = np.sqrt(s[:r])
    return u[:, :r] * root, root[:, None] * vt[:r], s  # B (rows × r), A (r × cols)


# --- one layer ---------------------------------------------------------------------------
def _build_linear(linear, r, b_mat, a_mat):
    w = linear.weight
    with _keep_random_state():
        first = Linear(linear.in_features, r, bias=False, dtype=w.dtype)
        second = Linear(r, linear.out_features, bias=linear.bias is not None, dtype=w.dtype)
    first.weight = _param(a_mat, w)
    second.weight = _param(b_mat, w)
    if linear.bias is not None:
        second.bias = _param(_host64(linear.bias), linear.bias)
    out = Sequential(first, second)
    return out.train(linear.training)


def svd_linear(linear, rank=None, energy=None):
    r"""Factor a Linear layer into ``Sequential(Linear(in, r, bias=False), Linear(r, out))`` by truncated SVD.

    The product of the two weights is U_r S_r V_rᵀ, the best rank-r
    approximation of the weight (√S in each factor, see the module
    docstring); the bias moves to the second layer. Give exactly one of
    ``rank`` (1 ≤ rank ≤ min(in, out)) and ``energy`` (0 < energy ≤ 1).
    The result is returned, ``linear`` is left unchanged.
    """
    if _check_layer(linear, "svd_linear") != "Linear":
        raise TypeError(f"svd_linear: expected an nn.Linear, got {type(linear).__name__} (use svd_conv2d)")
    m = _matrix(linear)
    if min(m.shape) == 0:
        raise ValueError(f"svd_linear: cannot factor an empty weight of shape {m.shape}")
    u_s, s_vt, s = _factors(m, min(m.shape))
    r = _choose_rank(s, rank, energy, "svd_linear", clip=False)
    return _build_linear(linear, r, u_s[:, :r], s_vt[:r])


def _conv_geometry(conv):
    """(padding_first, padding_second) for the vertical and the horizontal convolution."""
    if isinstance(conv.padding, str):  # "same" / "valid" apply per axis
        return conv.padding, conv.padding
    ph, pw = conv.padding
    return (ph, 0), (0, pw)


def _build_conv(conv, r, b_mat, a_mat):
    w = conv.weight
    o, c, kh, kw = w.shape
    (sh, sw), (dh, dw) = conv.stride, conv.dilation
    pad1, pad2 = _conv_geometry(conv)
    with _keep_random_state():
        first = Conv2d(c, r, (kh, 1), stride=(sh, 1), padding=pad1, dilation=(dh, 1), bias=False,
                       padding_mode=conv.padding_mode, dtype=w.dtype)
        second = Conv2d(r, o, (1, kw), stride=(1, sw), padding=pad2, dilation=(1, dw), bias=conv.bias is not None,
                        padding_mode=conv.padding_mode, dtype=w.dtype)
    # B: rows (c, kh) -> first layer's weight (r, c, kh, 1); A: columns (o, kw) -> second's (o, r, 1, kw)
    first.weight = _param(b_mat.T.reshape(r, c, kh, 1), w)
    second.weight = _param(a_mat.reshape(r, o, kw).transpose(1, 0, 2).reshape(o, r, 1, kw), w)
    if conv.bias is not None:
        second.bias = _param(_host64(conv.bias), conv.bias)
    out = Sequential(first, second)
    return out.train(conv.training)


def svd_conv2d(conv, rank=None, energy=None):
    r"""Factor a Conv2d into a vertical (KH × 1, C → r) and a horizontal (1 × KW, r → O) convolution.

    From the truncated SVD of M[(c, kh), (o, kw)] = W[o, c, kh, kw] (see the
    module docstring): ``Sequential(Conv2d(C, r, (KH, 1), stride=(sh, 1),
    padding=(ph, 0), dilation=(dh, 1), bias=False), Conv2d(r, O, (1, KW),
    stride=(1, sw), padding=(0, pw), dilation=(1, dw)))`` — padding strings
    and ``padding_mode`` are kept by both. Exact at full rank
    min(C·KH, O·KW). Give exactly one of ``rank`` and ``energy``. Grouped
    convolutions raise NotImplementedError. ``conv`` is left unchanged.
    """
    if _check_layer(conv, "svd_conv2d") != "Conv2d":
        raise TypeError(f"svd_conv2d: expected an nn.Conv2d, got {type(conv).__name__} (use svd_linear)")
    m = _matrix(conv)
    if min(m.shape) == 0:
        raise ValueError(f"svd_conv2d: cannot factor an empty weight of shape {tuple(conv.weight.shape)}")
    b_full, a_full, s = _factors(m, min(m.shape))
    r = _choose_rank(s, rank, energy, "svd_conv2d", clip=False)
    return _build_conv(conv, r, b_full[:, :r], a_full[:r])


# --- whole models ------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerReport:
    """What ``compress`` did to one layer.

    ``rank``: the rank of the factorisation, or the full rank when the layer
    was left alone (``replaced`` False). ``params_*``: weights and biases of
    that layer (before) and of its replacement (after; equal when not
    replaced). ``relative_error``: ‖W − W_r‖_F / ‖W‖_F =
    √(Σ_{i > r} s_i² / Σ_i s_i²) (0 when not replaced).
    """

    name: str
    kind: str
    rank: int
    full_rank: int
    params_before: int
    params_after: int
    relative_error: float
    replaced: bool


class CompressionReport(list):
    """A list of :class:`LayerReport`, with the totals over those layers and a printable table."""

    @property
    def params_before(self):
        return sum(r.params_before for r in self)

    @property
    def params_after(self):
        return sum(r.params_after for r in self)

    def table(self):
        rows = [f"{'layer':<24} {'kind':<7} {'rank':>9} {'params':^18} {'rel. error':>10}"]
        for r in self:
            rank = f"{r.rank}/{r.full_rank}" if r.replaced else f"kept/{r.full_rank}"
            rows.append(f"{r.name:<24} {r.kind:<7} {rank:>9} {r.params_before:>8}->{r.params_after:<8} "
                        f"{r.relative_error:>10.4f}")
        rows.append(f"{'total':<24} {'':<7} {'':>9} {self.params_before:>8}->{self.params_after:<8}")
        return "\n".join(rows)

    def __str__(self):
        return self.table()


def compress(model, rank=None, energy=None, layers=None, *, force=False):
    r"""Replace Linear / Conv2d sub-modules of ``model`` by their truncated-SVD factorisations, in place.

    ``layers``: qualified names as in ``model.named_modules()`` (e.g.
    ``"classifier.1"``); by default every ``nn.Linear`` in the model. Exactly
    one of ``rank`` (one rank for all layers, clipped to each layer's full
    rank) and ``energy`` (per layer, the smallest rank keeping that fraction
    of Σ s_i²). Every name is checked before anything changes.

    A layer is replaced only when that reduces its parameter count; one
    whose factorisation would be as large or larger (small layers, a high
    rank or energy) is left as it is and reported with ``replaced=False`` —
    whether the rank was given or chosen by energy. ``force=True`` replaces
    every chosen layer regardless (e.g. to check that the full-rank
    factorisation computes the same function).

    Returns a :class:`CompressionReport` (a list of :class:`LayerReport`,
    one per chosen layer, in order). An optimiser built on the old
    parameters must be rebuilt. A module reachable under two names is
    replaced only under the name given.
    """
    if not isinstance(model, Module):
        raise TypeError(f"compress: model must be an nn.Module, got {type(model).__name__}")
    named = OrderedDict(model.named_modules())
    if layers is None:
        if isinstance(model, (Linear, Conv2d)):
            raise ValueError("compress: the model itself is a single layer and cannot be replaced in place; "
                             "use svd_linear / svd_conv2d")
        layers = [n for n, m in named.items() if n and isinstance(m, Linear)]
    else:
        if isinstance(layers, str):
            layers = [layers]
        layers = list(OrderedDict.fromkeys(layers))
        for n in layers:
            if not isinstance(n, str) or n not in named:
                choices = [k for k, m in named.items() if k and isinstance(m, (Linear, Conv2d))]
                raise ValueError(f"compress: {n!r} is not a sub-module of {type(model).__name__}; "
                                 f"Linear / Conv2d layers: {choices}")
            if not n:
                raise ValueError("compress: the model itself ('') cannot be replaced in place; "
                                 "use svd_linear / svd_conv2d")
            _check_layer(named[n], f"compress: layer {n!r}")
    # energy / rank validated once, before anything changes (a bad value fails on the first layer otherwise)
    _choose_rank(np.ones(1), rank, energy, "compress", clip=True)

    plans = []
    for n in layers:
        module = named[n]
        kind = _check_layer(module, f"compress: layer {n!r}")
        m = _matrix(module)
        b_full, a_full, s = _factors(m, min(m.shape))
        r = _choose_rank(s, rank, energy, "compress", clip=True)
        build = _build_conv if kind == "Conv2d" else _build_linear
        plans.append((n, module, kind, r, len(s), build, b_full[:, :r], a_full[:r], s))

    report = CompressionReport()
    for n, module, kind, r, full, build, b_mat, a_mat, s in plans:
        before = _params(module)
        bias = module.bias.numel() if module.bias is not None else 0
        if kind == "Conv2d":
            o, c, kh, kw = module.weight.shape
            after = r * (c * kh + o * kw) + bias
        else:
            after = r * (module.in_features + module.out_features) + bias
        if after >= before and not force:
            report.append(LayerReport(n, kind, full, full, before, before, 0.0, False))
            continue
        replacement = build(module, r, b_mat, a_mat)
        parent_name, _, child = n.rpartition(".")
        model.get_submodule(parent_name).add_module(child, replacement)
        report.append(LayerReport(n, kind, r, full, before, _params(replacement), _relative_error(s, r), True))
    return report
