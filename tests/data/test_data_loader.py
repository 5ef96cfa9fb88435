import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_cv.data import MNIST, ArrayDataset, DataLoader, Normalize, TensorDataset


def ids_dataset(n):
    # The first array records each sample's own index, so batches can be
    # traced back to the samples they contain.
    return ArrayDataset(np.arange(n), np.arange(n) * 10)


@given(
    n=st.integers(0, 70),
    batch_size=st.integers(1, 16),
    shuffle=st.booleans(),
    drop_last=st.booleans(),
)
def test_batches_cover_every_sample_once(n, batch_size, shuffle, drop_last):
    loader = DataLoader(ids_dataset(n), batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=1)
    batches = list(loader)
    assert len(batches) == len(loader)
    sizes = [len(b[0]) for b in batches]
    if drop_last:
        assert len(loader) == n // batch_size and all(s == batch_size for s in sizes)
    else:
        assert len(loader) == -(-n // batch_size)
        assert all(s == batch_size for s in sizes[:-1]) and (not sizes or 1 <= sizes[-1] <= batch_size)
    seen = np.concatenate([b[0] for b in batches]) if batches else np.array([], int)
    for ids, tens in batches:
        np.testing.assert_array_equal(tens, ids * 10)  # arrays stay aligned
    if drop_last:
        assert len(np.unique(seen)) == len(seen) == (n // batch_size) * batch_size
    else:
        assert sorted(seen) == list(range(n))
    if not shuffle:
        np.testing.assert_array_equal(seen, np.arange(len(seen)))


def test_batch_sizes_and_drop_last():
    ds = ids_dataset(10)
    assert [len(x) for x, _ in DataLoader(ds, batch_size=4)] == [4, 4, 2]
    assert [len(x) for x, _ in DataLoader(ds, batch_size=4, drop_last=True)] == [4, 4]
    assert len(DataLoader(ds, batch_size=4)) == 3
    assert len(DataLoader(ds, batch_size=4, drop_last=True)) == 2
    assert len(DataLoader(ds)) == 10
    with pytest.raises(ValueError):
        DataLoader(ds, batch_size=0)


def test_shuffle_reproducible_and_changes_each_epoch():
    ds = ids_dataset(100)

    def epochs(loader, k=3):
        return [np.concatenate([x for x, _ in loader]) for _ in range(k)]

    a = epochs(DataLoader(ds, batch_size=7, shuffle=True, seed=123))
    b = epochs(DataLoader(ds, batch_size=7, shuffle=True, seed=123))
    c = epochs(DataLoader(ds, batch_size=7, shuffle=True, seed=124))
    for ea, eb in zip(a, b):
        np.testing.assert_array_equal(ea, eb)
    assert not np.array_equal(a[0], a[1]) and not np.array_equal(a[1], a[2])
    assert not np.array_equal(a[0], c[0])
    for e in a:
        assert sorted(e) == list(range(100))
    # A Generator passed in is used as-is.
    g = DataLoader(ds, batch_size=100, shuffle=True, generator=np.random.default_rng(123))
    np.testing.assert_array_equal(next(iter(g))[0], a[0])
    with pytest.raises(ValueError):
        DataLoader(ds, generator=np.random.default_rng(), seed=1)


def test_iterable_twice_without_shuffle():
    loader = DataLoader(ids_dataset(9), batch_size=4)
    first = [x.tolist() for x, _ in loader]
    second = [x.tolist() for x, _ in loader]
    assert first == second == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]


def test_mnist_batches_are_float_nchw(tmp_path, splits):
    images, labels = splits.write(tmp_path, "train", n=10)
    ds = MNIST(root=tmp_path, download=False)
    x, y = next(iter(DataLoader(ds, batch_size=4)))
    assert x.dtype == np.float32 and x.shape == (4, 1, 28, 28)
    assert y.dtype == np.int64 and y.shape == (4,)
    np.testing.assert_array_equal(x[:, 0], images[:4] / np.float32(255))
    assert 0.0 <= x.min() and x.max() <= 1.0

    raw, _ = next(iter(DataLoader(ds, batch_size=4, to_float=False)))
    assert raw.dtype == np.uint8 and raw.shape == (4, 28, 28)

    norm = Normalize(0.5, 0.25)
    xn, _ = next(iter(DataLoader(ds, batch_size=4, transform=norm)))
    np.testing.assert_array_equal(xn, norm(x))


def test_float_datasets_pass_through():
    x = np.random.default_rng(0).random((6, 3, 4, 4)).astype(np.float32)
    y = np.arange(6)
    xb, yb = next(iter(DataLoader(TensorDataset(x, y), batch_size=6)))
    np.testing.assert_array_equal(xb, x)
    np.testing.assert_array_equal(yb, y)


def test_array_dataset_validation():
    with pytest.raises(ValueError, match="same first dimension"):
        ArrayDataset(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError):
        ArrayDataset()
    ds = ArrayDataset(np.arange(5))
    assert len(ds) == 5 and ds[np.array([4, 1])][0].tolist() == [4, 1]
