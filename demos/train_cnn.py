"""Train a CNN with tinygrad_cv: ``--arch`` lenet5, resnet20/56, plain20/56, vgg_small, nin or maxout on
``--dataset`` mnist, fashion-mnist or cifar10 (see ``--help``; the code is in tinygrad_cv/train_demo.py).

    python demos/train_cnn.py --arch resnet20 --dataset fashion-mnist --data DIR
"""
import sys

from tinygrad_cv.train_demo import main

if __name__ == "__main__":
    sys.exit(main())
