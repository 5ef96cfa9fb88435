"""Tensors on the GPU: every operation against its CPU twin, and gradients through device tensors.

Runs on a real GPU when the machine has one and on Numba's CUDA simulator
otherwise (conftest sets NUMBA_ENABLE_CUDASIM=1 when no CUDA driver is
found). The simulator runs each GPU thread as a Python thread, so shapes are
tiny.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_cv as tg
from tinygrad_cv import cuda
from tinygrad_cv import functional as F
from tinygrad_cv import nn, optim
from tinygrad_cv.gradcheck import gradcheck

if not cuda.is_available():
    pytest.skip("CUDA tensors are not available here (no GPU, no simulator)", allow_module_level=True)

RNG = np.random.default_rng(0)


def _run(fn, arrays, device, upstream_seed=1):
    """fn on tensors made from ``arrays`` on ``device``; returns (output, input grads) as host arrays."""
    xs = [tg.tensor(a, device=device, requires_grad=a.dtype.kind == "f") for a in arrays]
    out = fn(*xs)
    assert out.device == device
    g = np.random.default_rng(upstream_seed).standard_normal(out.shape).astype(out.dtype)
    out.backward(tg.tensor(g, device=device))
    return out.detach().numpy(), [x.grad.numpy() if x.grad is not None else None for x in xs], xs


def check_twins(fn, *arrays, rtol=1e-10, atol=1e-12):
    """Forward values and input gradients agree between the CPU and the GPU."""
    y_cpu, g_cpu, _ = _run(fn, arrays, "cpu")
    y_gpu, g_gpu, xs = _run(fn, arrays, "cuda")
    assert all(x.grad is None or x.grad.device == "cuda" for x in xs)  # gradients stay on the device
    np.testing.assert_allclose(y_gpu, y_cpu, rtol=rtol, atol=atol)
    for a, b in zip(g_gpu, g_cpu):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def r(*shape, lo=-2.0, hi=2.0, dtype=np.float64):
    return RNG.uniform(lo, hi, shape).astype(dtype)


# --- elementwise, with broadcasting and non-contiguous inputs ------------------------------------
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a.abs() ** b,
    "maximum": lambda a, b: a.maximum(b),
    "minimum": lambda a, b: a.minimum(b),
    "where": lambda a, b: tg.where(a > b, a, b * 2),
}


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_ops_broadcast_like_the_cpu(name):
    a, b = r(2, 1, 3), r(4, 1) + 3.0  # b kept away from 0 for div
    check_twins(BINARY[name], a, b)
    check_twins(lambda x, y: BINARY[name](x.transpose(0, 2), y.T), r(3, 2, 4), r(3, 2) + 3.0)  # strided views


@settings(max_examples=10)
@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=4), data=st.data())
def test_binary_broadcasting_over_random_shapes(shape, data):
    other = [n if data.draw(st.booleans()) else 1 for n in shape][data.draw(st.integers(0, len(shape) - 1)):]
    check_twins(lambda x, y: x * y + x - y, r(*shape), r(*other))


UNARY = {
    "exp": lambda x: x.exp(),
    "log": lambda x: x.abs().log(),
    "sqrt": lambda x: x.abs().sqrt(),
    "tanh": lambda x: x.tanh(),
    "sigmoid": lambda x: x.sigmoid(),
    "relu": lambda x: x.relu(),
    "leaky_relu": lambda x: F.leaky_relu(x, 0.1),
    "abs": lambda x: x.abs(),
    "neg": lambda x: -x,
    "clip": lambda x: x.clip(-0.5, 0.7),
    "scalar_ops": lambda x: (2.0 - x) * 3 / (x * x + 1) + x**2,
    "cast": lambda x: x.to(tg.float32).to(tg.float64) * 1.5,
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_ops(name):
    x = r(3, 4)
    x[np.abs(x) < 0.05] = 0.3  # off the kinks
    check_twins(UNARY[name], x, rtol=1e-6 if name == "cast" else 1e-10)


# --- reductions --------------------------------------------------------------------------------
REDUCE = {
    "sum": lambda x: x.sum(),
    "sum_dims": lambda x: x.sum((0, 2), keepdim=True),
    "mean": lambda x: x.mean(1),
    "var": lambda x: x.var(0),
    "amax": lambda x: x.amax(2),
    "amin": lambda x: x.amin(),
    "max_dim": lambda x: x.max(1).values,
    "min_dim": lambda x: x.min(-1, keepdim=True)[0],
    "logsumexp": lambda x: (x - x.amax(1, keepdim=True)).exp().sum(1).log(),
}


@pytest.mark.parametrize("name", sorted(REDUCE))
def test_reductions(name):
    check_twins(REDUCE[name], r(3, 4, 2))


def test_reductions_of_any_size_use_several_blocks():
    # far more elements than one block has threads: partial results are reduced again
    x = r(400)
    check_twins(lambda t: t.sum() + t.amax() * 2, x)
    check_twins(lambda t: t.sum(0), r(300, 2))


def test_argmax_and_integer_ops_stay_on_the_device():
    x = tg.tensor(np.array([[1.0, 3.0, 3.0], [-1.0, -2.0, -1.0]]), device="cuda")
    assert x.argmax(1).tolist() == [1, 0] and x.argmin(1).tolist() == [0, 1]
    assert x.argmax().item() == 1
    assert (x > 0).sum().item() == 3
    assert (x.argmax(1) == tg.tensor([1, 2], device="cuda")).tolist() == [True, False]


# --- movement ----------------------------------------------------------------------------------
MOVE = {
    "reshape": lambda x: x.reshape(4, 6) * 2,
    "permute": lambda x: x.permute(2, 0, 1) * 2,
    "getitem": lambda x: x[1:, ::2, None, -1] * 2,
    "unsqueeze_expand": lambda x: x.unsqueeze(0).expand(2, 2, 3, 4) * 1.0,
    "concatenate": lambda x: tg.concatenate([x, x[:, :1] * 3], dim=1),
    "stack": lambda x: tg.stack([x, x * 2], dim=-1),
    "pad": lambda x: F.pad(x, (1, 2, 0, 1)),
    "flatten": lambda x: x.flatten(1),
    "gather": lambda x: x.gather(2, tg.tensor(np.array([[[0, 3], [2, 2], [1, 0]]] * 2), device=x.device)),
}


@pytest.mark.parametrize("name", sorted(MOVE))
def test_movement(name):
    check_twins(MOVE[name], r(2, 3, 4))


# --- matrix products, softmax and losses -------------------------------------------------------
def test_matmul_and_linear():
    check_twins(lambda a, b: a @ b, r(5, 7), r(7, 3))
    check_twins(lambda a, b: a @ b, r(2, 3, 4), r(4, 2))  # batched
    check_twins(lambda a, b: a @ b.T, r(3, 17), r(5, 17))  # a transposed operand (non-contiguous)
    check_twins(lambda x, w, b: F.linear(x, w, b), r(4, 6), r(3, 6), r(3))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_and_log_softmax(dim):
    check_twins(lambda x: x.softmax(dim), r(3, 5))
    check_twins(lambda x: x.log_softmax(dim), r(3, 5))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy(reduction):
    t = np.array([0, 3, 1, 3])
    w = np.array([0.5, 1.0, 2.0, 1.5, 1.0])
    check_twins(lambda x, tt, ww: F.cross_entropy(x, tt, weight=ww, ignore_index=1, reduction=reduction), r(4, 5), t, w)
    check_twins(lambda x, tt: F.cross_entropy(x, tt, reduction=reduction), r(2, 3, 2, 2),
                np.array([[[0, 2], [1, 1]], [[2, 2], [0, 1]]]))


def test_other_losses():
    check_twins(lambda x, y: F.mse_loss(x, y), r(3, 4), r(3, 4))
    check_twins(lambda x, y: F.cross_entropy(x, y.softmax(1)), r(3, 4), r(3, 4))  # soft targets


def test_bad_targets_are_refused_on_the_device():
    x = tg.randn(2, 3, device="cuda")
    with pytest.raises(IndexError, match="target 5 is out of bounds for 3 classes"):
        F.cross_entropy(x, tg.tensor([0, 5], device="cuda"))


# --- convolution and pooling -----------------------------------------------------------------
CONV = {
    "conv": lambda x, w, b: F.conv2d(x, w, b, stride=1, padding=1),
    "conv_stride_groups": lambda x, w, b: F.conv2d(x, w[:2, :1], b[:2], stride=2, padding=(1, 0), groups=2),
    "conv_dilation": lambda x, w, b: F.conv2d(x, w, b, dilation=2, padding="same"),
    "conv_transpose": lambda x, w, b: F.conv_transpose2d(x, w.transpose(0, 1)[:, :3], None, stride=2, padding=1),
    "max_pool": lambda x, w, b: F.max_pool2d(x, 2),
    "max_pool_pad": lambda x, w, b: F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True),
    "avg_pool": lambda x, w, b: F.avg_pool2d(x, 2, stride=1, padding=1, count_include_pad=False),
    "global_avg_pool": lambda x, w, b: F.adaptive_avg_pool2d(x, 1),
}


@pytest.mark.parametrize("name", sorted(CONV))
def test_conv_and_pool(name):
    x = r(1, 2, 5, 5)
    check_twins(CONV[name], x, r(3, 2, 3, 3), r(3))


def test_batch_norm_and_dropout():
    bn_cpu, bn_gpu = nn.BatchNorm2d(2).double(), nn.BatchNorm2d(2).double().to("cuda")
    check_twins(lambda x: bn_cpu(x) if x.device == "cpu" else bn_gpu(x), r(3, 2, 2, 2))
    np.testing.assert_allclose(bn_gpu.running_var.numpy(), bn_cpu.running_var.numpy(), rtol=1e-12)
    assert bn_gpu.running_mean.device == "cuda"
    bn_gpu.eval()
    bn_cpu.eval()
    check_twins(lambda x: bn_cpu(x) if x.device == "cpu" else bn_gpu(x), r(3, 2, 2, 2))
    x = tg.ones(400, device="cuda", dtype=tg.float64, requires_grad=True)
    y = F.dropout(x, 0.25)
    vals = y.detach().numpy()
    assert y.device == "cuda" and set(np.unique(vals)) <= {0.0, 1 / 0.75}
    assert 0.6 < (vals > 0).mean() < 0.9
    y.backward(tg.ones(400, device="cuda", dtype=tg.float64))
    np.testing.assert_array_equal(x.grad.numpy(), vals)  # the gradient uses the same mask


# --- gradients through device tensors, against finite differences --------------------------------
def on_gpu(fn):
    """fn evaluated on the GPU; inputs and result cross over differentiably (so gradcheck perturbs host copies)."""
    return lambda *xs: fn(*(x.cuda() for x in xs)).cpu()


def test_gradcheck_through_device_tensors():
    x = tg.tensor(r(1, 1, 4, 4), requires_grad=True)
    w = tg.tensor(r(2, 1, 3, 3), requires_grad=True)
    lin = tg.tensor(r(3, 8), requires_grad=True)

    def net(x, w, lin):
        h = F.max_pool2d(F.conv2d(x, w, padding=1).tanh(), 2)
        return F.log_softmax(h.flatten(1) @ lin.T, 1)

    rng = np.random.default_rng(3)
    # random directions u (vᵀJu) instead of the whole Jacobian: two GPU forward passes each
    assert gradcheck(on_gpu(net), (x, w, lin), grad_output=rng.standard_normal((1, 3)), max_full=0, directions=3)


# --- devices: moving, mixing, modules, optimisers, checkpoints ------------------------------------
def test_moves_are_differentiable_and_mixing_is_refused():
    x = tg.randn(2, 3, requires_grad=True)
    y = x.to("cuda")
    assert y.device == "cuda" and y.to("cuda") is y and x.cpu() is x and y.cuda() is y
    (y * 3).sum().backward()
    assert x.grad.device == "cpu" and np.allclose(x.grad.numpy(), 3)
    with pytest.raises(RuntimeError, match="same device.*cuda tensor of shape \\(2, 3\\).*cpu tensor of shape \\(2, 3\\)"):
        y + tg.ones(2, 3)
    assert (y + tg.tensor(1.0)).device == "cuda"  # a 0-d CPU tensor is a scalar, as in PyTorch
    for make in (tg.zeros, tg.ones, tg.randn, tg.rand):
        assert make(2, 2, device="cuda").device == "cuda"
    assert tg.arange(4, device="cuda").tolist() == [0, 1, 2, 3]
    assert "device='cuda'" in repr(y)


def test_missing_cuda_is_explained(no_cuda):
    with pytest.raises(RuntimeError, match="device 'cuda' is not available: no GPU in this test"):
        tg.zeros(2, device="cuda")
    with pytest.raises(RuntimeError, match="not available"):
        tg.zeros(2).cuda()
    assert not cuda.is_available()


@pytest.mark.parametrize("make_opt", [
    lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2),
    lambda p: optim.AdamW(p, lr=0.01, amsgrad=True),
])
def test_a_training_step_on_the_gpu_matches_the_cpu(make_opt, tmp_path):
    tg.manual_seed(0)
    cpu_net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2, 3)).double()
    gpu_net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2, 3)).double()
    gpu_net.load_state_dict(cpu_net.state_dict())
    gpu_net.to("cuda")
    opts = make_opt(cpu_net.parameters()), make_opt(gpu_net.parameters())
    x, t = r(2, 1, 4, 4), np.array([0, 2])
    for _ in range(2):
        for net, opt, dev in zip((cpu_net, gpu_net), opts, ("cpu", "cuda")):
            loss = F.cross_entropy(net(tg.tensor(x, device=dev)), tg.tensor(t, device=dev))
            opt.zero_grad()
            loss.backward()
            opt.step()
    for p, q in zip(cpu_net.parameters(), gpu_net.parameters()):
        assert q.device == "cuda"
        np.testing.assert_allclose(q.detach().numpy(), p.detach().numpy(), rtol=1e-9, atol=1e-12)
    # checkpoints of a GPU model are written from host copies and load back onto the GPU
    from tinygrad_cv import checkpoint

    path = tmp_path / "gpu.safetensors"
    checkpoint.save_checkpoint(path, model=gpu_net, optimizer=opts[1], epoch=1)
    fresh = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2, 3)).double()
    fresh.to("cuda")
    checkpoint.load_checkpoint(path, model=fresh)
    for p, q in zip(fresh.parameters(), gpu_net.parameters()):
        assert p.device == "cuda" and np.array_equal(p.detach().numpy(), q.detach().numpy())
