r"""AlexNet (Krizhevsky, Sutskever & Hinton, 2012, "ImageNet classification with deep convolutional neural networks").

Two layouts, both for (N, in_channels, H, W) input (designed for 224×224;
anything from 63×63 up runs, the adaptive pool fixing the classifier's input):

* ``variant="torchvision"`` (the default): torchvision's ``alexnet``, module
  for module and key for key (``features.0.weight`` … ``classifier.6.bias``;
  61,100,840 parameters at 1000 classes). Its widths (64, 192, 384, 256, 256)
  are those of Krizhevsky's 2014 "One weird trick" single-tower network, not
  the 2012 paper's, and it has no local response normalisation::

      features:   0 conv 11×11/4 pad 2, 64    1 relu   2 maxpool 3×3/2      -> 64×27×27 (at 224)
                  3 conv 5×5 pad 2, 192       4 relu   5 maxpool 3×3/2      -> 192×13×13
                  6 conv 3×3 pad 1, 384       7 relu
                  8 conv 3×3 pad 1, 256       9 relu
                 10 conv 3×3 pad 1, 256      11 relu  12 maxpool 3×3/2      -> 256×6×6
      avgpool:    adaptive average pool to 6×6
      classifier: 0 dropout  1 linear 9216 -> 4096  2 relu
                  3 dropout  4 linear 4096 -> 4096  5 relu  6 linear 4096 -> num_classes

* ``variant="2012"``: the paper's two-tower network on one device. Widths 96,
  256, 384, 384, 256; the paper split every layer over two GPUs and let
  conv2, conv4 and conv5 see only the maps of their own GPU — exactly a
  grouped convolution with ``groups=2`` — while conv3 and the
  fully connected layers see both halves (``groups=1``). Local response
  normalisation follows the ReLUs of conv1 and conv2, before their pooling,
  with the paper's constants (``lrn=False`` leaves it out)::

      0 conv 11×11/4 pad 2, 96   1 relu  2 lrn  3 maxpool 3×3/2
      4 conv 5×5 pad 2, 256, groups 2   5 relu  6 lrn  7 maxpool 3×3/2
      8 conv 3×3 pad 1, 384     9 relu
     10 conv 3×3 pad 1, 384, groups 2  11 relu
     12 conv 3×3 pad 1, 256, groups 2  13 relu  14 maxpool 3×3/2

  (without LRN the features are numbered as in the torchvision layout, with
  conv2, conv4 and conv5 grouped). 60,965,224 parameters at 1000 classes
  (the paper's "60 million"): conv 34,944 + 307,456 + 885,120 + 663,936 +
  442,624, fully connected 37,752,832 + 16,781,312 + 4,097,000. The paper's
  224×224 input with an unpadded stride-4 11×11 convolution does not give its
  stated 55×55 maps (227×227 would); padding 2, as torchvision, does at 224.

Both use PyTorch's default initialisation, as torchvision does; not the
paper's N(0, 0.01²) weights with biases of 1 in conv2, conv4, conv5 and the
hidden fully connected layers.
"""
from __future__ import annotations

from .. import nn

__all__ = ["AlexNet", "alexnet"]


def _features_torchvision(in_channels):
    return nn.Sequential(
        nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


def _features_2012(in_channels, lrn):
    def norm():
        # the paper: k = 2, n = 5, alpha = 1e-4 (on the plain sum), beta = 0.75
        return [nn.LocalResponseNorm(5, alpha=5 * 1e-4, beta=0.75, k=2.0)] if lrn else []

    return nn.Sequential(
        nn.Conv2d(in_channels, 96, kernel_size=11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        *norm(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(96, 256, kernel_size=5, padding=2, groups=2),
        nn.ReLU(inplace=True),
        *norm(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(256, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 384, kernel_size=3, padding=1, groups=2),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1, groups=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


class AlexNet(nn.Module):
    """``AlexNet(num_classes=1000, in_channels=3, dropout=0.5, variant="torchvision", lrn=None)``.

    Input (N, in_channels, H, W) with H, W >= 63 (three 3×3/2 poolings after
    the stride-4 convolution must leave at least one pixel); output
    (N, num_classes) scores. ``variant`` is "torchvision" or "2012" (see the
    module doc); ``lrn`` (2012 only) defaults to True. ``dropout`` is the
    drop probability of the two dropout layers of the classifier.
    """

    def __init__(self, num_classes=1000, in_channels=3, dropout=0.5, variant="torchvision", lrn=None):
        super().__init__()
        if int(in_channels) < 1 or int(num_classes) < 1:
            raise ValueError(f"in_channels and num_classes must be positive, got {in_channels} and {num_classes}")
        if variant == "torchvision":
            if lrn:
                raise ValueError("lrn=True needs variant='2012' (torchvision's AlexNet has no LRN)")
            self.features = _features_torchvision(int(in_channels))
        elif variant == "2012":
            self.features = _features_2012(int(in_channels), True if lrn is None else bool(lrn))
        else:
            raise ValueError(f"variant must be 'torchvision' or '2012', got {variant!r}")
        self.variant = variant
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, int(num_classes)),
        )

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(x.flatten(1))


def alexnet(num_classes=1000, in_channels=3, dropout=0.5, variant="torchvision", lrn=None):
    """AlexNet; torchvision's layout and keys by default (61,100,840 parameters at 1000 classes).

    ``variant="2012"``: the paper's two-tower widths and grouping, with LRN
    unless ``lrn=False`` (60,965,224 parameters at 1000 classes).
    """
    return AlexNet(num_classes, in_channels, dropout, variant, lrn)
