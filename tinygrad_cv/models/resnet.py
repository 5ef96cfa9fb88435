r"""Residual networks (He, Zhang, Ren & Sun, 2016, "Deep residual learning for image recognition").

A residual block computes y = relu(F(x) + shortcut(x)): the layers F learn a
correction to the identity, so stacking more blocks can at worst learn F = 0.
The gradient of the addition reaches x along the shortcut unchanged, which is
what lets 20-, 56- or 110-layer networks train where their "plain" twins
(the same layers without shortcuts) get *worse* with depth (the paper's Fig. 6).

Two families, with the module names of torchvision's ``resnet.py`` (so state
dicts line up key for key):

* ImageNet networks (section 4.1; torchvision's ``resnet18/34/50``)::

      conv1 7×7/2, 64 -> bn1 -> relu -> maxpool 3×3/2
      layer1 .. layer4: 64, 128, 256, 512 planes (stride 1, 2, 2, 2)
      avgpool (global) -> fc

  ``BasicBlock`` (two 3×3 convolutions, ``expansion = 1``) or ``Bottleneck``
  (1×1 reduce, 3×3, 1×1 expand ×4; ``expansion = 4``). The bottleneck puts
  its stride on the 3×3 convolution ("ResNet v1.5", as torchvision does; the
  paper's v1 strided the first 1×1). Where the shape changes the shortcut is
  a 1×1 convolution with batch norm (``downsample.0`` / ``downsample.1``,
  the paper's option B). Initialisation as torchvision: He normal with
  fan_out for convolutions, batch norm weight 1 and bias 0, PyTorch's
  default for ``fc``; ``zero_init_residual=True`` starts each block's last
  batch norm at weight 0, so every block begins as the identity.

* CIFAR networks (section 4.2): ``resnet20/32/56`` (6n + 2 layers, n = 3, 5, 9)
  and their plain twins ``plain20/32/56``::

      conv1 3×3, 16 -> bn1 -> relu
      layer1: n basic blocks, 16 planes   (32×32 for CIFAR input)
      layer2: n basic blocks, 32 planes, the first with stride 2   (16×16)
      layer3: n basic blocks, 64 planes, the first with stride 2   (8×8)
      avgpool (global) -> fc 64 -> num_classes

  The shortcut where the shape changes is the paper's option A by default:
  still the identity, subsampled with stride 2 (``x[:, :, ::2, ::2]``) and
  zero-padded with the missing channels (appended after the existing ones),
  so it adds no parameter (``ShortcutA``); ``shortcut="B"`` uses the 1×1
  convolution + batch norm projection instead. Counts at 10 classes and 3
  input channels: ResNet-20 269,722 parameters with option A (the paper's
  "0.27M"), 272,474 with option B (+2,752 for two projections); plain-20
  269,722, the same as option A, whose shortcuts carry no weights.
  Initialisation as the paper ("as in [13]", He et al. 2015, eq. 10): He
  normal with fan_in for convolutions, std √(2 / (k² c_in)); batch norm
  weight 1, bias 0.

Every convolution has ``bias=False``: the batch norm after it has a bias of its own.
"""
from __future__ import annotations

from .. import functional as F
from .. import nn

__all__ = [
    "BasicBlock", "Bottleneck", "ShortcutA", "ResNet", "CifarResNet",
    "resnet18", "resnet34", "resnet50",
    "resnet20", "resnet32", "resnet56", "plain20", "plain32", "plain56",
]


def conv3x3(in_planes, out_planes, stride=1):
    """3×3 convolution with padding 1, no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    """1×1 convolution, no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class ShortcutA(nn.Module):
    """The paper's option A: identity with stride-``stride`` subsampling and zero-padded extra channels.

    (N, inplanes, H, W) -> (N, planes, ceil(H / stride), ceil(W / stride)): the
    input's channels first, then ``planes - inplanes`` channels of zeros. No
    parameters. Built from slicing and ``F.pad``, both differentiable: the
    gradient is the upstream gradient's first ``inplanes`` channels, scattered
    back onto the subsampled positions.
    """

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        if planes < inplanes:
            raise ValueError(f"ShortcutA can only add channels, got {inplanes} -> {planes}")
        self.inplanes, self.planes, self.stride = int(inplanes), int(planes), int(stride)

    def forward(self, x):
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]
        extra = self.planes - self.inplanes
        if extra:
            x = F.pad(x, (0, 0, 0, 0, 0, extra))  # (W: 0, 0), (H: 0, 0), (C: 0 before, extra after)
        return x

    def extra_repr(self):
        return f"{self.inplanes}, {self.planes}, stride={self.stride}"


class BasicBlock(nn.Module):
    """Two 3×3 convolutions: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).

    ``conv1`` carries the stride. ``downsample`` maps x to the output's shape
    when it differs (None: the identity). ``shortcut=False`` drops the
    addition: the block of a plain network.
    """

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, shortcut=True):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride
        self.shortcut = bool(shortcut)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.shortcut:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class Bottleneck(nn.Module):
    """1×1 (reduce to ``planes``), 3×3 (stride), 1×1 (expand to ``planes * 4``), plus the shortcut.

    torchvision's "v1.5": the stride sits on the 3×3 convolution ``conv2``.
    ``shortcut=False`` drops the addition, as in ``BasicBlock``.
    """

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, shortcut=True):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        self.shortcut = bool(shortcut)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.shortcut:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


def _projection(inplanes, planes, stride):
    """Option B: 1×1 convolution (with the stride) + batch norm, named downsample.0 / downsample.1."""
    return nn.Sequential(conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes))


def _init_weights(model, conv_mode):
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode=conv_mode, nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _zero_last_bn(model):
    for m in model.modules():
        if isinstance(m, Bottleneck):
            nn.init.zeros_(m.bn3.weight)
        elif isinstance(m, BasicBlock):
            nn.init.zeros_(m.bn2.weight)


class ResNet(nn.Module):
    """torchvision's ``ResNet(block, layers)``: the ImageNet layout, ``layers`` blocks in each of 4 stages.

    Input (N, in_channels, H, W), any H, W >= 1 (global pooling at the end);
    output (N, num_classes) scores.
    """

    def __init__(self, block, layers, num_classes=1000, in_channels=3, zero_init_residual=False):
        super().__init__()
        if len(layers) != 4:
            raise ValueError(f"ResNet needs 4 stage depths, got {layers!r}")
        self.inplanes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        _init_weights(self, "fan_out")
        if zero_init_residual:
            _zero_last_bn(self)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = _projection(self.inplanes, planes * block.expansion, stride)
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x).flatten(1)
        return self.fc(x)


class CifarResNet(nn.Module):
    """The CIFAR-10 networks of section 4.2: 6n + 2 layers, three stages of n basic blocks (16, 32, 64 planes).

    ``shortcut``: "A" (identity, zero-padded channels: no parameters), "B"
    (1×1 convolution + batch norm where the shape changes), or None (a plain
    network: no shortcuts at all). Input (N, in_channels, H, W); designed for
    32×32 (feature maps 32, 16, 8), and any size works (28×28 gives 28, 14, 7).
    """

    def __init__(self, n, num_classes=10, in_channels=3, shortcut="A"):
        super().__init__()
        if shortcut not in ("A", "B", None):
            raise ValueError(f"shortcut must be 'A', 'B' or None (plain network), got {shortcut!r}")
        if int(n) < 1:
            raise ValueError(f"n (blocks per stage) must be positive, got {n}")
        self.n, self.shortcut = int(n), shortcut
        self.inplanes = 16
        self.conv1 = conv3x3(in_channels, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(16, n)
        self.layer2 = self._make_layer(32, n, stride=2)
        self.layer3 = self._make_layer(64, n, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64, num_classes)
        _init_weights(self, "fan_in")

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            if self.shortcut == "A":
                downsample = ShortcutA(self.inplanes, planes, stride)
            elif self.shortcut == "B":
                downsample = _projection(self.inplanes, planes, stride)
        use = self.shortcut is not None
        layers = [BasicBlock(self.inplanes, planes, stride, downsample, shortcut=use)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes, shortcut=use) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = self.avgpool(x).flatten(1)
        return self.fc(x)


# --- ImageNet networks (torchvision's names and state dict keys) ---------------------------

def resnet18(num_classes=1000, in_channels=3, **kwargs):
    """ResNet-18: BasicBlock × (2, 2, 2, 2); 11,689,512 parameters at 1000 classes."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, in_channels, **kwargs)


def resnet34(num_classes=1000, in_channels=3, **kwargs):
    """ResNet-34: BasicBlock × (3, 4, 6, 3); 21,797,672 parameters at 1000 classes."""
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes, in_channels, **kwargs)


def resnet50(num_classes=1000, in_channels=3, **kwargs):
    """ResNet-50: Bottleneck × (3, 4, 6, 3); 25,557,032 parameters at 1000 classes."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, in_channels, **kwargs)


# --- CIFAR networks ------------------------------------------------------------------------

def resnet20(num_classes=10, in_channels=3, shortcut="A"):
    """ResNet-20 (n = 3); 269,722 parameters with option A at 10 classes, 272,474 with option B."""
    return CifarResNet(3, num_classes, in_channels, shortcut)


def resnet32(num_classes=10, in_channels=3, shortcut="A"):
    """ResNet-32 (n = 5)."""
    return CifarResNet(5, num_classes, in_channels, shortcut)


def resnet56(num_classes=10, in_channels=3, shortcut="A"):
    """ResNet-56 (n = 9)."""
    return CifarResNet(9, num_classes, in_channels, shortcut)


def plain20(num_classes=10, in_channels=3):
    """Plain-20: ResNet-20 without shortcuts (269,722 parameters at 10 classes)."""
    return CifarResNet(3, num_classes, in_channels, shortcut=None)


def plain32(num_classes=10, in_channels=3):
    """Plain-32: ResNet-32 without shortcuts."""
    return CifarResNet(5, num_classes, in_channels, shortcut=None)


def plain56(num_classes=10, in_channels=3):
    """Plain-56: ResNet-56 without shortcuts."""
    return CifarResNet(9, num_classes, in_channels, shortcut=None)
