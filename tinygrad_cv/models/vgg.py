r"""VGG networks (Simonyan & Zisserman, 2015, "Very deep convolutional networks for large-scale image recognition").

Stacks of 3×3 convolutions (padding 1, so each keeps the size) with ReLU,
separated by 2×2/2 max pools that halve the maps; two 3×3 convolutions see a
5×5 window, three a 7×7, with fewer weights and more nonlinearities than
one large kernel. torchvision's definitions, with its module names, so
state dicts line up key for key::

    features:   the configuration below, each number a conv 3×3 pad 1 -> [batch norm] -> ReLU, "M" a maxpool 2×2/2
    avgpool:    adaptive average pool to 7×7 (the identity at 224×224)
    classifier: 0 linear 25088 -> 4096  1 relu  2 dropout
                3 linear 4096 -> 4096   4 relu  5 dropout  6 linear 4096 -> num_classes

    vgg11 (A): 64 M 128 M 256 256 M 512 512 M 512 512 M                   132,863,336 parameters
    vgg13 (B): 64 64 M 128 128 M 256 256 M 512 512 M 512 512 M           133,047,848
    vgg16 (D): 64 64 M 128 128 M 256 256 256 M 512 512 512 M 512 512 512 M   138,357,544
    vgg19 (E): 64 64 M 128 128 M 256 256 256 256 M 512 512 512 512 M 512 512 512 512 M   143,667,240

(at 1000 classes and 3 input channels). ``batch_norm=True`` gives
torchvision's ``vggXX_bn`` (a BatchNorm2d after every convolution, so the
feature indices shift: conv, bn, relu per layer; vgg16_bn has 138,365,992
parameters). Initialisation as torchvision: convolutions He normal with
fan_out, biases 0; batch norm weight 1, bias 0; linear layers N(0, 0.01²), biases 0.

``vgg_small`` is the same design shrunk for 28×28 and 32×32 images (MNIST,
CIFAR-10), small enough to train on a laptop CPU: three stages of two 3×3
convolutions of width w, 2w, 4w (w = 16 by default), batch norm, an
adaptive average pool to 2×2 and a two-layer classifier with ``hidden`` units.
"""
from __future__ import annotations

from .. import nn

__all__ = ["VGG", "make_layers", "CFGS", "vgg11", "vgg13", "vgg16", "vgg19", "vgg_small"]

#: torchvision's configurations (a number: a 3×3 convolution with that many maps; "M": a 2×2/2 max pool)
CFGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def make_layers(cfg, in_channels=3, batch_norm=False):
    """The ``features`` of a configuration: conv 3×3 pad 1 [-> BatchNorm2d] -> ReLU per number, MaxPool2d(2) per "M"."""
    layers, c = [], int(in_channels)
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"a VGG configuration holds positive ints and 'M', got {v!r} in {cfg!r}")
        layers.append(nn.Conv2d(c, v, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        c = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """``VGG(features, num_classes=1000, dropout=0.5, pool_size=(7, 7), hidden=4096, init_weights=True)``.

    Input (N, C, H, W) with C the first convolution's input channels and H, W
    at least 2^(number of pools); output (N, num_classes). ``features`` ends in
    K maps; the classifier reads K·pool_size[0]·pool_size[1] numbers.
    """

    def __init__(self, features, num_classes=1000, dropout=0.5, pool_size=(7, 7), hidden=4096, init_weights=True):
        super().__init__()
        convs = [m for m in features.modules() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise ValueError("VGG: features holds no Conv2d")
        if int(num_classes) < 1 or int(hidden) < 1:
            raise ValueError(f"num_classes and hidden must be positive, got {num_classes} and {hidden}")
        ph, pw = (pool_size, pool_size) if isinstance(pool_size, int) else pool_size
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((ph, pw))
        self.classifier = nn.Sequential(
            nn.Linear(convs[-1].out_channels * ph * pw, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, int(num_classes)),
        )
        if init_weights:
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
                elif isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0.0, 0.01)
                    nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(x.flatten(1))


def _vgg(cfg, num_classes, in_channels, batch_norm, dropout):
    return VGG(make_layers(CFGS[cfg], in_channels, batch_norm), num_classes, dropout)


def vgg11(num_classes=1000, in_channels=3, batch_norm=False, dropout=0.5):
    """VGG-11 (configuration A): 132,863,336 parameters at 1000 classes (132,868,840 with batch norm)."""
    return _vgg("A", num_classes, in_channels, batch_norm, dropout)


def vgg13(num_classes=1000, in_channels=3, batch_norm=False, dropout=0.5):
    """VGG-13 (configuration B): 133,047,848 parameters at 1000 classes."""
    return _vgg("B", num_classes, in_channels, batch_norm, dropout)


def vgg16(num_classes=1000, in_channels=3, batch_norm=False, dropout=0.5):
    """VGG-16 (configuration D): 138,357,544 parameters at 1000 classes (138,365,992 with batch norm)."""
    return _vgg("D", num_classes, in_channels, batch_norm, dropout)


def vgg19(num_classes=1000, in_channels=3, batch_norm=False, dropout=0.5):
    """VGG-19 (configuration E): 143,667,240 parameters at 1000 classes."""
    return _vgg("E", num_classes, in_channels, batch_norm, dropout)


def vgg_small(in_channels=1, num_classes=10, width=16, batch_norm=True, dropout=0.5, hidden=128):
    """A VGG for 28×28 / 32×32 images: [w, w, M, 2w, 2w, M, 4w, 4w, M], pool to 2×2, 16w -> hidden -> hidden -> classes.

    Maps 28 -> 14 -> 7 -> 3 (32 -> 16 -> 8 -> 4), then the adaptive pool to
    2×2 (overlapping windows at 3×3, the plain 2×2 mean at 4×4), so the
    classifier has the same size for both. 122,938 parameters at the defaults
    (71,792 in the convolutions, 448 in batch norm, 50,698 in the classifier).
    """
    w = int(width)
    if w < 1:
        raise ValueError(f"width must be positive, got {width}")
    cfg = [w, w, "M", 2 * w, 2 * w, "M", 4 * w, 4 * w, "M"]
    return VGG(make_layers(cfg, in_channels, batch_norm), num_classes, dropout, pool_size=(2, 2), hidden=hidden)
