"""Reference network architectures, and ``feature_extractor`` to read their intermediate activations."""
from .feature_extraction import FeatureExtractor, feature_extractor
from .gap_cnn import GapNet
from .lenet import LeNet5
from .resnet import (
    BasicBlock, Bottleneck, CifarResNet, ResNet, ShortcutA, plain20, plain32, plain56, resnet18, resnet20, resnet32,
    resnet34, resnet50, resnet56,
)

__all__ = [
    "LeNet5", "GapNet", "feature_extractor", "FeatureExtractor",
    "ResNet", "CifarResNet", "BasicBlock", "Bottleneck", "ShortcutA",
    "resnet18", "resnet34", "resnet50", "resnet20", "resnet32", "resnet56", "plain20", "plain32", "plain56",
]
