"""LeNet-5 (LeCun et al., 1998) for 28×28 single-channel images.

    input 1×28×28
    conv 5×5, 6 maps, padding 2   -> 6×28×28   (the 1998 net read 32×32 images; padding 2 keeps that geometry)
    activation, 2×2 pool          -> 6×14×14
    conv 5×5, 16 maps             -> 16×10×10
    activation, 2×2 pool          -> 16×5×5
    flatten -> 400 -> 120 -> 84 -> 10

The default is the modern form (ReLU, max-pooling); ``variant="1998"`` uses
tanh and average pooling, closer to the paper but not its network. The 1998
LeNet-5 differs in four ways, none of which modern libraries keep: its
squashing function is the scaled tanh 1.7159·tanh(2a/3); its subsampling
layers multiply each 2×2 sum by a trainable coefficient and add a trainable
bias before the squashing; each C3 map is connected to only some of the S2
maps (a fixed table that breaks symmetry and saves weights); and its outputs
are Euclidean RBF units comparing the 84-dimensional F6 vector with fixed
class codes, not a linear layer with softmax.
"""
from __future__ import annotations

from .. import nn


class LeNet5(nn.Module):
    def __init__(self, num_classes: int = 10, variant: str = "relu"):
        super().__init__()
        if variant not in ("relu", "1998"):
            raise ValueError(f"variant must be 'relu' or '1998', got {variant!r}")
        act = nn.ReLU if variant == "relu" else nn.Tanh
        pool = nn.MaxPool2d if variant == "relu" else nn.AvgPool2d
        self.variant = variant
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=5, padding=2),
            act(),
            pool(2),
            nn.Conv2d(6, 16, kernel_size=5),
            act(),
            pool(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120),
            act(),
            nn.Linear(120, 84),
            act(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
