"""Regression tests for hostile inputs to the data layer.

* IDX files: gzip bombs, headers that claim more than the file holds or more
  than any array can be, dimensions near 2**32.
* MNIST labels: float, negative, out-of-range and NaN labels.
* Downloads: endless, trickling, silent and oversized servers, wrong
  digests.  Every server here is a local one on 127.0.0.1, started by the
  test; every server loop is bounded in count and time and stops by itself.

Nothing here asserts a duration: deadlines are made short and the test
checks *which* error ends the download, and memory bounds are checked with
tracemalloc.
"""
import contextlib
import gzip
import hashlib
import http.server
import math
import socket
import struct
import threading
import tracemalloc
import urllib.request
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_cv.data import datasets
from tinygrad_cv.data.datasets import MNIST, DatasetNotFoundError, DownloadError, download_file
from tinygrad_cv.data.idx import IDXError, encode_idx, read_idx

MiB = 1 << 20


def idx_header(code, dims):
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


def peak_memory(fn):
    """Run ``fn``; return (its exception or None, peak traced bytes while it ran)."""
    tracemalloc.start()
    try:
        try:
            fn()
            error = None
        except Exception as e:  # noqa: BLE001 - returned to the test, which checks it
            error = e
        return error, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def write_gzip_bomb(path, prefix: bytes, zeros_mib: int) -> None:
    """Write a valid gzip file holding ``prefix`` followed by ``zeros_mib`` MiB of zeros.

    Built in O(compressed size) time and memory: after a full flush the
    deflate compressor keeps no history, so every further MiB of zeros
    compresses to the very same bytes, and the block is written again
    instead of compressing again.
    """
    zero = bytes(MiB)
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    crc = zlib.crc32(prefix)
    with open(path, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")  # gzip header: deflate, no name, mtime 0
        f.write(comp.compress(prefix) + comp.flush(zlib.Z_FULL_FLUSH))
        block = comp.compress(zero) + comp.flush(zlib.Z_FULL_FLUSH)
        for _ in range(zeros_mib):
            f.write(block)
            crc = zlib.crc32(zero, crc)
        f.write(comp.flush())
        f.write(struct.pack("<II", crc, (len(prefix) + zeros_mib * MiB) & 0xFFFFFFFF))


# --------------------------------------------------------------------------
# finding 1: gzip bombs and headers claiming absurd sizes
# --------------------------------------------------------------------------

def test_gzip_bomb_builder_makes_a_valid_gzip_file(tmp_path):
    path = tmp_path / "small-bomb.gz"
    write_gzip_bomb(path, b"prefix", zeros_mib=3)
    assert gzip.decompress(path.read_bytes()) == b"prefix" + bytes(3 * MiB)


def test_gzip_bomb_is_refused_without_decompressing_it(tmp_path):
    # A valid header for 10 MNIST images, then 200 MiB of zeros: ~200 KB on disk.
    path = tmp_path / "train-images-idx3-ubyte.gz"
    write_gzip_bomb(path, idx_header(0x08, [10, 28, 28]) + bytes(7840), zeros_mib=200)
    assert path.stat().st_size < 300_000
    error, peak = peak_memory(lambda: read_idx(path))
    # Decompression stopped right after the payload: nowhere near 200 MiB.
    assert peak < 4 * MiB, peak
    assert isinstance(error, IDXError), error
    msg = str(error)
    assert str(path) in msg
    assert "expected 7840 bytes of pixel data" in msg and "shape 10x28x28" in msg
    assert "found more than" in msg and "trailing" in msg


def test_header_claiming_more_than_the_gzip_can_hold_is_not_allocated(tmp_path):
    # 60000 images (47 MB) claimed by a file of a few dozen bytes: the read
    # must not allocate the 47 MB before finding out the data is not there.
    path = tmp_path / "lie.gz"
    path.write_bytes(gzip.compress(idx_header(0x08, [60000, 28, 28]) + bytes(100)))
    error, peak = peak_memory(lambda: read_idx(path))
    assert peak < 4 * MiB, peak
    assert isinstance(error, IDXError), error
    msg = str(error)
    assert str(path) in msg and "expected 47040000 bytes" in msg and "found 100" in msg
    assert "truncated" in msg


def test_header_claiming_more_than_the_raw_file_holds_is_not_allocated(tmp_path):
    path = tmp_path / "lie"
    path.write_bytes(idx_header(0x0E, [60000, 28, 28]) + bytes(8))
    error, peak = peak_memory(lambda: read_idx(path))
    assert peak < 1 * MiB, peak
    assert isinstance(error, IDXError), error
    assert "expected 376320000 bytes" in str(error) and "found 8" in str(error)


def test_payload_over_the_default_cap_is_refused_before_reading(tmp_path):
    # 2**31 bytes claimed; a bomb big enough to be plausible for deflate.
    path = tmp_path / "huge.gz"
    write_gzip_bomb(path, idx_header(0x08, [2048, 1024, 1024]), zeros_mib=4)
    error, peak = peak_memory(lambda: read_idx(path))
    assert peak < 1 * MiB, peak
    assert isinstance(error, IDXError), error
    msg = str(error)
    assert str(path) in msg and "2048x1024x1024" in msg and "limit" in msg and "max_bytes" in msg


def test_plausible_claim_over_max_bytes_is_refused_before_allocating(tmp_path):
    # 64 MiB claimed, and the file really decompresses to that much: only the
    # limit stands between the header and a 64 MiB allocation.
    path = tmp_path / "big.gz"
    write_gzip_bomb(path, idx_header(0x08, [64, 1024, 1024]), zeros_mib=64)
    error, peak = peak_memory(lambda: read_idx(path, max_bytes=32 * MiB))
    assert peak < 1 * MiB, peak
    assert isinstance(error, IDXError), error
    assert str(path) in str(error) and "more than the limit of 33554432 bytes" in str(error)
    assert read_idx(path, max_bytes=64 * MiB).shape == (64, 1024, 1024)


def test_max_bytes_is_a_parameter(tmp_path):
    path = tmp_path / "a.gz"
    arr = np.arange(2000, dtype=np.int32)
    path.write_bytes(gzip.compress(encode_idx(arr)))
    with pytest.raises(IDXError, match="8000 bytes of data, more than the limit of 7999 bytes"):
        read_idx(path, max_bytes=7999)
    np.testing.assert_array_equal(read_idx(path, max_bytes=8000), arr)
    with pytest.raises(ValueError, match="max_bytes"):
        read_idx(path, max_bytes=-1)


def test_trailing_bytes_after_gzip_payload_counted_exactly_when_few(tmp_path):
    path = tmp_path / "l.gz"
    path.write_bytes(gzip.compress(idx_header(0x08, [3]) + bytes(3 + 5)))
    msg = str(pytest.raises(IDXError, read_idx, path).value)
    assert "expected 3 bytes" in msg and "found 8: 5 unexpected trailing bytes" in msg


# --------------------------------------------------------------------------
# finding 2: dimensions near 2**32
# --------------------------------------------------------------------------

@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize(
    "dims",
    [[2**32 - 1, 2**32 - 1, 0], [2**32 - 1, 2**32 - 1], [2**32 - 1] * 3, [2**31, 2**31, 2**31, 0]],
)
def test_dimensions_near_2_32_give_a_clear_error(tmp_path, dims, compress):
    data = idx_header(0x08, dims)
    path = tmp_path / "d.gz"
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(IDXError) as info:
        read_idx(path)
    msg = str(info.value)
    assert str(path) in msg and "x".join(map(str, dims)) in msg


def test_more_dimensions_than_numpy_supports(tmp_path):
    path = tmp_path / "many"
    path.write_bytes(idx_header(0x08, [1] * 70) + b"\x07")
    with pytest.raises(IDXError, match="70 dimensions.*at most 32"):
        read_idx(path)


_DIM = st.one_of(st.just(0), st.integers(1, 4), st.integers(2**32 - 8, 2**32 - 1), st.integers(2**16, 2**20))


@given(dims=st.lists(_DIM, min_size=1, max_size=5), code=st.sampled_from([0x08, 0x0C, 0x0E]),
       compress=st.booleans())
def test_any_dimensions_load_or_raise_idx_error(tmp_path_factory, dims, code, compress):
    # Whatever the header says, the reader either returns the array or says
    # IDXError naming the file: never a NumPy error, never a big allocation.
    itemsize = {0x08: 1, 0x0C: 4, 0x0E: 8}[code]
    nbytes = math.prod(dims) * itemsize
    data = idx_header(code, dims) + bytes(nbytes if nbytes <= 4096 else 16)
    path = tmp_path_factory.mktemp("dims") / "x"
    path.write_bytes(gzip.compress(data) if compress else data)
    try:
        arr = read_idx(path)
    except IDXError as e:
        assert str(path) in str(e)
        assert nbytes > 4096 or 0 in dims
    else:
        assert arr.shape == tuple(dims) and nbytes <= 4096


# --------------------------------------------------------------------------
# finding 3: labels
# --------------------------------------------------------------------------

def write_files(folder, labels, n_images=None):
    n = len(labels) if n_images is None else n_images
    (folder / "train-images-idx3-ubyte").write_bytes(encode_idx(np.zeros((n, 28, 28), np.uint8)))
    (folder / "train-labels-idx1-ubyte").write_bytes(encode_idx(np.asarray(labels)))
    return folder / "train-labels-idx1-ubyte"


def load_error(tmp_path, labels, n_images=None):
    path = write_files(tmp_path, labels, n_images)
    with pytest.raises(IDXError) as info:
        MNIST(root=tmp_path, download=False)
    msg = str(info.value)
    assert str(path) in msg
    return msg


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_labels_are_refused(tmp_path, dtype):
    msg = load_error(tmp_path, np.array([0, 1.5, np.nan, 3], dtype))
    assert np.dtype(dtype).name in msg and "integers" in msg
    assert "label 1.5 at index 1" in msg


def test_float_labels_with_nan_first(tmp_path):
    msg = load_error(tmp_path, np.array([1, 2, np.nan], np.float32))
    assert "label nan at index 2" in msg


def test_integral_float_labels_are_refused_too(tmp_path):
    # The file must store integers; 3.0 is not silently accepted.
    msg = load_error(tmp_path, np.array([3, 4], np.float64))
    assert "float64" in msg and "at index 0" in msg


def test_negative_label_is_refused(tmp_path):
    msg = load_error(tmp_path, np.array([0, 1, 2, -1, 4], np.int8))
    assert "label -1 at index 3" in msg and "[0, 10)" in msg


def test_label_too_large_is_refused_with_its_index(tmp_path):
    msg = load_error(tmp_path, np.array([0, 9, 3, 4, 5, 10, 200], np.uint8))
    assert "label 10 at index 5" in msg and "2 such label(s)" in msg


def test_wider_integer_labels_are_fine(tmp_path):
    write_files(tmp_path, np.array([0, 9, 3], np.int32))
    ds = MNIST(root=tmp_path, download=False)
    assert ds.targets.dtype == np.int64 and ds.targets.tolist() == [0, 9, 3]


def test_more_labels_than_images_is_reported(tmp_path):
    msg = load_error(tmp_path, np.zeros(11, np.uint8), n_images=10)
    assert "11 labels for 10 images" in msg


@given(st.lists(st.integers(-3, 13), min_size=1, max_size=30))
def test_labels_load_iff_all_in_range(tmp_path_factory, values):
    folder = tmp_path_factory.mktemp("labels")
    write_files(folder, np.array(values, np.int16))
    bad = [i for i, v in enumerate(values) if not 0 <= v < 10]
    if not bad:
        assert MNIST(root=folder, download=False).targets.tolist() == values
        return
    with pytest.raises(IDXError) as info:
        MNIST(root=folder, download=False)
    assert f"label {values[bad[0]]} at index {bad[0]}" in str(info.value)


# --------------------------------------------------------------------------
# finding 4: downloads, against local servers on 127.0.0.1
# --------------------------------------------------------------------------

# Upper bounds for every server loop, whatever the client does.
SERVER_MAX_SECONDS = 10.0
SERVER_MAX_CHUNKS = 512


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.routes[prefix](handler, rest)`` for paths ``/prefix/rest``."""

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        prefix, _, rest = self.path.lstrip("/").partition("/")
        route = self.server.routes.get(prefix)
        if route is None:
            self.send_error(404)
            return
        # The client hanging up is how most of these tests end.
        with contextlib.suppress(ConnectionError):
            route(self, rest)


@pytest.fixture
def web(monkeypatch):
    """A local HTTP server; tests register routes on ``web.routes``."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.routes = {}
    server.stop = threading.Event()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    # A direct opener: a proxy from the environment must never see these requests.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    monkeypatch.setattr(datasets, "_urlopen", opener.open)
    server.base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield server
    finally:
        server.stop.set()  # releases every handler that is still waiting
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def send_head(handler, length=None):
    handler.send_response(200)
    handler.send_header("Content-Type", "application/octet-stream")
    if length is not None:
        handler.send_header("Content-Length", str(length))
    handler.end_headers()


def serve_bytes(data, length=None):
    def route(handler, rest):
        send_head(handler, len(data) if length is None else length)
        handler.wfile.write(data)

    return route


def serve_endless(handler, rest):
    send_head(handler)  # no Content-Length: the body ends when the connection does
    chunk = bytes(64 * 1024)
    for _ in range(SERVER_MAX_CHUNKS):  # 32 MiB at most, then it gives up
        if handler.server.stop.is_set():
            return
        handler.wfile.write(chunk)


def serve_trickle(handler, rest):
    send_head(handler, 100)
    for _ in range(int(SERVER_MAX_SECONDS / 0.2)):
        if handler.server.stop.wait(0.2):
            return
        handler.wfile.write(b"x")


def digests(data):
    return {"sha256": hashlib.sha256(data).hexdigest(), "md5": hashlib.md5(data).hexdigest(), "size": len(data)}


BODY = bytes(range(256)) * 40  # 10,240 bytes


def test_correct_small_file(web, tmp_path):
    web.routes["good"] = serve_bytes(BODY)
    dest = tmp_path / "f.gz"
    download_file(f"{web.base}/good/f.gz", dest, digests(BODY), deadline=10, progress=False)
    assert dest.read_bytes() == BODY
    assert [p.name for p in tmp_path.iterdir()] == ["f.gz"]


def test_endless_body_is_cut_at_the_known_size(web, tmp_path):
    web.routes["endless"] = serve_endless
    dest = tmp_path / "f.gz"
    with pytest.raises(DownloadError, match="more than the 10240 bytes expected") as info:
        download_file(f"{web.base}/endless/f.gz", dest, digests(BODY), deadline=10, progress=False)
    assert f"{web.base}/endless/f.gz" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_body_larger_than_the_known_size_announced(web, tmp_path):
    big = BODY * 3
    web.routes["big"] = serve_bytes(big)
    with pytest.raises(DownloadError, match="announces 30720 bytes, more than the 10240 expected"):
        download_file(f"{web.base}/big/f.gz", tmp_path / "f.gz", digests(BODY), deadline=10, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_body_larger_than_the_known_size_unannounced(web, tmp_path):
    def no_length(handler, rest):
        send_head(handler)
        handler.wfile.write(BODY + b"extra")

    web.routes["big"] = no_length
    with pytest.raises(DownloadError, match="more than the 10240 bytes expected"):
        download_file(f"{web.base}/big/f.gz", tmp_path / "f.gz", digests(BODY), deadline=10, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_content_length_above_the_default_cap_without_a_known_size(web, tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "MAX_DOWNLOAD_BYTES", 1000)
    web.routes["good"] = serve_bytes(BODY)
    expected = {"sha256": hashlib.sha256(BODY).hexdigest()}  # a table without sizes
    with pytest.raises(DownloadError, match="more than the 1000 expected"):
        download_file(f"{web.base}/good/f.gz", tmp_path / "f.gz", expected, deadline=10, progress=False)


def test_shorter_body_than_the_known_size(web, tmp_path):
    web.routes["short"] = serve_bytes(BODY[:-1])
    with pytest.raises(DownloadError, match="downloaded 10239 bytes, expected 10240"):
        download_file(f"{web.base}/short/f.gz", tmp_path / "f.gz", digests(BODY), deadline=10, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_wrong_digest(web, tmp_path):
    wrong = bytes(reversed(BODY))
    web.routes["wrong"] = serve_bytes(wrong)
    with pytest.raises(DownloadError, match="failed verification.*sha256"):
        download_file(f"{web.base}/wrong/f.gz", tmp_path / "f.gz", digests(BODY), deadline=10, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_trickling_body_hits_the_deadline(web, tmp_path):
    web.routes["trickle"] = serve_trickle
    data = b"x" * 100
    with pytest.raises(DownloadError, match=r"past the 1 s deadline \(\d+ of 100 bytes received\)"):
        download_file(f"{web.base}/trickle/f.gz", tmp_path / "f.gz", digests(data), deadline=1, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def silent_server():
    """A socket that listens but never accepts: the kernel completes the
    handshake, the request is sent, and no answer ever comes."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def test_silent_server_hits_the_read_timeout(silent_server, tmp_path, monkeypatch):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    monkeypatch.setattr(datasets, "_urlopen", opener.open)
    with pytest.raises(DownloadError, match=r"no answer from the server for 0.5 s \(read timeout\)"):
        download_file(f"{silent_server}/f.gz", tmp_path / "f.gz", digests(BODY),
                      deadline=30, read_timeout=0.5, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_silent_server_is_bounded_by_the_deadline_too(silent_server, tmp_path, monkeypatch):
    # With the default 15 s read timeout, a 1 s deadline still ends the wait.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    monkeypatch.setattr(datasets, "_urlopen", opener.open)
    with pytest.raises(DownloadError, match=r"for 1 s \(read timeout\)"):
        download_file(f"{silent_server}/f.gz", tmp_path / "f.gz", digests(BODY), deadline=1, progress=False)


def test_server_that_reads_the_request_and_never_answers(web, tmp_path):
    def hang(handler, rest):
        handler.server.stop.wait(SERVER_MAX_SECONDS)  # released at teardown

    web.routes["hang"] = hang
    with pytest.raises(DownloadError, match=r"no answer from the server for 0.5 s"):
        download_file(f"{web.base}/hang/f.gz", tmp_path / "f.gz", digests(BODY),
                      deadline=30, read_timeout=0.5, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", [0, -1, float("nan"), "soon"])
def test_deadline_must_be_positive(tmp_path, bad):
    with pytest.raises(ValueError, match="deadline"):
        download_file("http://127.0.0.1:9/f.gz", tmp_path / "f.gz", digests(BODY), deadline=bad)
    with pytest.raises(ValueError, match="download_deadline"):
        MNIST(root=tmp_path, download_deadline=bad)


def test_defaults_are_documented_values():
    assert datasets.DOWNLOAD_DEADLINE_S == 300 and datasets.READ_TIMEOUT_S == 15
    for table in (datasets.MNIST_RESOURCES, datasets.FASHION_MNIST_RESOURCES):
        for entry in table.values():
            assert isinstance(entry["size"], int) and 4000 < entry["size"] < datasets.MAX_DOWNLOAD_BYTES
    assert datasets.MNIST_RESOURCES["train-images-idx3-ubyte.gz"]["size"] == 9912422
    assert datasets.FASHION_MNIST_RESOURCES["train-images-idx3-ubyte.gz"]["size"] == 26421880


def mnist_blobs(n=6):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    return images, labels, {
        "train-images-idx3-ubyte.gz": gzip.compress(encode_idx(images)),
        "train-labels-idx1-ubyte.gz": gzip.compress(encode_idx(labels)),
    }


class RecordingBar:
    """Stands in for tqdm and records what the download reported."""

    bars = []

    def __init__(self, total=None, **kwargs):
        self.total, self.n, self.kwargs = total, 0, kwargs
        RecordingBar.bars.append(self)

    def update(self, n):
        self.n += n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_dataset_download_shows_progress_with_the_known_total(web, tmp_path, monkeypatch):
    images, labels, blobs = mnist_blobs()
    web.routes["m"] = lambda handler, name: serve_bytes(blobs[name])(handler, name)
    monkeypatch.setattr(MNIST, "mirrors", (f"{web.base}/m/",))
    monkeypatch.setattr(MNIST, "resources", {name: digests(b) for name, b in blobs.items()})
    monkeypatch.setattr(RecordingBar, "bars", [])
    monkeypatch.setattr(datasets, "tqdm", RecordingBar)
    ds = MNIST(root=tmp_path, download=True)
    np.testing.assert_array_equal(ds.data, images)
    np.testing.assert_array_equal(ds.targets, labels)
    assert sorted((b.kwargs["desc"], b.total, b.n) for b in RecordingBar.bars) == sorted(
        (name, len(b), len(b)) for name, b in blobs.items()
    )
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(blobs)


def test_progress_bar_is_tqdm_auto():
    import tqdm.auto

    assert datasets.tqdm is tqdm.auto.tqdm


def test_dataset_deadline_is_shared_by_the_mirrors(web, tmp_path, monkeypatch):
    _, _, blobs = mnist_blobs()
    web.routes["slow"] = serve_trickle
    monkeypatch.setattr(MNIST, "mirrors", (f"{web.base}/slow/", f"{web.base}/slow2/"))
    monkeypatch.setattr(MNIST, "resources", {name: {**digests(b), "size": 100} for name, b in blobs.items()})
    with pytest.raises(DatasetNotFoundError) as info:
        MNIST(root=tmp_path, download=True, download_deadline=0.6)
    msg = str(info.value)
    assert "deadline" in msg
    # The first mirror used up the file's whole deadline; the second was not tried.
    assert f"{web.base}/slow2/train-images-idx3-ubyte.gz: not tried" in msg
    assert list(tmp_path.rglob("*.gz")) == [] and list(tmp_path.rglob("*.tmp")) == []
