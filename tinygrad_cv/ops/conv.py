r"""Convolution and transposed convolution as differentiable Functions.

The lecture's convolution (a cross-correlation, as in every deep-learning
library), with stride s, dilation d, padding and groups:

    y[n, o, i, j] = b[o] + \sum_c \sum_p \sum_q x_pad[n, c, i s + p d, j s + q d] \, w[o, c, p, q]

It is linear in x and in w, which gives three operations that are each
other's adjoints:

* ``Conv2d``        y  = conv(x, w)
* ``ConvTranspose`` gx = convᵀ(gy, w): the input gradient, a "full"
  correlation with the flipped kernel — and, used forwards, the learnable
  upsampling layer ``conv_transpose2d``
* ``ConvWeight``    gw = correlation of the input with the output gradient

Each backward is written with the other two (``composite_backward``), so
gradients of gradients work. For plain first-order backward passes the
engine runs the ``@once_differentiable`` fast path instead: ``Conv2d`` calls
the twins' ``conv2d_backward``, which returns all three gradients in one call
(the CPU twin shares its passes over the upstream gradient), and
``ConvTranspose`` the ``conv_transpose2d_*`` kernels. The arithmetic happens in the kernel
twins (``tinygrad_cv/kernels/conv/``): the readable reference, the Numba CPU
version (chosen by ``kernels.use_backend``) or, for GPU tensors, the CUDA one.
"""
from __future__ import annotations

from .. import kernels
from ..autograd import Function, once_differentiable
from ..kernels import shapes
from .movement import Pad


class Conv2d(Function):
    """y = conv(x, w) + b. ``pad4`` is (top, bottom, left, right)."""

    @staticmethod
    def forward(ctx, x, w, b, stride, pad4, dilation, groups):
        ctx.args = stride, pad4, dilation, groups
        ctx.save_for_backward(x, w)
        return kernels.backend_for(x).conv2d_forward(x, w, b, stride, pad4, dilation, groups)

    @staticmethod
    def composite_backward(ctx, grad):
        """create_graph: the gradients as differentiable operations."""
        x, w = ctx.saved_tensors
        stride, pad4, dilation, groups = ctx.args
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx = ConvTranspose.apply(grad, w, None, stride, pad4, dilation, groups, x.shape[2:]) if need_x else None
        gw = ConvWeight.apply(x, grad, w.shape, stride, pad4, dilation, groups) if need_w else None
        gb = grad.sum((0, 2, 3)) if need_b else None
        return gx, gw, gb, None, None, None, None

    @staticmethod
    @once_differentiable(fallback=composite_backward)
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        stride, pad4, dilation, groups = ctx.args
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        # first order: the same numbers straight from the kernels. One gradient asked for (frozen
        # weights, or an input that needs none): its own kernel; more: one call that computes them
        # together (the CPU twin shares its passes over grad between them)
        k = kernels.backend_for(grad.data)
        gx = gw = gb = None
        if need_x and not (need_w or need_b):
            gx = k.conv2d_backward_input(grad.data, w.data, x.shape, stride, pad4, dilation, groups)
        elif need_w and not (need_x or need_b):
            gw = k.conv2d_backward_weight(x.data, grad.data, w.shape, stride, pad4, dilation, groups)
        else:
            gx, gw, gb = k.conv2d_backward(x.data, grad.data, w.data, stride, pad4, dilation, groups,
                                           need_x, need_w, need_b)
        return gx, gw, gb, None, None, None, None


class ConvTranspose(Function):
    """y = convᵀ(x, w) + b with spatial output size ``out_hw`` (w: (C_in, C_out/groups, KH, KW)).

    ``out_hw`` picks one of the sizes a strided convolution maps back to the
    input's (PyTorch's ``output_padding``). When output_padding >= stride
    (allowed while it is below the dilation), convolving the output back
    gives a map larger than x: x is then the top-left corner of that map.
    """

    @staticmethod
    def forward(ctx, x, w, b, stride, pad4, dilation, groups, out_hw):
        ctx.args = stride, pad4, dilation, groups
        full = _conv_out_hw(out_hw, w.shape[2:], stride, pad4, dilation)
        ctx.extra = (full[0] - x.shape[2], full[1] - x.shape[3])
        natural = shapes.conv_transpose_out_hw(x.shape[2:], w.shape[2:], stride, pad4, 0, dilation)
        output_padding = (out_hw[0] - natural[0], out_hw[1] - natural[1])
        ctx.save_for_backward(x, w)
        return kernels.backend_for(x).conv_transpose2d_forward(x, w, b, stride, pad4, output_padding, groups, dilation)

    @staticmethod
    def composite_backward(ctx, grad):
        """create_graph: the adjoints as differentiable operations."""
        x, w = ctx.saved_tensors
        stride, pad4, dilation, groups = ctx.args
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        eh, ew = ctx.extra
        if (eh, ew) != (0, 0):
            # x is the top-left corner of the map the adjoint needs: pad it with a graph op, so that
            # gradients of gradients flow through the real input
            x = Pad.apply(ctx.inputs[0] if ctx.inputs[0] is not None else x, ((0, 0), (0, 0), (0, eh), (0, ew)), 0)
        # convᵀ's adjoint in x is conv itself; in w it is the weight correlation with roles swapped
        gx = None
        if need_x:
            gx = Conv2d.apply(grad, w, None, stride, pad4, dilation, groups)
            if (eh, ew) != (0, 0):
                gx = gx[:, :, : gx.shape[2] - eh, : gx.shape[3] - ew]
        gw = ConvWeight.apply(grad, x, w.shape, stride, pad4, dilation, groups) if need_w else None
        gb = grad.sum((0, 2, 3)) if need_b else None
        return gx, gw, gb, None, None, None, None, None

    @staticmethod
    @once_differentiable(fallback=composite_backward)
    def backward(ctx, grad):
        # first order: the transposed convolution's own gradient kernels (the input's is a conv2d
        # of grad cropped to x, the weight's the correlation with roles swapped)
        x, w = ctx.saved_tensors
        stride, pad4, dilation, groups = ctx.args
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        k = kernels.backend_for(grad.data)
        gx = gw = None
        if need_x:
            gx = k.conv_transpose2d_backward_input(grad.data, w.data, stride, pad4, dilation, groups, x.shape)
        if need_w:
            gw = k.conv_transpose2d_backward_weight(x.data, grad.data, w.shape, stride, pad4, dilation, groups)
        return gx, gw, grad.sum((0, 2, 3)) if need_b else None, None, None, None, None, None


def _conv_out_hw(in_hw, k, stride, pad4, dilation):
    """Output size of a convolution (PyTorch's formula) for (top, bottom, left, right) padding."""
    h = (in_hw[0] + pad4[0] + pad4[1] - dilation[0] * (k[0] - 1) - 1) // stride[0] + 1
    w = (in_hw[1] + pad4[2] + pad4[3] - dilation[1] * (k[1] - 1) - 1) // stride[1] + 1
    return h, w


class ConvWeight(Function):
    """gw[o, c, p, q] = \\sum_{n,i,j} x_pad[n, c, i s + p d, j s + q d] gy[n, o, i, j]."""

    @staticmethod
    def forward(ctx, x, gy, w_shape, stride, pad4, dilation, groups):
        ctx.args = stride, pad4, dilation, groups
        ctx.save_for_backward(x, gy)
        return kernels.backend_for(x).conv2d_backward_weight(x, gy, tuple(w_shape), stride, pad4, dilation, groups)

    @staticmethod
    def backward(ctx, grad):
        x, gy = ctx.saved_tensors
        stride, pad4, dilation, groups = ctx.args
        # <G, gw(x, gy)> = <conv(x, G), gy> = <x, convᵀ(gy, G)>
        gx = ConvTranspose.apply(gy, grad, None, stride, pad4, dilation, groups, x.shape[2:]) if ctx.needs_input_grad[0] else None
        ggy = Conv2d.apply(x, grad, None, stride, pad4, dilation, groups) if ctx.needs_input_grad[1] else None
        return gx, ggy, None, None, None, None, None
