"""MNIST and Fashion-MNIST as in-memory, array-backed datasets; the data root and downloads.

CIFAR-10 (binary version, read without pickle) is in ``cifar.py``; it resolves
its data root and downloads with the functions here.

Where the files are looked for
------------------------------
The data root is, in order of precedence:

1. the ``root`` argument,
2. the ``TINYGRAD_CV_DATA`` environment variable,
3. ``~/.cache/tinygrad_cv``.

Inside the root, the files for a split are looked for first directly in the
root and then in the dataset's subfolder, ``<root>/mnist`` for MNIST and
``<root>/fashion-mnist`` for Fashion-MNIST.  Each file may be gzipped
(``train-images-idx3-ubyte.gz``) or not (``train-images-idx3-ubyte``).  The
first of those two folders that holds both files of the split wins, so
images and labels are never paired across folders.

Because the two datasets use the same file names, the subfolders are what
lets one root hold both; downloads always go into the subfolder.  Pointing
``root`` straight at a folder of files works too, e.g. Debian's
``dataset-fashion-mnist`` package: ``FashionMNIST(root="/usr/share/datasets/fashion-mnist")``
(or ``root="/usr/share/datasets"``, which finds the ``fashion-mnist`` subfolder).

Integrity
---------
Downloads are checked against the size and digests in ``MNIST_RESOURCES`` /
``FASHION_MNIST_RESOURCES`` before they are renamed into place.  Files that
are already on disk are not hashed (re-packed or subset copies are
legitimate, e.g. Debian's re-compressed files or a 10k-image training
subset); they are checked structurally by the IDX reader instead, and the
image and label counts must agree, and every label must be an integer in
``[0, len(classes))``.  No sample count is assumed.

Downloading
-----------
A download is bounded three ways, so a broken or hostile mirror cannot
fill the disk or hang the program:

* size: the body may not exceed the file's known size (the ``size`` entry
  of the resource table; a ``Content-Length`` is believed only below it),
  and a file of the wrong size is refused;
* time: each file has an overall deadline, ``DOWNLOAD_DEADLINE_S`` (300 s)
  unless ``download_deadline=`` says otherwise, shared by all mirrors
  tried for it;
* silence: every connect and read waits at most ``READ_TIMEOUT_S`` (15 s,
  pip's default), so a mirror that never answers costs 15 s per file.

The deadline is checked between reads, and one read waits at most the read
timeout, so a file is given up at most ``READ_TIMEOUT_S`` after its deadline.
The bytes go to a temporary file that is renamed into place only after the
size and digests match.  A progress bar (``tqdm.auto``) shows each download.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from tinygrad_cv.io import atomic_output

from .idx import IDXError, read_idx

__all__ = [
    "DatasetNotFoundError",
    "DownloadError",
    "MNIST",
    "FashionMNIST",
    "MNIST_RESOURCES",
    "FASHION_MNIST_RESOURCES",
    "data_root",
    "ENV_VAR",
    "DOWNLOAD_DEADLINE_S",
    "READ_TIMEOUT_S",
    "MAX_DOWNLOAD_BYTES",
    "CIFAR10",
    "CIFARError",
    "CIFAR10_RESOURCES",
    "CIFAR10_CLASSES",
    "read_cifar10_batch",
    "extract_cifar10",
    "verify_archive",
]

ENV_VAR = "TINYGRAD_CV_DATA"

# The function that opens URLs.  Module-level so tests (and users behind a
# proxy or with their own transport) can substitute it.
_urlopen = urllib.request.urlopen
_CHUNK = 1 << 20

# Overall time allowed for one file, over all its mirrors.  The largest file
# (Fashion-MNIST's 26 MB training images) needs about 90 KB/s to make it.
DOWNLOAD_DEADLINE_S = 300.0
# Longest wait for the connection or for any single read (pip uses the same).
READ_TIMEOUT_S = 15.0
# Cap on a download whose resource entry gives no size (a caller's own
# table): larger than any official file, small enough to never fill a disk.
MAX_DOWNLOAD_BYTES = 64 << 20

# Digests and sizes of the official archives, used to verify downloads.
# Each ``size`` is the official file's length in bytes (the figure the
# TensorFlow and torchvision downloaders report for it); a download is cut
# off as soon as it would exceed it.
#
# MNIST
#   t10k-*: SHA-256 computed here from copies whose MD5 equals the published
#   MD5 (so the files are the official ones).
#   train-*: the SHA-256 values are the ones published alongside many MNIST
#   downloaders (TensorFlow/Julia/Rust loaders among others, which also agree
#   with the two test-set values computed here); they could not be recomputed
#   locally because only a 10k-image subset of the training set was at hand.
#   The MD5s are the widely published ones (torchvision and others).  Both are
#   checked, so a mistake in either column cannot let a bad file through; it
#   could at worst reject a good one, which fails loudly.
MNIST_RESOURCES: dict[str, dict[str, str | int]] = {
    "train-images-idx3-ubyte.gz": {
        "sha256": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "md5": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "size": 9912422,
    },
    "train-labels-idx1-ubyte.gz": {
        "sha256": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "md5": "d53e105ee54ea40749a09fcbcd1e9432",
        "size": 28881,
    },
    "t10k-images-idx3-ubyte.gz": {
        "sha256": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "md5": "9fb629c4189551a2d022fa330f9573f3",
        "size": 1648877,
    },
    "t10k-labels-idx1-ubyte.gz": {
        "sha256": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        "md5": "ec29112dd5afa0611ce80d1b7f02629c",
        "size": 4542,
    },
}

# Fashion-MNIST
#   The MD5s are the ones Zalando publishes in the Fashion-MNIST README.
#   The SHA-256s were computed from the official files, rebuilt locally:
#   Debian's dataset-fashion-mnist ships the same deflate streams with a
#   normalised gzip header (timestamp reset, stored file name dropped), so
#   restoring the original header gives files whose size and MD5 match the
#   published ones exactly; the SHA-256 of those files is listed here.  Note
#   that the Debian files themselves therefore hash differently; that is
#   harmless because local files are not hash-checked.
FASHION_MNIST_RESOURCES: dict[str, dict[str, str | int]] = {
    "train-images-idx3-ubyte.gz": {
        "sha256": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "md5": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "size": 26421880,
    },
    "train-labels-idx1-ubyte.gz": {
        "sha256": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "md5": "25c81989df183df01b3e8a0aad5dffbe",
        "size": 29515,
    },
    "t10k-images-idx3-ubyte.gz": {
        "sha256": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "md5": "bef4ecab320f06d8554ea6380940ec79",
        "size": 4422102,
    },
    "t10k-labels-idx1-ubyte.gz": {
        "sha256": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        "md5": "bb300cfdad3c16e7a12a480ee83cd310",
        "size": 5148,
    },
}


class DatasetNotFoundError(FileNotFoundError):
    """The dataset files are missing and could not (or may not) be downloaded."""


class DownloadError(OSError):
    """A download failed: wrong size or digest, too large, too slow, or a silent server."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Resolve the data root: ``root``, else ``$TINYGRAD_CV_DATA``, else ``~/.cache/tinygrad_cv``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "tinygrad_cv"


def _verify_digests(digests: dict, expected: dict[str, str]) -> list[str]:
    return [
        f"{algo} {digests[algo].hexdigest()} != expected {value}"
        for algo, value in expected.items()
        if digests[algo].hexdigest() != value.lower()
    ]


def _content_length(response) -> int | None:
    """The response's Content-Length, or None when absent or malformed."""
    headers = getattr(response, "headers", None)
    value = headers.get("Content-Length") if headers is not None else None
    try:
        length = int(value) if value is not None else None
    except ValueError:
        return None
    return length if length is not None and length >= 0 else None


def _positive_seconds(value, what: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number of seconds, got {value!r}") from None
    if not seconds > 0:  # also refuses NaN
        raise ValueError(f"{what} must be > 0 seconds, got {value!r}")
    return seconds


def _copy_body(response, f, digests: dict, *, url: str, cap: int, total: int | None,
               deadline: float, start: float, desc: str, progress: bool) -> int:
    """Stream the body into ``f`` and the digests; return the byte count.

    Stops with :class:`DownloadError` once more than ``cap`` bytes arrive or
    ``deadline`` seconds have passed since ``start``.
    """
    # An HTTP response's read1 returns whatever has arrived (read(n) waits
    # for all n bytes), so a trickling server still reaches the deadline
    # check between reads.  Other responses (file://, a substituted
    # transport) keep their plain read.
    read = response.read1 if isinstance(response, http.client.HTTPResponse) else response.read
    got = 0
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
              desc=desc, disable=not progress, leave=False) as bar:
        while True:
            elapsed = time.monotonic() - start
            if elapsed > deadline:
                of = f" of {total}" if total is not None else ""
                raise DownloadError(
                    f"{url}: download not finished after {elapsed:.1f} s, past the {deadline:.3g} s deadline "
                    f"({got}{of} bytes received)"
                )
            chunk = read(_CHUNK)
            if not chunk:
                return got
            got += len(chunk)
            if got > cap:
                raise DownloadError(f"{url}: server sent more than the {cap} bytes expected; stopped")
            f.write(chunk)
            for h in digests.values():
                h.update(chunk)
            bar.update(len(chunk))


def download_file(
    url: str,
    dest: Path,
    expected: dict,
    *,
    deadline: float | None = None,
    read_timeout: float | None = None,
    progress: bool = True,
) -> None:
    """Fetch ``url`` into ``dest``, verifying the size and every digest in ``expected``.

    ``expected`` maps hash names (``"sha256"``, ``"md5"``, ...) to hex
    digests, plus optionally ``"size"``, the exact length in bytes.  The body
    is cut off, and :class:`DownloadError` raised, as soon as it exceeds that
    size (``MAX_DOWNLOAD_BYTES`` when no size is given; a larger
    ``Content-Length`` is refused before reading), when the whole download
    has not finished within ``deadline`` seconds (``DOWNLOAD_DEADLINE_S``),
    or when the server is silent for ``read_timeout`` seconds
    (``READ_TIMEOUT_S``).  The deadline is checked between reads, so it can
    be overrun by at most one read timeout.

    The bytes are streamed into a temporary file next to ``dest`` and only
    renamed onto ``dest`` once size and digests match; on any failure the
    temporary file is removed and ``dest`` is not created.  ``progress``
    shows a ``tqdm.auto`` progress bar.
    """
    expected = dict(expected)
    size = expected.pop("size", None)
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ValueError(f"{url}: expected size must be a byte count >= 0, got {size!r}")
    cap = MAX_DOWNLOAD_BYTES if size is None else size
    deadline = _positive_seconds(DOWNLOAD_DEADLINE_S if deadline is None else deadline, "deadline")
    read_timeout = _positive_seconds(READ_TIMEOUT_S if read_timeout is None else read_timeout, "read_timeout")
    # The socket timeout bounds the connect and every read; it is never
    # longer than the deadline itself.
    timeout = min(read_timeout, deadline)
    digests = {algo: hashlib.new(algo) for algo in expected}
    dest.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    try:
        # Raising inside atomic_output discards the temporary file.
        with atomic_output(dest) as f:
            with _urlopen(url, timeout=timeout) as response:
                length = _content_length(response)
                if length is not None and length > cap:
                    raise DownloadError(
                        f"{url}: server announces {length} bytes, more than the {cap} expected; "
                        "not downloading"
                    )
                got = _copy_body(
                    response, f, digests, url=url, cap=cap, total=size if size is not None else length,
                    deadline=deadline, start=start, desc=dest.name, progress=progress,
                )
            if size is not None and got != size:
                raise DownloadError(f"{url}: downloaded {got} bytes, expected {size} (connection cut short?)")
            mismatches = _verify_digests(digests, expected)
            if mismatches:
                raise DownloadError(f"{url}: downloaded file failed verification: {'; '.join(mismatches)}")
    except (TimeoutError, urllib.error.URLError) as e:
        # urlopen raises URLError(timeout) when connecting times out, and a
        # bare TimeoutError when the server accepts but never answers or
        # stops sending.
        reason = e.reason if isinstance(e, urllib.error.URLError) else e
        if not isinstance(reason, TimeoutError):
            raise
        raise DownloadError(f"{url}: no answer from the server for {timeout:.3g} s (read timeout)") from None


def _download_from_mirrors(mirrors, fname: str, folder: Path, expected: dict, deadline: float) -> str | None:
    """Fetch ``fname`` from the first mirror that serves it intact into ``folder``.

    Returns None on success, else one line with every mirror's error.  All
    mirrors share the file's one ``deadline``, so a file never takes much
    longer than that however many mirrors misbehave.
    """
    problems = []
    end = time.monotonic() + deadline
    for mirror in mirrors:
        url = mirror + fname
        left = end - time.monotonic()
        if left <= 0:
            problems.append(f"{url}: not tried, the file's {deadline:g} s deadline ran out")
            continue
        try:
            download_file(url, folder / fname, expected, deadline=left)
            return None
        except (OSError, ValueError, http.client.HTTPException) as e:
            problems.append(f"{url}: {e}" if not str(e).startswith(url) else str(e))
    return "; ".join(problems)


class _ArrayImageDataset:
    """Indexing shared by the in-memory image datasets: ``data`` and ``targets`` arrays."""

    data: np.ndarray
    targets: np.ndarray
    transform = None
    target_transform = None

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index):
        """Return ``(images, labels)`` for an int, a slice or an integer/boolean array.

        Images come back as stored (uint8) unless the dataset has a
        ``transform``, which is applied to the image batch (and
        ``target_transform``, when set, to the label batch).  For an int
        index the transforms still see a batch of one, and the result is
        unbatched again.
        """
        if isinstance(index, (int, np.integer)):
            labels = self.targets[index][None]  # raises IndexError when out of range
            images = self.data[index][None]
        else:
            images, labels = self.data[index], self.targets[index]
        if self.transform is not None:
            images = self.transform(images)
        if self.target_transform is not None:
            labels = self.target_transform(labels)
        if isinstance(index, (int, np.integer)):
            return images[0], labels[0]
        return images, labels


class _IDXImageDataset(_ArrayImageDataset):
    """Shared machinery of the MNIST-style datasets (two IDX files per split)."""

    name = ""
    subdir = ""
    mirrors: tuple[str, ...] = ()
    resources: dict[str, dict[str, str]] = {}
    classes: list[str] = []

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        train: bool = True,
        download: bool = True,
        transform=None,
        *,
        download_deadline: float | None = None,
    ):
        self.root = data_root(root)
        if root is not None:
            self._root_source = "the root= argument"
        elif os.environ.get(ENV_VAR):
            self._root_source = f"${ENV_VAR}"
        else:
            self._root_source = "the default; neither root= nor $" + ENV_VAR + " was set"
        self.train = bool(train)
        self.transform = transform
        self.download_deadline = _positive_seconds(
            DOWNLOAD_DEADLINE_S if download_deadline is None else download_deadline, "download_deadline"
        )
        split = "train" if self.train else "t10k"
        self._files = (f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte")

        images_path, labels_path = self._locate(download)
        images = read_idx(images_path)
        labels = read_idx(labels_path)
        if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
            raise IDXError(
                f"{images_path}: expected uint8 images of shape (N, 28, 28), got {images.dtype} {images.shape}"
            )
        self._check_labels(labels, labels_path)
        if len(labels) != len(images):
            raise IDXError(
                f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path}"
            )
        self.data: np.ndarray = images
        self.targets: np.ndarray = labels.astype(np.int64)
        self.images_path, self.labels_path = images_path, labels_path

    def _check_labels(self, labels: np.ndarray, path: Path) -> None:
        """Refuse anything but a 1-d integer array with values in ``[0, len(classes))``."""
        n = len(self.classes)
        if labels.ndim != 1:
            raise IDXError(f"{path}: expected a 1-d label array, got shape {labels.shape}")
        if labels.dtype.kind not in "iu":
            # A float file (IDX codes 0x0D/0x0E) could smuggle in NaN or 2.5,
            # which astype(int64) would silently turn into some class.  Name
            # the first label that is not a valid class, else the first one.
            with np.errstate(invalid="ignore"):
                bad = ~np.isfinite(labels) | (labels != np.floor(labels)) | (labels < 0) | (labels >= n)
            first_bad = np.flatnonzero(bad)
            i = int(first_bad[0]) if first_bad.size else 0
            example = f"; label {labels[i]} at index {i}" if labels.size else ""
            raise IDXError(
                f"{path}: labels must be stored as integers (IDX element type 0x08, unsigned byte), "
                f"found {labels.dtype}{example}"
            )
        out_of_range = np.flatnonzero((labels < 0) | (labels >= n))
        if out_of_range.size:
            i = int(out_of_range[0])
            raise IDXError(
                f"{path}: label {labels[i]} at index {i} is out of range for {n} classes "
                f"(labels must be in [0, {n})); {out_of_range.size} such label(s)"
            )

    # -- file lookup -----------------------------------------------------

    @property
    def search_dirs(self) -> list[Path]:
        return [self.root, self.root / self.subdir]

    @property
    def download_dir(self) -> Path:
        return self.root / self.subdir

    @staticmethod
    def _find(folder: Path, stem: str) -> Path | None:
        for candidate in (folder / f"{stem}.gz", folder / stem):
            if candidate.is_file():
                return candidate
        return None

    def _locate(self, download: bool) -> tuple[Path, Path]:
        for folder in self.search_dirs:
            found = [self._find(folder, stem) for stem in self._files]
            if all(found):
                return found[0], found[1]
        missing = [f"{stem}.gz" for stem in self._files if self._find(self.download_dir, stem) is None]
        if not download:
            raise self._not_found(missing, "download=False")
        errors = []
        for fname in missing:
            error = self._download(fname)
            if error:
                errors.append(error)
        if errors:
            still = [f for f in missing if not (self.download_dir / f).is_file()]
            raise self._not_found(still, "download failed:\n    " + "\n    ".join(errors))
        found = [self._find(self.download_dir, stem) for stem in self._files]
        return found[0], found[1]

    def _download(self, fname: str) -> str | None:
        """Try each mirror in turn; return None on success, else the errors."""
        return _download_from_mirrors(
            self.mirrors, fname, self.download_dir, self.resources[fname], self.download_deadline
        )

    def _not_found(self, missing: list[str], reason: str) -> DatasetNotFoundError:
        split = "training" if self.train else "test"
        looked = "\n".join(f"    {d}" for d in self.search_dirs)
        files = "\n".join(f"    {f}" for f in missing)
        urls = ", ".join(self.mirrors)
        return DatasetNotFoundError(
            f"{self.name} {split} files not found ({reason}).\n"
            f"Missing files:\n{files}\n"
            f"Looked in (data root {self.root}, from {self._root_source}):\n{looked}\n"
            f"Put the files (gzipped or not) in {self.download_dir} (or directly in {self.root}); "
            f"they are published at {urls}.  The data root comes from the root= argument, "
            f"else the {ENV_VAR} environment variable, else ~/.cache/tinygrad_cv."
        )

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"{type(self).__name__}(split={split!r}, n={len(self)}, images={self.images_path})"


class MNIST(_IDXImageDataset):
    """The MNIST handwritten digits (LeCun et al.), 28x28 uint8, 10 classes.

    ``MNIST(root=None, train=True, download=True, transform=None, *, download_deadline=None)``.
    Files are looked for in ``<root>`` and then ``<root>/mnist`` (see the
    module docstring for how ``root`` is resolved); missing files are
    downloaded into ``<root>/mnist`` and verified against ``MNIST_RESOURCES``.
    Each file's download must finish within ``download_deadline`` seconds
    (default ``DOWNLOAD_DEADLINE_S``, 300 s).  Labels must be integers in
    ``[0, 10)``; anything else raises :class:`IDXError` naming the file, the
    label and its index.

    Attributes: ``data`` uint8 (N, 28, 28), ``targets`` int64 (N,),
    ``classes``.  Indexing returns ``(images, labels)``.
    """

    name = "MNIST"
    subdir = "mnist"
    mirrors = (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    )
    resources = MNIST_RESOURCES
    classes = [str(d) for d in range(10)]


class FashionMNIST(_IDXImageDataset):
    """Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017): Zalando article images, 28x28, 10 classes.

    Same interface as :class:`MNIST`.  Files are looked for in ``<root>`` and
    then ``<root>/fashion-mnist`` (Debian's ``/usr/share/datasets/fashion-mnist``
    works as a root); downloads go into ``<root>/fashion-mnist``.
    """

    name = "Fashion-MNIST"
    subdir = "fashion-mnist"
    mirrors = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    resources = FASHION_MNIST_RESOURCES
    classes = [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]
