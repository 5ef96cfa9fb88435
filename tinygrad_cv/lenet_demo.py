"""Train LeNet-5 on MNIST (or Fashion-MNIST, CIFAR-10): the project's main demo.

    python demos/train_lenet_mnist.py                     # train with the defaults
    python demos/train_lenet_mnist.py --data DIR --epochs 5
    python demos/train_lenet_mnist.py --resume            # continue OUT/last.safetensors
    python demos/train_lenet_mnist.py evaluate runs/lenet/last.safetensors

Also installed as the console command ``tinygrad-cv-lenet``. It is the
general trainer of :mod:`tinygrad_cv.train_demo` (``tinygrad-cv-train``,
``demos/train_cnn.py``) with the architecture fixed to LeNet-5 and the output
folder defaulting to ``runs/lenet``; everything else — the options, the
validation split, the progress bar, the checkpoints and exact ``--resume``,
the plots, the evaluate mode, the one-line errors — is that module's, and
is documented there. The defaults are LeNet-5's: Adam, learning rate 2e-3
with cosine decay, batch 64, 15 epochs, affine augmentation (MNIST and
Fashion-MNIST), ``--variant relu``.

The training functions (``train_epoch``, ``evaluate``, ``report_test``) live
in :mod:`tinygrad_cv.train_demo` and are looked up there while a run goes, so
that is the module to patch to change them; this one re-exports only the
command-line entry points (``main``, ``build_parser``) and ``UsageError``.
A ``--resume`` of a checkpoint written by ``tinygrad-cv-train`` for another
architecture is refused, naming the command that continues it.
"""
from __future__ import annotations

import sys

from tinygrad_cv import train_demo
from tinygrad_cv.train_demo import UsageError

__all__ = ["LENET", "PROG", "UsageError", "build_parser", "main"]

PROG = "tinygrad-cv-lenet"
LENET = train_demo.Program(PROG, "Train LeNet-5 on MNIST with tinygrad_cv.", arch="lenet5", out="runs/lenet")


def build_parser():
    """The ``tinygrad-cv-lenet`` command line: ``tinygrad-cv-train``'s, without ``--arch``."""
    return train_demo.build_parser(LENET)


def main(argv=None):
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status, 0.

    As :func:`tinygrad_cv.train_demo.main`, for LeNet-5: invalid option values
    end as argparse errors do (``SystemExit(2)``); other user errors, as the
    program (``argv`` None), print one line ``tinygrad-cv-lenet: error: ...``
    and exit with status 2 (``--debug``: the traceback), and called with a
    list, ``main`` raises them.
    """
    return train_demo.main(argv, program=LENET)


if __name__ == "__main__":
    sys.exit(main())
