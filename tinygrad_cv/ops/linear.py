r"""The fully connected layer as one `Function`: y = x Wᵀ + b.

Built from primitives (``x @ w.T + b``) the layer records three nodes -
transpose, matmul, broadcast add - and its backward pass applies about nine
more operations (two transposes and a matmul per operand, a sum for the
bias). The arithmetic is three matrix products either way; fusing them into
one node removes the bookkeeping, which for LeNet's small FC layers costs
as much as the products themselves. The composite stays the oracle: the
tests compare the two.

For x (M, K) (leading axes flattened into M), W (N, K), b (N,) and the
upstream gradient g = dL/dy (M, N):

    y = x Wᵀ + b          dL/dx = g W          dL/dW = gᵀ x          dL/db = Σ_m g[m, :]

The products are the kernel twins' ``linear_forward`` / ``linear_backward``
(``kernels/matmul/``: BLAS on the CPU, the tiled kernel on the GPU). With
``create_graph=True`` the same three formulas are evaluated with
differentiable tensor operations, so gradients of gradients stay exact.
"""
from __future__ import annotations

from .. import kernels
from ..autograd import Function, once_differentiable


def _rows(shape):
    """How many vectors a (*, K) input holds: the product of its leading dimensions."""
    n = 1
    for d in shape[:-1]:
        n *= d
    return n


class Linear(Function):
    """``y = x @ w.T + b`` for x (*, K), w (N, K), b (N,) or None; all of one float dtype."""

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        # rows spelled out, not -1: that is ambiguous when a dimension is 0 (Linear(0, n) is legal)
        x2 = x.reshape(_rows(x.shape), x.shape[-1])
        y = kernels.backend_for(x).linear_forward(x2, w, b)
        return y.reshape(x.shape[:-1] + (w.shape[0],))

    @staticmethod
    def composite_backward(ctx, grad):
        """create_graph: the gradients built from differentiable operations."""
        x, w = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        K, N = w.shape[1], w.shape[0]
        rows = _rows(x.shape)
        g2 = grad.reshape(rows, N)
        gx = (g2 @ w).reshape(x.shape) if need_x else None
        gw = g2.mT @ x.reshape(rows, K) if need_w else None
        gb = g2.sum(0) if need_b else None
        return gx, gw, gb

    @staticmethod
    @once_differentiable(fallback=composite_backward)
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        K, N = w.shape[1], w.shape[0]
        rows = _rows(x.shape)
        gx, gw, gb = kernels.backend_for(grad.data).linear_backward(
            grad.data.reshape(rows, N), x.data.reshape(rows, K), w.data, need_x, need_w, need_b)
        return None if gx is None else gx.reshape(x.shape), gw, gb
