"""tinygrad_cv.visualize: every method against its formula, on tiny networks in float64.

The closed forms checked here: saliency is the input gradient; the guided and
deconvnet ReLU rules, by hand; CAM is the class-weighted sum of the last maps,
and Grad-CAM on a GAP + linear head is ReLU(CAM) / (h w); occlusion of a linear
model; receptive fields of LeNet-5 and GapNet, and against the support of a
unit's input gradient; PCA against numpy's SVD.
"""
import sys

import numpy as np
import pytest

import tinygrad_cv as tg
from tinygrad_cv import nn
from tinygrad_cv import visualize as V
from tinygrad_cv.models import GapNet, LeNet5


def images(n, c=1, h=28, w=28, seed=0):
    return np.random.default_rng(seed).standard_normal((n, c, h, w))


@pytest.fixture(scope="module")
def lenet():
    tg.manual_seed(0)
    return LeNet5().double().eval()


@pytest.fixture(scope="module")
def gapnet():
    tg.manual_seed(1)
    return GapNet(channels=(4, 6, 8)).double().eval()


def score_gradient(model, x, target):
    """d S_target / dx straight from tinygrad_cv.grad, one image at a time."""
    out = []
    for n in range(len(x)):
        xt = tg.tensor(x[n:n + 1], requires_grad=True)
        (g,) = tg.grad(model(xt)[0, int(target[n])], [xt])
        out.append(g.numpy()[0])
    return np.stack(out)


# --- saliency and SmoothGrad ---------------------------------------------------------------------
def test_saliency_is_the_max_over_channels_of_the_absolute_input_gradient():
    tg.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 5)).double()
    x = images(3, c=3, h=8, w=8)
    with tg.no_grad():
        predicted = model(tg.tensor(x)).numpy().argmax(1)
    expected = score_gradient(model, x, predicted)
    np.testing.assert_allclose(V.input_gradient(model, x), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(V.saliency(model, x), np.abs(expected).max(axis=1), rtol=1e-12, atol=1e-14)
    targets = [4, 0, 2]
    np.testing.assert_allclose(V.saliency(model, x, targets), np.abs(score_gradient(model, x, targets)).max(1),
                               rtol=1e-12, atol=1e-14)
    assert all(p.grad is None for p in model.parameters())  # tg.grad: parameters' .grad untouched


def test_smoothgrad_is_the_mean_gradient_over_seeded_noisy_copies(lenet):
    x = images(2)
    np.testing.assert_allclose(V.smoothgrad(lenet, x, noise=0.0, n_samples=3), V.saliency(lenet, x), rtol=1e-12)
    a = V.smoothgrad(lenet, x, n_samples=6, seed=3, reduce=False)
    np.testing.assert_array_equal(a, V.smoothgrad(lenet, x, n_samples=6, seed=3, reduce=False))
    assert not np.allclose(a, V.smoothgrad(lenet, x, n_samples=6, seed=4, reduce=False))
    # by hand: the same noise, the target fixed from the clean images
    with tg.no_grad():
        clean = lenet(tg.tensor(x)).numpy().argmax(1)
    rng = np.random.default_rng(3)
    sigma = 0.15 * (x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3)))
    noisy = x[:, None] + rng.standard_normal((2, 6) + x.shape[1:]) * sigma[:, None, None, None, None]
    expected = np.stack([score_gradient(lenet, noisy[n], [clean[n]] * 6).mean(0) for n in range(2)])
    np.testing.assert_allclose(a, expected, rtol=1e-10, atol=1e-12)


# --- guided backpropagation and the deconvnet ---------------------------------------------------------
def relu_net():
    """x (4 numbers) -> Linear -> ReLU -> Linear -> 1 score: one ReLU, every sign case set by hand."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 4, dtype=tg.float64), nn.ReLU(), nn.Linear(4, 1, dtype=tg.float64))
    with tg.no_grad():
        net[1].weight.data[...] = np.eye(4)
        net[1].bias.data[...] = 0.0
        net[3].weight.data[...] = [[2.0, -3.0, 5.0, -7.0]]   # the upstream signal g at each ReLU unit
        net[3].bias.data[...] = 0.0
    return net


def test_guided_backprop_and_deconvnet_rules_by_hand():
    net = relu_net()
    # forward inputs of the ReLU: a = x; units 0, 1 have a > 0, units 2, 3 have a <= 0 (one exactly 0)
    x = np.array([1.5, 0.5, -2.0, 0.0]).reshape(1, 1, 1, 4)
    g = np.array([2.0, -3.0, 5.0, -7.0])
    a = x.reshape(4)
    backprop = g * (a > 0)                      # [2, -3, 0, 0]
    guided = g * (a > 0) * (g > 0)              # [2,  0, 0, 0]: zero where a <= 0 or g <= 0
    deconv = np.maximum(g, 0)                   # [2,  0, 5, 0]: the forward input ignored
    np.testing.assert_array_equal(V.input_gradient(net, x, 0).reshape(4), backprop)
    np.testing.assert_array_equal(V.guided_backprop(net, x, 0).reshape(4), guided)
    np.testing.assert_array_equal(V.deconvnet(net, x, 0).reshape(4), deconv)
    # the hooks are gone afterwards: plain backprop again
    np.testing.assert_array_equal(V.input_gradient(net, x, 0).reshape(4), backprop)


def test_guided_backprop_applies_the_rule_at_every_relu():
    # two ReLUs in a row: a1 = W1 x, h = relu(a1), a2 = W2 h, s = v . relu(a2)
    tg.manual_seed(3)
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 1)).double()
    W1, b1 = net[1].weight.data, net[1].bias.data
    W2, b2 = net[3].weight.data, net[3].bias.data
    v = net[5].weight.data[0]
    for seed in range(5):
        x = np.random.default_rng(seed).standard_normal((1, 1, 2, 3))
        a1 = W1 @ x.reshape(6) + b1
        a2 = W2 @ np.maximum(a1, 0) + b2
        g2 = v * (a2 > 0) * (v > 0)
        u = W2.T @ g2
        guided = W1.T @ (u * (a1 > 0) * (u > 0))
        d2 = np.maximum(v, 0)
        u = W2.T @ d2
        deconv = W1.T @ np.maximum(u, 0)
        np.testing.assert_allclose(V.guided_backprop(net, x, 0).reshape(6), guided, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(V.deconvnet(net, x, 0).reshape(6), deconv, rtol=1e-12, atol=1e-14)


def test_relu_backward_rule_errors_and_cleanup():
    net = relu_net()
    with pytest.raises(ValueError, match="rule must be one of"):
        with V.relu_backward_rule(net, "guidedd"):
            pass
    no_relu = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, dtype=tg.float64))
    with pytest.raises(ValueError, match="no nn.ReLU modules"):
        V.guided_backprop(no_relu, np.ones((1, 1, 1, 4)))
    x = np.array([1.5, 0.5, -2.0, 0.0]).reshape(1, 1, 1, 4)
    with pytest.raises(RuntimeError):
        with V.relu_backward_rule(net, "deconvnet"):
            raise RuntimeError("interrupted")
    np.testing.assert_array_equal(V.input_gradient(net, x, 0).reshape(4), [2.0, -3.0, 0.0, 0.0])


def test_guided_backprop_of_a_unit_uses_its_strongest_activation(lenet):
    x = images(2)
    fm = V.feature_maps(lenet, "features.4", x)
    unit = 5
    # the plain-gradient version against tg.grad of max_ij A[unit] directly
    expected = []
    for n in range(2):
        xt = tg.tensor(x[n:n + 1], requires_grad=True)
        a = lenet.features[:5](xt)
        (g,) = tg.grad(a[0, unit].amax(), [xt])
        expected.append(g.numpy()[0])
    np.testing.assert_allclose(V.input_gradient(lenet, x, unit, layer="features.4"), np.stack(expected), rtol=1e-12)
    assert np.all(fm[:, unit].max(axis=(1, 2)) > 0)  # the unit fires, so its guided signal is not all zero
    gb = V.guided_backprop(lenet, x, unit, layer="features.4")
    assert gb.shape == x.shape and np.abs(gb).max() > 0
    with pytest.raises(ValueError, match="give its index"):
        V.input_gradient(lenet, x, None, layer="features.4")
    with pytest.raises(ValueError, match=r"unit must lie in \[0, 16\)"):
        V.input_gradient(lenet, x, 16, layer="features.4")


# --- CAM and Grad-CAM -----------------------------------------------------------------------------------
def test_cam_is_the_class_weighted_sum_of_the_last_feature_maps(gapnet):
    x = images(3)
    A = V.feature_maps(gapnet, "features", x)                      # (N, K, 7, 7)
    w, b = gapnet.fc.weight.data, gapnet.fc.bias.data
    with tg.no_grad():
        logits = gapnet(tg.tensor(x)).numpy()
    for target in (None, 4, [1, 2, 3]):
        t = logits.argmax(1) if target is None else np.broadcast_to(target, (3,))
        cam = V.class_activation_map(gapnet, x, target, upsample=False)
        np.testing.assert_allclose(cam, np.einsum("nk,nkij->nij", w[t], A), rtol=1e-12, atol=1e-14)
        # and the score is the map's average plus the bias
        np.testing.assert_allclose(cam.mean(axis=(1, 2)) + b[t], logits[np.arange(3), t], rtol=1e-10)
    up = V.class_activation_map(gapnet, x)
    assert up.shape == (3, 28, 28)
    # up-sampling by 4 with aligned pixel centres keeps the mean of each map
    np.testing.assert_allclose(up.mean(axis=(1, 2)), V.class_activation_map(gapnet, x, upsample=False).mean(axis=(1, 2)),
                               rtol=1e-10)


def test_grad_cam_on_a_gap_linear_head_is_relu_cam_over_hw(gapnet):
    x = images(4, seed=5)
    for target in (None, 7):
        cam = V.class_activation_map(gapnet, x, target, upsample=False)
        gc = V.grad_cam(gapnet, x, "features", target, upsample=False)
        h, w = cam.shape[1:]
        assert np.any(cam < 0) and np.any(cam > 0)  # the ReLU has something to do
        np.testing.assert_allclose(gc, np.maximum(cam, 0) / (h * w), rtol=1e-10, atol=1e-14)


def test_grad_cam_formula_at_an_inner_layer(lenet):
    x = images(2, seed=6)
    gc = V.grad_cam(lenet, x, "features.4", target=3, upsample=False)
    expected = []
    for n in range(2):
        xt = tg.tensor(x[n:n + 1])
        a = lenet.features[:5](xt)
        a.retain_grad()
        a_in = a.detach().requires_grad_()
        score = lenet.classifier(lenet.features[5](a_in))[0, 3]
        (g,) = tg.grad(score, [a_in])
        alpha = g.numpy()[0].mean(axis=(1, 2))
        expected.append(np.maximum(np.einsum("k,kij->ij", alpha, a.detach().numpy()[0]), 0))
    np.testing.assert_allclose(gc, np.stack(expected), rtol=1e-10, atol=1e-14)
    assert V.grad_cam(lenet, x, "features.4").shape == (2, 28, 28)
    with pytest.raises(ValueError, match="must give feature maps"):
        V.grad_cam(lenet, x, "classifier.2")


def test_cam_refuses_a_network_without_a_gap_linear_head(lenet, gapnet):
    x = images(1)
    with pytest.raises(ValueError, match="must be the final Linear layer"):
        V.class_activation_map(gapnet, x, features="features", classifier="pool")
    with pytest.raises(ValueError, match="maps"):
        V.class_activation_map(lenet, x, features="features", classifier="classifier.5")
    # shapes that fit but a head that is not the average: LeNet's 16 maps -> Linear(16, 10) would fit a
    # GapNet-like check; a network whose scores are not mean(A) w^T + b is refused
    tg.manual_seed(0)
    fake = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3),
                         nn.Tanh()).double()
    with pytest.raises(ValueError, match="use grad_cam"):
        V.class_activation_map(fake, images(2, h=6, w=6), features="1", classifier="4")


def test_resize_is_bilinear_with_aligned_centres():
    m = np.arange(6, dtype=np.float64).reshape(1, 2, 3)
    np.testing.assert_allclose(V.resize(m, (2, 3)), m)
    up = V.resize(np.array([[[0.0, 1.0]]]), (1, 4))
    np.testing.assert_allclose(up, [[[0.0, 0.25, 0.75, 1.0]]])
    with pytest.raises(ValueError, match=r"\(N, h, w\)"):
        V.resize(np.zeros((2, 2)), (4, 4))


# --- occlusion ------------------------------------------------------------------------------------------
def test_occlusion_of_a_linear_model_has_a_closed_form():
    tg.manual_seed(4)
    c, h, w, k = 2, 7, 6, 3
    model = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, k)).double()
    W = model[1].weight.data.reshape(k, c, h, w)
    x = images(2, c=c, h=h, w=w)
    fill, patch, stride, t = 0.3, 3, 2, np.array([1, 2])
    # the score drops by sum over the square of w_t (x - fill)
    expected_score = np.zeros((2, 4, 3))
    logits = np.einsum("kchw,nchw->nk", W, x) + model[1].bias.data
    expected_prob = np.zeros((2, 4, 3))
    for n in range(2):
        contrib = (W[t[n]] * (x[n] - fill)).sum(0)
        for a, r in enumerate(range(0, h, stride)):
            for b, col in enumerate(range(0, w, stride)):
                rows = slice(max(r - 1, 0), r + 2)
                cols = slice(max(col - 1, 0), col + 2)
                expected_score[n, a, b] = contrib[rows, cols].sum()
                delta = (W[:, :, rows, cols] * (x[n, :, rows, cols] - fill)).sum(axis=(1, 2, 3))
                p, q = np.exp(logits[n]), np.exp(logits[n] - delta)
                expected_prob[n, a, b] = p[t[n]] / p.sum() - q[t[n]] / q.sum()
    got = V.occlusion(model, x, t, patch=patch, stride=stride, fill=fill, output="score", batch_size=5)
    np.testing.assert_allclose(got, expected_score, rtol=1e-10, atol=1e-12)
    got = V.occlusion(model, x, t, patch=patch, stride=stride, fill=fill, batch_size=4)
    np.testing.assert_allclose(got, expected_prob, rtol=1e-10, atol=1e-12)
    # stride 1: one value per pixel
    assert V.occlusion(model, x, patch=2).shape == (2, h, w)


# --- receptive fields -----------------------------------------------------------------------------------
def test_receptive_fields_of_lenet5_and_gapnet(lenet, gapnet):
    RF = V.ReceptiveField
    # LeNet-5: conv 5x5 pad 2 -> pool 2 -> conv 5x5 -> pool 2
    assert V.receptive_field(lenet, "features.0") == RF((5, 5), (1, 1), (-2, -2))
    assert V.receptive_field(lenet, "features.1") == RF((5, 5), (1, 1), (-2, -2))   # ReLU: unchanged
    assert V.receptive_field(lenet, "features.2") == RF((6, 6), (2, 2), (-2, -2))
    assert V.receptive_field(lenet, "features.3") == RF((14, 14), (2, 2), (-2, -2))
    assert V.receptive_field(lenet, "features.5") == RF((16, 16), (4, 4), (-2, -2))
    # GapNet: three 3x3 pad-1 convs with two 2x2 pools between (batch norm: pointwise)
    assert V.receptive_field(gapnet, "features.0") == RF((3, 3), (1, 1), (-1, -1))
    assert V.receptive_field(gapnet, "features.4") == RF((8, 8), (2, 2), (-3, -3))
    assert V.receptive_field(gapnet, "features.10") == RF((18, 18), (4, 4), (-7, -7))
    assert V.receptive_field(GapNet(batch_norm=False), "features.7") == RF((18, 18), (4, 4), (-7, -7))


def test_receptive_field_is_the_support_of_the_input_gradient():
    # positive weights, so nothing cancels: a unit's input gradient is non-zero on its window (and only there)
    # (average pooling: a max pool sends the gradient to one winner only, so its support is not the window;
    # its geometry is the same, checked on the twin below)
    def net(pool):
        return nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, padding=1), nn.AvgPool2d(2, stride=1),
                             nn.Conv2d(2, 2, (3, 2), dilation=(2, 1), padding=(2, 0)), nn.ReLU(),
                             pool(3, stride=2, padding=1), nn.Conv2d(2, 1, 3, padding="same")).double()

    model, twin = net(nn.AvgPool2d), net(nn.MaxPool2d)
    for p in model.parameters():
        p.data[...] = 1.0
    H = W = 48
    x = np.ones((1, 1, H, W))
    for layer in ("0", "1", "2", "4", "5"):
        rf = V.receptive_field(model, layer)
        assert V.receptive_field(twin, layer) == rf
        out_h, out_w = V.feature_maps(model, layer, x).shape[2:]
        for i, j in ((0, 0), (out_h // 2, out_w // 2 + 1)):
            xt = tg.tensor(x, requires_grad=True)
            (g,) = tg.grad(model[:int(layer) + 1](xt)[0, 0, i, j], [xt])
            rows, cols = np.nonzero(g.numpy()[0, 0])
            top, left = rf.offset[0] + i * rf.stride[0], rf.offset[1] + j * rf.stride[1]
            bottom, right = top + rf.size[0] - 1, left + rf.size[1] - 1
            if top >= 0 and left >= 0 and bottom < H and right < W:  # inside the image: exactly the window
                assert (rows.min(), rows.max(), cols.min(), cols.max()) == (top, bottom, left, right), (layer, rf)
            else:  # at the border part of the window is padding, seen as zeros
                assert rows.min() >= top and rows.max() <= bottom and cols.min() >= left and cols.max() <= right
        assert 0 < out_h // 2 and top >= 0 and bottom < H, "the middle unit must be an interior one"


def test_receptive_field_errors(lenet):
    with pytest.raises(ValueError, match="whole input"):
        V.receptive_field(lenet, "classifier.1")
    with pytest.raises(ValueError, match="container"):
        V.receptive_field(lenet, "features")

    class Odd(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(ValueError, match="don't know the geometry"):
        V.receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3), Odd(), nn.Conv2d(1, 1, 3)), "2")


def test_receptive_field_patches_are_crops_with_the_padding_filled():
    x = np.arange(2 * 1 * 6 * 6, dtype=np.float64).reshape(2, 1, 6, 6)
    rf = V.ReceptiveField((3, 3), (2, 2), (-1, -1))
    patches = V.receptive_field_patches(x, np.array([[1, 0]]), np.array([[[1, 1], [0, 0]]]), rf, fill=-5.0)
    assert patches.shape == (1, 2, 1, 3, 3)
    np.testing.assert_array_equal(patches[0, 0, 0], x[1, 0, 1:4, 1:4])
    np.testing.assert_array_equal(patches[0, 1, 0, 1:, 1:], x[0, 0, :2, :2])
    assert np.all(patches[0, 1, 0, 0] == -5.0) and np.all(patches[0, 1, 0, :, 0] == -5.0)


# --- weights and activations ----------------------------------------------------------------------------
def test_filters_are_scaled_per_filter_and_laid_out(lenet):
    w = V.filters(lenet, "features.3")
    assert w.shape == (16, 6, 5, 5)
    np.testing.assert_allclose(w.min(axis=(1, 2, 3)), 0)
    np.testing.assert_allclose(w.max(axis=(1, 2, 3)), 1)
    raw = lenet.features[3].weight.data[2]
    np.testing.assert_allclose(w[2], (raw - raw.min()) / (raw.max() - raw.min()))
    assert V.filter_grid(lenet, "features.0", ncols=3).shape == (2 * 6 + 1, 3 * 6 + 1)   # 5x5 tiles, 1 px apart
    assert V.filter_grid(lenet, "features.3").shape == (16 * 6 + 1, 6 * 6 + 1)      # a row per filter
    tg.manual_seed(0)
    rgb = nn.Sequential(nn.Conv2d(3, 4, 3))
    assert V.filter_grid(rgb, "0").shape == (2 * 4 + 1, 2 * 4 + 1, 3)
    assert V.filter_grid(rgb, "0", mode="channels").shape == (4 * 4 + 1, 3 * 4 + 1)
    with pytest.raises(ValueError, match="needs 3 input channels"):
        V.filter_grid(lenet, "features.0", mode="rgb")
    with pytest.raises(ValueError, match="not a Conv2d"):
        V.filters(lenet, "features.2")


def test_feature_maps_are_the_layer_outputs(lenet):
    x = images(2)
    with tg.no_grad():
        expected = lenet.features[:4](tg.tensor(x)).numpy()
    np.testing.assert_allclose(V.feature_maps(lenet, "features.3", x), expected, rtol=1e-12)
    assert V.feature_maps(lenet, "classifier.4", x).shape == (2, 84)


def test_top_activations_rank_images_by_a_units_strongest_response(lenet):
    x = images(12, seed=7)
    A = V.feature_maps(lenet, "features.4", x)          # (12, 16, 10, 10)
    top = V.top_activations(lenet, "features.4", x, units=[3, 9], k=4, batch_size=5)
    for row, unit in enumerate([3, 9]):
        best = A[:, unit].reshape(12, -1).max(1)
        order = np.argsort(-best, kind="stable")[:4]
        np.testing.assert_array_equal(top.indices[row], order)
        np.testing.assert_allclose(top.values[row], best[order])
        for r, n in enumerate(order):
            i, j = top.positions[row, r]
            assert A[n, unit, i, j] == best[n]
            # the patch is the 14 x 14 window of rows -2 + 2i ... (pixels outside the image: the minimum)
            top_row, left = -2 + 2 * i, -2 + 2 * j
            crop = x[n, 0, max(top_row, 0):top_row + 14, max(left, 0):left + 14]
            patch = top.patches[row, r, 0]
            np.testing.assert_array_equal(patch[max(-top_row, 0):max(-top_row, 0) + crop.shape[0],
                                                max(-left, 0):max(-left, 0) + crop.shape[1]], crop)
    assert top.patches.shape == (2, 4, 1, 14, 14)
    vec = V.top_activations(lenet, "classifier.2", x, units=[0], k=3)
    assert vec.patches.shape == (1, 3, 1, 28, 28)                    # a vector unit sees the whole image
    assert V.top_activations(lenet, "features.4", x, units=[0], k=2, patches=False).patches is None
    with pytest.raises(ValueError, match="k must be between"):
        V.top_activations(lenet, "features.4", x, k=13)
    with pytest.raises(ValueError, match="units must be channel indices"):
        V.top_activations(lenet, "features.4", x, units=[16])


# --- optimising the input -------------------------------------------------------------------------------
def test_activation_maximization_raises_the_class_score_and_is_seeded(lenet):
    history = []
    imgs = V.activation_maximization(lenet, [0, 3, 7], (1, 28, 28), steps=25, lr=0.3, l2=1e-4, seed=1,
                                     history=history)
    assert imgs.shape == (3, 1, 28, 28) and len(history) == 25
    with tg.no_grad():
        final = lenet(tg.tensor(imgs)).numpy()[np.arange(3), [0, 3, 7]]
    assert np.all(final > history[0] + 0.03)   # an untrained network: small scores, but every one rises
    again = V.activation_maximization(lenet, [0, 3, 7], (1, 28, 28), steps=25, lr=0.3, l2=1e-4, seed=1)
    np.testing.assert_array_equal(imgs, again)
    other = V.activation_maximization(lenet, [0, 3, 7], (1, 28, 28), steps=25, lr=0.3, l2=1e-4, seed=2)
    assert not np.array_equal(imgs, other)
    clipped = V.activation_maximization(lenet, [1], (1, 28, 28), steps=5, clip=(-0.2, 0.3))
    assert clipped.min() >= -0.2 and clipped.max() <= 0.3
    # a unit of a layer instead of a class
    unit_hist = []
    V.activation_maximization(lenet, [2], (1, 28, 28), layer="features.4", steps=15, l2=1e-4, history=unit_hist)
    assert unit_hist[-1][0] > unit_hist[0][0]


def test_inversion_reduces_the_representation_loss(lenet):
    x0 = images(2, seed=8)
    history = []
    inv = V.invert_representation(lenet, "features.2", x0, steps=40, lr=0.05, history=history)
    assert inv.shape == x0.shape and len(history) == 40
    assert history[-1] < 0.5 * history[0]
    # the loss recorded is the normalised distance of the representations
    phi0 = V.feature_maps(lenet, "features.2", x0).reshape(2, -1)
    x_start = np.random.default_rng(0).standard_normal(x0.shape) * 0.1
    phi = V.feature_maps(lenet, "features.2", x_start).reshape(2, -1)
    np.testing.assert_allclose(history[0], (((phi - phi0) ** 2).sum(1) / (phi0 ** 2).sum(1)).sum(), rtol=1e-6)


def test_total_variation_and_blur():
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 1.0
    # beta = 2: the four differences touching the centre, each +-1, over N H W = 9 positions
    tv = V.total_variation(tg.tensor(x))
    assert abs(tv.item() - 4 / 9) < 1e-12
    corner = np.zeros((1, 1, 3, 3))
    corner[0, 0, 2, 2] = 1.0                       # the last pixel is tied to its neighbours too
    assert abs(V.total_variation(tg.tensor(corner)).item() - 2 / 9) < 1e-12
    beta1 = V.total_variation(tg.tensor(x), beta=1.0, eps=0.0)
    assert abs(beta1.item() - (1 + 1 + np.sqrt(2)) / 9) < 1e-12   # left of, above, at the centre
    b = V.gaussian_blur(np.ones((1, 1, 5, 5)) * 2.0, 1.0)
    np.testing.assert_allclose(b, 2.0)                         # a constant image stays constant
    spike = np.zeros((1, 1, 9, 9))
    spike[0, 0, 4, 4] = 1.0
    blurred = V.gaussian_blur(spike, 1.0)
    assert abs(blurred.sum() - 1.0) < 1e-9 and blurred[0, 0, 4, 4] < 0.2


# --- embeddings and separability ------------------------------------------------------------------------
def test_pca_matches_numpy_svd():
    rng = np.random.default_rng(9)
    X = rng.standard_normal((50, 6)) @ rng.standard_normal((6, 6)) + 3.0
    Z = V.pca(X, 3)
    U, S, Vt = np.linalg.svd(X - X.mean(0), full_matrices=False)
    for k in range(3):
        ref = U[:, k] * S[k]
        sign = np.sign(ref @ Z[:, k])
        np.testing.assert_allclose(Z[:, k], sign * ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(Z.var(0), (S[:3] ** 2) / 50, rtol=1e-10)   # decreasing variances
    with pytest.raises(ValueError, match="n_components"):
        V.pca(X, 7)


def test_tsne_needs_scikit_learn(monkeypatch):
    X = np.random.default_rng(0).standard_normal((30, 5))
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        V.tsne(X)


def test_tsne_embeds_when_scikit_learn_is_there():
    pytest.importorskip("sklearn")
    X = np.random.default_rng(0).standard_normal((40, 5))
    Z = V.tsne(X, seed=0)
    assert Z.shape == (40, 2)
    np.testing.assert_array_equal(Z, V.tsne(X, seed=0))


def test_knn_and_linear_probe_accuracies():
    rng = np.random.default_rng(10)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    y = rng.integers(0, 3, 90)
    X = centres[y] + rng.standard_normal((90, 2))
    assert V.knn_accuracy(X[:60], y[:60], X[60:], y[60:], k=3) == 1.0
    assert V.linear_probe_accuracy(X[:60], y[:60], X[60:], y[60:]) == 1.0
    # shuffled labels: chance level, not 1
    assert V.knn_accuracy(X[:60], rng.permutation(y[:60]), X[60:], y[60:], k=3) < 0.7
    # k-NN by hand on four points: the tie 1-1 goes to the nearer neighbour's class
    train = np.array([[0.0], [1.0], [3.0], [10.0]])
    assert V.knn_accuracy(train, [0, 1, 1, 0], np.array([[0.4]]), [0], k=2) == 1.0
    assert V.knn_accuracy(train, [0, 1, 1, 0], np.array([[0.6]]), [1], k=2) == 1.0
    with pytest.raises(ValueError, match="k must be between"):
        V.knn_accuracy(train, [0, 1, 1, 0], np.array([[0.4]]), [0], k=5)
    # the closed form by hand (standardised features, centred one-hot targets, unpenalised intercept),
    # with more features than rows
    Xw = np.hstack([X, rng.standard_normal((90, 80))])
    mu, sd = Xw[:60].mean(0), Xw[:60].std(0)
    Y = np.eye(3)[y[:60]]
    A = (Xw[:60] - mu) / sd
    W = np.linalg.solve(A.T @ A + 7.0 * np.eye(82), A.T @ (Y - Y.mean(0)))
    pred = (((Xw[60:] - mu) / sd) @ W + Y.mean(0)).argmax(1)
    assert V.linear_probe_accuracy(Xw[:60], y[:60], Xw[60:], y[60:], l2=7.0) == np.mean(pred == y[60:])
    # lambda chosen by cross-validation on the training rows: one of the grid's, so the accuracy is one of theirs
    grid = [V.linear_probe_accuracy(Xw[:60], y[:60], Xw[60:], y[60:], l2=10.0 ** k) for k in range(-2, 6)]
    assert V.linear_probe_accuracy(Xw[:60], y[:60], Xw[60:], y[60:]) in grid
    with pytest.raises(ValueError, match="folds"):
        V.linear_probe_accuracy(X[:60], y[:60], X[60:], y[60:], folds=1)


def test_layer_separability_and_features(lenet):
    x = images(40, seed=11)
    y = np.arange(40) % 4
    feats = V.layer_features(lenet, ["input", "features.2", "classifier.4"], x, batch_size=16)
    assert list(feats) == ["input", "features.2", "classifier.4"]
    assert [f.shape for f in feats.values()] == [(40, 784), (40, 6 * 14 * 14), (40, 84)]
    sep = V.layer_separability(lenet, ["input", "classifier.4"], x, y, holdout=0.25, k=3)
    assert list(sep) == ["input", "classifier.4"] and all(0 <= v <= 1 for v in sep.values())
    assert V.layer_separability(lenet, ["input"], x, y, method="linear") == V.layer_separability(
        lenet, ["input"], x, y, method="linear")
    with pytest.raises(ValueError, match="method must be"):
        V.layer_separability(lenet, ["input"], x, y, method="svm")
    with pytest.raises(ValueError, match="one label per image"):
        V.layer_separability(lenet, ["input"], x, y[:5])


# --- modes and bad arguments ----------------------------------------------------------------------------
def test_evaluation_mode_inside_and_restored_after():
    tg.manual_seed(5)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3)).double()
    model.train()
    model[3].eval()   # a module in another mode than its parent keeps it
    x = images(2, h=4, w=4)
    a, b = V.saliency(model, x, 1), V.saliency(model, x, 1)
    np.testing.assert_array_equal(a, b)                     # no dropout: evaluation mode
    assert model.training and model[1].training and not model[3].training


def test_bad_arguments_get_clear_errors(lenet):
    x = images(2)
    with pytest.raises(ValueError, match=r"unknown layer 'conv1'.*features\.0 \(Conv2d\)"):
        V.feature_maps(lenet, "conv1", x)
    with pytest.raises(TypeError, match="named by a string"):
        V.feature_maps(lenet, 0, x)
    with pytest.raises(ValueError, match=r"for one image use x\[None\]"):
        V.saliency(lenet, x[0])
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        V.occlusion(lenet, x[0, 0])
    with pytest.raises(TypeError, match="floating point"):
        V.saliency(lenet, (x * 100).astype(np.uint8))
    with pytest.raises(ValueError, match=r"target must lie in \[0, 10\)"):
        V.saliency(lenet, x, 10)
    with pytest.raises(ValueError, match="one integer or one per image"):
        V.saliency(lenet, x, [1, 2, 3])
    with pytest.raises(TypeError, match="integer"):
        V.grad_cam(lenet, x, "features.4", target=1.5)
    with pytest.raises(ValueError, match="patch >= 1"):
        V.occlusion(lenet, x, patch=0)
    with pytest.raises(ValueError, match="output must be"):
        V.occlusion(lenet, x, output="logit")
    with pytest.raises(ValueError, match=r"shape is one image's \(C, H, W\)"):
        V.activation_maximization(lenet, [1], (28, 28))
    dead = nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU()).double()
    dead[0].weight.data[...], dead[0].bias.data[...] = 1.0, 0.0
    with pytest.raises(ValueError, match="all-zero"):
        V.invert_representation(dead, "1", -np.ones((1, 1, 4, 4)), steps=1)
    with pytest.raises(TypeError, match="nn.Module"):
        V.get_layer(lambda x: x, "features.0")


# --- plotting -------------------------------------------------------------------------------------------
def test_plotting_helpers_draw_figures(lenet, gapnet, tmp_path):
    pytest.importorskip("matplotlib")
    x = images(3)
    figs = [
        V.plot_images(x, titles=["a", "b", "c"], suptitle="inputs"),
        V.plot_images(V.input_gradient(lenet, x), symmetric=True, cmap="bwr"),
        V.plot_images(np.random.default_rng(0).random((2, 5, 5, 3))),
        V.plot_filters(lenet, "features.0"),
        V.plot_overlay(x, V.class_activation_map(gapnet, x), titles=[0, 1, 2]),
        V.plot_embeddings({"input": V.pca(x.reshape(3, -1)), "fc": V.pca(x.reshape(3, -1)[:, ::-1])},
                          [0, 1, 2], scores={"input": 0.5}),
    ]
    for k, fig in enumerate(figs):
        assert fig.axes
        fig.savefig(tmp_path / f"{k}.png")
        assert (tmp_path / f"{k}.png").stat().st_size > 0
    with pytest.raises(ValueError, match="one \\(H, W\\) heat map per image"):
        V.plot_overlay(x, np.zeros((2, 28, 28)))


def test_plotting_without_matplotlib_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"tinygrad_cv\[plots\]"):
        V.plot_images(images(1))


def test_gapnet_shapes_and_arguments():
    tg.manual_seed(0)
    net = GapNet(in_channels=3, num_classes=5, channels=(2, 3, 4))
    assert net(tg.randn(2, 3, 16, 16)).shape == (2, 5)
    kinds = [type(m).__name__ for m in net.features]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"] * 2 + ["Conv2d", "BatchNorm2d", "ReLU"]
    assert [type(m).__name__ for m in GapNet(batch_norm=False).features] == ["Conv2d", "ReLU", "MaxPool2d"] * 2 + [
        "Conv2d", "ReLU"]
    with pytest.raises(ValueError, match="three positive widths"):
        GapNet(channels=(4, 8))
    with pytest.raises(ValueError, match="positive"):
        GapNet(num_classes=0)


# --- the demo -------------------------------------------------------------------------------------------
def load_demo():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "demos" / "look_inside.py"
    spec = importlib.util.spec_from_file_location("look_inside_demo", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_refuses_bad_options(capsys):
    demo = load_demo()
    for argv in (["--epochs", "-1"], ["--val", "5"], ["--tsne", "3"], ["--limit", "100", "--val", "100"]):
        with pytest.raises(SystemExit):
            demo.parse_args(argv)
    with pytest.raises(demo.UsageError, match="does not exist"):
        demo.main(["--data", "/nonexistent/folder", "--out", "unused"])


def test_demo_draws_every_figure_on_a_tiny_synthetic_mnist(tmp_path):
    # no training (0 epochs) and tiny settings: this checks the plumbing, not the pictures
    pytest.importorskip("matplotlib")
    from tinygrad_cv.data import write_idx

    rng = np.random.default_rng(0)
    for split, n in (("train", 60), ("t10k", 30)):
        write_idx(str(tmp_path / f"{split}-images-idx3-ubyte.gz"), rng.integers(0, 256, (n, 28, 28)).astype(np.uint8))
        write_idx(str(tmp_path / f"{split}-labels-idx1-ubyte.gz"), (np.arange(n) % 10).astype(np.uint8))
    out = tmp_path / "out"
    demo = load_demo()
    assert demo.main(["--data", str(tmp_path), "--out", str(out), "--epochs", "0", "--gap-epochs", "0",
                      "--val", "20", "--steps", "2", "--embed", "20", "--tsne", "0", "--top-images", "30"]) == 0
    names = sorted(p.name for p in out.glob("inside_*.png"))
    assert names == sorted(f"inside_{k}.png" for k in ("filters", "feature_maps", "top_patches", "deconv_guided",
                                                       "saliency", "occlusion", "cam", "class_models", "inversion",
                                                       "embeddings_pca"))
    import json

    results = json.loads((out / "results.json").read_text())
    assert set(results["test_accuracy"]) == {"LeNet-5", "GapNet"}
    assert list(results["separability"]) == ["pixels", "conv1", "pool1", "conv2", "pool2", "fc1", "fc2", "logits"]
    # the checkpoints it wrote load back with --model / --gap-model
    assert demo.main(["--data", str(tmp_path), "--out", str(tmp_path / "again"), "--model", str(out / "lenet5.safetensors"),
                      "--gap-model", str(out / "gapnet.safetensors"), "--val", "20", "--steps", "1", "--embed", "20",
                      "--tsne", "0", "--top-images", "30"]) == 0
