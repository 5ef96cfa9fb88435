"""Reference network architectures (LeNet-5, AlexNet, VGG, NiN, ResNets), and ``feature_extractor`` to read their intermediate activations."""
from .alexnet import AlexNet, alexnet
from .feature_extraction import FeatureExtractor, feature_extractor
from .gap_cnn import GapNet
from .lenet import LeNet5
from .nin import NiN, conv1x1_block, nin, nin_block
from .resnet import (
    BasicBlock, Bottleneck, CifarResNet, ResNet, ShortcutA, plain20, plain32, plain56, resnet18, resnet20, resnet32,
    resnet34, resnet50, resnet56,
)
from .vgg import VGG, make_layers, vgg11, vgg13, vgg16, vgg19, vgg_small

__all__ = [
    "LeNet5", "GapNet", "feature_extractor", "FeatureExtractor",
    "ResNet", "CifarResNet", "BasicBlock", "Bottleneck", "ShortcutA",
    "resnet18", "resnet34", "resnet50", "resnet20", "resnet32", "resnet56", "plain20", "plain32", "plain56",
    "AlexNet", "alexnet",
    "VGG", "make_layers", "vgg11", "vgg13", "vgg16", "vgg19", "vgg_small",
    "NiN", "nin", "nin_block", "conv1x1_block",
]
