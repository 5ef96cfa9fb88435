"""Fused CUDA optimizer steps (``kernels/optim/cuda.py``) against the CPU optimizers, flag by flag.

Each case runs the CPU class (``optim.SGD`` / ``Adam`` / ``AdamW`` on CPU
tensors) and the kernel side by side for several steps from the same
parameters and gradients, and compares the parameters and every state buffer
after each step. Shapes are tiny: on a machine without a GPU this runs on
Numba's CUDA simulator (tests/conftest.py).
"""
import itertools

import numpy as np
import pytest

import tinygrad_cv as tg
from tinygrad_cv import cuda as tcuda
from tinygrad_cv import optim

pytestmark = pytest.mark.skipif(not tcuda.is_available(), reason="numba-cuda not usable here")

if tcuda.is_available():
    from numba import cuda

    from tinygrad_cv.kernels import cuda as O  # the CUDA twin: device arrays in, device arrays out
    from tinygrad_cv.kernels.optim import cuda as optim_cuda

DTYPES = [np.float32, np.float64]
STEPS = 4
# the simulator repeats the CPU's float32 operations exactly; a GPU may fuse multiply-adds
TOL = {np.float32: 2e-6, np.float64: 1e-13}


def problem(seed, shape=(3, 5)):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape), [rng.standard_normal(shape) for _ in range(STEPS)]


def close(actual, expected, dtype, what):
    np.testing.assert_allclose(actual, expected, rtol=TOL[dtype], atol=TOL[dtype], err_msg=what)


SGD_CASES = [
    dict(momentum=mu, dampening=damp, nesterov=nest, weight_decay=wd, maximize=mx)
    for mu, damp, nest, wd, mx in itertools.product([0.0, 0.9], [0.0, 0.3], [False, True], [0.0, 0.1], [False, True])
    if not (nest and (mu == 0 or damp != 0)) and not (mu == 0 and damp != 0)  # nesterov needs mu > 0, damp = 0
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts", SGD_CASES, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_sgd_step_matches_cpu_sgd(dtype, opts):
    p0, grads = problem(SGD_CASES.index(opts))
    lr = 0.1
    ref = tg.Tensor(p0, dtype=dtype, requires_grad=True)
    opt = optim.SGD([ref], lr=lr, **opts)
    param = cuda.to_device(p0.astype(dtype))
    buf = cuda.device_array_like(param) if opts["momentum"] else None  # uninitialised: step 1 only writes it
    for step, g in enumerate(grads, 1):
        ref.grad = tg.Tensor(g, dtype=dtype)
        opt.step()
        O.sgd_step(param, cuda.to_device(g.astype(dtype)), buf, lr, first_step=step == 1, **opts)
        got = param.copy_to_host()
        assert got.dtype == dtype
        close(got, ref.data, dtype, f"param after step {step}")
        if buf is not None:
            close(buf.copy_to_host(), opt.state[ref]["momentum_buffer"].data, dtype, f"buffer after step {step}")


ADAM_CASES = [
    dict(decoupled=dec, amsgrad=ams, maximize=mx, weight_decay=wd)
    for dec, ams, mx, wd in itertools.product([False, True], [False, True], [False, True], [0.0, 0.1])
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts", ADAM_CASES, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_adam_step_matches_cpu_adam(dtype, opts):
    p0, grads = problem(int(opts["decoupled"]) * 8 + int(opts["amsgrad"]) * 4 + int(opts["maximize"]) * 2 + 1)
    hyper = dict(lr=0.05, betas=(0.8, 0.95), eps=1e-3 if opts["amsgrad"] else 1e-8,
                 weight_decay=opts["weight_decay"], amsgrad=opts["amsgrad"], maximize=opts["maximize"])
    cls = optim.AdamW if opts["decoupled"] else optim.Adam
    ref = tg.Tensor(p0, dtype=dtype, requires_grad=True)
    opt = cls([ref], **hyper)
    param = cuda.to_device(p0.astype(dtype))
    zeros = np.zeros(p0.shape, dtype)
    m, v = cuda.to_device(zeros), cuda.to_device(zeros)
    vmax = cuda.to_device(zeros) if opts["amsgrad"] else None
    # amsgrad: make v shrink on some coordinates so the running max actually matters
    grads = [g * (3.0 if step == 0 else 0.2) for step, g in enumerate(grads)] if opts["amsgrad"] else grads
    for step, g in enumerate(grads, 1):
        ref.grad = tg.Tensor(g, dtype=dtype)
        opt.step()
        O.adam_step(param, cuda.to_device(g.astype(dtype)), m, v, vmax, step, hyper["lr"], *hyper["betas"],
                    hyper["eps"], opts["weight_decay"], opts["decoupled"], opts["amsgrad"], opts["maximize"])
        state = opt.state[ref]
        assert state["step"] == step
        close(param.copy_to_host(), ref.data, dtype, f"param after step {step}")
        close(m.copy_to_host(), state["exp_avg"].data, dtype, f"exp_avg after step {step}")
        close(v.copy_to_host(), state["exp_avg_sq"].data, dtype, f"exp_avg_sq after step {step}")
        if vmax is not None:
            close(vmax.copy_to_host(), state["max_exp_avg_sq"].data, dtype, f"max_exp_avg_sq after step {step}")
    if opts["amsgrad"]:
        assert (vmax.copy_to_host() > v.copy_to_host()).any()


def test_steps_cover_every_element_with_a_small_grid(monkeypatch):
    """More elements than threads: the grid-stride loop reaches all of them, any shape (0-d included)."""
    monkeypatch.setattr(optim_cuda, "grid_1d", lambda n: (2, 32))
    for shape in [(5, 31), ()]:
        p0, grads = problem(3, shape)
        ref = tg.Tensor(p0, requires_grad=True)
        opt = optim.Adam([ref], lr=0.1, weight_decay=0.01)
        param = cuda.to_device(p0)
        m, v = cuda.to_device(np.zeros(shape)), cuda.to_device(np.zeros(shape))
        for step, g in enumerate(grads[:2], 1):
            ref.grad = tg.Tensor(g)
            opt.step()
            O.adam_step(param, cuda.to_device(g), m, v, None, step, lr=0.1, weight_decay=0.01)
        close(param.copy_to_host(), ref.data, np.float64, "adam param")
        param = cuda.to_device(p0)
        O.sgd_step(param, cuda.to_device(grads[0]), None, 0.5)
        close(param.copy_to_host(), p0 - 0.5 * grads[0], np.float64, "sgd param")


def test_argument_errors():
    p = cuda.to_device(np.zeros((2, 3), np.float32))
    g = cuda.to_device(np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="param must be a CUDA device array"):
        O.sgd_step(np.zeros((2, 3), np.float32), g, None, 0.1)
    with pytest.raises(TypeError, match="grad has dtype float64, expected float32"):
        O.sgd_step(p, cuda.to_device(np.zeros((2, 3))), None, 0.1)
    with pytest.raises(ValueError, match=r"grad has shape \(3, 2\), expected \(2, 3\)"):
        O.sgd_step(p, cuda.to_device(np.zeros((3, 2), np.float32)), None, 0.1)
    with pytest.raises(ValueError, match="buf .* is required when momentum != 0"):
        O.sgd_step(p, g, None, 0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"buf has shape \(6,\)"):
        O.sgd_step(p, g, cuda.to_device(np.zeros(6, np.float32)), 0.1, momentum=0.9)
    with pytest.raises(TypeError, match="param must be float32 or float64"):
        O.sgd_step(cuda.to_device(np.zeros((2, 3), np.int32)), g, None, 0.1)
    with pytest.raises(ValueError, match="max_exp_avg_sq is required"):
        O.adam_step(p, g, p, g, None, 1, amsgrad=True)
    with pytest.raises(ValueError, match="step must be an int >= 1"):
        O.adam_step(p, g, p, g, None, 0)
    with pytest.raises(ValueError, match=r"exp_avg_sq has shape \(3,\)"):
        O.adam_step(p, g, p, cuda.to_device(np.zeros(3, np.float32)), None, 1)
