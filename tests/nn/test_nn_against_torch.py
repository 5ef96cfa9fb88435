"""Layers against PyTorch itself (skipped when torch is not installed): values, gradients, running stats, keys."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tinygrad_cv as tg  # noqa: E402
import tinygrad_cv.functional as F  # noqa: E402
from tinygrad_cv import nn  # noqa: E402


def copy_params(ours, theirs):
    sd = {k: torch.from_numpy(np.array(v.data)) for k, v in ours.state_dict().items()}
    theirs.load_state_dict(sd)


def grads_close(ours, theirs, rtol=1e-10):
    for (n, p), (m, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert n == m
        np.testing.assert_allclose(p.grad.data, q.grad.numpy(), rtol=rtol, atol=1e-12, err_msg=n)


def run_both(ours, theirs, x, train=True):
    ours.train(train)
    theirs.train(train)
    a = tg.tensor(x, requires_grad=True)
    b = torch.tensor(x, requires_grad=True)
    ya, yb = ours(a), theirs(b)
    g = np.random.default_rng(9).standard_normal(ya.shape)
    ya.backward(tg.tensor(g))
    yb.backward(torch.from_numpy(g))
    np.testing.assert_allclose(ya.data, yb.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.grad.data, b.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("dims", [(6, 3), (4, 3, 5), (3, 3, 4, 2)])
def test_batchnorm(dims, momentum):
    rng = np.random.default_rng(0)
    ours_cls, theirs_cls = (nn.BatchNorm2d, torch.nn.BatchNorm2d) if len(dims) == 4 else (nn.BatchNorm1d, torch.nn.BatchNorm1d)
    ours = ours_cls(3, momentum=momentum).double()
    theirs = theirs_cls(3, momentum=momentum).double()
    ours.weight.data[...] = rng.standard_normal(3)
    copy_params(ours, theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for _ in range(3):
        run_both(ours, theirs, rng.standard_normal(dims) * 2 + 1)
        grads_close(ours, theirs, rtol=1e-8)
    for k, v in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[k].data, v.numpy(), rtol=1e-12, err_msg=k)
    run_both(ours, theirs, rng.standard_normal(dims), train=False)


def test_linear_conv_model_state_dict_keys_and_outputs():
    ours = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, padding_mode="circular"), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding="same", padding_mode="reflect", groups=2),
                         nn.AdaptiveAvgPool2d((3, 2)), nn.Flatten(), nn.Linear(24, 5)).double()
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1, padding_mode="circular"), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Conv2d(4, 4, 3, padding="same", padding_mode="reflect", groups=2),
        torch.nn.AdaptiveAvgPool2d((3, 2)), torch.nn.Flatten(), torch.nn.Linear(24, 5)).double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [tuple(v.shape) for v in ours.state_dict().values()] == [tuple(v.shape) for v in theirs.state_dict().values()]
    copy_params(ours, theirs)
    x = np.random.default_rng(1).standard_normal((2, 2, 10, 10))
    run_both(ours, theirs, x)
    grads_close(ours, theirs, rtol=1e-8)


@pytest.mark.parametrize("size,out", [((7, 5), (3, 2)), ((4, 6), (5, 4)), ((6, 6), (3, 3)), ((5, 5), 1)])
def test_adaptive_avg_pool2d(size, out):
    x = np.random.default_rng(2).standard_normal((2, 3) + size)
    run_both(nn.AdaptiveAvgPool2d(out), torch.nn.AdaptiveAvgPool2d(out), x)


def test_conv_transpose2d_with_output_size():
    ours = nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1).double()
    theirs = torch.nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1).double()
    copy_params(ours, theirs)
    x = np.random.default_rng(4).standard_normal((1, 3, 4, 4))
    a = ours(tg.tensor(x), output_size=(8, 8))
    b = theirs(torch.from_numpy(x), output_size=(8, 8))
    np.testing.assert_allclose(a.data, b.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kw", [dict(), dict(label_smoothing=0.1), dict(ignore_index=1, reduction="sum"),
                                dict(weight=[0.5, 1.0, 2.0], label_smoothing=0.2)])
def test_cross_entropy_loss(kw):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 3, 2))
    t = rng.integers(0, 3, (6, 2))
    w = kw.pop("weight", None)
    ours = nn.CrossEntropyLoss(weight=None if w is None else tg.tensor(w, dtype=tg.float64), **kw)
    theirs = torch.nn.CrossEntropyLoss(weight=None if w is None else torch.tensor(w, dtype=torch.float64), **kw)
    a, b = tg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    la, lb = ours(a, tg.tensor(t)), theirs(b, torch.from_numpy(t))
    la.backward()
    lb.backward()
    assert la.item() == pytest.approx(lb.item(), rel=1e-12)
    np.testing.assert_allclose(a.grad.data, b.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_default_init_fans_and_bounds_match_torch():
    # the draws differ (different generators); the fans, and so the distributions, must not
    from tinygrad_cv.nn import init

    # seeded: a bias of 30 values stays below 0.9 of its bound with probability 0.9**30 = 4 %
    tg.manual_seed(0)
    torch.manual_seed(0)

    for ours, theirs in [(nn.Linear(300, 70), torch.nn.Linear(300, 70)),
                         (nn.Conv2d(6, 30, (3, 2), groups=3), torch.nn.Conv2d(6, 30, (3, 2), groups=3)),
                         (nn.ConvTranspose2d(60, 40, 3, groups=2), torch.nn.ConvTranspose2d(60, 40, 3, groups=2))]:
        fans = init._calculate_fan_in_and_fan_out(ours.weight)
        assert fans == torch.nn.init._calculate_fan_in_and_fan_out(theirs.weight)
        bound = 1 / np.sqrt(fans[0])
        for p, q in zip(ours.parameters(), theirs.parameters()):
            assert p.shape == tuple(q.shape)
            for values in (p.data, q.detach().numpy()):
                assert bound * 0.9 < np.abs(values).max() <= bound
    for fn in ("linear", "relu", "tanh", "sigmoid", "selu"):
        assert init.calculate_gain(fn) == pytest.approx(torch.nn.init.calculate_gain(fn))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(torch.nn.init.calculate_gain("leaky_relu", 0.2))


def test_dropout_statistics_agree():
    x = np.ones((200, 100))
    tg.manual_seed(0)
    torch.manual_seed(0)
    a = F.dropout(tg.tensor(x), 0.25).data
    b = torch.nn.functional.dropout(torch.from_numpy(x), 0.25).numpy()
    assert set(np.unique(a)) == set(np.unique(b)) == {0.0, 1 / 0.75}
    assert abs((a == 0).mean() - (b == 0).mean()) < 0.02
