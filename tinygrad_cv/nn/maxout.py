r"""Maxout (Goodfellow, Warde-Farley, Mirza, Courville & Bengio, 2013, "Maxout networks").

A maxout unit takes the largest of k affine pieces, h_i(x) = max_j z_ij with
z_ij = x·W_ij + b_ij: a learned, convex, piecewise-linear activation. Here the
pieces come from the layer before (a ``Linear`` or ``Conv2d`` with k times as
many outputs), and `Maxout` only takes the max over consecutive groups::

    nn.Sequential(nn.Linear(784, 240 * 5), nn.Maxout(5))        # 240 maxout units of 5 pieces
    nn.Sequential(nn.Conv2d(3, 96 * 2, 8), nn.Maxout(2, dim=1))  # 96 maxout feature maps of 2 pieces

Consecutive groups (channels 0..k-1 form unit 0, k..2k-1 unit 1, ...) are the
paper's (and pylearn2's) layout; ``torch.nn`` has no Maxout layer, so this
follows the usual PyTorch idiom ``x.view(..., C // k, k, ...).max(dim + 1).values``.
"""
from __future__ import annotations

import numbers

from .module import Module

__all__ = ["Maxout", "maxout"]


def _check_pool_size(pool_size):
    if isinstance(pool_size, bool) or not isinstance(pool_size, numbers.Integral) or pool_size < 1:
        raise ValueError(f"maxout: pool_size must be a positive int, got {pool_size!r}")
    return int(pool_size)


def maxout(input, pool_size, dim=1):
    r"""Max over consecutive groups of ``pool_size`` entries along ``dim``.

    For input of shape (d_0, ..., C, ..., d_{n-1}) with C = ``input.shape[dim]``
    divisible by k = ``pool_size``, the output has shape (d_0, ..., C / k, ..., d_{n-1})::

        out[..., i, ...] = max_{0 <= j < k} input[..., i·k + j, ...]

    Gradient: the upstream gradient of out[..., i, ...] goes, whole, to the
    element of group i that attained the maximum (the arg-max); the other
    k - 1 elements of the group get 0. Ties: the *first* maximal element of
    the group (the lowest index i·k + j) gets all of it — this is
    ``Tensor.max(dim)``'s rule, which the function is built on (a reshape
    to (..., C / k, k, ...) then ``max`` over the new axis of size k; both
    differentiable, so there is no separate backward to keep in sync).
    ``pool_size=1`` is the identity.
    """
    k = _check_pool_size(pool_size)
    if input.ndim == 0:
        raise ValueError(f"maxout: input must have at least one dimension, got shape {input.shape}")
    if not -input.ndim <= dim < input.ndim:
        raise IndexError(f"maxout: dim {dim} is out of range for an input of shape {input.shape}")
    d = dim % input.ndim
    c = input.shape[d]
    if c % k:
        raise ValueError(
            f"maxout: the size {c} of dim {dim} (input shape {input.shape}) is not divisible by pool_size={k}"
        )
    if k == 1:
        return input
    grouped = input.reshape(*input.shape[:d], c // k, k, *input.shape[d + 1:])
    return grouped.max(d + 1).values


class Maxout(Module):
    r"""``Maxout(pool_size, dim=1)``: the max over consecutive groups of ``pool_size`` entries along ``dim``.

    Shapes: (*, C, *) -> (*, C / pool_size, *), with C the size of ``dim``
    (the channels of (N, C, H, W) maps or the features of (N, C) vectors with
    the default ``dim=1``); C must be divisible by ``pool_size``.
    out[..., i, ...] = max_j input[..., i·pool_size + j, ...], j < pool_size.
    No parameters, and the same in training and eval mode. The gradient goes
    to each group's arg-max; ties go to the first (lowest-index) maximal
    element — see `maxout`.
    """

    def __init__(self, pool_size, dim=1):
        super().__init__()
        self.pool_size = _check_pool_size(pool_size)
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
            raise TypeError(f"Maxout: dim must be an int, got {dim!r}")
        self.dim = int(dim)

    def forward(self, input):
        return maxout(input, self.pool_size, self.dim)

    def extra_repr(self):
        return f"pool_size={self.pool_size}, dim={self.dim}"
