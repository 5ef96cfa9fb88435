"""AlexNet, VGG and NiN (tinygrad_cv.models): torchvision's keys and parameter counts, shapes, LRN, gradients, training."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import floats_array, tensors

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import gradcheck, nn, optim
from tinygrad_cv.nn import LocalResponseNorm
from tinygrad_cv.models import (
    alexnet, conv1x1_block, nin, nin_block, vgg11, vgg16, vgg_small,
)

# torchvision.models.alexnet().state_dict(): key -> shape (torchvision/models/alexnet.py). torchvision is
# not a dependency: test_keys_match_torchvision_when_installed checks these against the real thing.
TORCHVISION_ALEXNET = {
    "features.0.weight": (64, 3, 11, 11), "features.0.bias": (64,),
    "features.3.weight": (192, 64, 5, 5), "features.3.bias": (192,),
    "features.6.weight": (384, 192, 3, 3), "features.6.bias": (384,),
    "features.8.weight": (256, 384, 3, 3), "features.8.bias": (256,),
    "features.10.weight": (256, 256, 3, 3), "features.10.bias": (256,),
    "classifier.1.weight": (4096, 9216), "classifier.1.bias": (4096,),
    "classifier.4.weight": (4096, 4096), "classifier.4.bias": (4096,),
    "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,),
}

# torchvision.models.vgg16().state_dict().keys(), in order
TORCHVISION_VGG16_KEYS = [
    "features.0.weight", "features.0.bias", "features.2.weight", "features.2.bias",
    "features.5.weight", "features.5.bias", "features.7.weight", "features.7.bias",
    "features.10.weight", "features.10.bias", "features.12.weight", "features.12.bias",
    "features.14.weight", "features.14.bias",
    "features.17.weight", "features.17.bias", "features.19.weight", "features.19.bias",
    "features.21.weight", "features.21.bias",
    "features.24.weight", "features.24.bias", "features.26.weight", "features.26.bias",
    "features.28.weight", "features.28.bias",
    "classifier.0.weight", "classifier.0.bias", "classifier.3.weight", "classifier.3.bias",
    "classifier.6.weight", "classifier.6.bias",
]

# torchvision.models.vgg11().state_dict().keys()
TORCHVISION_VGG11_KEYS = [
    "features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias",
    "features.6.weight", "features.6.bias", "features.8.weight", "features.8.bias",
    "features.11.weight", "features.11.bias", "features.13.weight", "features.13.bias",
    "features.16.weight", "features.16.bias", "features.18.weight", "features.18.bias",
    "classifier.0.weight", "classifier.0.bias", "classifier.3.weight", "classifier.3.bias",
    "classifier.6.weight", "classifier.6.bias",
]

# torchvision.models.vgg11_bn().state_dict().keys(): conv, bn, relu per layer, so the indices shift
_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
TORCHVISION_VGG11_BN_KEYS = [
    key
    for conv, bn in ((0, 1), (4, 5), (8, 9), (11, 12), (15, 16), (18, 19), (22, 23), (25, 26))
    for key in [f"features.{conv}.weight", f"features.{conv}.bias"] + [f"features.{bn}.{b}" for b in _BN]
] + ["classifier.0.weight", "classifier.0.bias", "classifier.3.weight", "classifier.3.bias",
     "classifier.6.weight", "classifier.6.bias"]


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.fixture
def fast_init(monkeypatch):
    """Zero-fill instead of drawing: counts, keys and shapes don't depend on the values, and VGG-16's
    138 M random draws (twice: Linear's default, then torchvision's N(0, 0.01²)) take seconds."""
    from tinygrad_cv.nn import init

    def zero(tensor, *args, **kwargs):
        tensor.data[...] = 0  # in place, in the tensor's own dtype (init.zeros_ goes through float64)
        return tensor

    for name in ("uniform_", "normal_", "kaiming_uniform_", "kaiming_normal_"):
        monkeypatch.setattr(init, name, zero)


def make_input(shape, seed=0):
    return tg.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


# --- AlexNet ----------------------------------------------------------------------------------

def test_alexnet_keys_shapes_and_count(fast_init):
    model = alexnet()
    state = model.state_dict()
    assert list(state) == list(TORCHVISION_ALEXNET)
    assert {k: tuple(v.shape) for k, v in state.items()} == TORCHVISION_ALEXNET
    assert n_params(model) == 61_100_840  # torchvision's AlexNet
    assert sum(int(np.prod(s)) for s in TORCHVISION_ALEXNET.values()) == 61_100_840


def test_alexnet_2012_two_towers(fast_init):
    model = alexnet(variant="2012")
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96, 256, 384, 384, 256]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]  # conv2, conv4, conv5 see only their own tower
    assert tuple(convs[1].weight.shape) == (256, 48, 5, 5)
    # the paper's "60 million": conv 34,944 + 307,456 + 885,120 + 663,936 + 442,624,
    # fully connected 37,752,832 + 16,781,312 + 4,097,000
    assert n_params(model) == 60_965_224
    assert [type(m).__name__ for m in model.features][:4] == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"]
    no_lrn = alexnet(variant="2012", lrn=False)
    assert n_params(no_lrn) == 60_965_224 and not any(isinstance(m, LocalResponseNorm) for m in no_lrn.modules())
    assert list(no_lrn.state_dict())[:10] == list(TORCHVISION_ALEXNET)[:10]  # same indices as torchvision's


def test_alexnet_shapes(fast_init):
    model = alexnet(num_classes=7)
    x = make_input((1, 3, 224, 224))
    assert model.features(x).shape == (1, 256, 6, 6)
    model.eval()
    assert model(x).shape == (1, 7)
    small = alexnet(num_classes=5, in_channels=1, variant="2012")
    assert small(make_input((2, 1, 63, 63))).shape == (2, 5)  # the smallest input: 1×1 maps before the pool
    assert tuple(small.features[0].weight.shape) == (96, 1, 11, 11)


def test_alexnet_errors():
    with pytest.raises(ValueError, match="variant"):
        alexnet(variant="2014")
    with pytest.raises(ValueError, match="lrn=True needs variant='2012'"):
        alexnet(lrn=True)


# --- local response normalisation ---------------------------------------------------------------

def lrn_reference(a, size, alpha, beta, k):
    c = a.shape[1]
    out = np.empty_like(a)
    for i in range(c):
        lo, hi = max(0, i - size // 2), min(c, i + (size - 1) // 2 + 1)
        out[:, i] = a[:, i] / (k + alpha / size * (a[:, lo:hi] ** 2).sum(axis=1)) ** beta
    return out


@settings(max_examples=15)
@given(data=st.data(), size=st.sampled_from([1, 2, 3, 5]), c=st.integers(1, 6), hw=st.integers(1, 3))
def test_lrn_values_and_gradient(data, size, c, hw):
    x = data.draw(tensors(floats_array((2, c, hw, 2))))
    layer = LocalResponseNorm(size, alpha=0.3, beta=0.75, k=1.5)  # big alpha: the denominator matters
    np.testing.assert_allclose(layer(x).data, lrn_reference(np.asarray(x.data), size, 0.3, 0.75, 1.5), rtol=1e-12)
    assert gradcheck(layer, (x,), atol=1e-8, rtol=1e-6)


def test_lrn_matches_torch():
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(1).standard_normal((2, 7, 3, 4)) * 3
    g = np.random.default_rng(2).standard_normal(a.shape)
    for size, alpha, beta, k in ((5, 5e-4, 0.75, 2.0), (4, 0.5, 0.6, 1.0), (1, 0.2, 1.0, 0.5)):
        x = tg.tensor(a, requires_grad=True)
        y = LocalResponseNorm(size, alpha, beta, k)(x)
        y.backward(tg.tensor(g))
        xt = torch.tensor(a, requires_grad=True)
        yt = torch.nn.LocalResponseNorm(size, alpha, beta, k)(xt)
        yt.backward(torch.tensor(g))
        np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(x.grad.data, xt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_lrn_errors():
    with pytest.raises(ValueError, match="size must be a positive int"):
        LocalResponseNorm(0)
    with pytest.raises(ValueError, match="at least 3 dims"):
        LocalResponseNorm(3)(tg.randn(2, 4))


# --- VGG ------------------------------------------------------------------------------------------

def test_vgg16_keys_and_count(fast_init):
    model = vgg16()
    assert list(model.state_dict()) == TORCHVISION_VGG16_KEYS
    assert n_params(model) == 138_357_544  # torchvision's VGG-16
    assert tuple(model.classifier[0].weight.shape) == (4096, 512 * 7 * 7)
    assert n_params(vgg16(batch_norm=True)) == 138_365_992  # vgg16_bn


def test_vgg11_keys_count_and_shape(fast_init):
    model = vgg11(num_classes=10, in_channels=1)
    assert list(model.state_dict()) == TORCHVISION_VGG11_KEYS
    assert n_params(vgg11()) == 132_863_336
    model.eval()
    assert model(make_input((2, 1, 32, 32))).shape == (2, 10)  # 32 -> 1×1 after 5 pools, adaptive pool to 7×7
    bn = vgg11(batch_norm=True)
    assert list(bn.state_dict()) == TORCHVISION_VGG11_BN_KEYS
    assert n_params(bn) == 132_868_840


def test_vgg_init_is_torchvisions():
    tg.manual_seed(0)
    model = vgg_small(in_channels=3, width=32)
    w = model.classifier[0].weight.data  # linear: N(0, 0.01²)
    assert abs(w.std() - 0.01) < 0.001 and np.all(model.classifier[0].bias.data == 0)
    conv = [m for m in model.features if isinstance(m, nn.Conv2d)][3]  # 64 -> 64, He normal with fan_out = 64·9
    assert abs(conv.weight.data.std() - np.sqrt(2 / 576)) < 0.05 * np.sqrt(2 / 576)
    assert np.all(conv.bias.data == 0)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_vgg_small_shapes_and_size(shape):
    tg.manual_seed(0)
    model = vgg_small(in_channels=shape[0], num_classes=7)
    assert model(make_input((2,) + shape)).shape == (2, 7)
    assert model.features(make_input((2,) + shape)).shape == (2, 64, shape[1] // 8, shape[1] // 8)
    # defaults: convs 71,792 + batch norm 448 + classifier 256·128+128 + 128·128+128 + 128·10+10
    assert n_params(vgg_small()) == 71_792 + 448 + 32_896 + 16_512 + 1_290 == 122_938


# --- NiN ------------------------------------------------------------------------------------------

def test_conv1x1_is_a_per_pixel_linear_map():
    tg.manual_seed(0)
    block = conv1x1_block(5, 3)
    x = make_input((2, 5, 4, 6))
    conv = block[0]
    w = conv.weight.data[:, :, 0, 0]  # (3, 5)
    expected = np.maximum(np.einsum("oc,nchw->nohw", w, x.data) + conv.bias.data[None, :, None, None], 0)
    np.testing.assert_allclose(block(x).data, expected, rtol=1e-5, atol=1e-6)


def test_nin_block_structure_and_shapes():
    block = nin_block(3, 8, kernel_size=5, stride=2, padding=1, mid_channels=6)
    assert [type(m).__name__ for m in block] == ["Conv2d", "ReLU"] * 3
    assert [tuple(block[i].weight.shape) for i in (0, 2, 4)] == [(6, 3, 5, 5), (6, 6, 1, 1), (8, 6, 1, 1)]
    assert block(make_input((2, 3, 11, 11))).shape == (2, 8, 5, 5)  # (11 + 2 - 5) // 2 + 1
    assert [tuple(m.weight.shape) for m in nin_block(4, 7, 3) if isinstance(m, nn.Conv2d)][1] == (7, 7, 1, 1)
    with pytest.raises(ValueError, match="positive"):
        nin_block(3, 0, 3)


def test_nin_has_no_fully_connected_layer_and_the_right_shapes():
    tg.manual_seed(0)
    model = nin()
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    # blocks: 3->192 (5×5) + 2 × 192² 1×1; 192->192 (5×5) + 2 × 192² 1×1; 192->192 (3×3), 192², 192->10
    assert n_params(model) == 88_704 + 995_904 + 370_954 == 1_455_562
    model.eval()
    assert model(make_input((2, 3, 32, 32))).shape == (2, 10)
    small = nin(in_channels=1, num_classes=4, channels=(8, 8, 8))
    assert small.features[:3](make_input((2, 1, 28, 28))).shape == (2, 8, 14, 14)
    assert small.features(make_input((2, 1, 28, 28))).shape == (2, 4, 7, 7)  # one map per class before the GAP
    with pytest.raises(ValueError, match="three positive widths"):
        nin(channels=(8, 8))


# --- gradients and training -----------------------------------------------------------------------

SMALL_MODELS = {
    "vgg_small": lambda: vgg_small(in_channels=1, num_classes=4, width=4, hidden=16, dropout=0.0),
    "nin": lambda: nin(in_channels=1, num_classes=4, channels=(6, 6, 6), dropout=0.0),
}


@pytest.mark.parametrize("name", ["vgg_small", "nin"])
def test_gradients_reach_every_parameter(name):
    tg.manual_seed(1)
    model = SMALL_MODELS[name]()
    x = make_input((4, 1, 28, 28), seed=2)
    F.cross_entropy(model(x), tg.tensor(np.array([0, 1, 2, 3]))).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and np.all(np.isfinite(p.grad.data)), pname
        assert np.any(p.grad.data != 0), pname


def test_gradcheck_small_vgg_in_float64():
    """The first convolution's weight: its gradient has travelled back through every layer."""
    tg.manual_seed(3)
    model = vgg_small(in_channels=1, num_classes=3, width=2, hidden=4, batch_norm=False, dropout=0.0).double()
    x = tg.tensor(np.random.default_rng(4).standard_normal((1, 1, 8, 8)))  # 8 -> 4 -> 2 -> 1
    params = list(model.parameters())
    assert gradcheck(lambda *_: model(x), (params[0], params[-2]), atol=1e-6, rtol=1e-4, seed=5)


@pytest.mark.parametrize("name", ["vgg_small", "nin"])
def test_training_steps_decrease_the_loss(name):
    tg.manual_seed(6)
    model = SMALL_MODELS[name]()
    rng = np.random.default_rng(7)
    x = tg.tensor(rng.standard_normal((16, 1, 28, 28)).astype(np.float32))
    y = tg.tensor(rng.integers(0, 4, 16))
    opt = optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


# --- names vs the real torchvision -------------------------------------------------------------------

def test_keys_match_torchvision_when_installed(fast_init):
    models = pytest.importorskip("torchvision.models")
    for ours, theirs in ((alexnet(), models.alexnet()), (vgg11(), models.vgg11()), (vgg16(), models.vgg16()),
                         (vgg11(batch_norm=True), models.vgg11_bn())):
        theirs = theirs.state_dict()
        mine = ours.state_dict()
        assert list(mine) == list(theirs)
        assert all(tuple(mine[k].shape) == tuple(v.shape) for k, v in theirs.items())
