"""tinygrad_cv: an educational reverse-mode autograd engine for convolutional networks.

- ``Scalar``: the teaching engine, one float at a time (``tinygrad_cv.scalar``)
- ``Tensor``: NumPy-backed tensors with the same graph walk (``tinygrad_cv.tensor``)
- ``Function``: the one way to write a differentiable operation (``tinygrad_cv.autograd``)
- ``functional`` (``F``): activations, losses and CNN operations
- ``gradcheck``: finite-difference checking of gradients
- ``nn``, ``optim``: modules, layers, losses, optimizers and schedulers
- ``data``, ``models``, ``checkpoint``: datasets and loaders, LeNet-5, safetensors checkpoints
- ``cuda``: GPU tensors (``is_available()``, ``synchronize()``); imports nothing heavy until used
"""
from . import autograd, cuda, functional
from .autograd import Function, enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .autograd import backward, grad
from .gradcheck import GradcheckError, gradcheck, numerical_grad
from .random import manual_seed
from .scalar import Scalar
from .tensor import (
    Tensor, arange, bool_, cat, concatenate, empty, eye, float16, float32, float64, from_numpy, full,
    full_like, get_default_dtype, int8, int16, int32, int64, linspace, matmul, maximum, minimum, ones,
    ones_like, rand, rand_like, randint, randn, randn_like, set_default_dtype, stack, tensor, uint8,
    where, zeros, zeros_like,
)
from .viz import to_dot
from . import nn, optim  # noqa: E402  (after the core: they are built on it)

__version__ = "0.1.0"
