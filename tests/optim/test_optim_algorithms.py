"""Each optimiser against an independent NumPy transcription of PyTorch's algorithm, option by option."""
import numpy as np
import pytest
from optim_reference import adagrad, adam, adamw, rmsprop, sgd

import tinygrad_cv as tg
from tinygrad_cv import optim

STEPS = 6


def problem(seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal((3, 4)), rng.standard_normal(5), rng.standard_normal(())]
    grads = [[rng.standard_normal(p.shape) for p in params] for _ in range(STEPS)]
    return params, grads


def run(cls, params, grads, dtype=np.float64, **options):
    ts = [tg.Tensor(p, dtype=dtype, requires_grad=True) for p in params]
    opt = cls(ts, **options)
    out = []
    for step_grads in grads:
        for t, g in zip(ts, step_grads):
            t.grad = tg.Tensor(g, dtype=dtype)
        opt.step()
        out.append([t.data.copy() for t in ts])
    return out


def assert_trajectories_close(got, expected, rtol):
    for step, (a, b) in enumerate(zip(got, expected)):
        for i, (x, y) in enumerate(zip(a, b)):
            np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol, err_msg=f"step {step + 1}, parameter {i}")


CASES = [
    (optim.SGD, sgd, dict(lr=0.1)),
    (optim.SGD, sgd, dict(lr=0.1, momentum=0.9)),
    (optim.SGD, sgd, dict(lr=0.05, momentum=0.8, dampening=0.3)),
    (optim.SGD, sgd, dict(lr=0.05, momentum=0.9, nesterov=True)),
    (optim.SGD, sgd, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1, maximize=True)),
    (optim.SGD, sgd, dict(lr=0.1, weight_decay=0.2, maximize=True)),
    (optim.Adam, adam, dict(lr=0.1)),
    (optim.Adam, adam, dict(lr=0.05, betas=(0.8, 0.95), eps=1e-3, weight_decay=0.1)),
    (optim.Adam, adam, dict(lr=0.05, amsgrad=True)),
    (optim.Adam, adam, dict(lr=0.05, amsgrad=True, weight_decay=0.05, maximize=True)),
    (optim.AdamW, adamw, dict(lr=0.1)),
    (optim.AdamW, adamw, dict(lr=0.1, weight_decay=0.3, amsgrad=True, betas=(0.5, 0.9))),
    (optim.AdamW, adamw, dict(lr=0.1, maximize=True, eps=1e-2)),
    (optim.Adagrad, adagrad, dict(lr=0.1)),
    (optim.Adagrad, adagrad, dict(lr=0.1, lr_decay=0.2, weight_decay=0.1, initial_accumulator_value=0.5, eps=1e-6)),
    (optim.Adagrad, adagrad, dict(lr=0.1, maximize=True)),
    (optim.RMSprop, rmsprop, dict(lr=0.01)),
    (optim.RMSprop, rmsprop, dict(lr=0.01, alpha=0.9, momentum=0.7)),
    (optim.RMSprop, rmsprop, dict(lr=0.01, centered=True, weight_decay=0.1)),
    (optim.RMSprop, rmsprop, dict(lr=0.01, alpha=0.8, eps=1e-4, momentum=0.5, centered=True, maximize=True)),
]


@pytest.mark.parametrize("cls,ref,options", CASES, ids=lambda v: v.__name__ if hasattr(v, "__name__") else str(v))
def test_matches_reference_float64(cls, ref, options):
    params, grads = problem(0)
    assert_trajectories_close(run(cls, params, grads, **options), ref(params, grads, **options), rtol=1e-12)


@pytest.mark.parametrize("cls,ref,options", CASES[::3], ids=lambda v: v.__name__ if hasattr(v, "__name__") else str(v))
def test_matches_reference_float32(cls, ref, options):
    params, grads = problem(1)
    p32 = [p.astype(np.float32) for p in params]
    g32 = [[g.astype(np.float32) for g in step] for step in grads]
    got = run(cls, p32, g32, dtype=np.float32, **options)
    assert all(x.dtype == np.float32 for x in got[-1])  # updates keep the parameter's dtype
    expected = ref([p.astype(np.float64) for p in p32], [[g.astype(np.float64) for g in s] for s in g32], **options)
    assert_trajectories_close(got, expected, rtol=1e-5)


def test_default_hyper_parameters_are_pytorchs():
    p = [tg.zeros(2, requires_grad=True)]
    assert optim.SGD(p).defaults == dict(lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False,
                                         maximize=False)
    assert optim.Adam(p).defaults == dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False,
                                          maximize=False)
    assert optim.AdamW(p).defaults["weight_decay"] == 1e-2
    assert optim.Adagrad(p).defaults == dict(lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                                             eps=1e-10, maximize=False)
    assert optim.RMSprop(p).defaults == dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                                             centered=False, maximize=False)


def test_state_names_match_pytorch():
    def state_after_step(opt_cls, **kw):
        p = tg.zeros(3, requires_grad=True)
        opt = opt_cls([p], **kw)
        p.grad = tg.ones(3)
        opt.step()
        return sorted(opt.state.get(p, {}))

    assert state_after_step(optim.SGD, momentum=0.9) == ["momentum_buffer"]
    assert state_after_step(optim.SGD) == []
    assert state_after_step(optim.Adam) == ["exp_avg", "exp_avg_sq", "step"]
    assert state_after_step(optim.Adam, amsgrad=True) == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"]
    assert state_after_step(optim.Adagrad) == ["step", "sum"]
    assert state_after_step(optim.RMSprop, momentum=0.5, centered=True) == [
        "grad_avg", "momentum_buffer", "square_avg", "step"]


@pytest.mark.parametrize("make,match", [
    (lambda p: optim.SGD(p, lr=-1), "Invalid learning rate: -1"),
    (lambda p: optim.SGD(p, momentum=-0.5), "Invalid momentum value: -0.5"),
    (lambda p: optim.SGD(p, weight_decay=-1e-4), "Invalid weight_decay value: -0.0001"),
    (lambda p: optim.SGD(p, nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
    (lambda p: optim.SGD(p, momentum=0.9, dampening=0.1, nesterov=True), "zero dampening"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
    (lambda p: optim.Adam(p, betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    (lambda p: optim.AdamW(p, eps=-1e-8), "Invalid epsilon value: -1e-08"),
    (lambda p: optim.Adagrad(p, lr_decay=-1), "Invalid lr_decay value: -1"),
    (lambda p: optim.Adagrad(p, initial_accumulator_value=-1), "Invalid initial_accumulator_value value: -1"),
    (lambda p: optim.RMSprop(p, alpha=-0.1), "Invalid alpha value: -0.1"),
    (lambda p: optim.SGD([{"params": p, "lr": -0.5}], lr=0.1), "Invalid learning rate: -0.5"),  # per group too
])
def test_invalid_hyper_parameters(make, match):
    with pytest.raises(ValueError, match=match.replace("(", r"\(").replace(".", r"\.")):
        make([tg.zeros(2, requires_grad=True)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls,options", [(c, o) for c, _, o in CASES if c in (optim.Adam, optim.AdamW)],
                         ids=lambda v: v.__name__ if hasattr(v, "__name__") else str(v))
def test_fused_adam_is_bit_identical_to_the_array_expressions(monkeypatch, cls, options, dtype):
    """The one-pass compiled Adam step and the NumPy formula in adam.py give the same bits."""
    from tinygrad_cv.kernels.optim import cpu as cpu_optim

    params, grads = problem(2)
    params = [p.astype(dtype) for p in params]
    grads = [[g.astype(dtype) for g in step] for step in grads]
    fused = run(cls, params, grads, dtype=dtype, **options)
    monkeypatch.setattr(cpu_optim, "can_fuse", lambda *arrays: False)
    plain = run(cls, params, grads, dtype=dtype, **options)
    for a, b in zip(fused, plain):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_fused_adam_is_taken_only_for_matching_contiguous_arrays():
    from tinygrad_cv.kernels.optim import cpu as cpu_optim

    p = np.zeros((3, 4), np.float32)
    assert cpu_optim.can_fuse(p, np.ones_like(p), np.ones_like(p))
    assert not cpu_optim.can_fuse(p, np.ones((4, 3), np.float32).T)      # not C-contiguous
    assert not cpu_optim.can_fuse(p, np.ones((3, 4), np.float64))        # another dtype
    assert not cpu_optim.can_fuse(p, np.ones(12, np.float32))            # another shape
    with pytest.raises(ValueError, match="step must be an int >= 1"):
        cpu_optim.adam_step(p, p.copy(), p.copy(), p.copy(), None, 0)
