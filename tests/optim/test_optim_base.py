"""Optimizer mechanics: parameter groups, zero_grad, closures, state_dict save/load/resume, training."""
import copy

import numpy as np
import pytest

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import nn, optim


def mlp(seed=0):
    tg.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))


def two_moons(n=128, seed=0):
    """A synthetic 2-class problem that a linear model cannot solve (two interleaved half circles)."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, np.pi, n)
    label = rng.integers(0, 2, n)
    x = np.stack([np.cos(t) + label * 1.0 - 0.5, np.sin(t) * (1 - 2 * label) + label * 0.5 - 0.25], 1)
    x += rng.normal(0, 0.1, x.shape)
    return tg.tensor(x.astype(np.float32)), tg.tensor(label)


def train(model, opt, x, y, steps):
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("make", [
    lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
    lambda p: optim.Adam(p, lr=0.02),
    lambda p: optim.AdamW(p, lr=0.02),
    lambda p: optim.RMSprop(p, lr=0.01),
    lambda p: optim.Adagrad(p, lr=0.1),
])
def test_loss_falls_on_two_class_problem(make):
    x, y = two_moons()
    model = mlp()
    losses = train(model, make(model.parameters()), x, y, 150)
    assert losses[-1] < 0.5 * losses[0] and losses[-1] < 0.35
    accuracy = (model(x).argmax(1).data == y.data).mean()
    assert accuracy > 0.85


def test_param_groups_have_their_own_options():
    model = mlp()
    first, last = model[0], model[2]
    opt = optim.SGD([{"params": first.parameters()}, {"params": last.parameters(), "lr": 0.5, "momentum": 0.9}],
                    lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert opt.param_groups[0]["momentum"] == 0 and opt.param_groups[1]["momentum"] == 0.9
    w0, w2 = first.weight.data.copy(), last.weight.data.copy()
    for p in model.parameters():
        p.grad = tg.ones(*p.shape)
    opt.step()
    np.testing.assert_allclose(first.weight.data, w0 - 0.1, rtol=1e-6)
    np.testing.assert_allclose(last.weight.data, w2 - 0.5, rtol=1e-6)
    extra = tg.zeros(3, requires_grad=True)
    opt.add_param_group({"params": extra, "lr": 1.0})
    assert opt.param_groups[2]["params"] == [extra] and opt.param_groups[2]["momentum"] == 0
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [first.weight]})
    assert "Parameter Group 1" in repr(opt) and "lr: 0.5" in repr(opt)


def test_parameter_list_errors():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="iterable of Tensors"):
        optim.SGD(tg.zeros(2, requires_grad=True), lr=0.1)
    with pytest.raises(TypeError, match="sets"):
        optim.SGD([{"params": {tg.zeros(2, requires_grad=True)}}])
    a = tg.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([a * 2])
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([a, a])


def test_named_parameters_are_accepted():
    model = mlp()
    opt = optim.Adam(model.named_parameters())
    assert opt.param_groups[0]["param_names"] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert opt.param_groups[0]["params"][0] is model[0].weight


def test_zero_grad_skip_and_closure():
    a, b = tg.ones(2, requires_grad=True), tg.ones(2, requires_grad=True)
    opt = optim.SGD([a, b], lr=0.5)
    calls = []

    def closure():
        opt.zero_grad()
        loss = (a * a).sum()
        loss.backward()
        calls.append(1)
        return loss

    loss = opt.step(closure)
    assert loss.item() == 2.0 and calls == [1]
    np.testing.assert_array_equal(a.data, [0.0, 0.0])  # a - 0.5 * 2a
    np.testing.assert_array_equal(b.data, [1.0, 1.0])  # no gradient: untouched, no state
    assert b not in opt.state
    opt.zero_grad(set_to_none=False)
    assert np.all(a.grad.data == 0)
    opt.zero_grad()
    assert a.grad is None


@pytest.mark.parametrize("make", [
    lambda p: optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
    lambda p: optim.Adam(p, lr=0.01, amsgrad=True),
    lambda p: optim.AdamW(p, lr=0.01),
    lambda p: optim.RMSprop(p, lr=0.01, momentum=0.5, centered=True),
    lambda p: optim.Adagrad(p, lr=0.05, lr_decay=0.01),
])
def test_state_dict_resume_is_identical_to_uninterrupted(make):
    x, y = two_moons(64)
    ref = mlp(1)
    ref_opt = make(ref.parameters())
    train(ref, ref_opt, x, y, 10)

    model = mlp(1)
    opt = make(model.parameters())
    train(model, opt, x, y, 5)
    saved_model = copy.deepcopy(model.state_dict())
    saved_opt = copy.deepcopy(opt.state_dict())
    train(model, opt, x, y, 3)  # wander off; the snapshot must not follow

    resumed = mlp(99)
    resumed.load_state_dict(saved_model)
    resumed_opt = make(resumed.parameters())
    resumed_opt.load_state_dict(saved_opt)
    train(resumed, resumed_opt, x, y, 5)
    for a, b in zip(ref.parameters(), resumed.parameters()):
        np.testing.assert_array_equal(a.data, b.data)


def test_state_dict_format_and_load_errors():
    model = mlp()
    opt = optim.Adam([{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 0.1}])
    x, y = two_moons(16)
    train(model, opt, x, y, 1)
    sd = opt.state_dict()
    assert sorted(sd) == ["param_groups", "state"]
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2, 3]]
    assert sd["param_groups"][1]["lr"] == 0.1
    assert sorted(sd["state"]) == [0, 1, 2, 3] and sd["state"][0]["step"] == 1
    assert sd["state"][2]["exp_avg"].shape == model[2].weight.shape
    # loading copies: the fresh optimiser does not share buffers with the dict
    other = optim.Adam([{"params": model[0].parameters()}, {"params": model[2].parameters()}])
    other.load_state_dict(sd)
    assert other.param_groups[1]["lr"] == 0.1
    assert other.state[model[0].weight]["exp_avg"].data is not sd["state"][0]["exp_avg"].data
    with pytest.raises(ValueError, match="parameter groups"):
        optim.Adam(model.parameters()).load_state_dict(sd)
    with pytest.raises(ValueError, match="doesn't match the size"):
        optim.Adam([{"params": model[0].parameters()}, {"params": [model[2].weight]}]).load_state_dict(sd)
    bad = copy.deepcopy(sd)
    bad["state"][0]["exp_avg"] = tg.zeros(5)
    with pytest.raises(ValueError, match="exp_avg.*shape"):
        other.load_state_dict(bad)


def test_step_does_not_record_a_graph_and_keeps_identity():
    p = nn.Parameter(tg.ones(3))
    data = p.data
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    (p * p).sum().backward()
    opt.step()
    assert p.is_leaf and p.grad_fn is None and p.data is data  # updated in place
