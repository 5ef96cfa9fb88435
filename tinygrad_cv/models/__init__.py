"""Reference network architectures, and ``feature_extractor`` to read their intermediate activations."""
from .feature_extraction import FeatureExtractor, feature_extractor
from .gap_cnn import GapNet
from .lenet import LeNet5

__all__ = ["LeNet5", "GapNet", "feature_extractor", "FeatureExtractor"]
