"""Reference network architectures, and ``feature_extractor`` to read their intermediate activations."""
from .feature_extraction import FeatureExtractor, feature_extractor
from .lenet import LeNet5

__all__ = ["LeNet5", "feature_extractor", "FeatureExtractor"]
