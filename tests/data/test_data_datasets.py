import gzip
import hashlib
import io
import urllib.error

import numpy as np
import pytest

from tinygrad_cv.data import datasets
from tinygrad_cv.data.datasets import (
    ENV_VAR,
    MNIST,
    DatasetNotFoundError,
    DownloadError,
    FashionMNIST,
    download_file,
)
from tinygrad_cv.data.idx import IDXError, encode_idx


def check(ds, images, labels):
    assert ds.data.dtype == np.uint8 and ds.data.shape == images.shape
    assert ds.targets.dtype == np.int64
    np.testing.assert_array_equal(ds.data, images)
    np.testing.assert_array_equal(ds.targets, labels)
    assert len(ds) == len(images)


def test_files_directly_in_root(tmp_path, splits):
    images, labels = splits.write(tmp_path, "train", n=30)
    check(MNIST(root=tmp_path, download=False), images, labels)


def test_files_in_root_subfolder(tmp_path, splits):
    images, labels = splits.write(tmp_path / "mnist", "t10k", n=20, compress=False)
    check(MNIST(root=str(tmp_path), train=False, download=False), images, labels)


def test_root_wins_over_subfolder(tmp_path, splits):
    images, labels = splits.write(tmp_path, "train", n=5, seed=1)
    splits.write(tmp_path / "mnist", "train", n=7, seed=2)
    check(MNIST(root=tmp_path, download=False), images, labels)


def test_fashion_uses_its_own_subfolder(tmp_path, splits):
    mnist = splits.write(tmp_path / "mnist", "train", n=5, seed=1)
    fashion = splits.write(tmp_path / "fashion-mnist", "train", n=6, seed=2)
    check(MNIST(root=tmp_path, download=False), *mnist)
    ds = FashionMNIST(root=tmp_path, download=False)
    check(ds, *fashion)
    assert ds.classes[9] == "Ankle boot" and len(ds.classes) == 10


def test_env_var_and_default_root(tmp_path, monkeypatch, splits):
    images, labels = splits.write(tmp_path / "envroot" / "mnist", "train", n=8)
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "envroot"))
    check(MNIST(download=False), images, labels)
    # An explicit root beats the variable.
    other = splits.write(tmp_path / "explicit", "train", n=4, seed=3)
    check(MNIST(root=tmp_path / "explicit", download=False), *other)
    # Without either, ~/.cache/tinygrad_cv (HOME is a temp dir here).
    monkeypatch.delenv(ENV_VAR)
    home = splits.write(tmp_path / "home" / ".cache" / "tinygrad_cv" / "mnist", "train", n=3, seed=4)
    check(MNIST(download=False), *home)


def test_offline_error_lists_everything(tmp_path):
    # Only the labels exist: both files of the split must be named anyway
    # for the download folder.
    with pytest.raises(DatasetNotFoundError) as info:
        MNIST(root=tmp_path, train=True, download=False)
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert "train-images-idx3-ubyte.gz" in msg and "train-labels-idx1-ubyte.gz" in msg
    assert str(tmp_path / "mnist") in msg and str(tmp_path) in msg
    assert ENV_VAR in msg
    assert "download=False" in msg


def test_non_standard_counts_are_fine(tmp_path, splits):
    # The 10k-image training subset must load; nothing assumes 60,000.
    images, labels = splits.write(tmp_path, "train", n=13)
    assert len(MNIST(root=tmp_path, download=False)) == 13


def test_count_mismatch_is_reported(tmp_path, splits):
    splits.write(tmp_path, "train", n=10)
    _, labels = splits.make(9)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(encode_idx(labels)))
    with pytest.raises(IDXError, match="9 labels for 10 images"):
        MNIST(root=tmp_path, download=False)


def test_wrong_image_size_is_reported(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(encode_idx(np.zeros((2, 32, 32), np.uint8)))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(encode_idx(np.zeros(2, np.uint8)))
    with pytest.raises(IDXError, match=r"\(N, 28, 28\)"):
        MNIST(root=tmp_path, download=False)


def test_getitem_int_slice_array_and_transform(tmp_path, splits):
    images, labels = splits.write(tmp_path, "train", n=12)
    ds = MNIST(root=tmp_path, download=False)
    x, y = ds[3]
    assert x.shape == (28, 28) and y == labels[3]
    x, y = ds[-1]
    np.testing.assert_array_equal(x, images[-1])
    x, y = ds[2:5]
    np.testing.assert_array_equal(x, images[2:5])
    idx = np.array([7, 0, 7])
    x, y = ds[idx]
    np.testing.assert_array_equal(x, images[idx])
    np.testing.assert_array_equal(y, labels[idx])
    with pytest.raises(IndexError):
        ds[12]

    seen = []
    ds.transform = lambda b: (seen.append(b.shape), b.astype(np.float32) / 255)[1]
    x, _ = ds[4]
    assert seen == [(1, 28, 28)] and x.shape == (28, 28) and x.dtype == np.float32
    x, _ = ds[idx]
    assert x.dtype == np.float32 and x.shape == (3, 28, 28)


def test_debian_layout(tmp_path, splits):
    # /usr/share/datasets/fashion-mnist/ holds the four files directly.
    deb = tmp_path / "usr" / "share" / "datasets"
    images, labels = splits.write(deb / "fashion-mnist", "t10k", n=9)
    check(FashionMNIST(root=deb / "fashion-mnist", train=False, download=False), images, labels)
    check(FashionMNIST(root=deb, train=False, download=False), images, labels)


# --------------------------------------------------------------------------
# downloading, with a fake transport
# --------------------------------------------------------------------------

class FakeWeb:
    """Serves bytes by URL; records which URLs were opened."""

    def __init__(self, files, fail_after=None):
        self.files = files
        self.opened = []
        self.fail_after = fail_after

    def __call__(self, url, timeout=None):
        self.opened.append(url)
        if url not in self.files:
            raise OSError(f"404 for {url}")
        data = self.files[url]
        if self.fail_after is not None:
            return _Broken(data[: self.fail_after])
        return io.BytesIO(data)


class _Broken(io.BytesIO):
    def read(self, n=-1):
        chunk = super().read(n)
        if not chunk:
            raise ConnectionResetError("connection reset by peer")
        return chunk


def fake_archives(splits, split="train", n=11):
    images, labels = splits.make(n)
    blobs = {
        f"{split}-images-idx3-ubyte.gz": gzip.compress(encode_idx(images)),
        f"{split}-labels-idx1-ubyte.gz": gzip.compress(encode_idx(labels)),
    }
    table = {
        name: {"sha256": hashlib.sha256(b).hexdigest(), "md5": hashlib.md5(b).hexdigest()}
        for name, b in blobs.items()
    }
    return images, labels, blobs, table


def test_download_with_correct_hash(tmp_path, monkeypatch, splits):
    images, labels, blobs, table = fake_archives(splits)
    mirror = MNIST.mirrors[1]
    # The first mirror is down, the second serves the files.
    web = FakeWeb({mirror + name: data for name, data in blobs.items()})
    monkeypatch.setattr(datasets, "_urlopen", web)
    monkeypatch.setattr(MNIST, "resources", table)
    ds = MNIST(root=tmp_path, train=True, download=True)
    check(ds, images, labels)
    for name, data in blobs.items():
        assert (tmp_path / "mnist" / name).read_bytes() == data
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(blobs)
    assert web.opened[0].startswith(MNIST.mirrors[0])
    # Second construction finds the files: no more requests.
    n = len(web.opened)
    MNIST(root=tmp_path, download=True)
    assert len(web.opened) == n


def test_download_with_wrong_hash_leaves_nothing(tmp_path, monkeypatch, splits):
    _, _, blobs, table = fake_archives(splits)
    table["train-images-idx3-ubyte.gz"]["sha256"] = "0" * 64
    web = FakeWeb({m + name: d for m in MNIST.mirrors for name, d in blobs.items()})
    monkeypatch.setattr(datasets, "_urlopen", web)
    monkeypatch.setattr(MNIST, "resources", table)
    with pytest.raises(DatasetNotFoundError) as info:
        MNIST(root=tmp_path, download=True)
    msg = str(info.value)
    assert "failed verification" in msg and "sha256" in msg
    assert "train-images-idx3-ubyte.gz" in msg
    folder = tmp_path / "mnist"
    # The labels verified and stay; no trace of the bad images, no temp files.
    assert sorted(p.name for p in folder.iterdir()) == ["train-labels-idx1-ubyte.gz"]


def test_download_file_verifies_before_rename(tmp_path, monkeypatch):
    data = b"payload" * 1000
    monkeypatch.setattr(datasets, "_urlopen", FakeWeb({"u": data}))
    dest = tmp_path / "sub" / "f.gz"
    with pytest.raises(DownloadError, match="md5"):
        download_file("u", dest, {"md5": hashlib.md5(b"other").hexdigest()})
    assert list((tmp_path / "sub").iterdir()) == []
    download_file("u", dest, {"sha256": hashlib.sha256(data).hexdigest(), "md5": hashlib.md5(data).hexdigest()})
    assert dest.read_bytes() == data


def test_interrupted_download_leaves_nothing(tmp_path, monkeypatch):
    data = bytes(range(256)) * 100
    monkeypatch.setattr(datasets, "_urlopen", FakeWeb({"u": data}, fail_after=1000))
    dest = tmp_path / "f.gz"
    with pytest.raises(ConnectionResetError):
        download_file("u", dest, {"sha256": hashlib.sha256(data).hexdigest()})
    assert list(tmp_path.iterdir()) == []


def test_offline_download_error_message(tmp_path, monkeypatch):
    def offline(url, timeout=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(datasets, "_urlopen", offline)
    # The error must still explain where to put which files.
    with pytest.raises(DatasetNotFoundError) as info:
        FashionMNIST(root=tmp_path, train=False, download=True)
    msg = str(info.value)
    assert "download failed" in msg and "name resolution" in msg
    assert "t10k-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert str(tmp_path / "fashion-mnist") in msg and ENV_VAR in msg
    assert list(tmp_path.rglob("*.gz")) == [] and list(tmp_path.rglob("*.tmp")) == []


def test_resource_tables_are_complete():
    for table in (datasets.MNIST_RESOURCES, datasets.FASHION_MNIST_RESOURCES):
        assert sorted(table) == sorted(
            f"{s}-{k}.gz" for s in ("train", "t10k") for k in ("images-idx3-ubyte", "labels-idx1-ubyte")
        )
        for digests in table.values():
            assert len(digests["sha256"]) == 64 and len(digests["md5"]) == 32
            int(digests["sha256"], 16), int(digests["md5"], 16)
