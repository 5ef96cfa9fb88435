r"""Network in Network (Lin, Chen & Yan, 2013, "Network in network"), after d2l.ai's chapter on NiN.

**1×1 convolutions.** A 1×1 convolution applies the same linear map
(C_in -> C_out) to the channel vector of every pixel: out[n, :, i, j] =
W x[n, :, i, j] + b, a fully connected layer slid over the image. Followed by
ReLU it is a small per-pixel neural network across channels (the paper's
"cascaded cross channel parametric pooling"); it mixes and re-weights
channels without looking at neighbours, and is the cheap way to change the
number of channels (GoogLeNet's and ResNet's bottlenecks).

**The mlpconv ("NiN") block** puts a k×k convolution before two such
per-pixel layers, so each local patch goes through a three-layer MLP instead
of a single linear filter::

    nin_block(in, out, k, stride, padding):  conv k×k (in -> mid) -> ReLU -> conv 1×1 (mid -> mid) -> ReLU
                                              -> conv 1×1 (mid -> out) -> ReLU          (mid = out unless given)

**The network** (``NiN``, ``nin``) ends without any fully connected layer: the
last block has ``num_classes`` output maps, one confidence map per class, and
global average pooling turns each map into a score. That removes the bulk of
the parameters of an AlexNet-style classifier and is what makes class
activation maps possible later. The layout is the paper's CIFAR-10 network
(its Caffe model) for 28×28 / 32×32 input::

    features: 0 nin_block(in_channels, c1, 5, 1, 2)                       -> c1 × 32×32 (28×28)
              1 maxpool 3×3/2 (ceil_mode, as Caffe)   2 dropout             -> c1 × 16×16 (14×14)
              3 nin_block(c1, c2, 5, 1, 2)
              4 maxpool 3×3/2 (ceil_mode)            5 dropout             -> c2 × 8×8 (7×7)
              6 nin_block(c2, num_classes, 3, 1, 1, mid_channels=c3)        -> num_classes × 8×8 (7×7)
    avgpool:  global average pool;  flatten                                -> (N, num_classes)

with c1 = c2 = c3 = 192 by default (1,455,562 parameters at 3 channels and 10
classes). Differences from the paper's model: its first block narrows to 160
then 96 maps (the blocks here keep one width), and its second pool is an
average pool; both make it smaller (~0.97 M parameters). The final ReLU before
the global pool (paper and d2l alike) keeps the class scores non-negative.
Initialisation: He normal (fan_in) for every convolution, biases 0.
"""
from __future__ import annotations

from .. import nn

__all__ = ["NiN", "conv1x1_block", "nin", "nin_block"]


def conv1x1_block(in_channels, out_channels):
    """1×1 convolution + ReLU: a per-pixel fully connected layer across channels, (N, in, H, W) -> (N, out, H, W)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=1), nn.ReLU(inplace=True))


def nin_block(in_channels, out_channels, kernel_size, stride=1, padding=0, mid_channels=None):
    """The mlpconv block: conv k×k -> ReLU -> conv 1×1 -> ReLU -> conv 1×1 -> ReLU (a Sequential, keys 0, 2, 4).

    (N, in_channels, H, W) -> (N, out_channels, H', W') with H' = (H + 2·padding - k) // stride + 1
    (likewise W'). The first two convolutions have ``mid_channels`` maps
    (default ``out_channels``, as d2l's ``nin_block``).
    """
    mid = int(out_channels if mid_channels is None else mid_channels)
    if min(int(in_channels), int(out_channels), mid) < 1:
        raise ValueError(f"nin_block: channel counts must be positive, got in={in_channels}, "
                         f"out={out_channels}, mid={mid_channels}")
    return nn.Sequential(
        nn.Conv2d(in_channels, mid, kernel_size=kernel_size, stride=stride, padding=padding),
        nn.ReLU(inplace=True),
        nn.Conv2d(mid, mid, kernel_size=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(mid, out_channels, kernel_size=1),
        nn.ReLU(inplace=True),
    )


class NiN(nn.Module):
    """``NiN(in_channels=3, num_classes=10, channels=(192, 192, 192), dropout=0.5)``: mlpconv blocks, global pool.

    Input (N, in_channels, H, W), designed for 28×28 and 32×32 (any H, W >= 6
    runs: the last pool is global); output
    (N, num_classes) scores, the spatial means of the last block's
    ``num_classes`` maps. ``channels`` = (c1, c2, c3): the widths of the three
    blocks (the third block's 1×1 layers narrow c3 -> num_classes).
    """

    def __init__(self, in_channels=3, num_classes=10, channels=(192, 192, 192), dropout=0.5):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) != 3 or min(channels) < 1:
            raise ValueError(f"channels must be three positive widths, got {channels}")
        if int(in_channels) < 1 or int(num_classes) < 1:
            raise ValueError(f"in_channels and num_classes must be positive, got {in_channels} and {num_classes}")
        c1, c2, c3 = channels
        self.features = nn.Sequential(
            nin_block(in_channels, c1, 5, 1, 2),
            nn.MaxPool2d(3, stride=2, ceil_mode=True),
            nn.Dropout(dropout),
            nin_block(c1, c2, 5, 1, 2),
            nn.MaxPool2d(3, stride=2, ceil_mode=True),
            nn.Dropout(dropout),
            nin_block(c2, num_classes, 3, 1, 1, mid_channels=c3),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.flatten(self.avgpool(self.features(x)))


def nin(in_channels=3, num_classes=10, channels=(192, 192, 192), dropout=0.5):
    """The NiN network for small images (see the module doc); 1,455,562 parameters at the defaults."""
    return NiN(in_channels, num_classes, channels, dropout)
