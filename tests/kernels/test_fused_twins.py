"""The fused kernels' twins against their reference: softmax and losses, batch norm, linear, dropout masks,
optimiser steps, scatter-add.

Each CPU twin (and, where CUDA tensors are available, each CUDA twin, on
Numba's simulator without a GPU: shapes stay tiny) is compared with the
reference twin, the plain-NumPy formula, on the same data.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from tinygrad_cv import cuda as tg_cuda
from tinygrad_cv import kernels

ref = kernels.get_backend("reference")
TWINS = ["cpu"] + (["cuda"] if tg_cuda.is_available() else [])
DTYPES = [np.float32, np.float64]
TOL = {np.float32: 3e-5, np.float64: 1e-12}


def put(twin, a):
    """Host data as the twin takes it: as is for the CPU, on the device for CUDA."""
    if twin != "cuda" or not isinstance(a, np.ndarray):
        return a
    from numba import cuda

    return cuda.to_device(np.ascontiguousarray(a))


def get(r):
    if r is None:
        return None
    if isinstance(r, tuple):
        return tuple(get(x) for x in r)
    return r.copy_to_host() if hasattr(r, "copy_to_host") else np.asarray(r)


def close(actual, expected, dtype, scale=1.0):
    assert actual is not None and expected is not None
    assert actual.shape == expected.shape and actual.dtype == expected.dtype, (actual.shape, actual.dtype)
    np.testing.assert_allclose(actual, expected, rtol=TOL[dtype], atol=TOL[dtype] * scale, equal_nan=True)


def call(twin, name, *args, **kwargs):
    k = kernels.get_backend(twin)
    return get(getattr(k, name)(*(put(twin, a) for a in args), **{n: put(twin, v) for n, v in kwargs.items()}))


# --------------------------------------------------------------------------------------------
# softmax, log-softmax, NLL, cross-entropy
# --------------------------------------------------------------------------------------------
def _logits(dtype):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((4, 6)) * 4).astype(dtype)
    x[1, 2] = -np.inf  # a -inf logit: probability exactly 0
    x[2] = [1e4, -1e4, 0, 1e4, 3, 2]  # large logits do not overflow
    return x


@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_twins(twin, dtype):
    x = _logits(dtype)
    logp = ref.log_softmax_forward(x)
    close(call(twin, "log_softmax_forward", x), logp, dtype, scale=1e4)
    close(call(twin, "softmax_forward", x), ref.softmax_forward(x), dtype)
    g = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    s = np.exp(logp)
    close(call(twin, "softmax_backward", g, s), ref.softmax_backward(g, s), dtype, scale=10)
    close(call(twin, "log_softmax_backward", g, logp), ref.log_softmax_backward(g, logp), dtype, scale=10)


CASES = list(itertools.product(["none", "sum", "mean"], [False, True], [-100, 1]))


@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction, weighted, ignore_index", CASES)
def test_nll_and_cross_entropy_twins(twin, dtype, reduction, weighted, ignore_index):
    rng = np.random.default_rng(CASES.index((reduction, weighted, ignore_index)))
    x = rng.standard_normal((5, 4)).astype(dtype)
    target = np.array([0, 1, 3, 1, 2], dtype=np.int64)
    weight = rng.uniform(0.5, 2, 4).astype(dtype) if weighted else None
    args = (weight, ignore_index, reduction)
    logp = ref.log_softmax_forward(x)

    out, coef = call(twin, "nll_loss_forward", logp, target, *args)
    ref_out, ref_coef = ref.nll_loss_forward(logp, target, *args)
    close(out, ref_out, dtype, scale=10)
    close(coef, ref_coef, dtype)
    g = rng.standard_normal(5 if reduction == "none" else ()).astype(dtype)
    close(call(twin, "nll_loss_backward", g, ref_coef, target, 4, ignore_index, reduction),
          ref.nll_loss_backward(g, ref_coef, target, 4, ignore_index, reduction), dtype)

    out, logp_t, coef = call(twin, "cross_entropy_forward", x, target, *args)
    close(out, ref_out, dtype, scale=10)  # cross-entropy is the NLL of log_softmax
    close(logp_t, logp, dtype, scale=10)
    close(coef, ref_coef, dtype)
    dx = call(twin, "cross_entropy_backward", g, logp, ref_coef, target, ignore_index, reduction)
    expected = ref.cross_entropy_backward(g, logp, ref_coef, target, ignore_index, reduction)
    close(dx, expected, dtype)
    # the famous p - y, through the two reference backward passes
    dlogp = ref.nll_loss_backward(g, ref_coef, target, 4, ignore_index, reduction)
    close(expected, ref.log_softmax_backward(dlogp, logp), dtype)


# --------------------------------------------------------------------------------------------
# batch norm
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, affine", [((4, 3), True), ((2, 3, 2, 2), False), ((2, 3, 2, 2), True)])
def test_batch_norm_twins(twin, dtype, shape, affine):
    rng = np.random.default_rng(len(shape) + affine)
    x = (rng.standard_normal(shape) * 3 + 5).astype(dtype)
    c = shape[1]
    weight = rng.standard_normal(c).astype(dtype) if affine else None
    bias = rng.standard_normal(c).astype(dtype) if affine else None
    mean, var = call(twin, "batch_norm_stats", x)
    ref_mean, ref_var = ref.batch_norm_stats(x)
    close(mean, ref_mean, dtype, scale=10)
    close(var, ref_var, dtype, scale=10)
    y, xhat, inv_std = call(twin, "batch_norm_forward", x, ref_mean, ref_var, weight, bias, 1e-5)
    ref_y, ref_xhat, ref_inv = ref.batch_norm_forward(x, ref_mean, ref_var, weight, bias, 1e-5)
    close(y, ref_y, dtype, scale=10)
    close(xhat, ref_xhat, dtype, scale=10)
    close(inv_std, ref_inv, dtype)
    g = rng.standard_normal(shape).astype(dtype)
    got = call(twin, "batch_norm_backward", g, ref_xhat, ref_inv, weight, True, affine, True)
    for a, e in zip(got, ref.batch_norm_backward(g, ref_xhat, ref_inv, weight, True, affine, True)):
        if e is None:
            assert a is None
        else:
            close(a, e, dtype, scale=10)


# --------------------------------------------------------------------------------------------
# the fully connected layer
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_bias", [False, True])
def test_linear_twins(twin, dtype, with_bias):
    rng = np.random.default_rng(with_bias)
    x, w = rng.standard_normal((5, 4)).astype(dtype), rng.standard_normal((3, 4)).astype(dtype)
    b = rng.standard_normal(3).astype(dtype) if with_bias else None
    close(call(twin, "linear_forward", x, w, b), ref.linear_forward(x, w, b), dtype, scale=10)
    g = rng.standard_normal((5, 3)).astype(dtype)
    for a, e in zip(call(twin, "linear_backward", g, x, w), ref.linear_backward(g, x, w)):
        close(a, e, dtype, scale=10)
    assert call(twin, "linear_backward", g, x, w, True, False, False)[1:] == (None, None)


# --------------------------------------------------------------------------------------------
# optimiser steps
# --------------------------------------------------------------------------------------------
SGD = [dict(momentum=0.0), dict(momentum=0.9, dampening=0.3, weight_decay=0.1),
       dict(momentum=0.9, nesterov=True, maximize=True)]
ADAM = [dict(), dict(weight_decay=0.1, amsgrad=True), dict(weight_decay=0.1, decoupled=True, maximize=True)]


def _run_steps(twin, name, dtype, opts, n_state):
    rng = np.random.default_rng(len(opts) + n_state)
    arrays = [rng.standard_normal((3, 4)).astype(dtype)] + [np.zeros((3, 4), dtype) for _ in range(n_state)]
    on = [put(twin, a.copy()) for a in arrays]  # updated in place
    k = kernels.get_backend(twin)
    for step in range(1, 4):
        g = put(twin, rng.standard_normal((3, 4)).astype(dtype))
        if name == "sgd_step":
            k.sgd_step(on[0], g, on[1] if opts.get("momentum") else None, 0.1, first_step=step == 1, **opts)
        else:
            k.adam_step(on[0], g, on[1], on[2], on[3] if opts.get("amsgrad") else None, step, 0.05, **opts)
    return [get(a) for a in on]


@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, opts", [("sgd_step", o) for o in SGD] + [("adam_step", o) for o in ADAM])
def test_optimiser_step_twins(twin, dtype, name, opts):
    n_state = 1 if name == "sgd_step" else 3
    for a, e in zip(_run_steps(twin, name, dtype, opts, n_state), _run_steps("reference", name, dtype, opts, n_state)):
        close(a, e, dtype, scale=10)


def test_cpu_steps_update_views_in_place():
    """A parameter that is a view (not contiguous) is updated where it lives, as NumPy would."""
    base = np.zeros((4, 6))
    param = base[:, ::2]
    grad = np.ones((4, 3))
    m, v = np.zeros((4, 3)), np.zeros((4, 3))
    kernels.get_backend("cpu").adam_step(param, grad, m, v, None, 1, lr=0.5)
    assert np.all(base[:, ::2] < 0) and np.all(base[:, 1::2] == 0)


# --------------------------------------------------------------------------------------------
# dropout masks
# --------------------------------------------------------------------------------------------
def test_cpu_dropout_masks_are_the_reference_draws():
    for seed in (0, np.random.default_rng(7)):
        twin_seed = seed if isinstance(seed, int) else np.random.default_rng(7)
        got = kernels.get_backend("cpu").dropout_mask((3, 50), 0.3, np.float32, twin_seed)
        np.testing.assert_array_equal(got, ref.dropout_mask((3, 50), 0.3, np.float32, seed))
    assert set(np.unique(got)) <= {np.float32(0), np.float32(1 / 0.7)}


@pytest.mark.skipif("cuda" not in TWINS, reason="CUDA tensors are not available here")
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the simulator's uint64 RNG arithmetic wraps
def test_cuda_dropout_masks_have_the_reference_values_and_draw_one_seed():
    gen = np.random.default_rng(3)
    mask = call("cuda", "dropout_mask", (2, 40), 0.25, np.float64, gen)
    assert mask.shape == (2, 40) and set(np.unique(mask)) <= {0.0, 1 / 0.75}
    after = np.random.default_rng(3)
    after.integers(2**63)  # exactly one integer was drawn: the key of the mask
    assert gen.random() == after.random()
    np.testing.assert_array_equal(call("cuda", "dropout_mask", (2, 40), 0.25, np.float64, 5),
                                  call("cuda", "dropout_mask", (2, 40), 0.25, np.float64, 5))


# --------------------------------------------------------------------------------------------
# scatter-add
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_scatter_add_twins(twin, axis):
    rng = np.random.default_rng(axis + 2)
    src = rng.standard_normal((3, 4))
    shape = (4, 4) if axis == 0 else (3, 5)
    index = rng.integers(0, shape[axis], src.shape)  # repeats: they add up
    close(call(twin, "scatter_add_along_axis", src, index, axis, shape),
          ref.scatter_add_along_axis(src, index, axis, shape), np.float64)
