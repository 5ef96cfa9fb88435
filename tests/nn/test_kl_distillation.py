"""``F.kl_div``, ``F.multi_margin_loss``, their modules, and knowledge distillation (``tinygrad_cv.distillation``).

Gradients are checked against central finite differences in float64 with a
random upstream gradient (``gradcheck``), on values drawn away from the
points where the losses are not differentiable: targets 0 of ``kl_div``
(y log y) and margin ties of ``multi_margin_loss`` (max(0, ·) at 0). The
PyTorch comparisons skip themselves when torch is not installed (the
``torch`` fixture), so the rest of the file always runs.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import special
from strategies import as_tensor, floats_array, positive_array, shapes, tensors

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import Tensor, gradcheck, nn
from tinygrad_cv.distillation import DistillationLoss, distillation_loss, soft_targets

SEEDS = st.integers(0, 2**32 - 1)
GRAD_ATOL, GRAD_RTOL = 1e-7, 1e-5
KL_REDUCTIONS = ("mean", "batchmean", "sum", "none")


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def reduce_np(pointwise, reduction, batch):
    if reduction == "none":
        return pointwise
    if reduction == "sum":
        return pointwise.sum()
    if reduction == "mean":
        return pointwise.mean()
    return pointwise.sum() / batch


def check_grad(data, fn, inputs):
    seed = data.draw(SEEDS, label="upstream-gradient seed")
    assert gradcheck(fn, inputs, atol=GRAD_ATOL, rtol=GRAD_RTOL, seed=seed)


# ----------------------------------------------------------------------------------------
# kl_div
# ----------------------------------------------------------------------------------------
def kl_div_np(x, y, reduction, log_target):
    pointwise = np.exp(y) * (y - x) if log_target else special.xlogy(y, y) - y * x
    return reduce_np(pointwise, reduction, x.shape[0] if x.ndim else 1)


@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("reduction", KL_REDUCTIONS)
@given(data=st.data())
def test_kl_div_value_and_gradients(reduction, log_target, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_numel=24), label="shape")
    x = data.draw(tensors(floats_array(shape, -3.0, 0.0)), label="input (log-probabilities)")
    # targets > 0 (off the kink of y log y at 0), or any real number as log-probabilities
    y = data.draw(tensors(floats_array(shape, -3.0, 1.0) if log_target else positive_array(shape, 0.05, 1.0),
                          requires_grad=data.draw(st.booleans(), label="target requires grad")), label="target")

    def fn(a, b):
        return F.kl_div(a, b, reduction=reduction, log_target=log_target)

    out = fn(x, y)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.data, kl_div_np(x.data, y.data, reduction, log_target), rtol=1e-10, atol=1e-12)
    check_grad(data, fn, [x, y])


@given(data=st.data())
def test_kl_div_zero_targets_contribute_nothing_and_give_finite_gradients(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_numel=24), label="shape")
    y = data.draw(floats_array(shape, 0.0, 1.0), label="target")
    y = np.where(data.draw(hnp.arrays(np.bool_, shape), label="zero mask"), 0.0, y)
    x = data.draw(tensors(floats_array(shape, -3.0, 0.0)), label="input")
    reduction = data.draw(st.sampled_from(KL_REDUCTIONS), label="reduction")
    # the target is a constant here: y log y has no derivative at 0
    check_grad(data, lambda a: F.kl_div(a, Tensor(y), reduction=reduction), [x])
    t = as_tensor(y)
    out = F.kl_div(as_tensor(x.data), t, reduction="sum")
    out.backward()
    assert np.isfinite(out.item())
    assert np.all(np.isfinite(t.grad.data))
    # at y = 0 only the -y x term is left: its derivative in y is -x (the y log y term's is taken as 0)
    np.testing.assert_allclose(t.grad.data[y == 0], -x.data[y == 0])
    np.testing.assert_allclose(out.item(), kl_div_np(x.data, y, "sum", False), rtol=1e-12)


def test_kl_div_of_identical_distributions_is_zero_and_batchmean_is_per_sample():
    rng = np.random.default_rng(0)
    p = special.softmax(rng.standard_normal((5, 4)), axis=1)
    logp = Tensor(np.log(p))
    assert abs(F.kl_div(logp, Tensor(p), reduction="batchmean").item()) < 1e-15
    q = special.softmax(rng.standard_normal((5, 4)), axis=1)
    per_sample = (q * np.log(q / p)).sum(1)
    assert F.kl_div(logp, Tensor(q), reduction="batchmean").item() == pytest.approx(per_sample.mean(), rel=1e-12)
    assert F.kl_div(logp, Tensor(q), reduction="mean").item() == pytest.approx(per_sample.mean() / 4, rel=1e-12)
    logq = Tensor(np.log(q))
    assert F.kl_div(logp, logq, reduction="sum", log_target=True).item() == pytest.approx(per_sample.sum(), rel=1e-12)


def test_kl_div_keeps_float32_and_accepts_array_targets():
    x = Tensor(np.log(np.full((2, 3), 1 / 3, dtype=np.float32)), requires_grad=True)
    out = F.kl_div(x, np.full((2, 3), 1 / 3), reduction="batchmean")
    assert out.dtype == np.float32
    out.backward()
    assert x.grad.dtype == np.float32


@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("reduction", KL_REDUCTIONS)
def test_kl_div_against_torch(torch, reduction, log_target):
    rng = np.random.default_rng(1)
    x = np.log(special.softmax(rng.standard_normal((4, 5, 2)), axis=1))
    y = special.softmax(rng.standard_normal((4, 5, 2)) * 2, axis=1)
    if log_target:
        y = np.log(y)
    a, b = tg.tensor(x, requires_grad=True), tg.tensor(y, requires_grad=True)
    ta, tb = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
    ours = nn.KLDivLoss(reduction=reduction, log_target=log_target)(a, b)
    with warnings.catch_warnings():  # torch warns that its "mean" is not the per-sample KL
        warnings.simplefilter("ignore", UserWarning)
        theirs = torch.nn.KLDivLoss(reduction=reduction, log_target=log_target)(ta, tb)
    g = rng.standard_normal(ours.shape)
    ours.backward(tg.tensor(g))
    theirs.backward(torch.from_numpy(g))
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(a.grad.data, ta.grad.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(b.grad.data, tb.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_kl_div_zero_target_input_gradient_matches_torch(torch):
    x = np.log(np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]))
    y = np.array([[0.0, 0.4, 0.6], [1.0, 0.0, 0.0]])
    a, ta = tg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    la = F.kl_div(a, tg.tensor(y), reduction="batchmean")
    lb = torch.nn.functional.kl_div(ta, torch.from_numpy(y), reduction="batchmean")
    la.backward()
    lb.backward()
    assert la.item() == pytest.approx(lb.item(), rel=1e-12)
    np.testing.assert_allclose(a.grad.data, ta.grad.numpy(), rtol=1e-12)


# ----------------------------------------------------------------------------------------
# multi_margin_loss
# ----------------------------------------------------------------------------------------
STEP = 0.05  # scores on a grid of this step; margins half a step off it: no margin tie anywhere


def multi_margin_np(x, t, p, margin, w, reduction):
    x2 = x.reshape(1, -1) if x.ndim == 1 else x
    t2 = np.asarray(t).reshape(-1)
    n, c = x2.shape
    losses = np.zeros(n)
    for i in range(n):
        for j in range(c):
            if j != t2[i]:
                losses[i] += max(0.0, margin - x2[i, t2[i]] + x2[i, j]) ** p
        losses[i] *= (1.0 if w is None else w[t2[i]]) / c
    if reduction == "none":
        return losses.reshape(np.shape(t)) if x.ndim == 1 else losses
    return losses.sum() if reduction == "sum" else losses.mean()


@st.composite
def margin_problems(draw):
    batched = draw(st.booleans(), label="batched")
    n, c = draw(st.integers(1, 5), label="N"), draw(st.integers(1, 5), label="C")
    shape = (n, c) if batched else (c,)
    scores = draw(hnp.arrays(np.int64, shape, elements=st.integers(-30, 30)), label="scores on the grid") * STEP
    tshape = (n,) if batched else draw(st.sampled_from([(), (1,)]), label="target shape")
    target = draw(hnp.arrays(np.int64, tshape, elements=st.integers(0, c - 1)), label="target")
    margin = (draw(st.integers(-10, 30), label="margin steps") + 0.5) * STEP
    weight = draw(st.none() | hnp.arrays(np.float64, (c,), elements=st.floats(0.1, 2.0)), label="weight")
    return scores + STEP * (np.sqrt(2) - 1), target, margin, weight


@pytest.mark.parametrize("reduction", ("mean", "sum", "none"))
@pytest.mark.parametrize("p", (1, 2))
@given(data=st.data())
def test_multi_margin_loss_value_and_gradients(p, reduction, data):
    scores, target, margin, weight = data.draw(margin_problems())
    x = data.draw(tensors(st.just(scores)), label="input")

    def fn(a):
        return F.multi_margin_loss(a, tg.tensor(target), p=p, margin=margin,
                                   weight=None if weight is None else Tensor(weight), reduction=reduction)

    out = fn(x)
    expected = multi_margin_np(scores, target, p, margin, weight, reduction)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-14)
    check_grad(data, fn, [x])


@pytest.mark.parametrize("reduction", ("mean", "sum", "none"))
@pytest.mark.parametrize("p", (1, 2))
@pytest.mark.parametrize("weighted", (False, True))
@pytest.mark.parametrize("batched", (False, True))
def test_multi_margin_loss_against_torch(torch, p, reduction, weighted, batched):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 4) if batched else (4,))
    t = rng.integers(0, 4, 6) if batched else np.int64(2)
    w = rng.random(4) + 0.5 if weighted else None
    a, ta = tg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ours = nn.MultiMarginLoss(p, 0.7, None if w is None else tg.tensor(w), reduction=reduction)(a, tg.tensor(t))
    theirs = torch.nn.MultiMarginLoss(p, 0.7, None if w is None else torch.from_numpy(w), reduction=reduction)(
        ta, torch.tensor(t))
    assert ours.shape == tuple(theirs.shape)
    g = rng.standard_normal(ours.shape)
    ours.backward(tg.tensor(g))
    theirs.backward(torch.from_numpy(np.asarray(g)))
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(a.grad.data, ta.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_multi_margin_loss_float32_and_module_weight_buffer():
    loss = nn.MultiMarginLoss(2, weight=[1.0, 2.0, 3.0])
    assert "weight" in dict(loss.named_buffers())
    x = Tensor(np.array([[0.1, 0.5, -0.2]], dtype=np.float32), requires_grad=True)
    out = loss(x, np.array([2]))
    assert out.dtype == np.float32
    out.backward()
    assert x.grad.dtype == np.float32


# ----------------------------------------------------------------------------------------
# distillation
# ----------------------------------------------------------------------------------------
def distill_np(zs, zt, y, T, alpha):
    p = special.softmax(zs / T, axis=1)
    q = special.softmax(zt / T, axis=1)
    kl = (q * (np.log(q) - np.log(p))).sum() / zs.shape[0]
    logp1 = special.log_softmax(zs, axis=1)
    ce = -logp1[np.arange(len(y)), y].mean() if y is not None else 0.0
    return alpha * T * T * kl + (1 - alpha) * ce


@given(data=st.data())
def test_distillation_loss_value_and_gradient(data):
    n, c = data.draw(st.integers(1, 4), label="N"), data.draw(st.integers(2, 5), label="C")
    zs = data.draw(tensors(floats_array((n, c), -4.0, 4.0)), label="student logits")
    zt = data.draw(floats_array((n, c), -4.0, 4.0), label="teacher logits")
    y = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)), label="labels")
    T = data.draw(st.floats(0.5, 10.0), label="T")
    alpha = data.draw(st.floats(0.0, 1.0), label="alpha")

    def fn(s):
        return distillation_loss(s, Tensor(zt), tg.tensor(y), T=T, alpha=alpha)

    assert fn(zs).item() == pytest.approx(distill_np(zs.data, zt, y, T, alpha), rel=1e-10, abs=1e-12)
    check_grad(data, fn, [zs])


@given(data=st.data())
def test_distillation_gradient_is_the_exact_formula(data):
    """grad = α T (p_T − q_T) / N + (1 − α)(softmax(z_s) − onehot(y)) / N: the T² cancels a 1/T² exactly."""
    n, c = data.draw(st.integers(1, 4), label="N"), data.draw(st.integers(2, 5), label="C")
    zs = data.draw(floats_array((n, c), -4.0, 4.0), label="student logits")
    zt = data.draw(floats_array((n, c), -4.0, 4.0), label="teacher logits")
    y = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)), label="labels")
    T = data.draw(st.floats(0.5, 20.0), label="T")
    alpha = data.draw(st.floats(0.0, 1.0), label="alpha")
    s = as_tensor(zs)
    distillation_loss(s, Tensor(zt), y, T=T, alpha=alpha).backward()
    p_t, q_t = special.softmax(zs / T, axis=1), special.softmax(zt / T, axis=1)
    expected = alpha * T * (p_t - q_t) / n + (1 - alpha) * (special.softmax(zs, axis=1) - np.eye(c)[y]) / n
    np.testing.assert_allclose(s.grad.data, expected, rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("T,alpha", [(1.0, 0.5), (4.0, 0.9), (20.0, 1.0), (2.0, 0.0)])
def test_distillation_against_torch_composition(torch, T, alpha):
    rng = np.random.default_rng(3)
    zs, zt, y = rng.standard_normal((6, 5)) * 3, rng.standard_normal((6, 5)) * 3, rng.integers(0, 5, 6)
    s, ts = tg.tensor(zs, requires_grad=True), torch.tensor(zs, requires_grad=True)
    teacher = tg.tensor(zt, requires_grad=True)
    ours = DistillationLoss(T, alpha)(s, teacher, tg.tensor(y))
    tF = torch.nn.functional
    soft = tF.kl_div(tF.log_softmax(ts / T, 1), tF.softmax(torch.from_numpy(zt) / T, 1), reduction="batchmean")
    theirs = alpha * T * T * soft + (1 - alpha) * tF.cross_entropy(ts, torch.from_numpy(y))
    ours.backward()
    theirs.backward()
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(s.grad.data, ts.grad.numpy(), rtol=1e-10, atol=1e-15)
    assert teacher.grad is None  # the teacher is a constant


def test_distillation_without_labels_and_soft_targets():
    rng = np.random.default_rng(4)
    zs, zt = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    teacher = tg.tensor(zt, requires_grad=True)
    q = soft_targets(teacher, 2.0)
    assert not q.requires_grad
    np.testing.assert_allclose(q.data, special.softmax(zt / 2.0, axis=1), rtol=1e-12)
    np.testing.assert_allclose(soft_targets(zt[0], 1.0).data, special.softmax(zt[0]), rtol=1e-12)
    s = tg.tensor(zs, requires_grad=True)
    loss = distillation_loss(s, teacher, None, T=2.0, alpha=1.0)
    assert loss.item() == pytest.approx(distill_np(zs, zt, None, 2.0, 1.0), rel=1e-12)
    loss.backward()
    assert teacher.grad is None and s.grad is not None
    # identical logits: nothing to learn from the teacher
    assert abs(distillation_loss(tg.tensor(zs), tg.tensor(zs), None, T=3.0, alpha=1.0).item()) < 1e-14


# ----------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------
X = Tensor(np.zeros((2, 3)))


@pytest.mark.parametrize("call,exc,match", [
    (lambda: F.kl_div(X, np.ones((2, 3)), reduction="avg"), ValueError, "reduction must be one of"),
    (lambda: F.kl_div(X, np.ones((3, 2))), ValueError, r"input shape \(2, 3\) and target shape \(3, 2\)"),
    (lambda: F.kl_div(X, -np.ones((2, 3))), ValueError, "non-negative"),
    (lambda: F.kl_div(X, tg.tensor([[0, 1, 0], [1, 0, 0]])), TypeError, "class indices"),
    (lambda: F.kl_div(np.zeros((2, 3)), np.ones((2, 3))), TypeError, "must be a Tensor"),
    (lambda: nn.KLDivLoss(reduction="batch"), ValueError, "reduction must be one of"),
    (lambda: F.multi_margin_loss(X, np.array([0, 3])), IndexError, "target 3 is out of bounds for 3 classes"),
    (lambda: F.multi_margin_loss(X, np.array([0, -1])), IndexError, "target -1 is out of bounds"),
    (lambda: F.multi_margin_loss(X, np.array([0, 1, 2])), ValueError, r"target shape \(3,\) does not match"),
    (lambda: F.multi_margin_loss(X, np.array([0.0, 1.0])), TypeError, "must be integers"),
    (lambda: F.multi_margin_loss(X, np.array([0, 1]), p=3), ValueError, "only p == 1 and p == 2"),
    (lambda: F.multi_margin_loss(X, np.array([0, 1]), weight=[1.0, 2.0]), ValueError, r"weight has shape \(2,\)"),
    (lambda: F.multi_margin_loss(X, np.array([0, 1]), reduction="batchmean"), ValueError, "reduction must be"),
    (lambda: F.multi_margin_loss(Tensor(np.zeros((2, 3, 4))), np.zeros((2, 4), np.int64)), ValueError,
     r"shape \(N, C\) or \(C,\)"),
    (lambda: nn.MultiMarginLoss(p=0), ValueError, "only p == 1 and p == 2"),
    (lambda: distillation_loss(X, X, np.array([0, 1]), T=0.0), ValueError, "T must be a finite number > 0"),
    (lambda: distillation_loss(X, X, np.array([0, 1]), T=-1.0), ValueError, "T must be"),
    (lambda: distillation_loss(X, X, np.array([0, 1]), alpha=1.5), ValueError, r"alpha must be in \[0, 1\]"),
    (lambda: distillation_loss(X, X, np.array([0, 1]), alpha=-0.1), ValueError, "alpha must be"),
    (lambda: distillation_loss(X, X, None, alpha=0.5), ValueError, "target is None"),
    (lambda: distillation_loss(X, Tensor(np.zeros((2, 4))), np.array([0, 1])), ValueError,
     r"student_logits shape \(2, 3\) and teacher_logits shape \(2, 4\)"),
    (lambda: distillation_loss(Tensor(np.zeros(3)), Tensor(np.zeros(3)), None, alpha=1.0), ValueError,
     r"shape \(N, C, \.\.\.\)"),
    (lambda: DistillationLoss(T=0), ValueError, "T must be"),
    (lambda: DistillationLoss(alpha=2), ValueError, "alpha must be"),
    (lambda: soft_targets(X, 0.0), ValueError, "T must be"),
])
def test_errors_name_what_is_wrong(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ----------------------------------------------------------------------------------------
# GPU tensors (a real GPU, or Numba's simulator: see conftest.py)
# ----------------------------------------------------------------------------------------
def test_losses_on_cuda_tensors_match_the_cpu():
    if not tg.cuda.is_available():
        pytest.skip("CUDA tensors are not available here (no GPU, no simulator)")
    rng = np.random.default_rng(5)
    x, zt = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    t, w, y = np.array([0, 1, 2, 1]), np.array([1.0, 2.0, 0.5]), special.softmax(rng.standard_normal((4, 3)), 1)
    y[0, 1] = 0.0
    results = {}
    for device in ("cpu", "cuda"):
        a = tg.tensor(x, device=device, requires_grad=True)
        target, teacher = tg.tensor(t, device=device), tg.tensor(zt, device=device)
        losses = [F.multi_margin_loss(a, target, p=2, weight=tg.tensor(w, device=device)),
                  F.kl_div(a.log_softmax(1), tg.tensor(y, device=device), reduction="batchmean"),
                  distillation_loss(a, teacher, target, T=2.0, alpha=0.7)]
        (losses[0] + losses[1] + losses[2]).backward()
        results[device] = [loss.item() for loss in losses], a.grad.cpu().data
    np.testing.assert_allclose(results["cuda"][0], results["cpu"][0], rtol=1e-12)
    np.testing.assert_allclose(results["cuda"][1], results["cpu"][1], rtol=1e-12, atol=1e-15)
