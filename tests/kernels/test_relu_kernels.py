"""ReLU kernels: the Numba twin against the NumPy reference, both directions."""
import numpy as np
import pytest

from tinygrad_cv.kernels import cpu, reference as ref


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7,), (3, 5), (64, 6, 28, 28), (2, 3, 4097)])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_relu_twins_agree(dtype, shape, layout):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[::7] = 0.0  # exactly on the kink: derivative 0 there, as PyTorch
    if layout == "strided":
        x = np.repeat(x, 2, axis=-1)[..., ::2]
    y = cpu.relu_forward(x)
    np.testing.assert_array_equal(y, ref.relu_forward(x))
    assert y.dtype == dtype and y.shape == x.shape
    gy = rng.standard_normal(shape).astype(dtype)
    gx = cpu.relu_backward(gy, y)
    np.testing.assert_array_equal(gx, ref.relu_backward(gy, y))
    np.testing.assert_array_equal(gx, np.where(x > 0, gy, 0))


@pytest.mark.parametrize("n", [7, 100_000])  # the NumPy path for small arrays, the parallel kernel for big ones
def test_relu_passes_nan_through_as_numpy_and_pytorch_do(n):
    """A NaN must stay visible (a diverged run), not be turned into a harmless-looking 0."""
    x = np.linspace(-1, 1, n).astype(np.float32)
    x[[0, n // 2, -1]] = np.nan
    y = cpu.relu_forward(x)
    np.testing.assert_array_equal(y, ref.relu_forward(x))  # assert_array_equal treats NaN == NaN
    assert np.isnan(y).sum() == 3
