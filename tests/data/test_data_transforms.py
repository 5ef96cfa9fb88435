import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_cv.data.transforms import (
    Compose,
    ElasticDistortion,
    Normalize,
    RandomAffine,
    RandomShift,
    ToFloat,
    affine_batch,
    shift_batch,
)


def batch(shape=(5, 1, 12, 10), dtype=np.float32, seed=0):
    return np.random.default_rng(seed).random(shape).astype(dtype)


RANDOM_TRANSFORMS = [
    lambda: RandomShift(2, seed=0),
    lambda: RandomAffine(20, translate=(0.1, 0.2), scale=(0.8, 1.2), seed=0),
    lambda: ElasticDistortion(alpha=8.0, sigma=3.0, seed=0),
    lambda: Normalize(0.1307, 0.3081),
    lambda: Compose([RandomShift(1, seed=0), Normalize(0.5, 0.5)]),
]


@pytest.mark.parametrize("make", RANDOM_TRANSFORMS)
@pytest.mark.parametrize("shape", [(4, 9, 11), (4, 1, 9, 11), (3, 2, 8, 8)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shape_and_dtype_preserved(make, shape, dtype):
    x = batch(shape, dtype)
    before = x.copy()
    y = make()(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    np.testing.assert_array_equal(x, before)  # input not modified


@pytest.mark.parametrize("make", RANDOM_TRANSFORMS[:3])
def test_seeded_transforms_are_reproducible(make):
    x = batch()
    np.testing.assert_array_equal(make()(x), make()(x))


def test_bad_shapes_and_dtypes():
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        RandomShift(1, seed=0)(np.zeros((3, 3)))
    with pytest.raises(TypeError, match="ToFloat"):
        Normalize(0, 1)(np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(TypeError):
        ElasticDistortion(1, 1, seed=0)(np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(ValueError):
        RandomShift(1, rng=np.random.default_rng(), seed=3)


# -- Normalize / ToFloat ------------------------------------------------------

def test_normalize_exact():
    x = batch((4, 1, 6, 6))
    out = Normalize(0.1307, 0.3081)(x)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, (x - np.float32(0.1307)) / np.float32(0.3081))


def test_normalize_per_channel():
    x = batch((2, 3, 4, 4), np.float64)
    mean, std = [0.1, 0.2, 0.3], [1.0, 2.0, 4.0]
    out = Normalize(mean, std)(x)
    for c in range(3):
        np.testing.assert_array_equal(out[:, c], (x[:, c] - mean[c]) / std[c])
    with pytest.raises(ValueError, match="channels"):
        Normalize([0.1, 0.2], [1, 1])(x)


def test_to_float():
    x = np.array([[[0, 128, 255]]], dtype=np.uint8)
    y = ToFloat()(x)
    assert y.dtype == np.float32 and y.shape == (1, 1, 1, 3)
    assert y[0, 0, 0, 0] == 0.0 and y[0, 0, 0, 2] == 1.0
    assert ToFloat(add_channel=False)(x).shape == (1, 1, 3)


# -- RandomShift ---------------------------------------------------------------

class ForcedRng:
    """Stands in for a Generator and returns predetermined shifts."""

    def __init__(self, *values):
        self.values = list(values)

    def integers(self, low, high, size):
        out = np.asarray(self.values.pop(0))
        assert out.shape == (size,) and out.min() >= low and out.max() < high
        return out


def test_random_shift_moves_known_image():
    img = np.zeros((2, 1, 7, 7), np.float32)
    img[:, 0, 3, 3] = 1.0  # a single bright pixel in the centre
    img[1, 0, 0, 0] = 2.0  # and one in the corner of image 1
    out = RandomShift(3, rng=ForcedRng([2, -1], [-3, 1]))(img)  # dy, then dx
    expected = np.zeros_like(img)
    expected[0, 0, 5, 0] = 1.0  # image 0: down 2, left 3
    expected[1, 0, 2, 4] = 1.0  # image 1: up 1, right 1; corner pixel falls off
    np.testing.assert_array_equal(out, expected)


@given(
    dy=st.integers(-8, 8),
    dx=st.integers(-8, 8),
    channels=st.sampled_from([None, 1, 3]),
)
def test_shift_batch_matches_reference(dy, dx, channels):
    shape = (3, 5, 6) if channels is None else (3, channels, 5, 6)
    x = np.arange(np.prod(shape), dtype=np.int32).reshape(shape) + 1
    dys = np.array([dy, 0, -dy])
    dxs = np.array([dx, -dx, 0])
    out = shift_batch(x, dys, dxs)
    assert out.shape == x.shape and out.dtype == x.dtype
    h, w = shape[-2:]
    for i in range(3):
        ref = np.zeros_like(x[i])
        for y in range(h):
            for xx in range(w):
                sy, sx = y - dys[i], xx - dxs[i]
                if 0 <= sy < h and 0 <= sx < w:
                    ref[..., y, xx] = x[i][..., sy, sx]
        np.testing.assert_array_equal(out[i], ref)


def test_random_shift_zero_is_identity_and_range():
    x = batch((64, 1, 10, 10))
    np.testing.assert_array_equal(RandomShift(0, seed=1)(x), x)
    # Mass is conserved whenever the content cannot fall off the edge.
    img = np.zeros((64, 9, 9), np.float32)
    img[:, 4, 4] = 1.0
    out = RandomShift(2, seed=5)(img)
    ys, xs = np.nonzero(out.reshape(64, 9, 9))[1:]
    assert out.sum() == 64 and set(ys) <= set(range(2, 7)) and set(xs) <= set(range(2, 7))
    assert len(set(zip(ys, xs))) > 5  # images got different shifts


# -- RandomAffine ----------------------------------------------------------------

def test_affine_identity_is_exact():
    x = batch((4, 2, 9, 7))
    np.testing.assert_array_equal(affine_batch(x, 0.0, 0.0, 0.0, 1.0), x)
    np.testing.assert_array_equal(RandomAffine(0, seed=0)(x), x)


def test_affine_rotation_90_matches_rot90():
    x = batch((3, 2, 8, 8), np.float64)
    out = affine_batch(x, 90.0, 0.0, 0.0, 1.0)
    np.testing.assert_allclose(out, np.rot90(x, axes=(2, 3)), atol=1e-9)


def test_affine_integer_translation_equals_shift():
    x = batch((3, 1, 8, 8), np.float64)
    out = affine_batch(x, 0.0, tx=[1, -2, 0], ty=[0, 3, -1], scale=1.0)
    np.testing.assert_allclose(out, shift_batch(x, [0, 3, -1], [1, -2, 0]), atol=1e-12)


def test_affine_per_image_parameters_differ():
    x = np.repeat(batch((1, 1, 16, 16)), 8, axis=0)
    out = RandomAffine(30, seed=3)(x)
    assert not np.allclose(out[0], out[1])


# -- ElasticDistortion -----------------------------------------------------------

@pytest.mark.parametrize("shape", [(3, 10, 10), (3, 2, 10, 10)])
def test_elastic_alpha_zero_is_identity(shape):
    x = batch(shape)
    np.testing.assert_array_equal(ElasticDistortion(alpha=0.0, sigma=4.0, seed=0)(x), x)


def test_elastic_moves_pixels_smoothly():
    x = np.zeros((4, 1, 28, 28), np.float32)
    x[:, :, 8:20, 8:20] = 1.0
    out = ElasticDistortion(alpha=34.0, sigma=4.0, seed=0)(x)
    assert not np.array_equal(out, x)
    assert 0.0 <= out.min() and out.max() <= 1.0 + 1e-6  # linear interpolation never overshoots
    assert not np.allclose(out[0], out[1])  # independent fields per image
