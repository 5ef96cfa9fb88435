"""Reference network architectures."""
from .lenet import LeNet5

__all__ = ["LeNet5"]
