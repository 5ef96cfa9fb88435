"""Fixtures for the data tests: synthetic MNIST-style files, never the network."""
import gzip
import urllib.request

import numpy as np
import pytest

from tinygrad_cv.data import datasets
from tinygrad_cv.data.idx import encode_idx


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """Make any accidental download fail fast instead of reaching the internet,
    and keep the real data root (env var / home cache) out of the tests."""

    def refuse(*args, **kwargs):
        raise AssertionError("tests must not use the network")

    monkeypatch.setattr(datasets, "_urlopen", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def make_split(n, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    return images, labels


def write_split(folder, split="train", n=50, seed=0, compress=True):
    """Write <split>-images/labels IDX files into folder; return the arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = make_split(n, seed)
    for stem, arr in ((f"{split}-images-idx3-ubyte", images), (f"{split}-labels-idx1-ubyte", labels)):
        data = encode_idx(arr)
        if compress:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)
    return images, labels


@pytest.fixture
def splits():
    """Helpers for writing synthetic splits (fixtures, so tests need no imports)."""

    class Helpers:
        make = staticmethod(make_split)
        write = staticmethod(write_split)

    return Helpers
