"""Datasets, IDX files, batch transforms and the DataLoader."""
from .datasets import (
    ENV_VAR,
    FASHION_MNIST_RESOURCES,
    MNIST,
    MNIST_RESOURCES,
    DatasetNotFoundError,
    DownloadError,
    FashionMNIST,
    data_root,
)
from .idx import IDXError, read_idx, write_idx
from .loader import ArrayDataset, DataLoader, TensorDataset
from .transforms import (
    Compose,
    ElasticDistortion,
    Normalize,
    RandomAffine,
    RandomShift,
    ToFloat,
    affine_batch,
    shift_batch,
)

__all__ = [
    "ENV_VAR",
    "FASHION_MNIST_RESOURCES",
    "MNIST",
    "MNIST_RESOURCES",
    "DatasetNotFoundError",
    "DownloadError",
    "FashionMNIST",
    "data_root",
    "IDXError",
    "read_idx",
    "write_idx",
    "ArrayDataset",
    "DataLoader",
    "TensorDataset",
    "Compose",
    "ElasticDistortion",
    "Normalize",
    "RandomAffine",
    "RandomShift",
    "ToFloat",
    "affine_batch",
    "shift_batch",
]
