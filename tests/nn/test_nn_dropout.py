"""Dropout: identity in eval, an inverted (scaled) mask in train, reproducible from the seed."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import floats_array, tensors

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import gradcheck, nn


def test_eval_is_identity_train_is_scaled_mask():
    tg.manual_seed(0)
    x = tg.randn(200, 50) + 3  # no zeros in the input: a zero in the output means "dropped"
    layer = nn.Dropout(0.3)
    layer.eval()
    assert layer(x) is x
    layer.train()
    y = layer(x).data
    dropped = y == 0
    np.testing.assert_allclose(y[~dropped], x.data[~dropped] / 0.7, rtol=1e-6)
    # keep rate 0.7 over 10,000 Bernoulli draws: std ≈ 0.0046, so ±0.02 is over 4 sigma
    assert abs((~dropped).mean() - 0.7) < 0.02
    # the expectation is preserved (the point of the 1/(1-p) scaling)
    assert abs(y.mean() / x.data.mean() - 1) < 0.05


def test_seed_reproducibility_and_fresh_masks():
    x = tg.ones(64)
    tg.manual_seed(5)
    a = F.dropout(x, 0.5).data
    b = F.dropout(x, 0.5).data
    tg.manual_seed(5)
    assert np.array_equal(F.dropout(x, 0.5).data, a)
    assert not np.array_equal(a, b)  # each call draws a new mask


def test_edge_probabilities():
    x = tg.randn(3, 4, requires_grad=True)
    assert F.dropout(x, 0.0) is x
    y = F.dropout(x, 1.0)
    assert np.all(y.data == 0)
    y.sum().backward()
    assert np.all(x.grad.data == 0)
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match="between 0 and 1"):
            nn.Dropout(p)


@settings(max_examples=10)
@given(data=st.data(), p=st.sampled_from([0.2, 0.5, 0.8]))
def test_gradient_with_fixed_mask(data, p):
    shape = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple))
    x = data.draw(tensors(floats_array(shape)))
    layer = nn.Dropout(p)

    def f(x):
        tg.manual_seed(123)  # the same mask at every evaluation
        return layer(x)

    assert gradcheck(f, (x,))
    # and the gradient is exactly the scaled mask, which dropout of ones reveals
    tg.manual_seed(123)
    scaled_mask = F.dropout(tg.ones(shape, dtype=tg.float64), p).data
    assert set(np.unique(scaled_mask)) <= {0.0, 1 / (1 - p)}
    y = f(x)
    (g,) = tg.grad(y, [x], grad_outputs=tg.ones_like(y))
    np.testing.assert_array_equal(g.data, scaled_mask)
