"""Moving a tensor between host and GPU, as an operation in the graph.

``y = x.to("cuda")`` is the identity on values, so its gradient is the
upstream gradient moved back: dL/dx = (dL/dy).to(x's device). That keeps
``loss.backward()`` working when a model starts on the CPU and moves its
activations to the GPU, as in PyTorch. The move itself is ``cuda.move``, the
one place data crosses between host and device.
"""
from __future__ import annotations

from .. import cuda
from ..autograd import Function


class ToDevice(Function):
    @staticmethod
    def forward(ctx, a, device):
        ctx.source = "cuda" if cuda.is_cuda_array(a) else "cpu"
        return cuda.move(a, device)

    @staticmethod
    def backward(ctx, grad):
        return ToDevice.apply(grad, ctx.source), None
