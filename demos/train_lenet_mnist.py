"""Train LeNet-5 on MNIST with tinygrad_cv (see ``--help``; the command is in tinygrad_cv/lenet_demo.py, the
trainer it runs in tinygrad_cv/train_demo.py, which demos/train_cnn.py runs for the other architectures)."""
import sys

from tinygrad_cv.lenet_demo import main

if __name__ == "__main__":
    sys.exit(main())
