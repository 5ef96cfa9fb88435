"""Low-rank compression by truncated SVD (``tinygrad_cv.compression``), and freezing layers for transfer learning.

- at full rank the factorised layers compute the same function (float64
  rounding) over drawn shapes, strides, paddings, dilations, padding modes;
- at rank r the weight error's squared Frobenius norm is the sum of the
  discarded squared singular values (Eckart–Young), and the output error
  is bounded by it;
- ``energy`` picks the smallest rank that reaches it;
- ``compress`` on LeNet-5 reports the parameter counts, keeps dtype,
  train/eval mode and frozen flags, and the model still trains;
- frozen parameters stay bit-identical through optimiser steps.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import Tensor, nn, optim
from tinygrad_cv.compression import (
    CompressionReport, LayerReport, compress, singular_values, svd_conv2d, svd_linear,
)
from tinygrad_cv.models import LeNet5


def randomise(module, seed):
    """Fill every parameter with N(0, 1) values (so the spectra are not all alike), in place."""
    rng = np.random.default_rng(seed)
    for p in module.parameters():
        p.data[...] = rng.standard_normal(p.shape)
    return module


def n_params(module):
    return sum(p.numel() for p in module.parameters())


# --- layers drawn by hypothesis ------------------------------------------------------------
@st.composite
def linear_layers(draw):
    n_in, n_out = draw(st.integers(1, 7), label="in"), draw(st.integers(1, 7), label="out")
    layer = nn.Linear(n_in, n_out, bias=draw(st.booleans(), label="bias")).double()
    randomise(layer, draw(st.integers(0, 2**16), label="seed"))
    x = np.random.default_rng(draw(st.integers(0, 2**16))).standard_normal((draw(st.integers(1, 4)), n_in))
    return layer, Tensor(x)


@st.composite
def conv_layers(draw):
    c, o = draw(st.integers(1, 3), label="C"), draw(st.integers(1, 4), label="O")
    k = (draw(st.integers(1, 3), label="KH"), draw(st.integers(1, 3), label="KW"))
    dil = (draw(st.integers(1, 2), label="dh"), draw(st.integers(1, 2), label="dw"))
    mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]), label="padding_mode")
    if draw(st.booleans(), label="padding 'same'"):
        stride, padding = (1, 1), "same"
    else:
        stride = (draw(st.integers(1, 2), label="sh"), draw(st.integers(1, 2), label="sw"))
        padding = (draw(st.integers(0, 2), label="ph"), draw(st.integers(0, 2), label="pw"))
    layer = nn.Conv2d(c, o, k, stride=stride, padding=padding, dilation=dil, bias=draw(st.booleans(), label="bias"),
                      padding_mode=mode).double()
    randomise(layer, draw(st.integers(0, 2**16), label="seed"))
    # big enough for the kernel, and for reflect padding (< size)
    h = max(3, dil[0] * (k[0] - 1) + 1) + draw(st.integers(0, 3), label="extra H")
    w = max(3, dil[1] * (k[1] - 1) + 1) + draw(st.integers(0, 3), label="extra W")
    x = np.random.default_rng(draw(st.integers(0, 2**16))).standard_normal((draw(st.integers(1, 2)), c, h, w))
    return layer, Tensor(x)


def conv_matrix(conv):
    w = conv.weight.data
    o, c, kh, kw = w.shape
    m = np.empty((c * kh, o * kw))
    for oo in range(o):
        for cc in range(c):
            for i in range(kh):
                for j in range(kw):
                    m[cc * kh + i, oo * kw + j] = w[oo, cc, i, j]
    return m


def effective_weight(seq):
    """The single layer weight that the factorised pair computes."""
    first, second = seq[0], seq[1]
    if isinstance(first, nn.Linear):
        return second.weight.data @ first.weight.data
    # W_r[o, c, kh, kw] = Σ_r second[o, r, 0, kw] · first[r, c, kh, 0]
    return np.einsum("orw,rch->ochw", second.weight.data[:, :, 0, :], first.weight.data[..., 0])


def check_structure(orig, seq, r):
    assert isinstance(seq, nn.Sequential) and len(seq) == 2
    first, second = seq[0], seq[1]
    assert first.bias is None
    assert (second.bias is None) == (orig.bias is None)
    if orig.bias is not None:
        np.testing.assert_array_equal(second.bias.data, orig.bias.data)
        assert second.bias is not orig.bias
    for p in seq.parameters():
        assert isinstance(p, nn.Parameter) and p.dtype == orig.weight.dtype
    if isinstance(orig, nn.Linear):
        assert (first.in_features, first.out_features) == (orig.in_features, r)
        assert (second.in_features, second.out_features) == (r, orig.out_features)
    else:
        kh, kw = orig.kernel_size
        assert first.weight.shape == (r, orig.in_channels, kh, 1)
        assert second.weight.shape == (orig.out_channels, r, 1, kw)
        assert first.stride == (orig.stride[0], 1) and second.stride == (1, orig.stride[1])
        assert first.dilation == (orig.dilation[0], 1) and second.dilation == (1, orig.dilation[1])
        assert first.padding_mode == second.padding_mode == orig.padding_mode


# --- exactness at full rank --------------------------------------------------------------
@given(layer=linear_layers())
def test_svd_linear_is_exact_at_full_rank(layer):
    lin, x = layer
    r = min(lin.in_features, lin.out_features)
    seq = svd_linear(lin, rank=r)
    check_structure(lin, seq, r)
    np.testing.assert_allclose(seq(x).data, lin(x).data, rtol=1e-11, atol=1e-11)
    assert seq is not lin and lin.weight.shape == (lin.out_features, lin.in_features)  # original untouched


@given(layer=conv_layers())
def test_svd_conv2d_is_exact_at_full_rank(layer):
    conv, x = layer
    kh, kw = conv.kernel_size
    r = min(conv.in_channels * kh, conv.out_channels * kw)
    seq = svd_conv2d(conv, rank=r)
    check_structure(conv, seq, r)
    out = seq(x)
    assert out.shape == conv(x).shape
    np.testing.assert_allclose(out.data, conv(x).data, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(effective_weight(seq), conv.weight.data, rtol=1e-10, atol=1e-12)


# --- truncation: Eckart-Young -------------------------------------------------------------
@given(layer=linear_layers(), data=st.data())
def test_svd_linear_truncation_error(layer, data):
    lin, x = layer
    s = np.linalg.svd(lin.weight.data, compute_uv=False)
    np.testing.assert_allclose(singular_values(lin), s, rtol=1e-12)
    r = data.draw(st.integers(1, len(s)), label="rank")
    seq = svd_linear(lin, rank=r)
    err = lin.weight.data - effective_weight(seq)
    assert np.sum(err**2) == pytest.approx(np.sum(s[r:] ** 2), rel=1e-9, abs=1e-12)
    # per sample ‖(W − W_r) x‖ ≤ s_{r+1} ‖x‖ (the spectral norm of the error)
    s_next = s[r] if r < len(s) else 0.0
    diff = np.linalg.norm(seq(x).data - lin(x).data, axis=-1)
    assert np.all(diff <= s_next * np.linalg.norm(x.data, axis=-1) + 1e-10)


@given(layer=conv_layers(), data=st.data())
def test_svd_conv2d_truncation_error(layer, data):
    conv, x = layer
    m = conv_matrix(conv)
    s = np.linalg.svd(m, compute_uv=False)
    np.testing.assert_allclose(singular_values(conv), s, rtol=1e-12, atol=1e-14)
    r = data.draw(st.integers(1, len(s)), label="rank")
    seq = svd_conv2d(conv, rank=r)
    err = conv.weight.data - effective_weight(seq)
    assert np.sum(err**2) == pytest.approx(np.sum(s[r:] ** 2), rel=1e-9, abs=1e-12)
    if conv.padding_mode == "zeros":
        # the output error is the convolution with the weight error E (no bias): each output pixel is
        # E_mat · patch, and each input pixel lies in at most KH·KW patches, so
        # ‖y − y_r‖_F ≤ ‖E‖_F · √(KH·KW) · ‖x‖_F
        diff = conv(x).data - seq(x).data
        by_error = F.conv2d(x, Tensor(err), None, conv.stride, conv.padding, conv.dilation).data
        np.testing.assert_allclose(diff, by_error, rtol=1e-9, atol=1e-10)
        kh, kw = conv.kernel_size
        bound = np.sqrt(np.sum(s[r:] ** 2)) * np.sqrt(kh * kw) * np.linalg.norm(x.data)
        assert np.linalg.norm(diff) <= bound + 1e-10


@given(data=st.data())
def test_energy_picks_the_smallest_rank_reaching_it(data):
    conv_or_linear = data.draw(st.sampled_from(["linear", "conv"]), label="layer")
    layer, _ = data.draw(linear_layers() if conv_or_linear == "linear" else conv_layers(), label="layer")
    energy = data.draw(st.floats(0.01, 1.0), label="energy")
    s = singular_values(layer)
    cum = np.cumsum(s**2) / np.sum(s**2)
    seq = (svd_linear if conv_or_linear == "linear" else svd_conv2d)(layer, energy=energy)
    r = seq[0].weight.shape[0]
    assert cum[r - 1] >= energy
    assert r == 1 or cum[r - 2] < energy


def test_energy_one_is_full_rank_and_zero_weight_gives_rank_one():
    lin = randomise(nn.Linear(6, 4).double(), 0)
    assert svd_linear(lin, energy=1.0)[0].out_features == 4
    lin.weight.data[...] = 0
    seq = svd_linear(lin, energy=0.5)
    assert seq[0].out_features == 1
    np.testing.assert_array_equal(effective_weight(seq), 0)


def test_factors_split_the_singular_values_evenly():
    lin = randomise(nn.Linear(5, 4).double(), 1)
    seq = svd_linear(lin, rank=3)
    s = singular_values(lin)[:3]
    # A = √S Vᵀ and B = U √S: the rows of A and the columns of B both have norms √s
    np.testing.assert_allclose(np.linalg.norm(seq[0].weight.data, axis=1), np.sqrt(s), rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(seq[1].weight.data, axis=0), np.sqrt(s), rtol=1e-12)


def test_float32_train_eval_flags_and_random_state_are_kept():
    tg.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    conv.eval()
    conv.bias.requires_grad_(False)
    state = tg.random.default_generator().bit_generator.state
    seq = svd_conv2d(conv, energy=0.9)
    assert tg.random.default_generator().bit_generator.state == state  # nothing drawn
    assert not seq.training and not seq[0].training and not seq[1].training
    assert all(p.dtype == np.float32 for p in seq.parameters())
    assert seq[0].weight.requires_grad and seq[1].weight.requires_grad and not seq[1].bias.requires_grad
    x = tg.randn(2, 3, 6, 6)
    assert seq(x).dtype == np.float32


# --- compress() on a model ---------------------------------------------------------------
def test_compress_lenet_reports_and_still_trains():
    tg.manual_seed(0)
    model = LeNet5().double()
    before_total = n_params(model)
    old_first = model.classifier[1]
    report = compress(model, rank=8)
    assert isinstance(report, CompressionReport) and all(isinstance(r, LayerReport) for r in report)
    assert [r.name for r in report] == ["classifier.1", "classifier.3", "classifier.5"]
    by_name = {r.name: r for r in report}
    fc1 = by_name["classifier.1"]
    assert (fc1.kind, fc1.rank, fc1.full_rank, fc1.replaced) == ("Linear", 8, 120, True)
    assert fc1.params_before == 400 * 120 + 120 and fc1.params_after == 8 * (400 + 120) + 120
    s = singular_values(old_first)
    assert fc1.relative_error == pytest.approx(np.sqrt(np.sum(s[8:] ** 2) / np.sum(s**2)), rel=1e-12)
    fc3 = by_name["classifier.5"]  # 84 -> 10: rank 8 would need 8·94 + 10 = 762 < 850 parameters
    assert fc3.replaced and fc3.params_after == 8 * 94 + 10
    assert n_params(model) == before_total - sum(r.params_before - r.params_after for r in report)
    assert report.params_before - report.params_after == before_total - n_params(model)
    assert isinstance(model.classifier[1], nn.Sequential)
    assert "classifier.1" in str(report)
    # the model still runs forward and backward, and trains
    x, y = tg.randn(4, 1, 28, 28, dtype=tg.float64), np.array([0, 1, 2, 3])
    opt = optim.SGD(model.parameters(), lr=0.01)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    opt.step()
    assert F.cross_entropy(model(x), y).item() < loss.item()


def test_compress_skips_layers_that_would_grow_unless_forced():
    tg.manual_seed(3)
    model = LeNet5().double()
    x = tg.randn(2, 1, 28, 28, dtype=tg.float64)
    y0 = model(x).data
    report = compress(model, energy=1.0, layers=["classifier.5", "features.3"])
    assert [(r.name, r.replaced) for r in report] == [("classifier.5", False), ("features.3", False)]
    assert all(r.params_after == r.params_before and r.relative_error == 0.0 for r in report)
    assert isinstance(model.classifier[5], nn.Linear)
    forced = compress(model, energy=1.0, layers=["classifier.5", "features.3", "features.0"], force=True)
    assert all(r.replaced and r.rank == r.full_rank for r in forced)
    assert {r.name: r.full_rank for r in forced} == {"classifier.5": 10, "features.3": 30, "features.0": 5}
    assert forced[0].params_after > forced[0].params_before
    np.testing.assert_allclose(model(x).data, y0, rtol=1e-9, atol=1e-9)  # full rank: the same function


def test_compress_conv_layers_by_name_keeps_mode_and_frozen_flags():
    model = LeNet5()
    model.features.requires_grad_(False)
    model.eval()
    report = compress(model, rank=3, layers="features.3")
    assert len(report) == 1 and report[0].replaced and report[0].kind == "Conv2d"
    new = model.features[3]
    assert isinstance(new, nn.Sequential) and not new.training
    assert all(not p.requires_grad and p.dtype == np.float32 for p in new.parameters())
    assert new[0].weight.shape == (3, 6, 5, 1) and new[1].weight.shape == (16, 3, 1, 5)
    assert model(tg.randn(1, 1, 28, 28)).shape == (1, 10)


@pytest.mark.parametrize("call,exc,match", [
    (lambda m: compress(m), ValueError, "exactly one of rank and energy"),
    (lambda m: compress(m, rank=2, energy=0.5), ValueError, "exactly one of rank and energy"),
    (lambda m: compress(m, rank=0), ValueError, "rank must be an integer >= 1"),
    (lambda m: compress(m, rank=2.5), ValueError, "rank must be an integer"),
    (lambda m: compress(m, energy=0.0), ValueError, r"energy must be in \(0, 1\]"),
    (lambda m: compress(m, energy=1.5), ValueError, "energy must be"),
    (lambda m: compress(m, rank=2, layers=["classifier.9"]), ValueError, "'classifier.9' is not a sub-module"),
    (lambda m: compress(m, rank=2, layers=["features.1"]), TypeError, "expected an nn.Linear or nn.Conv2d, got ReLU"),
    (lambda m: compress(m, rank=2, layers=[""]), ValueError, "cannot be replaced in place"),
    (lambda m: compress(nn.Linear(3, 2), rank=1), ValueError, "use svd_linear"),
    (lambda m: compress(object(), rank=1), TypeError, "must be an nn.Module"),
    (lambda m: svd_linear(m.classifier[1], rank=121), ValueError, "rank 121 exceeds the full rank 120"),
    (lambda m: svd_linear(m.features[0], rank=1), TypeError, "use svd_conv2d"),
    (lambda m: svd_conv2d(m.classifier[1], rank=1), TypeError, "use svd_linear"),
    (lambda m: svd_conv2d(m.features[0], rank=6), ValueError, "rank 6 exceeds the full rank 5"),
    (lambda m: svd_conv2d(nn.Conv2d(4, 4, 3, groups=2), rank=1), NotImplementedError, "groups=2"),
    (lambda m: svd_linear(m.classifier[1]), ValueError, "exactly one of rank and energy"),
    (lambda m: singular_values(nn.ReLU()), TypeError, "got ReLU"),
    (lambda m: singular_values(nn.ConvTranspose2d(2, 2, 3)), TypeError, "got ConvTranspose2d"),
])
def test_bad_arguments_raise_clear_errors(call, exc, match):
    model = LeNet5()
    before = [p.data.copy() for p in model.parameters()]
    with pytest.raises(exc, match=match):
        call(model)
    assert all(np.array_equal(a, p.data) for a, p in zip(before, model.parameters()))  # nothing changed
    assert isinstance(model.classifier[1], nn.Linear)


# --- freezing (transfer learning) --------------------------------------------------------
@pytest.mark.parametrize("make_opt", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-2),
    lambda ps: optim.Adam(ps, lr=1e-2, weight_decay=1e-2),
])
def test_frozen_parameters_stay_bit_identical(make_opt):
    tg.manual_seed(1)
    model = LeNet5().double()
    model.features.requires_grad_(False)  # freeze the feature extractor, train the head
    compress(model, rank=16)  # a compressed head trains too
    frozen = {n: p.data.copy() for n, p in model.named_parameters() if n.startswith("features")}
    head = {n: p.data.copy() for n, p in model.named_parameters() if n.startswith("classifier")}
    opt = make_opt(model.parameters())  # all parameters, frozen ones included: they get no gradient
    x, y = tg.randn(8, 1, 28, 28, dtype=tg.float64), np.arange(8) % 10
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    for n, p in model.named_parameters():
        if n in frozen:
            assert p.grad is None and not p.requires_grad
            np.testing.assert_array_equal(p.data, frozen[n], err_msg=n)
    assert all(not np.array_equal(p.data, head[n]) for n, p in model.named_parameters() if n in head)


def test_param_groups_train_a_head_faster_than_a_backbone():
    model = LeNet5().double()
    opt = optim.SGD([{"params": model.features.parameters(), "lr": 0.0},
                     {"params": model.classifier.parameters()}], lr=0.1)
    before = [p.data.copy() for p in model.features.parameters()]
    F.cross_entropy(model(tg.randn(2, 1, 28, 28, dtype=tg.float64)), np.array([1, 2])).backward()
    opt.step()
    assert all(np.array_equal(a, p.data) for a, p in zip(before, model.features.parameters()))


def test_compress_keeps_cuda_parameters_on_the_gpu():
    if not tg.cuda.is_available():
        pytest.skip("CUDA tensors are not available here (no GPU, no simulator)")
    tg.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.Flatten(), nn.Linear(48, 5)).double()
    x = tg.randn(2, 2, 4, 4, dtype=tg.float64)
    expected = model(x).data
    model.cuda()
    report = compress(model, rank=6, layers=["0", "2"], force=True)
    assert [r.rank for r in report] == [6, 5]
    assert all(p.device == "cuda" for p in model.parameters())
    out = model(x.cuda())
    assert out.device == "cuda"
    np.testing.assert_allclose(out.cpu().data, expected, rtol=1e-10, atol=1e-12)
