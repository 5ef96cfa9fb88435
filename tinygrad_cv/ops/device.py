"""Moving a tensor between host and GPU, as an operation in the graph.

``y = x.to("cuda")`` is the identity on values, so its gradient is the
upstream gradient moved back: dL/dx = (dL/dy).to(x's device). That keeps
``loss.backward()`` working when a model starts on the CPU and moves its
activations to the GPU, as in PyTorch.
"""
from __future__ import annotations

from ..autograd import Function


def _device_of(array):
    return "cuda" if getattr(array, "device", None) == "cuda" and not hasattr(array, "__array_interface__") else "cpu"


class ToDevice(Function):
    @staticmethod
    def forward(ctx, a, device):
        from ..tensor import _move

        ctx.source = _device_of(a)
        return _move(a, device)

    @staticmethod
    def backward(ctx, grad):
        return ToDevice.apply(grad, ctx.source), None
