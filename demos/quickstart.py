"""The README's first command runs this: LeNet-5 learning MNIST with the default settings.

MNIST is read from ``$TINYGRAD_CV_DATA`` or ``~/.cache/tinygrad_cv`` and
downloaded there (with checksum verification) when missing. Any option of
``demos/train_lenet_mnist.py`` can be passed, e.g. ``--epochs 3``.
"""
import sys

from tinygrad_cv.lenet_demo import main

if __name__ == "__main__":
    sys.exit(main())
