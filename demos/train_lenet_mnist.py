"""Train LeNet-5 on MNIST with tinygrad_cv (see ``--help``; the code is in tinygrad_cv/lenet_demo.py)."""
import sys

from tinygrad_cv.lenet_demo import main

if __name__ == "__main__":
    sys.exit(main())
