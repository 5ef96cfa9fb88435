"""Module: registration, naming, modes, state_dict save/load, repr, dtype casts."""
import copy
from collections import OrderedDict

import numpy as np
import pytest

import tinygrad_cv as tg
from tinygrad_cv import checkpoint, nn
from tinygrad_cv.nn import Parameter


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_like = nn.Linear(3, 4)
        self.bn = nn.BatchNorm1d(4)
        self.scale = Parameter(tg.ones(4))
        self.register_buffer("counter", tg.zeros(1), persistent=False)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.alpha = Parameter(tg.tensor([0.5]))
        self.block = Block()
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(4, 2, bias=False))
        self.register_buffer("step", tg.tensor(np.array(7, dtype=np.int64)))

    def forward(self, x):
        return self.head(self.block.bn(self.block.conv_like(x)) * self.block.scale * self.alpha)


EXPECTED_STATE = [
    "alpha", "step",
    "block.scale", "block.conv_like.weight", "block.conv_like.bias",
    "block.bn.weight", "block.bn.bias", "block.bn.running_mean", "block.bn.running_var",
    "block.bn.num_batches_tracked",
    "head.1.weight",
]


def test_registration_order_and_dotted_names():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["alpha", "block.scale", "block.conv_like.weight", "block.conv_like.bias",
                     "block.bn.weight", "block.bn.bias", "head.1.weight"]
    assert [n for n, _ in net.named_buffers()] == [
        "step", "block.counter", "block.bn.running_mean", "block.bn.running_var", "block.bn.num_batches_tracked"]
    assert [n for n, _ in net.named_children()] == ["block", "head"]
    assert [n for n, _ in net.named_modules()] == ["", "block", "block.conv_like", "block.bn", "head", "head.0", "head.1"]
    assert list(net.state_dict()) == EXPECTED_STATE  # parameters then persistent buffers, per module
    assert all(isinstance(p, Parameter) for p in net.parameters())
    assert len(list(net.parameters(recurse=False))) == 1


def test_shared_parameters_listed_once():
    a = nn.Linear(3, 3)
    seq = nn.Sequential(a, nn.ReLU(), a)
    assert len(list(seq.parameters())) == 2
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias"]
    assert len([m for m in seq.modules()]) == 3  # the shared Linear counted once
    tied = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    tied[1].weight = tied[0].weight
    assert len(list(tied.parameters())) == 3
    assert list(tied.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]  # state_dict keeps both names


def test_attribute_kinds_and_errors():
    net = Net()
    with pytest.raises(AttributeError, match="'Net' object has no attribute 'nope'"):
        net.nope
    with pytest.raises(TypeError, match="parameter 'alpha'"):
        net.alpha = tg.ones(1)  # a plain tensor cannot replace a parameter
    net.alpha = None
    assert "alpha" not in dict(net.named_parameters())
    net.block = nn.Identity()
    assert "block.scale" not in dict(net.named_parameters())
    net.step = tg.tensor(np.array(3))  # buffers may be replaced by tensors
    assert net.state_dict()["step"].item() == 3
    del net.head
    with pytest.raises(AttributeError):
        net.head
    with pytest.raises(KeyError, match="contain"):
        net.register_buffer("a.b", tg.zeros(1))
    with pytest.raises(AttributeError, match="before Module.__init__"):
        class Bad(nn.Module):
            def __init__(self):
                self.w = Parameter(tg.zeros(1))
        Bad()
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(tg.zeros(1))


def test_train_eval_recursive_and_requires_grad():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net.block.train(False)
    assert net.training and not net.block.bn.training and net.head.training
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_zero_grad_and_apply():
    net = Net()
    net(tg.randn(5, 3)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(np.all(p.grad.data == 0) for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "BatchNorm1d", "Block", "ReLU", "Linear", "Sequential", "Net"]  # children first


def test_parameter_semantics():
    p = Parameter(tg.tensor([1.0, 2.0]))
    assert isinstance(p, Parameter) and isinstance(p, tg.Tensor) and p.requires_grad and p.is_leaf
    assert repr(p).startswith("Parameter containing:\ntensor([1., 2.]")
    y = p * 2
    assert type(y) is tg.Tensor and type(p.detach()) is tg.Tensor
    t = tg.zeros(3)
    assert Parameter(t).data is t.data  # shares memory, like torch.nn.Parameter
    assert not Parameter(t, requires_grad=False).requires_grad
    q = copy.deepcopy(p)
    assert isinstance(q, Parameter) and q.data is not p.data and np.array_equal(q.data, p.data)


def test_state_dict_shares_memory_and_load_copies_in_place():
    net = Net()
    sd = net.state_dict()
    assert sd["alpha"].data is net.alpha.data and not sd["alpha"].requires_grad
    weight = net.block.conv_like.weight
    before = weight.data
    other = Net()
    other.load_state_dict(net.state_dict())
    assert other.block.conv_like.weight.data is not before
    net.load_state_dict(Net().state_dict())
    assert net.block.conv_like.weight is weight and weight.data is before  # same object, same memory


def _randomise(net, seed):
    rng = np.random.default_rng(seed)
    for t in list(net.parameters()) + list(net.buffers()):
        if t.dtype.kind == "f":
            # random bit patterns: NaNs, infinities, negative zeros and denormals must survive
            t.data[...] = rng.integers(0, 2**32, t.shape, dtype=np.uint64).astype(np.uint32).view(np.float32)
        else:
            t.data[...] = rng.integers(-1000, 1000, t.shape)


def _same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_state_dict_round_trip_bit_exact(tmp_path):
    src, dst = Net(), Net()
    _randomise(src, 1)
    _randomise(dst, 2)
    result = dst.load_state_dict(src.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == "<All keys matched successfully>"
    for (k, a), (k2, b) in zip(src.state_dict().items(), dst.state_dict().items()):
        assert k == k2 and _same_bits(a.data, b.data), k
    # through a safetensors file
    path = tmp_path / "net.safetensors"
    checkpoint.save(src.state_dict(), path)
    loaded = checkpoint.load(path)
    assert list(loaded) == EXPECTED_STATE
    third = Net()
    third.load_state_dict(loaded)
    for k, v in src.state_dict().items():
        assert _same_bits(v.data, third.state_dict()[k].data), k
    assert loaded["block.bn.num_batches_tracked"].dtype == np.int64


def test_strict_and_non_strict_loading():
    net = Net()
    sd = OrderedDict(net.state_dict())
    del sd["alpha"]
    sd["extra.weight"] = tg.zeros(2)
    with pytest.raises(RuntimeError) as e:
        Net().load_state_dict(sd)
    assert 'Missing key(s) in state_dict: "alpha"' in str(e.value)
    assert 'Unexpected key(s) in state_dict: "extra.weight"' in str(e.value)
    target = Net()
    alpha = target.alpha.data.copy()
    missing, unexpected = target.load_state_dict(sd, strict=False)
    assert missing == ["alpha"] and unexpected == ["extra.weight"]
    assert np.array_equal(target.alpha.data, alpha)
    assert np.array_equal(target.block.conv_like.weight.data, net.block.conv_like.weight.data)


def test_shape_mismatch_refused_and_nothing_changes():
    net = Net()
    sd = net.state_dict()
    sd["block.conv_like.weight"] = tg.zeros(5, 3)
    sd["alpha"] = tg.tensor([9.0])
    target = Net()
    before = {k: v.data.copy() for k, v in target.state_dict().items()}
    for strict in (True, False):
        with pytest.raises(RuntimeError, match=r"block\.conv_like\.weight.*\(5, 3\).*\(4, 3\)"):
            target.load_state_dict(sd, strict=strict)
    for k, v in target.state_dict().items():
        assert np.array_equal(v.data, before[k], equal_nan=True), k  # an error leaves the model untouched


def test_load_casts_dtype_like_copy():
    net = Net()
    sd = {k: tg.Tensor(v.data.astype(np.float64)) if v.dtype == np.float32 else v for k, v in net.state_dict().items()}
    other = Net()
    other.load_state_dict(sd)
    assert other.alpha.dtype == np.float32 and np.array_equal(other.alpha.data, net.alpha.data)


def test_to_dtype_and_device():
    net = Net()
    params = list(net.parameters())
    assert net.to("cpu") is net
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        net.to("tpu")
    net.to(tg.float64)
    assert all(p is q for p, q in zip(params, net.parameters()))  # same Parameter objects
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert net.block.bn.running_mean.dtype == np.float64
    assert net.block.bn.num_batches_tracked.dtype == np.int64 and net.step.dtype == np.int64
    assert net(tg.randn(2, 3, dtype=tg.float64)).dtype == np.float64
    net.float()
    assert all(p.dtype == np.float32 for p in net.parameters())


REPR = """Net(
  (block): Block(
    (conv_like): Linear(in_features=3, out_features=4, bias=True)
    (bn): BatchNorm1d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
  )
  (head): Sequential(
    (0): ReLU()
    (1): Linear(in_features=4, out_features=2, bias=False)
  )
)"""


def test_repr_tree():
    assert repr(Net()) == REPR
    assert repr(nn.ReLU()) == "ReLU()"
    assert repr(nn.Dropout(0.2)) == "Dropout(p=0.2, inplace=False)"
    assert repr(nn.Softmax(dim=1)) == "Softmax(dim=1)"
    assert repr(nn.Flatten()) == "Flatten(start_dim=1, end_dim=-1)"
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(nn.AdaptiveAvgPool2d((2, 3))) == "AdaptiveAvgPool2d(output_size=(2, 3))"


def test_lenet_repr_matches_pytorch_layout():
    class LeNet5(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
            self.pool = nn.MaxPool2d(2)
            self.conv2 = nn.Conv2d(6, 16, 5, bias=False, groups=2)
            self.up = nn.ConvTranspose2d(16, 8, 3, stride=2, output_padding=1)
            self.avg = nn.AvgPool2d(2)

    assert repr(LeNet5()) == (
        "LeNet5(\n"
        "  (conv1): Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))\n"
        "  (pool): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)\n"
        "  (conv2): Conv2d(6, 16, kernel_size=(5, 5), stride=(1, 1), groups=2, bias=False)\n"
        "  (up): ConvTranspose2d(16, 8, kernel_size=(3, 3), stride=(2, 2), output_padding=(1, 1))\n"
        "  (avg): AvgPool2d(kernel_size=2, stride=2, padding=0)\n"
        ")"
    )


def test_sequential_and_modulelist():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    seq = nn.Sequential(a, b)
    seq.append(c)
    assert len(seq) == 3 and seq[0] is a and seq[-1] is c and list(seq) == [a, b, c]
    assert isinstance(seq[1:], nn.Sequential) and list(seq[1:]) == [b, c]
    with pytest.raises(IndexError):
        seq[3]
    x = tg.randn(4, 2)
    assert np.allclose(seq(x).data, c(b(a(x))).data)
    named = nn.Sequential(OrderedDict(fc=nn.Linear(2, 2), act=nn.Tanh()))
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"] and isinstance(named.act, nn.Tanh)
    del seq[1]
    assert [n for n, _ in seq.named_children()] == ["0", "1"] and seq[1] is c
    seq.insert(-1, b)
    assert list(seq) == [a, b, c] and [n for n, _ in seq.named_children()] == ["0", "1", "2"]
    ml = nn.ModuleList([nn.Linear(1, 1) for _ in range(2)])
    ml.append(nn.Linear(1, 2))
    ml += [nn.ReLU()]
    assert len(ml) == 4 and [n for n, _ in ml.named_parameters()][-1] == "2.bias"
    holder = nn.Module()
    holder.layers = ml
    assert len(list(holder.parameters())) == 6


def test_softmax_requires_dim():
    with pytest.raises(ValueError, match="dim"):
        nn.Softmax()
    with pytest.raises(ValueError, match="dim"):
        nn.LogSoftmax()


def test_functional_alias():
    import tinygrad_cv.functional as F1
    import tinygrad_cv.nn.functional as F2

    assert F1 is F2 and nn.functional is F1


def test_deepcopy_is_independent():
    net = Net()
    twin = copy.deepcopy(net)
    assert all(isinstance(p, Parameter) for p in twin.parameters())
    for (k, a), (k2, b) in zip(net.state_dict().items(), twin.state_dict().items()):
        assert k == k2 and np.array_equal(a.data, b.data) and a.data is not b.data
    twin.alpha.data[...] = 5
    assert net.alpha.item() == 0.5


def test_get_submodule_and_parameter():
    net = Net()
    assert net.get_submodule("block.bn") is net.block.bn and net.get_submodule("") is net
    assert net.get_parameter("block.conv_like.weight") is net.block.conv_like.weight
    with pytest.raises(AttributeError, match="no submodule 'nope'"):
        net.get_submodule("block.nope")
