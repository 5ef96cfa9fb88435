"""ResNets (tinygrad_cv.models.resnet): shapes, parameter counts, torchvision's keys, gradients, modes, a training step."""
from __future__ import annotations

import numpy as np
import pytest

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import gradcheck, nn, optim
from tinygrad_cv.models import (
    BasicBlock, Bottleneck, ShortcutA, plain20, plain32, plain56, resnet18, resnet20, resnet32, resnet56,
)

# torchvision.models.resnet18().state_dict().keys(), in order (torchvision/models/resnet.py: ResNet,
# BasicBlock, and _make_layer's downsample = Sequential(conv1x1, norm_layer) in the first block of
# layers 2-4). torchvision is not a dependency; test_resnet18_keys_match_torchvision_when_installed
# checks this list against the real thing where it is installed.
TORCHVISION_RESNET18_KEYS = [
    'conv1.weight',
    'bn1.weight', 'bn1.bias', 'bn1.running_mean', 'bn1.running_var', 'bn1.num_batches_tracked',
    'layer1.0.conv1.weight',
    'layer1.0.bn1.weight', 'layer1.0.bn1.bias', 'layer1.0.bn1.running_mean', 'layer1.0.bn1.running_var', 'layer1.0.bn1.num_batches_tracked',
    'layer1.0.conv2.weight',
    'layer1.0.bn2.weight', 'layer1.0.bn2.bias', 'layer1.0.bn2.running_mean', 'layer1.0.bn2.running_var', 'layer1.0.bn2.num_batches_tracked',
    'layer1.1.conv1.weight',
    'layer1.1.bn1.weight', 'layer1.1.bn1.bias', 'layer1.1.bn1.running_mean', 'layer1.1.bn1.running_var', 'layer1.1.bn1.num_batches_tracked',
    'layer1.1.conv2.weight',
    'layer1.1.bn2.weight', 'layer1.1.bn2.bias', 'layer1.1.bn2.running_mean', 'layer1.1.bn2.running_var', 'layer1.1.bn2.num_batches_tracked',
    'layer2.0.conv1.weight',
    'layer2.0.bn1.weight', 'layer2.0.bn1.bias', 'layer2.0.bn1.running_mean', 'layer2.0.bn1.running_var', 'layer2.0.bn1.num_batches_tracked',
    'layer2.0.conv2.weight',
    'layer2.0.bn2.weight', 'layer2.0.bn2.bias', 'layer2.0.bn2.running_mean', 'layer2.0.bn2.running_var', 'layer2.0.bn2.num_batches_tracked',
    'layer2.0.downsample.0.weight',
    'layer2.0.downsample.1.weight', 'layer2.0.downsample.1.bias', 'layer2.0.downsample.1.running_mean', 'layer2.0.downsample.1.running_var', 'layer2.0.downsample.1.num_batches_tracked',
    'layer2.1.conv1.weight',
    'layer2.1.bn1.weight', 'layer2.1.bn1.bias', 'layer2.1.bn1.running_mean', 'layer2.1.bn1.running_var', 'layer2.1.bn1.num_batches_tracked',
    'layer2.1.conv2.weight',
    'layer2.1.bn2.weight', 'layer2.1.bn2.bias', 'layer2.1.bn2.running_mean', 'layer2.1.bn2.running_var', 'layer2.1.bn2.num_batches_tracked',
    'layer3.0.conv1.weight',
    'layer3.0.bn1.weight', 'layer3.0.bn1.bias', 'layer3.0.bn1.running_mean', 'layer3.0.bn1.running_var', 'layer3.0.bn1.num_batches_tracked',
    'layer3.0.conv2.weight',
    'layer3.0.bn2.weight', 'layer3.0.bn2.bias', 'layer3.0.bn2.running_mean', 'layer3.0.bn2.running_var', 'layer3.0.bn2.num_batches_tracked',
    'layer3.0.downsample.0.weight',
    'layer3.0.downsample.1.weight', 'layer3.0.downsample.1.bias', 'layer3.0.downsample.1.running_mean', 'layer3.0.downsample.1.running_var', 'layer3.0.downsample.1.num_batches_tracked',
    'layer3.1.conv1.weight',
    'layer3.1.bn1.weight', 'layer3.1.bn1.bias', 'layer3.1.bn1.running_mean', 'layer3.1.bn1.running_var', 'layer3.1.bn1.num_batches_tracked',
    'layer3.1.conv2.weight',
    'layer3.1.bn2.weight', 'layer3.1.bn2.bias', 'layer3.1.bn2.running_mean', 'layer3.1.bn2.running_var', 'layer3.1.bn2.num_batches_tracked',
    'layer4.0.conv1.weight',
    'layer4.0.bn1.weight', 'layer4.0.bn1.bias', 'layer4.0.bn1.running_mean', 'layer4.0.bn1.running_var', 'layer4.0.bn1.num_batches_tracked',
    'layer4.0.conv2.weight',
    'layer4.0.bn2.weight', 'layer4.0.bn2.bias', 'layer4.0.bn2.running_mean', 'layer4.0.bn2.running_var', 'layer4.0.bn2.num_batches_tracked',
    'layer4.0.downsample.0.weight',
    'layer4.0.downsample.1.weight', 'layer4.0.downsample.1.bias', 'layer4.0.downsample.1.running_mean', 'layer4.0.downsample.1.running_var', 'layer4.0.downsample.1.num_batches_tracked',
    'layer4.1.conv1.weight',
    'layer4.1.bn1.weight', 'layer4.1.bn1.bias', 'layer4.1.bn1.running_mean', 'layer4.1.bn1.running_var', 'layer4.1.bn1.num_batches_tracked',
    'layer4.1.conv2.weight',
    'layer4.1.bn2.weight', 'layer4.1.bn2.bias', 'layer4.1.bn2.running_mean', 'layer4.1.bn2.running_var', 'layer4.1.bn2.num_batches_tracked',
    'fc.weight', 'fc.bias',
]


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def make_input(shape, seed=0, dtype=np.float32):
    return tg.tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


# --- shapes and sizes ------------------------------------------------------------------------

@pytest.mark.parametrize("factory", [resnet20, plain20, lambda **kw: resnet20(shortcut="B", **kw)])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_cifar_output_shape(factory, shape):
    tg.manual_seed(0)
    model = factory(num_classes=7, in_channels=shape[0])
    assert model(make_input((2,) + shape)).shape == (2, 7)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_resnet18_output_shape(shape):
    tg.manual_seed(0)
    model = resnet18(num_classes=10, in_channels=shape[0])
    assert model(make_input((2,) + shape)).shape == (2, 10)


def test_cifar_feature_map_sizes():
    model = resnet20()
    x = make_input((2, 3, 32, 32))
    x = model.relu(model.bn1(model.conv1(x)))
    for layer, (c, h) in zip((model.layer1, model.layer2, model.layer3), ((16, 32), (32, 16), (64, 8))):
        x = layer(x)
        assert x.shape == (2, c, h, h)


def test_parameter_counts():
    assert n_params(resnet18()) == 11_689_512  # torchvision's resnet18
    # ResNet-20 at 10 classes, 3 channels: 269,722 with option A (the paper's "0.27M"; the shortcuts
    # carry no weights), +2 projections (16->32: 512 + 64, 32->64: 2048 + 128) = 272,474 with option B
    assert n_params(resnet20()) == 269_722
    assert n_params(resnet20(shortcut="B")) == 272_474
    assert n_params(plain20()) == 269_722  # the same layers as option A's ResNet-20
    assert n_params(resnet32()) == n_params(plain32()) == 464_154
    assert n_params(resnet56()) == n_params(plain56()) == 853_018
    assert n_params(resnet20(num_classes=100, in_channels=1)) == 269_722 - 2 * 16 * 9 + 90 * 65


def test_cifar_depths():
    for factory, n in ((resnet20, 3), (resnet32, 5), (resnet56, 9)):
        model = factory()
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        assert len(convs) + 1 == 6 * n + 2  # + fc
        assert [len(model.layer1), len(model.layer2), len(model.layer3)] == [n] * 3


def test_plain_has_no_shortcut():
    model = plain20()
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 9 and all(not b.shortcut and b.downsample is None for b in blocks)
    model = resnet20()
    assert isinstance(model.layer2[0].downsample, ShortcutA) and model.layer2[1].downsample is None
    assert not any("downsample" in k for k in resnet20().state_dict())  # option A: parameter-free
    keys_b = [k for k in resnet20(shortcut="B").state_dict() if "downsample" in k]
    assert keys_b == [f"layer{i}.0.downsample.{k}" for i in (2, 3) for k in (
        "0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked")]


def test_bad_shortcut():
    with pytest.raises(ValueError, match="shortcut"):
        resnet20(shortcut="C")


# --- names ------------------------------------------------------------------------------------

def test_resnet18_keys_are_torchvision():
    assert list(resnet18().state_dict()) == TORCHVISION_RESNET18_KEYS
    assert len(TORCHVISION_RESNET18_KEYS) == 122


def test_resnet18_keys_match_torchvision_when_installed():
    models = pytest.importorskip("torchvision.models")
    theirs = models.resnet18().state_dict()
    assert list(theirs) == TORCHVISION_RESNET18_KEYS
    ours = resnet18().state_dict()
    assert all(tuple(ours[k].shape) == tuple(v.shape) for k, v in theirs.items())


def test_cifar_names():
    names = [n for n, _ in resnet20().named_children()]
    assert names == ["conv1", "bn1", "relu", "layer1", "layer2", "layer3", "avgpool", "fc"]


# --- initialisation ---------------------------------------------------------------------------

def test_init():
    tg.manual_seed(0)
    model = resnet56()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert np.all(m.weight.data == 1) and np.all(m.bias.data == 0)
    w = model.layer3[1].conv1.weight.data  # 64 x 64 x 3 x 3: He normal, fan_in = 576
    assert abs(w.std() - np.sqrt(2 / 576)) < 0.05 * np.sqrt(2 / 576)
    w = resnet18().layer4[0].conv2.weight.data  # torchvision: fan_out = 512 * 9
    assert abs(w.std() - np.sqrt(2 / 4608)) < 0.05 * np.sqrt(2 / 4608)
    zeroed = resnet18(zero_init_residual=True)
    assert np.all(zeroed.layer1[0].bn2.weight.data == 0)


# --- gradients --------------------------------------------------------------------------------

def test_shortcut_a_values_and_gradient():
    x = tg.tensor(np.random.default_rng(1).standard_normal((2, 3, 5, 5)), requires_grad=True)
    sc = ShortcutA(3, 5, stride=2)
    y = sc(x)
    assert y.shape == (2, 5, 3, 3)
    np.testing.assert_array_equal(y.data[:, :3], x.data[:, :, ::2, ::2])
    np.testing.assert_array_equal(y.data[:, 3:], 0)
    assert gradcheck(sc, (x,), atol=1e-8, rtol=1e-6)


def _block_gradcheck(block, x):
    block.double()
    block.train()
    params = [p for _, p in block.named_parameters()]
    inputs = (x,) + tuple(params)
    assert gradcheck(lambda *_: block(x), inputs, atol=1e-6, rtol=1e-4, seed=3)


def test_gradcheck_basic_block_option_a():
    tg.manual_seed(0)
    block = BasicBlock(2, 4, stride=2, downsample=ShortcutA(2, 4, stride=2))
    x = tg.tensor(np.random.default_rng(2).standard_normal((2, 2, 4, 4)), requires_grad=True)
    _block_gradcheck(block, x)


def test_gradcheck_bottleneck_projection():
    tg.manual_seed(0)
    down = nn.Sequential(nn.Conv2d(4, 8, 1, stride=2, bias=False), nn.BatchNorm2d(8))
    block = Bottleneck(4, 2, stride=2, downsample=down)
    x = tg.tensor(np.random.default_rng(3).standard_normal((2, 4, 4, 4)), requires_grad=True)
    _block_gradcheck(block, x)


def test_plain_block_ignores_input_path():
    """shortcut=False: the output depends on x only through the convolutions (no identity term)."""
    tg.manual_seed(0)
    block = BasicBlock(2, 2, shortcut=False).double()
    block.bn2.weight.data[...] = 0  # kills the residual branch
    block.bn2.bias.data[...] = 0
    x = tg.tensor(np.random.default_rng(4).standard_normal((2, 2, 3, 3)))
    np.testing.assert_array_equal(block(x).data, 0)
    block.shortcut = True
    np.testing.assert_allclose(block(x).data, np.maximum(x.data, 0))


# --- modes and training -----------------------------------------------------------------------

def test_train_eval_switches_batch_norm():
    tg.manual_seed(0)
    model = resnet20(in_channels=1)
    x = make_input((4, 1, 12, 12), seed=5)
    bn = model.layer2[0].bn1
    model.train()
    before = bn.running_mean.data.copy()
    model(x)
    assert all(m.training for m in model.modules())
    assert not np.allclose(bn.running_mean.data, before) and int(bn.num_batches_tracked.data) == 1
    model.eval()
    assert not any(m.training for m in model.modules())
    frozen = bn.running_mean.data.copy()
    full = model(x).data
    np.testing.assert_array_equal(bn.running_mean.data, frozen)
    assert int(bn.num_batches_tracked.data) == 1
    # evaluation mode: each sample's scores do not depend on the rest of the batch
    np.testing.assert_allclose(model(x[:1]).data, full[:1], rtol=1e-5, atol=1e-6)
    model.train()
    assert not np.allclose(model(x[:1]).data, full[:1], rtol=1e-3)


def test_sgd_step_resnet20():
    tg.manual_seed(0)
    model = resnet20()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x = make_input((2, 3, 32, 32), seed=6)
    y = tg.tensor(np.array([3, 7]))
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    loss = F.cross_entropy(model(x), y)
    assert np.isfinite(float(loss.item()))
    opt.zero_grad()
    loss.backward()
    for n, p in model.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape and np.all(np.isfinite(p.grad.data)), n
    opt.step()
    changed = [n for n, p in model.named_parameters() if not np.array_equal(p.data, before[n])]
    assert len(changed) == len(before)
    assert float(F.cross_entropy(model(x), y).item()) < float(loss.item())


# --- against PyTorch (skipped without torch) --------------------------------------------------

def _torch_resnet20(shortcut):
    """The same network written in PyTorch, with the same module names."""
    import torch
    from torch import nn as tnn

    class A(tnn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.extra = cout - cin

        def forward(self, x):
            return tnn.functional.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 0, self.extra))

    class Block(tnn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(cout)
            self.relu = tnn.ReLU()
            self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = A(cin, cout) if shortcut == "A" else tnn.Sequential(
                    tnn.Conv2d(cin, cout, 1, stride, bias=False), tnn.BatchNorm2d(cout))

        def forward(self, x):
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(16)
            self.relu = tnn.ReLU()
            layers, cin = [], 16
            for cout, stride in ((16, 1), (32, 2), (64, 2)):
                layers.append(tnn.Sequential(*[Block(cin if i == 0 else cout, cout, stride if i == 0 else 1)
                                               for i in range(3)]))
                cin = cout
            self.layer1, self.layer2, self.layer3 = layers
            self.fc = tnn.Linear(64, 10)

        def forward(self, x):
            x = self.layer3(self.layer2(self.layer1(self.relu(self.bn1(self.conv1(x))))))
            return self.fc(x.mean((2, 3)))

    return Net().double(), torch


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_resnet20_matches_torch(shortcut):
    pytest.importorskip("torch")
    tg.manual_seed(0)
    ours = resnet20(shortcut=shortcut).double()
    theirs, torch = _torch_resnet20(shortcut)
    theirs.load_state_dict({k: torch.from_numpy(np.array(v.data)) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(7).standard_normal((2, 3, 8, 8))
    a, b = tg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ya, yb = ours(a), theirs(b)
    np.testing.assert_allclose(ya.data, yb.detach().numpy(), rtol=1e-9, atol=1e-11)
    g = np.random.default_rng(8).standard_normal(ya.shape)
    ya.backward(tg.tensor(g))
    yb.backward(torch.from_numpy(g))
    np.testing.assert_allclose(a.grad.data, b.grad.numpy(), rtol=1e-8, atol=1e-11)
    for (n, p), (m, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert n == m
        np.testing.assert_allclose(p.grad.data, q.grad.numpy(), rtol=1e-8, atol=1e-11, err_msg=n)
