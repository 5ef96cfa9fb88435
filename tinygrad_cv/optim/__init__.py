"""Optimisers (PyTorch's ``torch.optim``) and learning-rate schedules (``optim.lr_scheduler``).

Every optimiser follows PyTorch's update formulas exactly (see each module's
docstring) and its ``state_dict`` format, so training can stop and resume.
"""
from . import lr_scheduler
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "lr_scheduler"]
