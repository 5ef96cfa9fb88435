"""Trajectories of every optimiser and schedule against PyTorch itself (skipped when torch is not installed)."""
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tinygrad_cv as tg  # noqa: E402
from tinygrad_cv import optim  # noqa: E402
from tinygrad_cv.optim import lr_scheduler as S  # noqa: E402

OPTIMIZERS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.2, weight_decay=0.05)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01, maximize=True)),
    ("Adam", dict(lr=0.05)),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.9), eps=1e-3, weight_decay=0.1, amsgrad=True)),
    ("Adam", dict(lr=0.05, amsgrad=True, maximize=True)),
    ("AdamW", dict(lr=0.05)),
    ("AdamW", dict(lr=0.05, weight_decay=0.2, amsgrad=True, maximize=True)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.3, eps=1e-6)),
    ("Adagrad", dict(lr=0.1, maximize=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.8, centered=True, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, maximize=True)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,options", OPTIMIZERS, ids=lambda v: v if isinstance(v, str) else str(v))
def test_optimizer_trajectory(name, options, dtype):
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (5,), ()]
    init = [rng.standard_normal(s).astype(dtype) for s in shapes]
    ours = [tg.Tensor(p, requires_grad=True) for p in init]
    theirs = [torch.tensor(p, requires_grad=True) for p in init]
    o1 = getattr(optim, name)(ours, **options)
    o2 = getattr(torch.optim, name)(theirs, **options)
    for _ in range(8):
        for a, b in zip(ours, theirs):
            g = rng.standard_normal(a.shape).astype(dtype)
            a.grad = tg.Tensor(g)
            b.grad = torch.tensor(g)
        o1.step()
        o2.step()
    tol = 1e-13 if dtype == np.float64 else 2e-6
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.data, b.detach().numpy(), rtol=tol, atol=tol)
    # the state dicts name the same things
    s1, s2 = o1.state_dict(), o2.state_dict()
    assert [sorted(v) for v in s1["state"].values()] == [sorted(v) for v in s2["state"].values()]
    g1 = {k: v for k, v in s1["param_groups"][0].items()}
    for key in options:
        assert g1[key] == s2["param_groups"][0][key]


SCHEDULERS = [
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[2, 5, 5, 9], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=5, eta_min=0.01)),
    ("CosineAnnealingLR", dict(T_max=4)),
    ("LambdaLR", dict(lr_lambda=lambda e: 1 / (1 + e) ** 0.5)),
]


@pytest.mark.parametrize("name,options", SCHEDULERS, ids=lambda v: v if isinstance(v, str) else "")
def test_scheduler_sequence(name, options):
    def groups(lib, make):
        return [{"params": [make()], "lr": 0.1}, {"params": [make()], "lr": 0.03}]

    o1 = optim.SGD(groups(optim, lambda: tg.zeros(1, requires_grad=True)), lr=0.1)
    o2 = torch.optim.SGD(groups(torch.optim, lambda: torch.zeros(1, requires_grad=True)), lr=0.1)
    s1 = getattr(S, name)(o1, **options)
    s2 = getattr(torch.optim.lr_scheduler, name)(o2, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about step(epoch)
        for epoch in range(25):
            assert s1.get_last_lr() == s2.get_last_lr(), epoch  # the same floats, bit for bit
            o1.step()
            o2.step()
            s1.step()
            s2.step()
        for epoch in (0, 3, 7, 12):
            s1.step(epoch)
            s2.step(epoch)
            np.testing.assert_allclose(s1.get_last_lr(), s2.get_last_lr(), rtol=1e-13)


def test_mlp_training_trajectory_matches_torch():
    """Same init, same data, SGD with momentum and a schedule: the whole run agrees with PyTorch."""
    from tinygrad_cv import nn

    rng = np.random.default_rng(3)
    x = rng.standard_normal((32, 4))
    y = rng.integers(0, 3, 32)
    ours = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    with torch.no_grad():
        for p, q in zip(ours.parameters(), theirs.parameters()):
            q.copy_(torch.from_numpy(p.data))
    o1 = optim.Adam(ours.parameters(), lr=0.01, weight_decay=0.01)
    o2 = torch.optim.Adam(theirs.parameters(), lr=0.01, weight_decay=0.01)
    s1, s2 = S.StepLR(o1, 5, 0.5), torch.optim.lr_scheduler.StepLR(o2, 5, 0.5)
    for _ in range(15):
        o1.zero_grad()
        o2.zero_grad()
        l1 = nn.CrossEntropyLoss()(ours(tg.tensor(x)), tg.tensor(y))
        l2 = torch.nn.CrossEntropyLoss()(theirs(torch.from_numpy(x)), torch.from_numpy(y))
        l1.backward()
        l2.backward()
        o1.step()
        o2.step()
        s1.step()
        s2.step()
        assert l1.item() == pytest.approx(l2.item(), rel=1e-10)
    for p, q in zip(ours.parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-9, atol=1e-12)
