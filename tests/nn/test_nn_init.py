"""nn.init: PyTorch's gains and fans, bounds and standard deviations, in place, reproducible."""
import math

import numpy as np
import pytest

import tinygrad_cv as tg
from tinygrad_cv import nn
from tinygrad_cv.nn import init


def test_calculate_gain():
    assert init.calculate_gain("linear") == 1 and init.calculate_gain("conv2d") == 1
    assert init.calculate_gain("sigmoid") == 1
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01**2)))
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == pytest.approx(math.sqrt(1 / 3))
    assert init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("swish")


def test_fans():
    assert init._calculate_fan_in_and_fan_out(tg.zeros(4, 3)) == (3, 4)
    assert init._calculate_fan_in_and_fan_out(tg.zeros(8, 2, 3, 5)) == (30, 120)
    with pytest.raises(ValueError, match="fewer than 2"):
        init._calculate_fan_in_and_fan_out(tg.zeros(5))


def test_bounds_and_stds():
    tg.manual_seed(0)
    w = tg.zeros(200, 100, 3, 3)  # fan_in 900, fan_out 1800
    out = init.kaiming_uniform_(w, a=0, nonlinearity="relu")
    assert out is w
    bound = math.sqrt(2) * math.sqrt(3 / 900)
    assert np.abs(w.data).max() <= bound and np.abs(w.data).max() > 0.99 * bound
    init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert w.data.std() == pytest.approx(math.sqrt(2 / 1800), rel=0.02)
    init.xavier_uniform_(w, gain=2.0)
    xb = 2.0 * math.sqrt(6 / (900 + 1800))
    assert np.abs(w.data).max() <= xb and w.data.std() == pytest.approx(xb / math.sqrt(3), rel=0.02)
    init.xavier_normal_(w)
    assert w.data.std() == pytest.approx(math.sqrt(2 / 2700), rel=0.02)
    init.normal_(w, 3.0, 0.5)
    assert w.data.mean() == pytest.approx(3.0, abs=0.01) and w.data.std() == pytest.approx(0.5, rel=0.02)
    init.uniform_(w, -1, 2)
    assert w.data.min() >= -1 and w.data.max() < 2
    init.trunc_normal_(w, std=1.0, a=-0.5, b=0.5)
    assert np.abs(w.data).max() <= 0.5
    init.constant_(w, 0.25)
    assert np.all(w.data == 0.25)
    assert np.all(init.zeros_(w).data == 0) and np.all(init.ones_(w).data == 1)
    e = init.eye_(tg.zeros(2, 3))
    assert np.array_equal(e.data, np.eye(2, 3))


def test_in_place_without_graph_and_dtype_independent():
    p = nn.Parameter(tg.zeros(5, 4, dtype=tg.float64))
    tg.manual_seed(3)
    init.kaiming_uniform_(p, a=math.sqrt(5))
    assert p.is_leaf and p.grad_fn is None and p.requires_grad and p.dtype == np.float64
    q = tg.zeros(5, 4)
    tg.manual_seed(3)
    init.kaiming_uniform_(q, a=math.sqrt(5))
    np.testing.assert_array_equal(q.data, p.data.astype(np.float32))  # same draws in both dtypes


def test_layers_default_init_reproducible():
    tg.manual_seed(11)
    a = nn.Linear(6, 4)
    tg.manual_seed(11)
    b = nn.Linear(6, 4)
    assert np.array_equal(a.weight.data, b.weight.data) and np.array_equal(a.bias.data, b.bias.data)
    conv = nn.Conv2d(4, 6, 3, groups=2)
    fan_in = 2 * 3 * 3  # in_channels / groups · kH · kW
    assert np.abs(conv.weight.data).max() <= 1 / math.sqrt(fan_in)
    assert np.abs(conv.bias.data).max() <= 1 / math.sqrt(fan_in)
    up = nn.ConvTranspose2d(4, 6, 3, groups=2)  # weight (4, 3, 3, 3): fan_in = 3 · 9 = 27
    assert up.weight.shape == (4, 3, 3, 3)
    assert np.abs(up.weight.data).max() <= 1 / math.sqrt(27) and np.abs(up.bias.data).max() <= 1 / math.sqrt(27)
