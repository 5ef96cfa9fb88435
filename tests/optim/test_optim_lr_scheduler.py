"""Learning-rate schedules: the sequences PyTorch produces, chaining, step(epoch), state_dict."""
import math

import numpy as np
import pytest

import tinygrad_cv as tg
from tinygrad_cv import optim
from tinygrad_cv.optim import lr_scheduler as S


def make_opt(lrs=(0.1, 0.02)):
    return optim.SGD([{"params": [tg.zeros(1, requires_grad=True)], "lr": lr} for lr in lrs], lr=lrs[0])


def sequence(scheduler, n=12):
    out = [scheduler.get_last_lr()]
    for _ in range(n):
        scheduler.optimizer.step()
        scheduler.step()
        out.append(scheduler.get_last_lr())
    return np.array(out)


def expected(fn, bases=(0.1, 0.02), n=12):
    return np.array([[fn(base, e) for base in bases] for e in range(n + 1)])


def test_step_lr():
    got = sequence(S.StepLR(make_opt(), step_size=3, gamma=0.5))
    np.testing.assert_allclose(got, expected(lambda b, e: b * 0.5 ** (e // 3)), rtol=1e-15)


def test_multi_step_lr_with_repeated_milestone():
    got = sequence(S.MultiStepLR(make_opt(), milestones=[5, 2, 8, 8], gamma=0.1))
    passed = lambda e: sum(m <= e for m in [2, 5, 8, 8])  # noqa: E731
    np.testing.assert_allclose(got, expected(lambda b, e: b * 0.1 ** passed(e)), rtol=1e-12)


def test_exponential_lr():
    got = sequence(S.ExponentialLR(make_opt(), gamma=0.9))
    np.testing.assert_allclose(got, expected(lambda b, e: b * 0.9**e), rtol=1e-12)


@pytest.mark.parametrize("eta_min", [0.0, 0.005])
def test_cosine_annealing_follows_the_closed_form(eta_min):
    T = 5
    got = sequence(S.CosineAnnealingLR(make_opt(), T_max=T, eta_min=eta_min), n=3 * T)
    cos = lambda b, e: eta_min + (b - eta_min) * (1 + math.cos(math.pi * e / T)) / 2  # noqa: E731
    np.testing.assert_allclose(got, expected(cos, n=3 * T), rtol=1e-10, atol=1e-15)
    assert got[T, 0] == pytest.approx(eta_min) and got[2 * T, 0] == pytest.approx(0.1)


def test_lambda_lr_one_function_per_group():
    opt = make_opt()
    got = sequence(S.LambdaLR(opt, [lambda e: 1 / (e + 1), lambda e: 0.5**e]))
    want = np.array([[0.1 / (e + 1), 0.02 * 0.5**e] for e in range(13)])
    np.testing.assert_allclose(got, want, rtol=1e-15)
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas"):
        S.LambdaLR(make_opt(), [lambda e: 1.0])


def test_construction_records_initial_lr_and_epoch_zero():
    opt = make_opt()
    sched = S.StepLR(opt, 2)
    assert sched.last_epoch == 0 and sched.base_lrs == [0.1, 0.02]
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.02]
    with pytest.raises(KeyError, match="initial_lr"):
        S.StepLR(make_opt(), 2, last_epoch=4)
    with pytest.raises(ValueError, match="step_size"):
        S.StepLR(make_opt(), 0)
    with pytest.raises(TypeError, match="not an Optimizer"):
        S.StepLR(object(), 2)


def test_chaining_two_schedulers_multiplies():
    opt = make_opt((1.0,))
    a, b = S.ExponentialLR(opt, 0.9), S.StepLR(opt, step_size=2, gamma=0.5)
    lrs = []
    for _ in range(6):
        opt.step()
        a.step()
        b.step()
        lrs.append(opt.param_groups[0]["lr"])
    np.testing.assert_allclose(lrs, [0.9**e * 0.5 ** (e // 2) for e in range(1, 7)], rtol=1e-12)


def test_step_with_epoch_uses_closed_form():
    sched = S.CosineAnnealingLR(make_opt(), T_max=10, eta_min=0.001)
    sched.step(7)
    assert sched.get_last_lr()[0] == pytest.approx(0.001 + 0.099 * (1 + math.cos(0.7 * math.pi)) / 2)
    sched = S.MultiStepLR(make_opt(), [3, 6])
    sched.step(6)
    assert sched.get_last_lr()[0] == pytest.approx(0.001)


@pytest.mark.parametrize("make", [
    lambda o: S.StepLR(o, 3, 0.5),
    lambda o: S.MultiStepLR(o, [2, 4, 4], 0.3),
    lambda o: S.ExponentialLR(o, 0.95),
    lambda o: S.CosineAnnealingLR(o, 7, 0.01),
])
def test_state_dict_resume(make):
    opt = make_opt()
    sched = make(opt)
    for _ in range(5):
        opt.step()
        sched.step()
    saved_opt, saved_sched = opt.state_dict(), sched.state_dict()
    assert "optimizer" not in saved_sched
    rest = sequence(sched, 6)
    opt2 = make_opt()
    opt2.load_state_dict(saved_opt)
    sched2 = make(opt2)
    sched2.load_state_dict(saved_sched)
    assert sched2.get_last_lr() == rest[0].tolist()
    np.testing.assert_array_equal(sequence(sched2, 6), rest)
