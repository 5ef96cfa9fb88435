"""Adversarial attacks and training (tinygrad_cv.adversarial) and the demo (demos/adversarial.py).

The attacks are checked against what they promise: the ε-ball and the pixel
box hold, the loss goes up, FGSM on a linear model is the closed form, targeted
attacks reach their target, a seed fixes the result. A tiny CNN trained here on
synthetic bar images (a couple of seconds) plays the trained network.
"""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import adversarial as adv
from tinygrad_cv import nn, optim

ROOT = Path(__file__).resolve().parents[1]
K, SIZE = 4, 12  # classes, image side


def bars(n, seed):
    """Class c: a bright horizontal bar at rows 2 + 2c .. 3 + 2c, random start, on faint noise; in [0, 1]."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n)
    x = rng.uniform(0.0, 0.2, (n, 1, SIZE, SIZE))
    for i, c in enumerate(y):
        start = rng.integers(0, 4)
        x[i, 0, 2 + 2 * c:4 + 2 * c, start:start + 8] = 1.0
    return x.astype(np.float32), y


def small_cnn():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, K))


def cross_entropy(model, x, y, reduction="none"):
    with tg.no_grad():
        return F.cross_entropy(model(x if isinstance(x, tg.Tensor) else tg.tensor(x)), tg.tensor(y),
                               reduction=reduction).numpy()


def predict(model, x):
    with tg.no_grad():
        return model(x if isinstance(x, tg.Tensor) else tg.tensor(x)).numpy().argmax(1)


@pytest.fixture(scope="module")
def trained():
    """A small CNN trained to ~100 % on the bars, and a fresh batch of them."""
    tg.manual_seed(0)
    model = small_cnn()
    x, y = bars(512, seed=0)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    for step in range(150):
        i = (step * 64) % 512
        loss = F.cross_entropy(model(tg.tensor(x[i:i + 64])), tg.tensor(y[i:i + 64]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.zero_grad()  # so that a test can see whether an attack leaves gradients behind
    model.eval()
    xt, yt = bars(64, seed=1)
    assert (predict(model, xt) == yt).mean() > 0.95
    return model, xt, yt


def linear_model(w, b):
    """Logistic regression on flattened images: logits = W x + b, W of shape (classes, m)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(w.shape[1], w.shape[0]))
    model[1].weight.data[...] = w
    model[1].bias.data[...] = b
    return model


# --- FGSM ----------------------------------------------------------------------------------------------
def test_fgsm_stays_in_the_ball_and_box_and_moves_by_eps(trained):
    model, x, y = trained
    x_adv = adv.fgsm(model, x, y, 0.1)
    assert isinstance(x_adv, tg.Tensor) and not x_adv.requires_grad
    assert x_adv.shape == x.shape and x_adv.dtype == np.float32
    d = x_adv.numpy() - x
    assert np.abs(d).max() <= 0.1 + 1e-6
    assert x_adv.numpy().min() >= 0 and x_adv.numpy().max() <= 1
    inside = (x > 0.1 + 1e-6) & (x < 0.9 - 1e-6)  # no clipping there: every pixel with a gradient moved by ±ε
    assert np.allclose(np.abs(d[inside & (d != 0)]), 0.1, atol=1e-6)
    assert (d[inside] != 0).mean() > 0.5


def test_fgsm_raises_the_loss(trained):
    model, x, y = trained
    before = cross_entropy(model, x, y)
    after = cross_entropy(model, adv.fgsm(model, x, y, 0.15), y)
    assert after.mean() > 3 * before.mean()
    assert (after > before).mean() > 0.9


def test_fgsm_on_a_linear_model_is_the_closed_form():
    # two classes: dL/dx = p_other (w_other - w_y), so the step is ε sign(w_other - w_y) for every image of class y
    rng = np.random.default_rng(0)
    m = 1 * 5 * 5
    w, b = rng.normal(size=(2, m)).astype(np.float32), np.zeros(2, np.float32)
    model = linear_model(w, b)
    x = rng.uniform(0.3, 0.7, (6, 1, 5, 5)).astype(np.float32)  # ε = 0.05 stays clear of the box's walls
    y = np.array([0, 1, 0, 1, 1, 0])
    eps = 0.05
    d = adv.fgsm(model, x, y, eps).numpy() - x
    for i, c in enumerate(y):
        expected = eps * np.sign(w[1 - c] - w[c]).reshape(1, 5, 5)
        assert np.allclose(d[i], expected, atol=1e-6)
    # targeted: towards class t, ε sign(w_t - w_other)
    t = 1 - y
    d = adv.fgsm(model, x, t, eps, targeted=True).numpy() - x
    for i, c in enumerate(t):
        assert np.allclose(d[i], eps * np.sign(w[c] - w[1 - c]).reshape(1, 5, 5), atol=1e-6)
    # and the logit margin moves by exactly ε ‖w_y - w_other‖₁, the linear model's worst case
    d = adv.fgsm(model, x, y, eps).numpy() - x
    margin_change = np.einsum("nm,nm->n", (w[y] - w[1 - y]), d.reshape(6, -1))
    assert np.allclose(margin_change, -eps * np.abs(w[0] - w[1]).sum(), rtol=1e-5)


def test_fgsm_with_eps_zero_is_the_identity_and_clamp_none_leaves_the_box(trained):
    model, x, y = trained
    assert np.array_equal(adv.fgsm(model, x, y, 0.0).numpy(), x)
    unclipped = adv.fgsm(model, x, y, 0.3, clamp=None).numpy()
    assert unclipped.min() < 0  # the noise pixels near 0 step below it when nothing clips them
    assert np.abs(unclipped - x).max() <= 0.3 + 1e-6


def test_fgsm_accepts_tensors_and_arrays_alike(trained):
    model, x, y = trained
    a = adv.fgsm(model, x, y, 0.1).numpy()
    b = adv.fgsm(model, tg.tensor(x), tg.tensor(y), 0.1).numpy()
    c = adv.fgsm(model, x.astype(np.float64), list(y), 0.1).numpy()
    assert np.array_equal(a, b) and np.array_equal(a, c)


def test_a_custom_loss_is_used():
    # raising the logit of class 0 (loss = sum of logit 0) moves along sign(w_0), whatever y says
    rng = np.random.default_rng(1)
    w = rng.normal(size=(3, 16)).astype(np.float32)
    model = linear_model(w, np.zeros(3, np.float32))
    x = np.full((2, 1, 4, 4), 0.5, np.float32)
    d = adv.fgsm(model, x, [1, 2], 0.1, loss_fn=lambda logits, y: logits[:, 0].sum()).numpy() - x
    assert np.allclose(d, 0.1 * np.sign(w[0]).reshape(1, 1, 4, 4), atol=1e-6)


# --- PGD ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm,eps", [("inf", 0.1), ("2", 1.0)])
@pytest.mark.parametrize("random_start", [True, False])
def test_pgd_stays_in_the_ball_and_box(trained, norm, eps, random_start):
    model, x, y = trained
    x_adv = adv.pgd(model, x, y, eps, steps=5, norm=norm, random_start=random_start, seed=0).numpy()
    d = (x_adv - x).reshape(len(x), -1)
    size = np.abs(d).max(1) if norm == "inf" else np.sqrt((d.astype(np.float64) ** 2).sum(1))
    assert size.max() <= eps * (1 + 1e-5) + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert size.min() > 0.5 * eps  # and it does use the room it has


def test_pgd_raises_the_loss_at_least_as_much_as_fgsm(trained):
    model, x, y = trained
    clean = cross_entropy(model, x, y, "sum")
    one_step = cross_entropy(model, adv.fgsm(model, x, y, 0.1), y, "sum")
    many = cross_entropy(model, adv.pgd(model, x, y, 0.1, steps=20, seed=0), y, "sum")
    assert clean < one_step <= many * 1.001
    l2 = cross_entropy(model, adv.pgd(model, x, y, 1.0, norm="2", steps=20, seed=0), y, "sum")
    assert l2 > 3 * clean


def test_targeted_pgd_reaches_the_target(trained):
    model, x, y = trained
    # the bars are bright (1.0) on a dark background (< 0.2): to fake another class the attack must dim the
    # bar and draw a new one, which ε = 0.5 allows (at ε = 0.3 a dimmed bar, 0.7, still beats a drawn one, 0.5)
    target = (y + 1) % K
    x_adv = adv.pgd(model, x, target, 0.5, steps=20, targeted=True, seed=0)
    assert (predict(model, x_adv) == target).mean() >= 0.95
    assert np.abs(x_adv.numpy() - x).max() <= 0.5 + 1e-6


@pytest.mark.parametrize("targeted", [False, True])
def test_pgd_early_stop_returns_the_first_fooling_iterate(trained, targeted):
    model, x, y = trained
    eps, goal = 0.3, ((y + 1) % K if targeted else y)
    last = predict(model, adv.pgd(model, x, goal, eps, steps=10, targeted=targeted, seed=3))
    x_first = adv.pgd(model, x, goal, eps, steps=10, targeted=targeted, seed=3, early_stop=True)
    first = predict(model, x_first)
    assert np.abs(x_first.numpy() - x).max() <= eps + 1e-6 and x_first.numpy().min() >= 0
    # the same path until an image is fooled, which then stays where it was fooled
    fooled_first, fooled_last = (first == goal, last == goal) if targeted else (first != y, last != y)
    assert np.all(fooled_first >= fooled_last)
    assert 0 < fooled_first.mean() < 1  # (a case with something to compare)


def test_pgd_is_deterministic_with_a_seed_and_leaves_global_generators_alone(trained):
    model, x, y = trained
    np_state = np.random.get_state()[1].copy()
    tg_state = tg.random.default_generator().bit_generator.state
    a = adv.pgd(model, x, y, 0.1, steps=3, seed=7).numpy()
    b = adv.pgd(model, x, y, 0.1, steps=3, seed=7).numpy()
    c = adv.pgd(model, x, y, 0.1, steps=3, seed=8).numpy()
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    d = adv.pgd(model, x, y, 0.1, steps=3, seed=np.random.default_rng(7)).numpy()  # a Generator works too
    assert np.array_equal(a, d)
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert tg.random.default_generator().bit_generator.state == tg_state


def test_the_projections_and_the_random_start():
    rng = np.random.default_rng(0)
    delta = rng.normal(size=(5, 1, 4, 4))
    p = adv._project(delta, 0.5, "2")
    norms = np.sqrt((p.reshape(5, -1) ** 2).sum(1))
    assert np.allclose(norms, 0.5)  # all were outside: moved onto the sphere, along the same direction
    unit = delta / np.linalg.norm(delta.reshape(5, -1), axis=1)[:, None, None, None]
    assert np.allclose(p / norms[:, None, None, None], unit)
    small = delta / 100
    assert np.array_equal(adv._project(small, 0.5, "2"), small)  # a point inside is its own projection
    assert np.array_equal(adv._project(delta, 0.5, "inf"), np.clip(delta, -0.5, 0.5))
    start = adv._random_start((1000, 1, 2, 2), 0.5, "2", rng)
    r = np.sqrt((start.reshape(1000, -1) ** 2).sum(1))
    assert r.max() <= 0.5 + 1e-12
    assert abs(np.mean(r <= 0.5 * 0.5 ** (1 / 4)) - 0.5) < 0.06  # uniform in the 4-d ball: half within r/2^(1/4)
    start = adv._random_start((1000, 1, 2, 2), 0.5, "inf", rng)
    assert np.abs(start).max() <= 0.5 and abs(start.mean()) < 0.02


# --- the model's state --------------------------------------------------------------------------------
def test_attacks_restore_the_mode_and_leave_no_gradients(trained):
    model, x, y = trained
    model.train()
    model[0].eval()  # a mixed state must come back exactly
    flags = [p.requires_grad for p in model.parameters()]
    seen = []  # the modes the model is in while the loss is computed

    def loss(logits, labels):
        seen.append([m.training for m in model.modules()])
        return F.cross_entropy(logits, labels, reduction="sum")

    adv.fgsm(model, x, y, 0.1, loss_fn=loss)
    adv.pgd(model, x, y, 0.1, steps=2, seed=0, loss_fn=loss)
    assert seen and all(not any(s) for s in seen)  # eval mode while attacking
    assert [m.training for m in model.modules()] == [True, False, True, True, True, True]
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="class 7"):  # an error half-way restores the state as well
        adv.pgd(model, x, np.full(len(x), 7), 0.1, steps=2)
    assert [m.training for m in model.modules()] == [True, False, True, True, True, True]
    assert [p.requires_grad for p in model.parameters()] == flags
    model.eval()


def test_attacks_run_inside_no_grad(trained):
    model, x, y = trained
    with tg.no_grad():
        inside = adv.pgd(model, x, y, 0.1, steps=2, seed=0).numpy()
    assert np.array_equal(inside, adv.pgd(model, x, y, 0.1, steps=2, seed=0).numpy())


def test_float64_models_are_attacked_in_float64():
    rng = np.random.default_rng(0)
    model = linear_model(rng.normal(size=(3, 16)), np.zeros(3)).double()
    x = rng.uniform(0, 1, (2, 1, 4, 4)).astype(np.float32)
    assert adv.fgsm(model, x, [0, 1], 0.1).dtype == np.float64


# --- L-BFGS, fooling images -----------------------------------------------------------------------------
def test_lbfgs_attack_finds_a_small_misclassifying_change(trained):
    model, x, y = trained
    x, y = x[:2], y[:2]
    target = (y + 1) % K
    x_adv, info = adv.lbfgs_attack(model, x, target, c=0.1, max_iter=30, search_steps=2, return_info=True)
    assert info["success"].all()
    assert np.array_equal(predict(model, x_adv), target) and np.array_equal(info["pred"], target)
    assert x_adv.numpy().min() >= 0 and x_adv.numpy().max() <= 1
    r = (x_adv.numpy() - x).reshape(2, -1)
    assert np.allclose(np.sqrt((r.astype(np.float64) ** 2).sum(1)), info["norm"], rtol=1e-4, atol=1e-6)
    assert np.all(info["c"] > 0)
    # smaller than moving all the way to an image of the target class
    other = bars(200, seed=5)
    typical = [np.linalg.norm((other[0][other[1] == t][0] - x[i]).ravel()) for i, t in enumerate(target)]
    assert np.all(info["norm"] < np.array(typical))


def test_lbfgs_attack_one_image_at_a_time_agrees(trained):
    model, x, y = trained
    target = (y[:1] + 1) % K
    x_adv, info = adv.lbfgs_attack(model, x[:1], target, c=0.1, max_iter=30, search_steps=2, batched=False,
                                   return_info=True)
    assert info["success"].all() and predict(model, x_adv)[0] == target[0]
    _, joint = adv.lbfgs_attack(model, x[:1], target, c=0.1, max_iter=30, search_steps=2, return_info=True)
    assert np.allclose(info["norm"], joint["norm"]) and np.array_equal(info["c"], joint["c"])  # a batch of one


def test_the_search_over_c_brackets_then_bisects():
    # success below c* = 3, failure above: from c = 1, up by 10 to the first failure, then bisect [1, 10]
    search, tried = adv._CSearch(1.0, (1e-4, 1e4), 4), [1.0]
    while (nxt := search.record(tried[-1] < 3.0)) is not None:
        tried.append(nxt)
    assert tried[:2] == [1.0, 10.0] and len(tried) == 6
    assert search.lo < 3.0 < search.hi and search.hi / search.lo == pytest.approx(10 ** (1 / 16))
    # from above: down by 10 until a success
    search, tried = adv._CSearch(100.0, (1e-4, 1e4), 0), [100.0]
    while (nxt := search.record(tried[-1] < 3.0)) is not None:
        tried.append(nxt)
    assert tried == [100.0, 10.0, 1.0]
    # never succeeding: down to the end of the range, then stop
    search, tried = adv._CSearch(1.0, (1e-2, 1e2), 3), [1.0]
    while (nxt := search.record(False)) is not None:
        tried.append(nxt)
    assert tried == pytest.approx([1.0, 0.1, 0.01])


def test_lbfgs_attack_leaves_an_image_already_of_the_target_class(trained):
    model, x, y = trained
    x_adv, info = adv.lbfgs_attack(model, x[:2], predict(model, x[:2]), return_info=True)
    assert np.array_equal(x_adv.numpy(), x[:2]) and info["success"].all() and np.all(info["norm"] == 0)


def test_fooling_images_reach_high_confidence(trained):
    model, _, _ = trained
    images = adv.fooling_images(model, list(range(K)), shape=(1, SIZE, SIZE), steps=60, lr=0.05, seed=0)
    assert images.shape == (K, 1, SIZE, SIZE)
    assert images.numpy().min() >= 0 and images.numpy().max() <= 1
    with tg.no_grad():
        p = F.softmax(model(images), dim=1).numpy()
    assert np.all(p[np.arange(K), np.arange(K)] > 0.99)
    again = adv.fooling_images(model, list(range(K)), shape=(1, SIZE, SIZE), steps=60, lr=0.05, seed=0)
    assert np.array_equal(images.numpy(), again.numpy())


# --- adversarial training -------------------------------------------------------------------------------
@pytest.mark.parametrize("attack", ["fgsm_rs", "pgd"])
def test_adversarial_training_reduces_the_adversarial_loss(attack):
    tg.manual_seed(1)
    model = small_cnn()
    x, y = bars(256, seed=2)
    xv, yv = bars(128, seed=3)
    opt = optim.Adam(model.parameters(), lr=1e-2)

    def adversarial_loss():
        return cross_entropy(model, adv.pgd(model, xv, yv, 0.1, steps=10, seed=0), yv, "mean")

    before = adversarial_loss()
    rng = np.random.default_rng(0)
    model.train()
    for step in range(40):
        i = (step * 64) % 256
        loss = adv.adversarial_training_step(model, x[i:i + 64], y[i:i + 64], opt, attack=attack, eps=0.1,
                                             steps=3, seed=rng)
        assert np.isfinite(loss)
        assert model.training  # the update ran in the caller's mode, restored after the attack
    assert adversarial_loss() < 0.3 * before


def test_adversarial_training_step_mixes_in_the_clean_loss():
    tg.manual_seed(2)
    model = small_cnn()
    x, y = bars(32, seed=4)
    opt = optim.SGD(model.parameters(), lr=0.0)  # a zero step: the returned loss is the loss at these weights
    clean = float(cross_entropy(model, x, y, "mean"))
    assert adv.adversarial_training_step(model, x, y, opt, eps=0.0, clean_weight=1.0) == pytest.approx(clean, rel=1e-5)
    mixed = adv.adversarial_training_step(model, x, y, opt, attack="fgsm", eps=0.1, clean_weight=0.5)
    adv_only = adv.adversarial_training_step(model, x, y, opt, attack="fgsm", eps=0.1)
    assert mixed == pytest.approx(0.5 * clean + 0.5 * adv_only, rel=1e-5)


# --- errors ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("call,error,match", [
    (lambda m, x, y: adv.fgsm(m, x, y, -0.1), ValueError, "eps must be >= 0"),
    (lambda m, x, y: adv.fgsm(m, x, y, float("nan")), ValueError, "eps must be finite"),
    (lambda m, x, y: adv.fgsm(m, x, y, "0.1"), TypeError, "eps must be a real number"),
    (lambda m, x, y: adv.pgd(m, x, y, 0.1, alpha=0.0), ValueError, "alpha must be > 0"),
    (lambda m, x, y: adv.pgd(m, x, y, 0.1, alpha=-1.0), ValueError, "alpha must be > 0"),
    (lambda m, x, y: adv.pgd(m, x, y, 0.1, steps=0), ValueError, "steps must be >= 1"),
    (lambda m, x, y: adv.pgd(m, x, y, 0.1, steps=2.5), TypeError, "steps must be an integer"),
    (lambda m, x, y: adv.pgd(m, x, y, 0.1, norm="1"), ValueError, "unknown norm '1'"),
    (lambda m, x, y: adv.fgsm(m, x[0], y[:1], 0.1), ValueError, r"needs a batch dimension: x\[None\]"),
    (lambda m, x, y: adv.fgsm(m, x[0, 0], y[:1], 0.1), ValueError, r"shape \(N, C, H, W\)"),
    (lambda m, x, y: adv.fgsm(m, x * 255, y, 0.1), ValueError, "outside the clamp box"),
    (lambda m, x, y: adv.fgsm(m, x - 0.5, y, 0.1), ValueError, "outside the clamp box"),
    (lambda m, x, y: adv.fgsm(m, np.where(x > 0.5, np.nan, x), y, 0.1), ValueError, "NaN"),
    (lambda m, x, y: adv.fgsm(m, x, y[:-1], 0.1), ValueError, r"y must have shape \(64,\)"),
    (lambda m, x, y: adv.fgsm(m, x, y[:, None], 0.1), ValueError, r"y must have shape \(64,\)"),
    (lambda m, x, y: adv.fgsm(m, x, y + 0.5, 0.1), TypeError, "integer class indices"),
    (lambda m, x, y: adv.fgsm(m, x, y - 5, 0.1), ValueError, "negative class index"),
    (lambda m, x, y: adv.fgsm(m, x, y + K, 0.1), ValueError, f"the model has {K} outputs"),
    (lambda m, x, y: adv.fgsm(m, x, y, 0.1, clamp=(1, 0)), ValueError, "low < high"),
    (lambda m, x, y: adv.fgsm(m, x, y, 0.1, clamp=0.5), TypeError, "clamp must be a pair"),
    (lambda m, x, y: adv.lbfgs_attack(m, x[:1], y[:1], c=0.0), ValueError, "c must be > 0"),
    (lambda m, x, y: adv.lbfgs_attack(m, x[:1], y[:2]), ValueError, r"target must have shape \(1,\)"),
    (lambda m, x, y: adv.fooling_images(m, [0], shape=(12, 12)), ValueError, r"shape must be \(C, H, W\)"),
    (lambda m, x, y: adv.fooling_images(m, [0], shape=(1, 12, 12), lr=0), ValueError, "lr must be > 0"),
    (lambda m, x, y: adv.adversarial_training_step(m, x, y, None, attack="free", eps=0.1), ValueError,
     "unknown attack 'free'"),
    (lambda m, x, y: adv.adversarial_training_step(m, x, y, None, eps=-1.0), ValueError, "eps must be >= 0"),
])
def test_bad_arguments_are_refused_clearly(trained, call, error, match):
    model, x, y = trained
    with pytest.raises(error, match=match):
        call(model, x, y)


# --- the demo -------------------------------------------------------------------------------------------
def load_demo():
    spec = importlib.util.spec_from_file_location("adversarial_demo", ROOT / "demos" / "adversarial.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def fake_mnist(tmp_path, fake_mnist_files):
    """Tiny MNIST-format data (240 training / 60 test images; see conftest.write_fake_mnist)."""
    return fake_mnist_files(tmp_path, 240, 60)


def test_demo_runs_end_to_end_on_tiny_synthetic_data(fake_mnist, tmp_path, capsys):
    demo = load_demo()
    out = tmp_path / "run"
    args = ["--data", str(fake_mnist), "--out", str(out), "--epochs", "1", "--val-size", "40",
            "--eps", "0.1,0.3", "--pgd-steps", "3", "--adv-eps", "0.1", "--lbfgs-images", "1",
            "--lbfgs-iter", "10", "--fooling-steps", "5", "--batch-size", "32"]
    assert demo.main(args + ["--no-plots"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["standard"]["accuracy"]) == {"clean", "fgsm", "pgd"}
    assert len(results["standard"]["accuracy"]["pgd"]) == 2
    assert len(results["fooling"]["standard"]) == 10
    assert (out / "results.md").read_text().startswith("#")
    assert "test accuracy" in capsys.readouterr().out
    # a second run finds the checkpoints and does not train again
    assert demo.main(args + ["--no-plots"]) == 0
    assert "loaded" in capsys.readouterr().out


def test_demo_writes_figures(fake_mnist, tmp_path):
    pytest.importorskip("matplotlib")
    demo = load_demo()
    out = tmp_path / "run"
    assert demo.main(["--data", str(fake_mnist), "--out", str(out), "--epochs", "1", "--limit", "120",
                      "--val-size", "20", "--eval-limit", "20", "--eps", "0.1", "--pgd-steps", "2",
                      "--adv-eps", "0.1", "--lbfgs-images", "1", "--lbfgs-iter", "5", "--fooling-steps", "2"]) == 0
    for name in ("examples", "accuracy", "targeted", "fooling", "lbfgs"):
        assert (out / f"adversarial_{name}.png").stat().st_size > 1000, name


def test_demo_refuses_bad_options(fake_mnist, tmp_path):
    demo = load_demo()
    with pytest.raises(SystemExit):
        demo.main(["--eps", "0.1,-0.2"])
    with pytest.raises(SystemExit):
        demo.main(["--val-size", "0"])
