"""Neural-network layers (PyTorch's ``torch.nn``): `Module`, `Parameter`, layers, losses, ``init``.

``tinygrad_cv.nn.functional`` is the same module as ``tinygrad_cv.functional``::

    import tinygrad_cv.nn as nn
    import tinygrad_cv.nn.functional as F
"""
import sys as _sys

from .. import functional
from . import init
from .activation import LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .batchnorm import BatchNorm1d, BatchNorm2d
from .container import ModuleList, Sequential
from .conv import Conv2d, ConvTranspose2d
from .dropconnect import DropConnectLinear
from .dropout import Dropout
from .linear import Flatten, Identity, Linear
from .lrn import LocalResponseNorm
from .loss import CrossEntropyLoss, KLDivLoss, MSELoss, MultiMarginLoss, NLLLoss
from .maxout import Maxout
from .module import IncompatibleKeys, Module
from .parameter import Parameter
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d

# an alias, not a copy: functions added to tinygrad_cv.functional show up here too
_sys.modules[__name__ + ".functional"] = functional

__all__ = [
    "Module", "Parameter", "IncompatibleKeys", "init", "functional",
    "Linear", "Identity", "Flatten",
    "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
    "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax",
    "Dropout", "DropConnectLinear", "Maxout", "BatchNorm1d", "BatchNorm2d", "LocalResponseNorm",
    "Sequential", "ModuleList",
    "CrossEntropyLoss", "NLLLoss", "MSELoss", "KLDivLoss", "MultiMarginLoss",
]
