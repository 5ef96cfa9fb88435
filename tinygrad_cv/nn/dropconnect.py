r"""DropConnect (Wan, Zeiler, Zhang, LeCun & Fergus, 2013, "Regularization of neural networks using DropConnect").

Dropout zeroes *units*; DropConnect zeroes *connections*: a fully connected
layer computes r = a((M ⋆ W) v) with a random binary mask M on the weight
matrix, each entry kept with probability 1 - p (the paper writes p for the
*keep* probability; here ``p`` is the *drop* probability, as in ``nn.Dropout``).

Choices made here, and how they relate to the paper:

- **Inverted scaling.** In training the kept weights are scaled by 1/(1 - p),
  so E[(M ⋆ W / (1 - p)) v] = W v: evaluation then uses the plain weights
  (the same convention as ``nn.Dropout``). The paper trains unscaled and, at
  test time, does *not* use the mean network: it approximates each unit's
  pre-activation u = (M ⋆ W) v by a Gaussian with the matched moments,
  u ~ N((1-p) W v, p (1-p) (W ⋆ W)(v ⋆ v)), and averages a(u) over samples
  of u. Both have the same mean (up to the scaling); the plain-weight eval is "mean
  inference", a(E[u]) in place of E[a(u)], which the paper argues is a
  poorer approximation for DropConnect than its sampling (the two differ
  for any nonlinear a; sampling costs many evaluations of a per unit).
- **One mask per forward call** by default (``per_sample=False``): every
  example of the mini-batch sees the same masked weights, so the layer stays
  a single matrix product. The paper draws an independent mask *per
  example* (and needed a custom GPU kernel for it); ``per_sample=True`` does
  that, at the cost of materialising an (N, out, in) tensor of weights.
- **The bias** is not masked by default; ``mask_bias=True`` masks it too
  (with the same scaling), as the paper does for its biases.

Masks come from ``tinygrad_cv.random``'s generator (the dropout kernel's
``dropout_mask``), so ``tinygrad_cv.manual_seed`` makes them reproducible.
"""
from __future__ import annotations

from .. import functional as F
from .. import kernels as _kernels
from .. import random as _random
from ..tensor import Tensor
from .linear import Linear

__all__ = ["DropConnectLinear"]


def _mask(shape, p, like):
    """An inverted mask of ``shape``: 1/(1-p) with probability 1 - p, else 0; ``like``'s dtype and device."""
    data = _kernels.backend_for(like.data).dropout_mask(shape, p, like.dtype, _random.default_generator())
    return Tensor._wrap(data)


class DropConnectLinear(Linear):
    r"""``DropConnectLinear(in_features, out_features, bias=True, p=0.5, per_sample=False, mask_bias=False)``.

    Training mode, input x of shape (*, in_features) -> (*, out_features)::

        y = x (M ⋆ W)ᵀ / (1 - p) + b,    M_ij ~ Bernoulli(1 - p), one fresh M per call

    (with ``per_sample=True`` a fresh M for each of the N = prod(*) input
    rows; with ``mask_bias=True`` b is replaced by m ⋆ b / (1 - p), m ~
    Bernoulli(1 - p), likewise). Eval mode, or ``p=0``: y = x Wᵀ + b, the
    plain `Linear`. ``p=1`` drops every weight (y = b, or 0 with ``mask_bias``).

    Gradients (training): dL/dW = (M / (1-p)) ⋆ (gᵀ x) — only the kept
    weights receive gradient; dL/dx = g (M ⋆ W) / (1-p). A subclass of
    `Linear`: the parameters are ``weight`` (out_features, in_features) and
    ``bias`` (out_features,), so state dicts interchange with ``nn.Linear``
    and initialisation is PyTorch's. See the module doc for how this relates
    to the paper's training and inference.
    """

    def __init__(self, in_features, out_features, bias=True, p=0.5, per_sample=False, mask_bias=False,
                 device=None, dtype=None):
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"DropConnect probability p has to be between 0 and 1, but got {p!r}")
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.p = float(p)
        self.per_sample = bool(per_sample)
        self.mask_bias = bool(mask_bias)

    @classmethod
    def from_linear(cls, linear, p=0.5, per_sample=False, mask_bias=False):
        """A DropConnect layer that *shares* ``linear``'s weight and bias Parameters (no copy).

        For switching a trained or pretrained ``nn.Linear`` (e.g. a classifier
        head) to DropConnect training: optimising either layer updates both.
        """
        if not isinstance(linear, Linear):
            raise TypeError(f"from_linear needs an nn.Linear, got {type(linear).__name__}")
        layer = cls(1, 1, bias=linear.bias is not None, p=p, per_sample=per_sample, mask_bias=mask_bias)
        layer.in_features, layer.out_features = linear.in_features, linear.out_features
        layer.weight = linear.weight
        if linear.bias is not None:
            layer.bias = linear.bias
        return layer

    def forward(self, input):
        if not self.training or self.p == 0.0:
            return F.linear(input, self.weight, self.bias)
        if input.ndim == 0 or input.shape[-1] != self.in_features:
            raise ValueError(f"DropConnectLinear: input shape {input.shape} does not end in "
                             f"in_features={self.in_features}")
        w, b = self.weight, self.bias
        if not self.per_sample:
            w = w * _mask(w.shape, self.p, w)
            if b is not None and self.mask_bias:
                b = b * _mask(b.shape, self.p, b)
            return F.linear(input, w, b)
        # one mask per input row: flatten the leading axes to N rows, batch the matrix-vector products
        lead = input.shape[:-1]
        x = input.reshape(-1, self.in_features)
        n = x.shape[0]
        wm = w.unsqueeze(0) * _mask((n,) + tuple(w.shape), self.p, w)    # (N, out, in)
        y = (wm @ x.unsqueeze(-1)).squeeze(-1)                            # (N, out)
        if b is not None:
            y = y + (b * _mask((n,) + tuple(b.shape), self.p, b) if self.mask_bias else b)
        return y.reshape(*lead, self.out_features)

    def extra_repr(self):
        return (f"{super().extra_repr()}, p={self.p}, per_sample={self.per_sample}, "
                f"mask_bias={self.mask_bias}")
