"""Fused CUDA kernels (``kernels/{softmax_loss,dropout,norm}/cuda.py``) against NumPy float64 (and ``ops/softmax.py``).

Runs on Numba's CUDA simulator when there is no GPU (tests/conftest.py), where
each GPU thread is a Python thread: shapes stay tiny. Row counts above the
block cap and rows longer than a block are covered by lowering the caps.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_cv import cuda as tcuda

pytestmark = pytest.mark.skipif(not tcuda.is_available(), reason="numba-cuda not usable here")

if tcuda.is_available():
    from numba import cuda

    from tinygrad_cv.kernels import cuda as K  # the CUDA twin: device arrays in, device arrays out
    from tinygrad_cv.kernels import cuda_common
    from tinygrad_cv.kernels.dropout import cuda as dropout_cuda
    from tinygrad_cv.ops.softmax import _log_softmax

DTYPES = [np.float32, np.float64]
TOL = {np.float32: 2e-5, np.float64: 1e-12}


def dev(a):
    return cuda.to_device(np.array(a, order="C"))


def host(d):
    return d.copy_to_host()


def close(actual, expected, dtype, scale=1.0, **kw):
    """Compare with a float64 oracle; tolerance relative to the dtype and to ``scale``."""
    np.testing.assert_allclose(actual.astype(np.float64), expected, rtol=TOL[dtype], atol=TOL[dtype] * scale, **kw)


@pytest.fixture
def strided_rows(monkeypatch):
    """Two blocks for all rows/channels: every block handles several (the block-stride loop)."""
    monkeypatch.setattr(cuda_common, "_MAX_ROW_BLOCKS", 2)


# --------------------------------------------------------------------------------------------
# softmax / log-softmax
# --------------------------------------------------------------------------------------------
@settings(max_examples=4)
@given(rows=st.integers(1, 2), cols=st.integers(1, 70), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_log_softmax_and_softmax_match_float64(rows, cols, dtype, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, cols)) * 5).astype(dtype)
    expected = _log_softmax(x.astype(np.float64), 1)
    logp = host(K.log_softmax_forward(dev(x)))
    assert logp.dtype == dtype and logp.shape == x.shape
    close(logp, expected, dtype, scale=10)
    p = host(K.softmax_forward(dev(x)))
    assert p.dtype == dtype
    close(p, np.exp(expected), dtype)
    np.testing.assert_allclose(p.sum(1), 1, rtol=10 * TOL[dtype])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
def test_log_softmax_non_finite_rows_like_cpu(dtype, strided_rows):
    x = np.array(
        [
            [np.inf, 1.0, 2.0, 3.0],  # +inf max: replaced by 0 -> nan at the inf, -inf elsewhere
            [-np.inf, -np.inf, -np.inf, -np.inf],  # all -inf: nan everywhere
            [np.nan, 1.0, 2.0, 3.0],  # nan propagates
            [-np.inf, 0.0, 1.0, -np.inf],  # -inf entries of a finite row: -inf / exactly 0 probability
            [1e4, -1e4, 0.0, 1e4],  # large logits do not overflow
        ],
        dtype=dtype,
    )
    expected = _log_softmax(x, 1)
    logp = host(K.log_softmax_forward(dev(x)))
    np.testing.assert_array_equal(np.isnan(logp), np.isnan(expected))
    np.testing.assert_allclose(logp, expected, rtol=TOL[dtype], atol=TOL[dtype], equal_nan=True)
    if dtype == np.float32:  # same kernel as log-softmax (one flag): one dtype is enough here
        p = host(K.softmax_forward(dev(x)))
        np.testing.assert_allclose(p, np.exp(expected), rtol=TOL[dtype], atol=TOL[dtype], equal_nan=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_backwards_match_float64(dtype, strided_rows):
    rng = np.random.default_rng(1)
    rows, cols = 3, 37  # more rows than blocks, longer rows than a simulator block
    x = rng.standard_normal((rows, cols))
    g = rng.standard_normal((rows, cols))
    logp = _log_softmax(x, 1)
    s = np.exp(logp)
    got = host(K.softmax_backward(dev(g.astype(dtype)), dev(s.astype(dtype))))
    close(got, s * (g - (g * s).sum(1, keepdims=True)), dtype)
    got = host(K.log_softmax_backward(dev(g.astype(dtype)), dev(logp.astype(dtype))))
    assert got.dtype == dtype and got.shape == (rows, cols)
    close(got, g - s * g.sum(1, keepdims=True), dtype, scale=10)


def test_softmax_argument_errors():
    x = dev(np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="x must be a CUDA device array"):
        K.log_softmax_forward(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"x must be 2-D \(M, C\)"):
        K.softmax_forward(dev(np.zeros((2, 3, 4), np.float32)))
    with pytest.raises(TypeError, match="float32 or float64"):
        K.softmax_forward(dev(np.zeros((2, 3), np.int32)))
    with pytest.raises(TypeError, match="s has dtype float64"):
        K.softmax_backward(x, dev(np.zeros((2, 3), np.float64)))
    with pytest.raises(ValueError, match=r"logp has shape \(3, 2\), expected \(2, 3\)"):
        K.log_softmax_backward(x, dev(np.zeros((3, 2), np.float32)))


# --------------------------------------------------------------------------------------------
# negative log-likelihood
# --------------------------------------------------------------------------------------------
def nll_reference(logp, target, weight, ignore_index, reduction):
    """float64 NumPy transcription of ops/loss.py (ignored rows exactly 0)."""
    rows, cols = logp.shape
    keep = target != ignore_index
    safe = np.where(keep, target, 0)
    w = (weight[safe] if weight is not None else np.ones(rows)) * keep
    losses = np.where(keep, -w * logp[np.arange(rows), safe], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        if reduction == "mean":
            return losses.sum() / w.sum(), w / w.sum()
        if reduction == "sum":
            return losses.sum(), w
    return losses, w


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, 2])
def test_nll_forward_backward_match_float64(dtype, reduction, weighted, ignore_index):
    rng = np.random.default_rng([["none", "sum", "mean"].index(reduction), weighted, ignore_index % 7])
    rows, cols = 34, 4  # more rows than the single reducing block has threads (simulator)
    logp = _log_softmax(rng.standard_normal((rows, cols)), 1)
    target = rng.integers(0, cols, rows)
    target[::5] = ignore_index
    weight = rng.uniform(0.5, 2.0, cols) if weighted else None
    out, coef = K.nll_loss_forward(
        dev(logp.astype(dtype)), dev(target), None if weight is None else dev(weight.astype(dtype)),
        ignore_index, reduction,
    )
    expected, expected_coef = nll_reference(logp, target, weight, ignore_index, reduction)
    out, coef = host(out), host(coef)
    assert out.dtype == dtype and coef.dtype == dtype and coef.shape == (rows,)
    assert out.shape == ((rows,) if reduction == "none" else ())
    close(out, np.asarray(expected), dtype, scale=10)
    close(coef, expected_coef, dtype)

    g = rng.standard_normal(rows if reduction == "none" else ())
    grad = host(K.nll_loss_backward(dev(g.astype(dtype)), dev(coef), dev(target), cols, ignore_index, reduction))
    dense = np.zeros((rows, cols))
    keep = target != ignore_index
    dense[np.arange(rows)[keep], target[keep]] = -expected_coef[keep] * (g[keep] if reduction == "none" else g)
    assert grad.dtype == dtype and grad.shape == (rows, cols)
    close(grad, dense, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nll_after_log_softmax_gives_p_minus_y(dtype):
    """The textbook check: d mean NLL(log_softmax(x)) / dx = (softmax(x) - onehot) / M."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 5))
    target = rng.integers(0, 5, 3)
    logp = K.log_softmax_forward(dev(x.astype(dtype)))
    loss, coef = K.nll_loss_forward(logp, dev(target), None, -100, "mean")
    one = dev(np.ones((1,), dtype))  # the (1,) form of the scalar upstream gradient
    gx = host(K.log_softmax_backward(K.nll_loss_backward(one, coef, dev(target), 5, -100, "mean"), logp))
    onehot = np.eye(5)[target]
    close(gx, (np.exp(_log_softmax(x, 1)) - onehot) / 3, dtype)
    close(host(loss), -np.mean(_log_softmax(x, 1)[np.arange(3), target]), dtype)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
def test_nll_all_ignored_and_bad_targets(dtype):
    logp = dev(np.full((3, 4), -np.inf, dtype))  # an ignored row contributes 0 even at -inf
    target = dev(np.array([-100, -100, -100]))
    out, coef = K.nll_loss_forward(logp, target, None, -100, "mean")
    assert np.isnan(host(out)) and np.all(host(coef) != host(coef))  # 0/0 -> nan, as PyTorch
    out, coef = K.nll_loss_forward(logp, target, None, -100, "sum")
    assert host(out) == 0 and np.all(host(coef) == 0)
    grad = host(K.nll_loss_backward(dev(np.ones((), dtype)), coef, target, 4, -100, "sum"))
    np.testing.assert_array_equal(grad, np.zeros((3, 4)))
    # targets outside [0, C) are never read: the row's loss, coefficient and gradient are NaN
    bad = dev(np.array([1, 7, -3]))
    out, coef = K.nll_loss_forward(dev(np.zeros((3, 4), dtype)), bad, None, -100, "none")
    np.testing.assert_array_equal(np.isnan(host(out)), [False, True, True])
    np.testing.assert_array_equal(np.isnan(host(coef)), [False, True, True])
    grad = host(K.nll_loss_backward(dev(np.ones(3, dtype)), coef, bad, 4, -100, "none"))
    np.testing.assert_array_equal(np.isnan(grad).all(1), [False, True, True])
    out, _ = K.nll_loss_forward(dev(np.zeros((3, 4), dtype)), bad, None, -100, "mean")
    assert np.isnan(host(out))


def test_nll_argument_errors():
    logp = dev(np.zeros((3, 4), np.float32))
    target = dev(np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="target must be int64"):
        K.nll_loss_forward(logp, dev(np.array([0, 1, 2], np.int32)))
    with pytest.raises(ValueError, match=r"target must have shape \(3,\)"):
        K.nll_loss_forward(logp, dev(np.array([0, 1])))
    with pytest.raises(ValueError, match=r"weight has shape \(3,\), expected \(4,\)"):
        K.nll_loss_forward(logp, target, dev(np.ones(3, np.float32)))
    with pytest.raises(TypeError, match="weight has dtype float64"):
        K.nll_loss_forward(logp, target, dev(np.ones(4)))
    with pytest.raises(ValueError, match="reduction must be one of"):
        K.nll_loss_forward(logp, target, reduction="avg")
    coef = dev(np.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"grad_out has shape \(\), expected \(3,\)"):
        K.nll_loss_backward(dev(np.ones((), np.float32)), coef, target, 4, -100, "none")
    with pytest.raises(ValueError, match="grad_out must be a one-element array"):
        K.nll_loss_backward(dev(np.ones(3, np.float32)), coef, target, 4, -100, "mean")


# --------------------------------------------------------------------------------------------
# dropout
# --------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the simulator's uint64 RNG arithmetic wraps
def test_dropout_mask_values_fraction_and_seeding(monkeypatch):
    # one small launch (2 blocks of 32 threads) drawing ~60 numbers per thread: cheap in the
    # simulator, and it exercises the grid-stride loop and the per-thread generator streams
    monkeypatch.setattr(dropout_cuda, "grid_1d", lambda n: (2, 32))
    p, n = 0.3, 4000
    m1 = host(K.dropout_mask((n,), p, np.float32, seed=123))
    assert m1.dtype == np.float32 and m1.shape == (n,)
    scale = np.float32(1 / (1 - p))
    assert set(np.unique(m1)) <= {np.float32(0), scale}
    keep = (m1 != 0).mean()
    assert abs(keep - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)  # 5 sigma
    np.testing.assert_array_equal(host(K.dropout_mask((n,), p, np.float32, seed=123)), m1)
    m2 = host(K.dropout_mask((n,), p, np.float32, seed=124))
    assert (m2 != m1).mean() > 0.2  # independent masks disagree on ~2 p (1 - p) = 42% of elements


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_dropout_mask_shapes_dtypes_and_extremes():
    m = host(K.dropout_mask((2, 3, 5), 0.5, np.float64, seed=0))
    assert m.dtype == np.float64 and m.shape == (2, 3, 5)
    assert set(np.unique(m)) <= {0.0, 2.0}
    np.testing.assert_array_equal(host(K.dropout_mask(7, 0.0, np.float32, seed=1)), np.ones(7, np.float32))
    np.testing.assert_array_equal(host(K.dropout_mask(7, 1.0, np.float64, seed=1)), np.zeros(7))
    assert K.dropout_mask((0, 3), 0.5, np.float32, seed=1).shape == (0, 3)
    with pytest.raises(ValueError, match="between 0 and 1"):
        K.dropout_mask(3, 1.5, np.float32, seed=1)
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        K.dropout_mask(3, 0.5, np.int32, seed=1)
    with pytest.raises(TypeError, match="seed must be an int"):
        K.dropout_mask(3, 0.5, np.float32, seed=1.5)


# --------------------------------------------------------------------------------------------
# batch normalisation
# --------------------------------------------------------------------------------------------
SHAPES = [(4, 3), (2, 3, 5), (2, 3, 4, 5)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_batch_norm_stats_and_forward_match_float64(dtype, shape, strided_rows):
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape) * 3 + 10  # an offset: a one-pass E[x^2] - E[x]^2 would lose digits
    axes = (0,) + tuple(range(2, len(shape)))
    mean, var = K.batch_norm_stats(dev(x.astype(dtype)))
    assert mean.shape == var.shape == (shape[1],)
    close(host(mean), x.mean(axes), dtype, scale=10)
    close(host(var), x.var(axes), dtype, scale=10)

    c = shape[1]
    bshape = (1, c) + (1,) * (len(shape) - 2)
    m64, v64 = x.mean(axes), x.var(axes)
    weight, bias = rng.standard_normal(c), rng.standard_normal(c)
    inv = 1 / np.sqrt(v64 + 1e-5)
    xhat = (x - m64.reshape(bshape)) * inv.reshape(bshape)
    combos = [(None, None), (weight, bias)] + ([(weight, None), (None, bias)] if len(shape) == 3 else [])
    for w, b in combos:
        y, xh, inv_std = K.batch_norm_forward(
            dev(x.astype(dtype)), dev(m64.astype(dtype)), dev(v64.astype(dtype)),
            None if w is None else dev(w.astype(dtype)), None if b is None else dev(b.astype(dtype)), 1e-5,
        )
        expected = xhat * (1 if w is None else w.reshape(bshape)) + (0 if b is None else b.reshape(bshape))
        assert host(y).dtype == dtype and y.shape == shape and xh.shape == shape and inv_std.shape == (c,)
        close(host(y), expected, dtype, scale=10)
        close(host(xh), xhat, dtype, scale=10)
        close(host(inv_std), inv, dtype)


def bn_backward_reference(g, xhat, inv_std, weight):
    axes = (0,) + tuple(range(2, g.ndim))
    bshape = (1, g.shape[1]) + (1,) * (g.ndim - 2)
    n = g.size // g.shape[1]
    gw = g if weight is None else g * weight.reshape(bshape)
    gx = (n * gw - gw.sum(axes, keepdims=True) - xhat * (gw * xhat).sum(axes, keepdims=True)) * (
        inv_std.reshape(bshape) / n
    )
    return gx, (g * xhat).sum(axes), g.sum(axes)


@pytest.mark.parametrize(
    "dtype, shape, weighted",
    [(dtype, shape, (i + j) % 2 == 0) for i, dtype in enumerate(DTYPES) for j, shape in enumerate(SHAPES)],
)
def test_batch_norm_backward_matches_float64(dtype, shape, weighted, strided_rows):
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape)
    axes = (0,) + tuple(range(2, len(shape)))
    bshape = (1, shape[1]) + (1,) * (len(shape) - 2)
    inv_std = 1 / np.sqrt(x.var(axes) + 1e-5)
    xhat = (x - x.mean(axes, keepdims=True)) * inv_std.reshape(bshape)
    g = rng.standard_normal(shape)
    weight = rng.standard_normal(shape[1]) if weighted else None
    exp_gx, exp_gw, exp_gb = bn_backward_reference(g, xhat, inv_std, weight)
    args = (dev(g.astype(dtype)), dev(xhat.astype(dtype)), dev(inv_std.astype(dtype)),
            None if weight is None else dev(weight.astype(dtype)))
    gx, gw, gb = K.batch_norm_backward(*args, need_x=True, need_w=True, need_b=True)
    close(host(gx), exp_gx, dtype, scale=10)
    close(host(gw), exp_gw, dtype, scale=10)
    close(host(gb), exp_gb, dtype, scale=10)
    assert host(gx).dtype == dtype and gx.shape == shape and gw.shape == gb.shape == (shape[1],)
    if len(shape) != 3:
        return
    gx, gw, gb = K.batch_norm_backward(*args, need_x=False, need_w=True, need_b=False)
    assert gx is None and gb is None
    close(host(gw), exp_gw, dtype, scale=10)
    gx, gw, gb = K.batch_norm_backward(*args, need_x=True, need_w=False, need_b=False)
    assert gw is None and gb is None
    close(host(gx), exp_gx, dtype, scale=10)


def test_batch_norm_argument_errors():
    x = dev(np.zeros((2, 3, 4), np.float32))
    c3 = dev(np.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"x must have shape \(N, C, \*spatial\)"):
        K.batch_norm_stats(dev(np.zeros(3, np.float32)))
    with pytest.raises(ValueError, match=r"var must have shape \(3,\)"):
        K.batch_norm_forward(x, c3, dev(np.ones(4, np.float32)), None, None, 1e-5)
    with pytest.raises(TypeError, match="weight has dtype float64"):
        K.batch_norm_forward(x, c3, c3, dev(np.ones(3)), None, 1e-5)
    with pytest.raises(ValueError, match=r"xhat has shape \(2, 3\), expected \(2, 3, 4\)"):
        K.batch_norm_backward(x, dev(np.zeros((2, 3), np.float32)), c3)
    # the (1, C, 1, ...) form of the statistics is accepted too
    y, _, _ = K.batch_norm_forward(x, dev(np.zeros((1, 3, 1), np.float32)), dev(np.ones((1, 3, 1), np.float32)))
    np.testing.assert_allclose(host(y), 0)


# --------------------------------------------------------------------------------------------
# nothing goes back to the host
# --------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_no_function_copies_to_the_host(monkeypatch):
    rng = np.random.default_rng(0)
    x = dev(rng.standard_normal((1, 4)).astype(np.float32))
    t = dev(np.array([3]))
    x4 = dev(rng.standard_normal((2, 1, 2)).astype(np.float32))
    w = dev(np.ones(1, np.float32))
    array_type = type(x)

    def refuse(*args, **kwargs):
        raise AssertionError("a kernel function copied a device array to the host")

    monkeypatch.setattr(array_type, "copy_to_host", refuse)
    monkeypatch.setattr(array_type, "__array__", refuse, raising=False)
    logp = K.log_softmax_forward(x)
    K.log_softmax_backward(K.softmax_backward(x, K.softmax_forward(x)), logp)
    for reduction in ("none", "mean"):
        out, coef = K.nll_loss_forward(logp, t, dev(np.ones(4, np.float32)), -100, reduction)
        K.nll_loss_backward(out if reduction == "mean" else coef, coef, t, 4, -100, reduction)
    K.dropout_mask((5,), 0.5, np.float32, 3)
    mean, var = K.batch_norm_stats(x4)
    y, xhat, inv_std = K.batch_norm_forward(x4, mean, var, w, w, 1e-5)
    K.batch_norm_backward(y, xhat, inv_std, w, True, True, True)
    monkeypatch.undo()
    assert np.isfinite(host(y)).all()
