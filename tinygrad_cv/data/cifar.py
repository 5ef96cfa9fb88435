"""CIFAR-10, the official binary version: checked, safely unpacked, read without pickle.

The archive ``cifar-10-binary.tar.gz`` holds ``cifar-10-batches-bin/`` with
``data_batch_1.bin`` ... ``data_batch_5.bin`` (training) and
``test_batch.bin``, each 10,000 records of 3,073 bytes (a label byte, then
1,024 red, 1,024 green and 1,024 blue bytes, rows of 32 pixels), and
``batches.meta.txt``, the class names. :class:`CIFAR10` describes where the
files are looked for; :func:`extract_cifar10` how an archive is checked and
unpacked; :func:`read_cifar10_batch` how one file is read. The data root and
the bounded, checked download are MNIST's (``datasets.py``).
"""
from __future__ import annotations

import gzip
import hashlib
import os
import re
import secrets
import shutil
import tarfile
import time
import zlib
from pathlib import Path

import numpy as np

from .datasets import (
    _CHUNK,
    ENV_VAR,
    DatasetNotFoundError,
    _ArrayImageDataset,
    _download_from_mirrors,
    _positive_seconds,
    data_root,
    download_file,
)

# The official archive.  MD5: the value the CIFAR-10 page lists for the
# "binary version (suitable for C programs)".  Size and SHA-256: the figures
# several independent downloaders pin for that file (Go, Ruby and Python
# loaders, and TensorFlow's CIFAR-10 tutorial, which logs "Successfully
# downloaded cifar-10-binary.tar.gz 170052171 bytes"); they could not be
# recomputed here, which has no copy of the file.  Both digests are checked,
# so a mistake in either could at worst reject a good file, loudly.
CIFAR10_RESOURCES: dict[str, dict[str, str | int]] = {
    "cifar-10-binary.tar.gz": {
        "sha256": "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
        "md5": "c32a1d4ab5d03f1284b67883e8d87530",
        "size": 170052171,
    },
}
CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-bin"
CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]
# One record: a label byte, then 32x32 red, 32x32 green, 32x32 blue bytes.
CIFAR10_RECORD_BYTES = 1 + 3 * 32 * 32
CIFAR10_RECORDS_PER_FILE = 10_000
CIFAR10_BATCH_FILE_BYTES = CIFAR10_RECORD_BYTES * CIFAR10_RECORDS_PER_FILE  # 30,730,000
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST_FILES = ("test_batch.bin",)
CIFAR10_META_FILE = "batches.meta.txt"
# 170 MB in 30 min needs ~95 KB/s; MNIST's 300 s would demand 570 KB/s.
CIFAR10_DOWNLOAD_DEADLINE_S = 1800.0

# Bounds on what an archive may hold, so a hostile or broken one cannot make
# the unpacker write (or churn through) more than the real data.  The
# official archive has 8 members: the folder, the 6 batches, the class list
# and a small readme.html.
_CIFAR10_META_MAX_BYTES = 4096  # the official file is 61 bytes
_TAR_MAX_MEMBERS = 64
_TAR_OTHER_MAX_BYTES = 1 << 20  # any member that is not one of ours (readme.html)

class CIFARError(ValueError):
    """A CIFAR-10 file or archive that is truncated, corrupt, unsafe, or not the official one."""


def _hash_file(path: Path, algorithms) -> dict[str, str]:
    digests = {algo: hashlib.new(algo) for algo in algorithms}
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            for h in digests.values():
                h.update(chunk)
    return {algo: h.hexdigest() for algo, h in digests.items()}


def verify_archive(path: str | os.PathLike, expected: dict) -> None:
    """Check a file on disk against ``expected`` (``size`` and hex digests); raise :class:`CIFARError` if it differs.

    The size is compared first, so a truncated file is refused without
    hashing 170 MB.
    """
    path = Path(path)
    expected = dict(expected)
    size = expected.pop("size", None)
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise CIFARError(
            f"{path}: {actual} bytes, the official archive has {size}; the file is truncated or a "
            "different one (delete it and download again)"
        )
    found = _hash_file(path, expected)
    bad = [f"{algo} {found[algo]} != expected {value}" for algo, value in expected.items()
           if found[algo] != str(value).lower()]
    if bad:
        raise CIFARError(
            f"{path}: failed verification, not the official archive: {'; '.join(bad)}. "
            "Delete it and download it again, or unpack a copy you trust yourself "
            f"(its {CIFAR10_FOLDER} folder is read directly)"
        )


def _member_kind(member) -> str:
    if member.issym():
        return f"a symbolic link to {member.linkname!r}"
    if member.islnk():
        return f"a hard link to {member.linkname!r}"
    if member.ischr() or member.isblk():
        return "a device file"
    if member.isfifo():
        return "a FIFO"
    return f"an entry of tar type {member.type!r}"


def _safe_member_name(member, archive: Path) -> str:
    """The member's name as a relative POSIX path; :class:`CIFARError` for anything that could escape or alias.

    Refused: absolute names, drive letters, backslashes, ``..`` components,
    and every entry that is neither a regular file nor a directory (links,
    devices, FIFOs).  The whole archive is refused, not just the entry:
    the official one contains none of these.
    """
    name = member.name
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if (name.startswith("/") or "\\" in name or (len(name) > 1 and name[1] == ":")
            or ".." in parts or not parts or "\x00" in name):
        raise CIFARError(f"{archive}: unsafe member name {name!r} (absolute, '..' or empty); archive refused")
    if not (member.isreg() or member.isdir()):
        raise CIFARError(f"{archive}: member {name!r} is {_member_kind(member)}; archive refused")
    return "/".join(parts)


def extract_cifar10(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Unpack the CIFAR-10 batches of ``archive`` into the folder ``dest``; return ``dest``.

    Only the expected members are written: ``cifar-10-batches-bin/`` +
    ``data_batch_1.bin`` ... ``data_batch_5.bin``, ``test_batch.bin``
    (each exactly 30,730,000 bytes) and ``batches.meta.txt`` (optional, at
    most 4 KiB).  Before anything lands in ``dest`` the whole archive is
    read once: every member name must be relative with no ``..``, every
    member a regular file or directory, at most 64 members, other members at
    most 1 MiB each (they are skipped), no expected member twice, and all
    six batches present.  The files are unpacked into a hidden temporary
    folder next to ``dest`` and moved into place only after all of that
    holds, so ``dest`` never receives part of a bad archive.

    The archive is read as a gzip-compressed tar stream in one pass, to the
    end, so the gzip CRC-32 and length are checked too (tarfile alone skips
    them); nothing is unpickled or executed.  Unreadable or damaged
    archives raise :class:`CIFARError`.
    """
    archive, dest = Path(archive), Path(dest)
    limits = {f"{CIFAR10_FOLDER}/{n}": CIFAR10_BATCH_FILE_BYTES for n in CIFAR10_TRAIN_FILES + CIFAR10_TEST_FILES}
    meta = f"{CIFAR10_FOLDER}/{CIFAR10_META_FILE}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _make_temp_dir(dest)
    try:
        written: list[str] = []
        try:
            # tarfile's own "r|gz" never checks the gzip CRC-32, so a damaged
            # archive would unpack silently; gzip.open checks it (and the
            # length) on reaching the end, which the drain below forces.
            with gzip.open(archive, "rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
                for count, member in enumerate(tar, start=1):
                    if count > _TAR_MAX_MEMBERS:
                        raise CIFARError(f"{archive}: more than {_TAR_MAX_MEMBERS} members; archive refused")
                    name = _safe_member_name(member, archive)
                    if member.isdir():
                        continue
                    if name in limits:
                        if member.size != limits[name]:
                            raise CIFARError(
                                f"{archive}: member {name!r} is {member.size} bytes, a CIFAR-10 batch file "
                                f"is exactly {limits[name]} ({CIFAR10_RECORDS_PER_FILE} records of "
                                f"{CIFAR10_RECORD_BYTES} bytes)"
                            )
                    elif name == meta:
                        if member.size > _CIFAR10_META_MAX_BYTES:
                            raise CIFARError(
                                f"{archive}: member {name!r} is {member.size} bytes, more than the "
                                f"{_CIFAR10_META_MAX_BYTES} a class list may have"
                            )
                    else:
                        if member.size > _TAR_OTHER_MAX_BYTES:
                            raise CIFARError(
                                f"{archive}: unexpected member {name!r} of {member.size} bytes "
                                f"(over {_TAR_OTHER_MAX_BYTES}); archive refused"
                            )
                        continue  # e.g. readme.html: not needed
                    base = name.rsplit("/", 1)[1]
                    if base in written:
                        raise CIFARError(f"{archive}: member {name!r} appears twice; archive refused")
                    _copy_member(tar.extractfile(member), tmp / base, member.size, archive, name)
                    written.append(base)
                while gz.read(_CHUNK):  # past the tar's end: only padding, then the CRC check
                    pass
        except (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error) as e:
            # Disk errors (OSError) while writing pass through unchanged.
            raise CIFARError(f"{archive}: cannot be read as a gzip-compressed tar archive: {e}") from e
        missing = [n for n in CIFAR10_TRAIN_FILES + CIFAR10_TEST_FILES if n not in written]
        if missing:
            raise CIFARError(
                f"{archive}: lacks {', '.join(f'{CIFAR10_FOLDER}/{n}' for n in missing)}; "
                "not a complete CIFAR-10 binary archive"
            )
        _fsync_dir(tmp)
        try:
            # The common case, a fresh folder: one atomic rename.
            os.rename(tmp, dest)
        except OSError:
            # ``dest`` exists (e.g. it held one split's files): move file by
            # file; each os.replace is atomic, so no file is ever torn.
            dest.mkdir(parents=True, exist_ok=True)
            for base in written:
                os.replace(tmp / base, dest / base)
        _fsync_dir(dest.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _remove_stale_temp_dirs(dest)
    return dest


def _make_temp_dir(dest: Path) -> Path:
    """A new empty folder ``.<dest name>.<pid>-<12 hex>.tmp`` next to ``dest``.

    Made with ``os.mkdir(path, 0o777)`` (so the umask decides, as for any
    folder) rather than mkdtemp's 0o700, because it becomes ``dest``.
    """
    while True:
        tmp = dest.parent / f".{dest.name}.{os.getpid()}-{secrets.token_hex(6)}.tmp"
        try:
            os.mkdir(tmp, 0o777)
            return tmp
        except FileExistsError:
            continue


def _remove_stale_temp_dirs(dest: Path) -> None:
    """Delete the temporary folders of unpacks of ``dest`` that were killed.

    Only folders named like :func:`_make_temp_dir`'s, untouched for an hour,
    or for a minute when their process id is no longer running (POSIX), so
    an unpack in progress elsewhere is left alone.
    """
    pattern = re.compile(re.escape(f".{dest.name}.") + r"([0-9]{1,10})-[0-9a-f]{12}\.tmp")
    now = time.time()
    try:
        entries = list(os.scandir(dest.parent))
    except OSError:
        return
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        try:
            if m is None or not entry.is_dir(follow_symlinks=False):
                continue
            idle = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if idle >= 3600 or (idle >= 60 and _pid_is_gone(int(m.group(1)))):
            shutil.rmtree(entry.path, ignore_errors=True)


def _pid_is_gone(pid: int) -> bool:
    """True only when no process ``pid`` runs on this machine; False whenever that cannot be told."""
    if os.name != "posix" or pid <= 0:  # on Windows os.kill(pid, 0) would kill it
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):
        return False
    return False


def _copy_member(src, path: Path, size: int, archive: Path, name: str) -> None:
    """Copy exactly ``size`` bytes of a tar member to ``path``, durably."""
    left = size
    with open(path, "xb") as f:
        while left:
            chunk = src.read(min(_CHUNK, left))
            if not chunk:
                raise CIFARError(f"{archive}: member {name!r} ends after {size - left} of its {size} bytes")
            f.write(chunk)
            left -= len(chunk)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not possible on every platform, nor needed there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_cifar10_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 binary batch file into ``(images, labels)``.

    File format: exactly 10,000 records of 3,073 bytes, no header.  Record
    ``i`` is one label byte in ``0..9`` followed by 3,072 pixel bytes: the
    1,024 red values, then the 1,024 green, then the 1,024 blue, each plane
    a 32x32 image stored row by row.  That is exactly C-order
    ``(3, 32, 32)``, so ``images = records[:, 1:].reshape(N, 3, 32, 32)``
    (NCHW, channels R, G, B) needs no transpose:
    ``images[i, c, y, x] = byte[i * 3073 + 1 + c * 1024 + y * 32 + x]``.

    Returns uint8 images (10000, 3, 32, 32) and int64 labels (10000,).
    Raises :class:`CIFARError`, naming the file, for a size that is not a
    whole number of records, a record count other than 10,000, or a label
    byte above 9 (naming the first such record and its value).
    """
    path = Path(path)
    size = path.stat().st_size
    if size % CIFAR10_RECORD_BYTES:
        raise CIFARError(
            f"{path}: {size} bytes is not a whole number of {CIFAR10_RECORD_BYTES}-byte records "
            f"({size // CIFAR10_RECORD_BYTES} records and {size % CIFAR10_RECORD_BYTES} bytes over); "
            "the file is truncated or not a CIFAR-10 binary batch"
        )
    n = size // CIFAR10_RECORD_BYTES
    if n != CIFAR10_RECORDS_PER_FILE:
        raise CIFARError(
            f"{path}: {n} records ({size} bytes); a CIFAR-10 batch file holds exactly "
            f"{CIFAR10_RECORDS_PER_FILE} ({CIFAR10_BATCH_FILE_BYTES} bytes), so this one is truncated or padded"
        )
    raw = np.fromfile(path, dtype=np.uint8, count=size)
    if raw.size != size:  # changed between stat and read
        raise CIFARError(f"{path}: read {raw.size} bytes, expected {size}")
    records = raw.reshape(n, CIFAR10_RECORD_BYTES)
    labels = records[:, 0]
    bad = np.flatnonzero(labels >= len(CIFAR10_CLASSES))
    if bad.size:
        i = int(bad[0])
        raise CIFARError(
            f"{path}: label byte {labels[i]} in record {i} (file offset {i * CIFAR10_RECORD_BYTES}) is not a "
            f"class in 0..{len(CIFAR10_CLASSES) - 1}; {bad.size} such record(s); the file is corrupt"
        )
    return records[:, 1:].reshape(n, 3, 32, 32), labels.astype(np.int64)


def _read_classes(folder: Path) -> list[str]:
    """The class names in ``folder/batches.meta.txt`` (one per line), else the official list."""
    path = folder / CIFAR10_META_FILE
    if not path.is_file():
        return list(CIFAR10_CLASSES)
    size = path.stat().st_size
    if size > _CIFAR10_META_MAX_BYTES:
        raise CIFARError(f"{path}: {size} bytes, more than the {_CIFAR10_META_MAX_BYTES} a class list may have")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise CIFARError(f"{path}: not a UTF-8 text file of class names ({e})") from None
    # The official file ends with a blank line; blank lines are not classes.
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) != len(CIFAR10_CLASSES):
        raise CIFARError(
            f"{path}: {len(names)} class names, expected {len(CIFAR10_CLASSES)} (one per line)"
        )
    return names


class CIFAR10(_ArrayImageDataset):
    """CIFAR-10 (Krizhevsky, 2009): 60,000 32x32 colour images in 10 classes, from the binary version.

    ``CIFAR10(root=None, train=True, transform=None, target_transform=None,
    download=False, *, download_deadline=None)``, torchvision's arguments
    (by keyword; ``download`` defaults to False there too, since the
    archive is 170 MB).  Training split: 50,000 images from
    ``data_batch_1.bin`` ... ``data_batch_5.bin``; test split: 10,000 from
    ``test_batch.bin``.

    Attributes: ``data`` uint8 (N, 3, 32, 32), NCHW with channels R, G, B
    (torchvision keeps (N, 32, 32, 3); this library is NCHW throughout),
    ``targets`` int64 (N,), ``classes`` (from ``batches.meta.txt``, else
    :data:`CIFAR10_CLASSES`: airplane ... truck), ``class_to_idx``,
    ``folder`` (where the batches were read) and ``files``.  Indexing
    returns ``(images, labels)`` like :class:`MNIST`; the DataLoader turns
    the uint8 batch into float32 in [0, 1], (N, 3, 32, 32).

    Where the files are looked for (``root`` resolved like :class:`MNIST`):

    1. the unpacked batches, in the first of ``<root>``,
       ``<root>/cifar-10-batches-bin`` and ``<root>/cifar-10/cifar-10-batches-bin``
       that holds all of the split's files;
    2. else the archive ``cifar-10-binary.tar.gz`` in ``<root>`` or
       ``<root>/cifar-10``: checked against :data:`CIFAR10_RESOURCES` (size,
       MD5, SHA-256) and unpacked, by :func:`extract_cifar10`, into the
       ``cifar-10-batches-bin`` folder next to it, once;
    3. else, with ``download=True``, the archive is downloaded into
       ``<root>/cifar-10`` (verified before it is renamed into place, see
       :func:`download_file`; deadline ``download_deadline``, default 1800 s)
       and unpacked there.  The archive is kept, like torchvision does.

    Unpacked files are not hashed (the archive was, when it was unpacked
    here); each batch file is checked structurally by
    :func:`read_cifar10_batch`.  Errors: :class:`DatasetNotFoundError`
    (nothing found, or the download failed), :class:`CIFARError`
    (truncated or corrupt batch, an archive that fails verification or is
    unsafe).  Nothing is ever unpickled.
    """

    name = "CIFAR-10"
    subdir = "cifar-10"
    mirrors = ("https://www.cs.toronto.edu/~kriz/",)
    resources = CIFAR10_RESOURCES

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        train: bool = True,
        transform=None,
        target_transform=None,
        download: bool = False,
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
        self.target_transform = target_transform
        self.download_deadline = _positive_seconds(
            CIFAR10_DOWNLOAD_DEADLINE_S if download_deadline is None else download_deadline, "download_deadline"
        )
        self._files = CIFAR10_TRAIN_FILES if self.train else CIFAR10_TEST_FILES

        self.folder = self._locate(download)
        self.files = [self.folder / f for f in self._files]
        n = CIFAR10_RECORDS_PER_FILE * len(self.files)
        # Filled file by file, so only one 30 MB raw buffer exists at a time.
        self.data = np.empty((n, 3, 32, 32), dtype=np.uint8)
        self.targets = np.empty(n, dtype=np.int64)
        for k, path in enumerate(self.files):
            part = slice(k * CIFAR10_RECORDS_PER_FILE, (k + 1) * CIFAR10_RECORDS_PER_FILE)
            self.data[part], self.targets[part] = read_cifar10_batch(path)
        self.classes = _read_classes(self.folder)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    # -- file lookup -----------------------------------------------------

    @property
    def download_dir(self) -> Path:
        return self.root / self.subdir

    @property
    def search_dirs(self) -> list[Path]:
        return [self.root, self.root / CIFAR10_FOLDER, self.download_dir / CIFAR10_FOLDER]

    @property
    def archive_paths(self) -> list[Path]:
        return [self.root / CIFAR10_ARCHIVE, self.download_dir / CIFAR10_ARCHIVE]

    def _locate(self, download: bool) -> Path:
        for folder in self.search_dirs:
            if all((folder / f).is_file() for f in self._files):
                return folder
        for archive in self.archive_paths:
            if archive.is_file():
                verify_archive(archive, self.resources[CIFAR10_ARCHIVE])
                return self._unpack(archive)
        if not download:
            raise self._not_found("download=False")
        error = _download_from_mirrors(
            self.mirrors, CIFAR10_ARCHIVE, self.download_dir, self.resources[CIFAR10_ARCHIVE],
            self.download_deadline,
        )
        if error:
            raise self._not_found("download failed:\n    " + error)
        # download_file verified size and digests before renaming it into place.
        return self._unpack(self.download_dir / CIFAR10_ARCHIVE)

    def _unpack(self, archive: Path) -> Path:
        dest = archive.parent / CIFAR10_FOLDER
        try:
            return extract_cifar10(archive, dest)
        except PermissionError as e:
            raise CIFARError(
                f"{archive}: cannot unpack into {dest} ({e}); unpack it yourself somewhere writable "
                f"(tar xzf {archive.name}) and pass that folder's parent as root="
            ) from None

    def _not_found(self, reason: str) -> DatasetNotFoundError:
        split = "training" if self.train else "test"
        preferred = self.download_dir / CIFAR10_FOLDER
        missing = "\n".join(f"    {f}" for f in self._files if not (preferred / f).is_file())
        looked = "\n".join(f"    {d}" for d in self.search_dirs)
        archives = "\n".join(f"    {a}" for a in self.archive_paths)
        res = self.resources[CIFAR10_ARCHIVE]
        url = self.mirrors[0] + CIFAR10_ARCHIVE
        return DatasetNotFoundError(
            f"{self.name} {split} files not found ({reason}).\n"
            f"Missing files (binary version, in {CIFAR10_FOLDER}/):\n{missing}\n"
            f"Looked for them in (data root {self.root}, from {self._root_source}):\n{looked}\n"
            f"and for the archive at:\n{archives}\n"
            f"Put {CIFAR10_ARCHIVE} ({url}, {res['size']} bytes, MD5 {res['md5']}) in {self.download_dir} "
            f"(it is verified and unpacked on first use), or its unpacked folder {CIFAR10_FOLDER} there "
            f"or directly in {self.root}.  To fetch it, pass download=True on a machine with internet "
            f"access, or download {url} yourself (e.g. curl -O {url}).  The data root comes from the root= "
            f"argument, else the {ENV_VAR} environment variable, else ~/.cache/tinygrad_cv."
        )

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"{type(self).__name__}(split={split!r}, n={len(self)}, folder={self.folder})"
