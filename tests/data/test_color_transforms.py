"""Colour-batch transforms: RandomCrop, RandomHorizontalFlip, per-channel Normalize, ToFloat."""
import numpy as np
import pytest

from tinygrad_cv.data import ArrayDataset, DataLoader
from tinygrad_cv.data.transforms import (
    Compose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    ToFloat,
    crop_batch,
    pad_batch,
)

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class ForcedRng:
    """Stands in for a Generator: returns predetermined integers / uniforms, checking the requested ranges."""

    def __init__(self, *values):
        self.values = list(values)
        self.calls = []

    def integers(self, low, high, size):
        self.calls.append((low, high, size))
        out = np.asarray(self.values.pop(0))
        assert out.shape == (size,) and out.min() >= low and out.max() < high
        return out

    def random(self, size):
        out = np.asarray(self.values.pop(0), dtype=float)
        assert out.shape == (size,)
        return out


def grid(n=2, c=1, h=3, w=3, dtype=np.float32):
    return (np.arange(n * c * h * w).reshape(n, c, h, w) + 1).astype(dtype)


# -- shapes, dtypes, purity ---------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: RandomCrop(8, padding=2, seed=0),
    lambda: RandomCrop((6, 5), seed=0),
    lambda: RandomCrop(8, padding=(1, 2, 3, 4), padding_mode="reflect", seed=0),
    lambda: RandomCrop(12, pad_if_needed=True, padding_mode="edge", seed=0),
    lambda: RandomHorizontalFlip(seed=0),
])
@pytest.mark.parametrize("shape", [(5, 3, 8, 8), (4, 8, 8), (0, 3, 8, 8)])
@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_shapes_dtypes_and_input_untouched(make, shape, dtype):
    x = np.random.default_rng(0).integers(0, 255, shape).astype(dtype)
    before = x.copy()
    t = make()
    y = t(x)
    size = getattr(t, "size", shape[-2:])
    assert y.shape == shape[:-2] + tuple(size) and y.dtype == x.dtype
    np.testing.assert_array_equal(x, before)


# -- RandomCrop -----------------------------------------------------------------

def test_random_crop_exact_with_forced_offsets():
    x = grid(2, 1, 3, 3)  # image 0: 1..9, image 1: 10..18
    rng = ForcedRng([0, 2], [1, 0])  # tops, then lefts
    out = RandomCrop(3, padding=1, rng=rng)(x)
    assert rng.calls == [(0, 3, 2), (0, 3, 2)]  # padded 5x5, crop 3 -> offsets 0..2
    expected = np.array([
        [[[0, 0, 0], [1, 2, 3], [4, 5, 6]]],        # top 0, left 1: the padded row above, columns 0..2
        [[[0, 13, 14], [0, 16, 17], [0, 0, 0]]],    # top 2, left 0: rows 1..2 and the padding below
    ], np.float32)
    np.testing.assert_array_equal(out, expected)


def test_random_crop_exact_for_a_fixed_seed():
    x = grid(6, 3, 5, 4)
    out = RandomCrop((3, 2), padding=(1, 2), seed=7)(x)
    rng = np.random.default_rng(7)
    tops = rng.integers(0, 5 + 4 - 3 + 1, size=6)   # padded height 9
    lefts = rng.integers(0, 4 + 2 - 2 + 1, size=6)  # padded width 6
    padded = np.zeros((6, 3, 9, 6), np.float32)
    padded[:, :, 2:7, 1:5] = x
    for i in range(6):
        np.testing.assert_array_equal(out[i], padded[i, :, tops[i]:tops[i] + 3, lefts[i]:lefts[i] + 2])
    np.testing.assert_array_equal(RandomCrop((3, 2), padding=(1, 2), seed=7)(x), out)
    assert not np.array_equal(RandomCrop((3, 2), padding=(1, 2), seed=8)(x), out)


def offsets_of(out, pad, h):
    """Recover (top, left) from crops of an image whose channel 0 holds row+1 and channel 1 column+1."""
    mid = h // 2
    top = out[:, 0, mid, mid].astype(int) - 1 - mid + pad
    left = out[:, 1, mid, mid].astype(int) - 1 - mid + pad
    return top, left


def test_random_crop_with_padding_covers_all_offsets_uniformly():
    n, h, pad = 9000, 16, 4
    rows, cols = np.indices((h, h)) + 1
    x = np.broadcast_to(np.stack([rows, cols]).astype(np.float32), (n, 2, h, h))
    out = RandomCrop(h, padding=pad, seed=0)(x)
    top, left = offsets_of(out, pad, h)
    assert set(top) == set(range(2 * pad + 1)) and set(left) == set(range(2 * pad + 1))
    # Uniform over the 9 offsets: each count within 5 sigma of n/9.
    expected, sigma = n / 9, np.sqrt(n * (1 / 9) * (8 / 9))
    for counts in (np.bincount(top), np.bincount(left)):
        assert np.all(np.abs(counts - expected) < 5 * sigma), counts
    # Each crop is the padded image shifted: the whole crop agrees with its offsets.
    padded = np.pad(x[:1], ((0, 0), (0, 0), (pad, pad), (pad, pad)))[0]
    for i in range(0, n, 997):
        np.testing.assert_array_equal(out[i], padded[:, top[i]:top[i] + h, left[i]:left[i] + h])


def test_random_crop_draws_per_image():
    x = np.broadcast_to(np.stack(np.indices((10, 10)) + 1).astype(np.float32), (64, 2, 10, 10))
    top, left = offsets_of(RandomCrop(10, padding=3, seed=1)(x), 3, 10)
    assert len(set(zip(top, left))) > 20  # 64 images, 49 possible offsets: one shared draw would give 1


@pytest.mark.parametrize("mode, expected", [
    # 3x3 image 1..9 padded by 1, crop 3x3 at the padded image's top-left corner.
    ("constant", [[0, 0, 0], [0, 1, 2], [0, 4, 5]]),
    ("edge", [[1, 1, 2], [1, 1, 2], [4, 4, 5]]),
    ("reflect", [[5, 4, 5], [2, 1, 2], [5, 4, 5]]),
    ("symmetric", [[1, 1, 2], [1, 1, 2], [4, 4, 5]]),
])
def test_random_crop_padding_modes(mode, expected):
    x = grid(1, 1, 3, 3)
    out = RandomCrop(3, padding=1, padding_mode=mode, rng=ForcedRng([0], [0]))(x)
    np.testing.assert_array_equal(out[0, 0], np.array(expected, np.float32))


def test_pad_batch_modes_differ_for_wider_padding():
    row = np.array([[[[1, 2, 3, 4]]]], np.float32)  # (1, 1, 1, 4)
    assert pad_batch(row, (2, 0), padding_mode="reflect")[0, 0, 0].tolist() == [3, 2, 1, 2, 3, 4, 3, 2]
    assert pad_batch(row, (2, 0), padding_mode="symmetric")[0, 0, 0].tolist() == [2, 1, 1, 2, 3, 4, 4, 3]
    assert pad_batch(row, (2, 0), padding_mode="edge")[0, 0, 0].tolist() == [1, 1, 1, 2, 3, 4, 4, 4]
    assert pad_batch(row, (2, 0), fill=9)[0, 0, 0].tolist() == [9, 9, 1, 2, 3, 4, 9, 9]
    # (left, top, right, bottom)
    assert pad_batch(row, (1, 0, 0, 2)).shape == (1, 1, 3, 5)


def test_per_channel_fill():
    x = np.zeros((2, 3, 2, 2), np.uint8)
    out = RandomCrop(4, padding=1, fill=(10, 20, 30), rng=ForcedRng([0, 0], [0, 0]))(x)
    for c, value in enumerate((10, 20, 30)):
        np.testing.assert_array_equal(out[:, c, 0, :], value)
        np.testing.assert_array_equal(out[:, c, :, 0], value)
        np.testing.assert_array_equal(out[:, c, 1:3, 1:3], 0)
    assert out.dtype == np.uint8


def test_pad_if_needed():
    x = grid(1, 1, 2, 3)
    out = RandomCrop((4, 3), pad_if_needed=True, rng=ForcedRng([1], [0]))(x)
    # Height 2 < 4: padded by 2 above and below (torchvision's rule), to 6; crop rows 1..4.
    np.testing.assert_array_equal(out[0, 0], [[0, 0, 0], [1, 2, 3], [4, 5, 6], [0, 0, 0]])


def test_crop_batch_rejects_windows_outside():
    with pytest.raises(ValueError, match=r"0 <= top <= 1"):
        crop_batch(grid(2, 1, 3, 3), [0, 2], [0, 0], 2)


def test_random_crop_errors():
    x = np.zeros((2, 3, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"crop size \(13, 13\) is larger than the padded image \(12, 12\)"):
        RandomCrop(13, padding=2, seed=0)(x)
    with pytest.raises(ValueError, match=r"crop size \(9, 8\) is larger than the padded image \(8, 8\)"):
        RandomCrop((9, 8), seed=0)(x)
    with pytest.raises(ValueError, match="padding must be non-negative, got -1"):
        RandomCrop(8, padding=-1)
    with pytest.raises(ValueError, match="non-negative"):
        RandomCrop(8, padding=(1, 2, -3, 0))
    with pytest.raises(ValueError, match="1, 2 or 4"):
        RandomCrop(8, padding=(1, 2, 3))
    with pytest.raises(ValueError, match="size must be >= 1, got 0"):
        RandomCrop(0)
    with pytest.raises(TypeError, match="size must be an integer"):
        RandomCrop(2.5)
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        RandomCrop(8, padding=1, padding_mode="wrap")
    with pytest.raises(ValueError, match=r"2 fill values for a batch of 3 channel"):
        RandomCrop(8, padding=1, fill=(1, 2), seed=0)(x)
    with pytest.raises(ValueError, match=r"fill 300 cannot be stored exactly in a uint8 batch"):
        RandomCrop(8, padding=1, fill=300, seed=0)(x.astype(np.uint8))
    with pytest.raises(ValueError, match="either rng or seed"):
        RandomCrop(8, rng=np.random.default_rng(), seed=1)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        RandomCrop(2, seed=0)(np.zeros((3, 3)))


# -- RandomHorizontalFlip ----------------------------------------------------------

def test_flip_extremes_are_exact():
    x = grid(4, 3, 2, 5)
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.0, seed=0)(x), x)
    np.testing.assert_array_equal(RandomHorizontalFlip(p=1.0, seed=0)(x), x[..., ::-1])


def test_flip_forced_coins():
    x = grid(3, 2, 2, 3)
    out = RandomHorizontalFlip(p=0.5, rng=ForcedRng([0.49, 0.5, 0.0]))(x)
    np.testing.assert_array_equal(out[0], x[0, :, :, ::-1])  # 0.49 < 0.5: flipped
    np.testing.assert_array_equal(out[1], x[1])              # 0.5 is not < 0.5
    np.testing.assert_array_equal(out[2], x[2, :, :, ::-1])
    assert out[0, 1, 1].tolist() == [12, 11, 10]             # image 0, channel 1, row 1: 10 11 12 mirrored


def test_flip_for_a_fixed_seed_and_rate():
    n, p = 20000, 0.3
    x = np.broadcast_to(np.arange(4, dtype=np.float32), (n, 1, 1, 4))
    out = RandomHorizontalFlip(p=p, seed=11)(x)
    flipped = out[:, 0, 0, 0] == 3
    np.testing.assert_array_equal(flipped, np.random.default_rng(11).random(n) < p)
    assert np.all(out[flipped] == x[0, ..., ::-1]) and np.all(out[~flipped] == x[0])
    # Fraction within 5 sigma of p, and not all-or-nothing per batch.
    assert abs(flipped.mean() - p) < 5 * np.sqrt(p * (1 - p) / n)


def test_flip_errors():
    for p in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"p must be in \[0, 1\]"):
            RandomHorizontalFlip(p=p)
    with pytest.raises(TypeError, match="probability"):
        RandomHorizontalFlip(p="half")


# -- Normalize, ToFloat ---------------------------------------------------------------

def test_normalize_per_channel_exact_float32():
    x = np.random.default_rng(0).random((4, 3, 5, 5)).astype(np.float32)
    out = Normalize(CIFAR_MEAN, CIFAR_STD)(x)
    assert out.dtype == np.float32
    for c in range(3):
        np.testing.assert_array_equal(out[:, c], (x[:, c] - np.float32(CIFAR_MEAN[c])) / np.float32(CIFAR_STD[c]))
    # A scalar still applies to every channel (the old behaviour).
    np.testing.assert_array_equal(Normalize(0.5, 0.25)(x), (x - np.float32(0.5)) / np.float32(0.25))


def test_normalize_channel_errors():
    with pytest.raises(ValueError, match=r"3 means / 3 stds for 1 channels \(batch shape \(2, 1, 4, 4\)\)"):
        Normalize(CIFAR_MEAN, CIFAR_STD)(np.zeros((2, 1, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"need an \(N, C, H, W\) batch, got shape \(2, 4, 4\)"):
        Normalize(CIFAR_MEAN, CIFAR_STD)(np.zeros((2, 4, 4), np.float32))
    with pytest.raises(ValueError, match="3 means but 2 stds"):
        Normalize(CIFAR_MEAN, (0.2, 0.2))
    with pytest.raises(ValueError, match="std must be non-zero"):
        Normalize(CIFAR_MEAN, (0.2, 0.0, 0.2))
    with pytest.raises(ValueError, match="flat sequence"):
        Normalize([[0.5]], 1.0)


def test_to_float_keeps_colour_channels():
    x = np.array([0, 51, 255], np.uint8).reshape(1, 3, 1, 1).repeat(2, axis=0)
    y = ToFloat()(x)
    assert y.shape == (2, 3, 1, 1) and y.dtype == np.float32
    np.testing.assert_array_equal(y[0, :, 0, 0], np.array([0, 51, 255], np.float32) / np.float32(255))
    assert y[0, 0, 0, 0] == 0.0 and y[0, 2, 0, 0] == 1.0


def test_cifar_style_pipeline_through_the_loader():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, 50)
    augment = Compose([RandomCrop(32, padding=4, seed=1), RandomHorizontalFlip(seed=2),
                       Normalize(CIFAR_MEAN, CIFAR_STD)])
    batches = list(DataLoader(ArrayDataset(images, labels), batch_size=16, transform=augment))
    assert [b[0].shape for b in batches] == [(16, 3, 32, 32)] * 3 + [(2, 3, 32, 32)]
    assert all(b[0].dtype == np.float32 for b in batches)
    # Crop + flip only move pixels (or bring in zeros), so un-normalising gives values in {k/255}.
    raw = batches[0][0] * np.float32(CIFAR_STD).reshape(1, 3, 1, 1) + np.float32(CIFAR_MEAN).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(raw * 255, np.round(raw * 255), atol=2e-3)
