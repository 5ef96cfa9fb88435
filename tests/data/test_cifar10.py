"""CIFAR-10 (binary version): reader, archive unpacking, downloading.

Everything runs on synthetic files written in the exact official format
(10,000 records of 1 label byte + 3,072 pixel bytes per batch file); the
real archive is never needed and the network is never used (see conftest).
"""
import hashlib
import io
import os
import stat
import tarfile

import numpy as np
import pytest

from tinygrad_cv.data import DataLoader, cifar, datasets
from tinygrad_cv.data.cifar import CIFAR10, CIFAR10_CLASSES, CIFARError, extract_cifar10, read_cifar10_batch
from tinygrad_cv.data.datasets import ENV_VAR, DatasetNotFoundError

N = 10_000
RECORD = 3073
TRAIN = [f"data_batch_{i}.bin" for i in range(1, 6)]
TEST = "test_batch.bin"
FOLDER = "cifar-10-batches-bin"
META = b"airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n"  # official: 61 bytes


def random_batch(seed):
    rng = np.random.default_rng(seed)
    images = np.frombuffer(rng.bytes(N * 3072), np.uint8).reshape(N, 3, 32, 32)
    return images, rng.integers(0, 10, N, dtype=np.uint8)


def encode(images, labels):
    """One record per image: the label byte, then the image's bytes in C order.

    C order of (3, 32, 32) is the format's R plane, G plane, B plane, each
    row by row; test_layout_is_label_then_red_green_blue_row_major checks
    that layout from explicit byte offsets, independently of this helper.
    """
    return np.concatenate([labels[:, None], images.reshape(len(labels), -1)], axis=1).tobytes()


def write_batch(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    images, labels = random_batch(seed)
    path.write_bytes(encode(images, labels))
    return images, labels


def blank_batch(path, size=N * RECORD, marks=()):
    """A batch file of zeros (sparse: no disk traffic) with ``(record, label, pixel value)`` marks.

    A marked record gets that label and that value in all of its 3,072 pixels.
    Returns the arrays the file holds.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)
        for record, label, value in marks:
            f.seek(record * RECORD)
            f.write(bytes([label]) + bytes([value]) * 3072)
    images, labels = np.zeros((N, 3, 32, 32), np.uint8), np.zeros(N, np.int64)
    for record, label, value in marks:
        images[record], labels[record] = value, label
    return images, labels


def make_tar(members, level=1):
    """A .tar.gz from (TarInfo kwargs, bytes or None) pairs."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=level) as tar:
        for info, data in members:
            ti = tarfile.TarInfo(info.pop("name"))
            for key, value in info.items():
                setattr(ti, key, value)
            if data is not None:
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
            else:
                tar.addfile(ti)
    return buf.getvalue()


def member(name, data):
    return {"name": name}, data


def batch_bytes(k):
    """Cheap distinct batch contents (compress well, so archives build fast): labels k, pixels k."""
    rec = np.full((N, RECORD), k, np.uint8)
    return rec.tobytes()


@pytest.fixture(scope="module")
def official_like_tar():
    """An archive laid out like the official one: folder, meta, readme, five train batches, test batch."""
    members = [({"name": FOLDER, "type": tarfile.DIRTYPE}, None),
               member(f"{FOLDER}/batches.meta.txt", META),
               member(f"{FOLDER}/readme.html", b"<html>see the website</html>\n")]
    members += [member(f"{FOLDER}/{name}", batch_bytes(k)) for k, name in enumerate(TRAIN, start=1)]
    members.append(member(f"{FOLDER}/{TEST}", batch_bytes(9)))
    return make_tar(members)


def table_for(blob):
    return {"cifar-10-binary.tar.gz": {
        "sha256": hashlib.sha256(blob).hexdigest(), "md5": hashlib.md5(blob).hexdigest(), "size": len(blob)}}


def leftovers(folder):
    return [p.name for p in folder.rglob("*") if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------
# reading batch files
# --------------------------------------------------------------------------

def test_layout_is_label_then_red_green_blue_row_major(tmp_path):
    # Distinct, position-revealing patterns per channel, written byte by byte
    # at the offsets the format defines (not via a reshape the reader could share).
    i = np.arange(N)[:, None]
    yx = np.arange(1024)[None, :]
    y, x = yx // 32, yx % 32
    rec = np.zeros((N, RECORD), np.uint8)
    rec[:, 0] = (np.arange(N) * 7) % 10
    rec[:, 1:1025] = x * 8                        # red: the column
    rec[:, 1025:2049] = y * 8 + 1                 # green: the row
    rec[:, 2049:3073] = (i + yx) % 251            # blue: depends on the image
    path = tmp_path / FOLDER / TEST
    path.parent.mkdir()
    path.write_bytes(rec.tobytes())

    ds = CIFAR10(root=tmp_path, train=False)
    assert ds.data.shape == (N, 3, 32, 32) and ds.data.dtype == np.uint8
    assert ds.targets.shape == (N,) and ds.targets.dtype == np.int64
    np.testing.assert_array_equal(ds.targets, (np.arange(N) * 7) % 10)
    cols = np.broadcast_to(np.arange(32) * 8, (32, 32))
    assert (ds.data[:, 0] == cols).all()          # red plane first, x along the row
    assert (ds.data[:, 1] == cols.T + 1).all()    # then green, y down the rows
    assert np.array_equal(ds.data[:, 2].reshape(N, 1024), (i + yx) % 251)  # then blue
    # One pixel by hand: image 7, green, row 5, column 9 -> byte 7*3073 + 1 + 1024 + 5*32 + 9.
    raw = path.read_bytes()
    assert ds.data[7, 1, 5, 9] == raw[7 * 3073 + 1 + 1024 + 5 * 32 + 9] == 5 * 8 + 1
    assert ds.classes == CIFAR10_CLASSES and ds.class_to_idx["truck"] == 9
    assert ds.folder == tmp_path / FOLDER and ds.files == [tmp_path / FOLDER / TEST]


def test_train_split_reads_five_files_in_order(tmp_path):
    # Marks at the first, a middle and the last record of every file make
    # the order and the 10,000-record boundaries visible.
    parts = [blank_batch(tmp_path / name, marks=[(0, k, 10 + k), (4321, 9 - k, 20 + k), (N - 1, k + 1, 30 + k)])
             for k, name in enumerate(TRAIN)]
    blank_batch(tmp_path / TEST, marks=[(0, 9, 99)])
    ds = CIFAR10(root=tmp_path, train=True)
    assert len(ds) == 50_000 and ds.data.shape == (50_000, 3, 32, 32)
    # np.array_equal: assert_array_equal's diagnostics cost seconds on 150 M elements.
    assert np.array_equal(ds.data, np.concatenate([p[0] for p in parts]))
    assert np.array_equal(ds.targets, np.concatenate([p[1] for p in parts]))
    assert ds.targets[4 * N + 4321] == 5 and ds.data[3 * N + N - 1].min() == 33
    test = CIFAR10(root=tmp_path, train=False)
    assert len(test) == N and test.targets[0] == 9 and (test.data[0] == 99).all()


def test_indexing_transform_and_loader(tmp_path):
    images, labels = write_batch(tmp_path / FOLDER / TEST, seed=3)
    ds = CIFAR10(root=tmp_path, train=False)
    x, y = ds[5]
    assert x.shape == (3, 32, 32) and y == labels[5]
    idx = np.array([9, 0, 9])
    x, y = ds[idx]
    np.testing.assert_array_equal(x, images[idx])
    np.testing.assert_array_equal(y, labels[idx])
    with pytest.raises(IndexError):
        ds[N]
    ds.transform = lambda b: b.astype(np.float32)
    ds.target_transform = lambda t: t + 100
    x, y = ds[2]
    assert x.dtype == np.float32 and x.shape == (3, 32, 32) and y == labels[2] + 100
    # The loader turns uint8 NCHW colour batches into float32 [0, 1] without adding a channel axis.
    plain = CIFAR10(root=tmp_path, train=False)
    xb, yb = next(iter(DataLoader(plain, batch_size=16)))
    assert xb.shape == (16, 3, 32, 32) and xb.dtype == np.float32
    np.testing.assert_array_equal(xb, images[:16] / np.float32(255))


def test_classes_from_meta_file(tmp_path):
    blank_batch(tmp_path / TEST)
    names = [f"class {k}" for k in range(10)]
    (tmp_path / "batches.meta.txt").write_text("\n".join(names) + "\n\n")
    assert CIFAR10(root=tmp_path, train=False).classes == names
    (tmp_path / "batches.meta.txt").write_text("\n".join(names[:9]) + "\n")
    with pytest.raises(CIFARError, match=r"batches\.meta\.txt: 9 class names, expected 10"):
        CIFAR10(root=tmp_path, train=False)


@pytest.mark.parametrize("size, message", [
    (N * RECORD - 1, r"30729999 bytes is not a whole number of 3073-byte records"),
    (N * RECORD + 5, r"not a whole number of 3073-byte records"),
    ((N - 1) * RECORD, r"9999 records .*exactly 10000"),
    ((N + 1) * RECORD, r"10001 records"),
    (0, r"0 records"),
])
def test_truncated_files_are_refused(tmp_path, size, message):
    path = tmp_path / TEST
    blank_batch(path, size=size)
    with pytest.raises(CIFARError, match=message) as info:
        CIFAR10(root=tmp_path, train=False)
    assert str(path) in str(info.value)


def test_corrupt_label_is_refused(tmp_path):
    path = tmp_path / TEST
    blank_batch(path, marks=[(1233, 9, 255), (1234, 10, 0), (5000, 255, 0)])
    with pytest.raises(CIFARError) as info:
        read_cifar10_batch(path)
    msg = str(info.value)
    assert str(path) in msg and "label byte 10 in record 1234" in msg and "2 such record" in msg
    assert f"offset {1234 * RECORD}" in msg


def test_missing_files_offline_message(tmp_path, monkeypatch):
    # Only the test batch and the first training batch are there.
    folder = tmp_path / "cifar-10" / FOLDER
    blank_batch(folder / TEST)
    blank_batch(folder / TRAIN[0])
    assert len(CIFAR10(root=tmp_path, train=False)) == N
    with pytest.raises(DatasetNotFoundError) as info:
        CIFAR10(root=tmp_path, train=True)
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert "download=False" in msg and "training" in msg
    for name in TRAIN[1:]:
        assert name in msg
    assert "data_batch_1.bin" not in msg.split("Looked")[0]  # present, so not listed as missing
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz" in msg
    assert "c32a1d4ab5d03f1284b67883e8d87530" in msg and "170052171" in msg
    assert str(tmp_path / "cifar-10") in msg and str(tmp_path / "cifar-10-binary.tar.gz") in msg
    assert "download=True" in msg and ENV_VAR in msg
    # The default root is named too.
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    with pytest.raises(DatasetNotFoundError, match=r"from \$TINYGRAD_CV_DATA"):
        CIFAR10(train=False)


def test_root_from_env_var(tmp_path, monkeypatch):
    images, labels = blank_batch(tmp_path / "envroot" / "cifar-10" / FOLDER / TEST, marks=[(17, 3, 200)])
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "envroot"))
    ds = CIFAR10(train=False)
    np.testing.assert_array_equal(ds.data, images)
    np.testing.assert_array_equal(ds.targets, labels)


def test_resource_table():
    entry = cifar.CIFAR10_RESOURCES["cifar-10-binary.tar.gz"]
    assert entry["md5"] == "c32a1d4ab5d03f1284b67883e8d87530"
    assert entry["size"] == 170052171 and len(entry["sha256"]) == 64
    int(entry["sha256"], 16)
    assert CIFAR10.mirrors == ("https://www.cs.toronto.edu/~kriz/",)


# --------------------------------------------------------------------------
# the archive: verification and unpacking
# --------------------------------------------------------------------------

def test_local_archive_is_verified_and_unpacked_once(tmp_path, monkeypatch, official_like_tar):
    monkeypatch.setattr(CIFAR10, "resources", table_for(official_like_tar))
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(official_like_tar)
    ds = CIFAR10(root=tmp_path, train=True)
    assert ds.folder == tmp_path / FOLDER
    assert sorted(p.name for p in ds.folder.iterdir()) == sorted(TRAIN + [TEST, "batches.meta.txt"])
    for k in range(5):  # batch k+1 holds label k+1 and pixels k+1 everywhere
        assert (ds.targets[k * N:(k + 1) * N] == k + 1).all() and (ds.data[k * N:(k + 1) * N] == k + 1).all()
    assert ds.classes == CIFAR10_CLASSES
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(ds.folder.stat().st_mode) == 0o777 & ~umask  # not mkdtemp's 0o700
    assert leftovers(tmp_path) == []
    # Later runs read the unpacked folder: the archive is not even opened.
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(b"now broken")
    test = CIFAR10(root=tmp_path, train=False)
    assert (test.targets == 9).all()


def test_local_archive_with_wrong_digest_is_refused(tmp_path, monkeypatch, official_like_tar):
    table = table_for(official_like_tar)
    table["cifar-10-binary.tar.gz"]["md5"] = "0" * 32
    monkeypatch.setattr(CIFAR10, "resources", table)
    archive = tmp_path / "cifar-10" / "cifar-10-binary.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(official_like_tar)
    with pytest.raises(CIFARError) as info:
        CIFAR10(root=tmp_path, train=False)
    msg = str(info.value)
    assert str(archive) in msg and "md5" in msg and "0" * 32 in msg and "sha256" not in msg
    assert sorted(p.name for p in archive.parent.iterdir()) == ["cifar-10-binary.tar.gz"]


def test_local_archive_with_wrong_size_is_refused(tmp_path, official_like_tar):
    # The real table: a file of the wrong size is refused before hashing.
    archive = tmp_path / "cifar-10-binary.tar.gz"
    archive.write_bytes(official_like_tar)
    with pytest.raises(CIFARError, match=rf"{len(official_like_tar)} bytes, the official archive has 170052171"):
        CIFAR10(root=tmp_path, train=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-binary.tar.gz"]


def test_unpack_into_folder_holding_one_split(tmp_path, official_like_tar):
    dest = tmp_path / FOLDER
    blank_batch(dest / TEST, marks=[(0, 1, 1)])
    (tmp_path / "a.tar.gz").write_bytes(official_like_tar)
    assert extract_cifar10(tmp_path / "a.tar.gz", dest) == dest
    assert sorted(p.name for p in dest.iterdir()) == sorted(TRAIN + [TEST, "batches.meta.txt"])
    assert (dest / TEST).read_bytes() == batch_bytes(9)
    assert leftovers(tmp_path) == []


def _ok(name):
    return member(f"{FOLDER}/{name}", batch_bytes(1))


# Built when a case runs (the good batches are 30 MB each).


UNSAFE = {
    "absolute": lambda: ([member("/tmp/cifar-evil.bin", b"x")], r"unsafe member name '/tmp/cifar-evil.bin'"),
    "dotdot": lambda: ([member(f"{FOLDER}/../../evil.bin", b"x")], r"unsafe member name"),
    "plain dotdot": lambda: ([member("../evil", b"x")], r"unsafe member name '\.\./evil'"),
    "symlink": lambda: ([({"name": f"{FOLDER}/{TEST}", "type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}, None)],
                r"test_batch.bin' is a symbolic link to '/etc/passwd'"),
    "hardlink": lambda: ([({"name": f"{FOLDER}/x", "type": tarfile.LNKTYPE, "linkname": "/etc/passwd"}, None)],
                 r"is a hard link"),
    "device": lambda: ([({"name": f"{FOLDER}/dev", "type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}, None)],
               r"is a device file"),
    "fifo": lambda: ([({"name": f"{FOLDER}/pipe", "type": tarfile.FIFOTYPE}, None)], r"is a FIFO"),
    "short batch": lambda: ([member(f"{FOLDER}/{TEST}", batch_bytes(1)[:-RECORD])],
                    r"test_batch.bin' is 30726927 bytes, a CIFAR-10 batch file is exactly 30730000"),
    "duplicate": lambda: ([_ok(TEST), _ok(TEST)], r"test_batch.bin' appears twice"),
    "big stranger": lambda: ([member(f"{FOLDER}/huge.bin", bytes((1 << 20) + 1))], r"unexpected member .*huge.bin"),
    "big meta": lambda: ([member(f"{FOLDER}/batches.meta.txt", b"x\n" * 3000)], r"more than the 4096"),
    "incomplete": lambda: ([_ok(TEST), _ok(TRAIN[0])],
                           r"lacks cifar-10-batches-bin/data_batch_2.bin, .*data_batch_4.bin; not a complete"),
    "too many": lambda: ([member(f"{FOLDER}/f{k}", b"") for k in range(65)], r"more than 64 members"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_bad_archives_are_refused_and_leave_nothing(tmp_path, case):
    members, message = UNSAFE[case]()
    # A good member first: it must not reach the destination either.
    archive = tmp_path / "in" / "x.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(make_tar([_ok(TRAIN[4])] + [(dict(i), d) for i, d in members]))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(CIFARError, match=message) as info:
        extract_cifar10(archive, out / FOLDER)
    assert str(archive) in str(info.value)
    assert list(out.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]
    assert not os.path.lexists("/tmp/cifar-evil.bin")


def test_unsafe_archive_refused_through_the_dataset(tmp_path, monkeypatch):
    blob = make_tar([({"name": f"{FOLDER}/{TEST}", "type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}, None)])
    monkeypatch.setattr(CIFAR10, "resources", table_for(blob))  # the digest matches: only the content is bad
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(blob)
    with pytest.raises(CIFARError, match="symbolic link"):
        CIFAR10(root=tmp_path, train=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-binary.tar.gz"]


def test_damaged_gzip_is_caught_by_its_crc(tmp_path):
    # tarfile alone does not check the gzip CRC; the unpacker must.
    payload = np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    blob = bytearray(make_tar([member(f"{FOLDER}/readme.html", payload[:100_000])], level=1))
    blob[len(blob) // 2] ^= 0x40  # inside a stored/incompressible stretch: decodes, but wrongly
    archive = tmp_path / "x.tar.gz"
    archive.write_bytes(bytes(blob))
    with pytest.raises(CIFARError, match="CRC|invalid|Error"):
        extract_cifar10(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_not_a_gzip_file(tmp_path):
    archive = tmp_path / "x.tar.gz"
    archive.write_bytes(b"PK\x03\x04 this is a zip, say" * 10)
    with pytest.raises(CIFARError, match=r"x\.tar\.gz: cannot be read as a gzip-compressed tar archive"):
        extract_cifar10(archive, tmp_path / "out")


# --------------------------------------------------------------------------
# downloading, with a fake transport
# --------------------------------------------------------------------------

class FakeWeb:
    def __init__(self, files):
        self.files = files
        self.opened = []

    def __call__(self, url, timeout=None):
        self.opened.append(url)
        if url not in self.files:
            raise OSError(f"404 for {url}")
        return io.BytesIO(self.files[url])


URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"


def test_download_verifies_unpacks_and_keeps_the_archive(tmp_path, monkeypatch, official_like_tar):
    web = FakeWeb({URL: official_like_tar})
    monkeypatch.setattr(datasets, "_urlopen", web)
    monkeypatch.setattr(CIFAR10, "resources", table_for(official_like_tar))
    ds = CIFAR10(root=tmp_path, train=False, download=True)
    assert web.opened == [URL]
    assert (ds.targets == 9).all() and ds.folder == tmp_path / "cifar-10" / FOLDER
    assert (tmp_path / "cifar-10" / "cifar-10-binary.tar.gz").read_bytes() == official_like_tar
    assert leftovers(tmp_path) == []
    # Both splits are now on disk: no more requests, no re-verification needed.
    train = CIFAR10(root=tmp_path, train=True, download=True)
    assert len(train) == 50_000 and web.opened == [URL]


def test_download_with_wrong_digest_leaves_nothing(tmp_path, monkeypatch, official_like_tar):
    table = table_for(official_like_tar)
    table["cifar-10-binary.tar.gz"]["sha256"] = "f" * 64
    monkeypatch.setattr(datasets, "_urlopen", FakeWeb({URL: official_like_tar}))
    monkeypatch.setattr(CIFAR10, "resources", table)
    with pytest.raises(DatasetNotFoundError) as info:
        CIFAR10(root=tmp_path, train=False, download=True)
    msg = str(info.value)
    assert "download failed" in msg and "failed verification" in msg and "sha256" in msg and URL in msg
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_download_offline(tmp_path, monkeypatch):
    def offline(url, timeout=None):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(datasets, "_urlopen", offline)
    with pytest.raises(DatasetNotFoundError) as info:
        CIFAR10(root=tmp_path, download=True)
    msg = str(info.value)
    assert "name resolution" in msg and "cifar-10-binary.tar.gz" in msg and str(tmp_path / "cifar-10") in msg
