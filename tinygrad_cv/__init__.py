"""tinygrad_cv: an educational reverse-mode autograd engine for convolutional networks.

- ``Scalar``: the teaching engine, one float at a time (``tinygrad_cv.scalar``)
- ``Tensor``: NumPy-backed tensors with the same graph walk (``tinygrad_cv.tensor``)
- ``Function``: the one way to write a differentiable operation (``tinygrad_cv.autograd``)
- ``functional`` (``F``): activations, losses and CNN operations
- ``gradcheck``: finite-difference checking of gradients
- ``once_differentiable``: mark a Function's backward first-order only, with an
  optional differentiable fallback for ``create_graph`` (``tinygrad_cv.autograd``)
- ``nn``, ``optim``: modules, layers, losses, optimizers and schedulers
- ``cuda``: GPU tensors (``is_available()``, ``synchronize()``); imports nothing heavy until used

Loaded lazily, on first attribute access (``tinygrad_cv.models.LeNet5``), so
that ``import tinygrad_cv`` stays cheap and imports no Numba:

- ``data``: datasets, loaders and transforms
- ``models``: LeNet-5, AlexNet, VGG, network-in-network, ResNets (and their plain twins), a
  global-average-pooling CNN, feature extraction
- ``checkpoint``: safetensors checkpoints
- ``summary``: ``summary.summary(model, input_size)``, a torchinfo-style table of shapes, parameters, mult-adds
- ``visualize``: saliency, Grad-CAM, embeddings, plots (chapter 16)
- ``adversarial``: adversarial examples (chapter 17)
"""
from . import autograd, cuda, functional
from .autograd import Function, enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .autograd import backward, grad, once_differentiable
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

#: submodules imported on first use (PEP 562), not by ``import tinygrad_cv``
_LAZY_SUBMODULES = ("adversarial", "checkpoint", "data", "models", "summary", "visualize")


def __getattr__(name):
    # plain import statements (no import by string, no ``from . import``, which would look the
    # name up here again); importing binds the submodule on the package, so this runs once per name
    if name == "adversarial":
        import tinygrad_cv.adversarial
    elif name == "checkpoint":
        import tinygrad_cv.checkpoint
    elif name == "data":
        import tinygrad_cv.data
    elif name == "models":
        import tinygrad_cv.models
    elif name == "summary":
        import tinygrad_cv.summary
    elif name == "visualize":
        import tinygrad_cv.visualize  # noqa: F401
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return globals()[name]


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))
