"""Hooks: Module forward / backward hooks, Tensor.register_hook, RemovableHandle, feature_extractor.

The backward-hook semantics are PyTorch's; where torch is installed the
gradients the hooks see are compared with PyTorch's on the same LeNet-like
network (those tests skip themselves otherwise), and everywhere else they are
checked against values worked out by hand.
"""
import copy
import gc
import pickle
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cv as tg
from tinygrad_cv import nn
from tinygrad_cv.models import LeNet5, feature_extractor
from tinygrad_cv.nn.hooks import BackwardHookInputs, BackwardHookOutputs, RemovableHandle


def double(g):
    return g * 2


def f64(values, requires_grad=True):
    return tg.Tensor(np.asarray(values, dtype=np.float64), requires_grad=requires_grad)


def hook_dicts_empty(model):
    return all(not getattr(m, name) for m in model.modules() for name in nn.Module._HOOK_DICTS)


class Logged(nn.Module):
    """Doubles its input and notes each forward call in ``log``."""

    def __init__(self, log):
        super().__init__()
        self.log = log

    def forward(self, x, scale=1.0):
        self.log.append(("forward", x, scale))
        return x * 2 * scale


# ----------------------------------------------------------------------------------------
# forward hooks
# ----------------------------------------------------------------------------------------
def test_pre_hooks_forward_and_forward_hooks_run_in_order():
    log = []
    m = Logged(log)
    m.register_forward_pre_hook(lambda mod, args: log.append(("pre1", mod, args)))
    m.register_forward_pre_hook(lambda mod, args: log.append(("pre2", mod, args)))
    m.register_forward_hook(lambda mod, args, out: log.append(("fwd1", mod, args, out)))
    m.register_forward_hook(lambda mod, args, out: log.append(("fwd2", mod, args, out)))
    x = f64([1.0, 2.0])
    y = m(x)
    assert [e[0] for e in log] == ["pre1", "pre2", "forward", "fwd1", "fwd2"]
    assert log[0][1] is m and log[0][2] == (x,) and log[0][2][0] is x
    assert log[3][3] is y and log[4][3] is y
    assert log[3][2][0] is x


def test_prepend_puts_a_hook_first():
    log = []
    m = Logged([])
    m.register_forward_pre_hook(lambda *a: log.append("a"))
    m.register_forward_pre_hook(lambda *a: log.append("b"), prepend=True)
    m.register_forward_hook(lambda *a: log.append("c"))
    m.register_forward_hook(lambda *a: log.append("d"), prepend=True)
    m(f64([1.0]))
    assert log == ["b", "a", "d", "c"]


def test_handle_remove_and_context_manager():
    log = []
    m = Logged([])
    h1 = m.register_forward_hook(lambda *a: log.append(1))
    with m.register_forward_hook(lambda *a: log.append(2)) as h2:
        assert isinstance(h2, RemovableHandle)
        m(f64([1.0]))
    assert log == [1, 2]
    m(f64([1.0]))
    assert log == [1, 2, 1]
    h1.remove()
    h1.remove()  # idempotent
    m(f64([1.0]))
    assert log == [1, 2, 1]
    assert hook_dicts_empty(m)
    assert h1.id != h2.id


def test_forward_hook_replaces_output_and_later_hooks_see_the_replacement():
    m = Logged([])
    seen = []
    m.register_forward_hook(lambda mod, args, out: out + 100)
    m.register_forward_hook(lambda mod, args, out: seen.append(out.data.copy()))  # returns None: keeps it
    y = m(f64([1.0, 2.0]))
    np.testing.assert_allclose(y.data, [102.0, 104.0])
    np.testing.assert_allclose(seen[0], [102.0, 104.0])


def test_pre_hook_replaces_args_tuple_or_single_value():
    log = []
    m = Logged(log)
    h = m.register_forward_pre_hook(lambda mod, args: (args[0] + 1, 10.0))
    np.testing.assert_allclose(m(f64([1.0])).data, [40.0])  # (1 + 1) * 2 * 10
    h.remove()
    m.register_forward_pre_hook(lambda mod, args: args[0] * 3)  # a single value is a 1-tuple
    np.testing.assert_allclose(m(f64([1.0])).data, [6.0])
    assert log[-1][2] == 1.0


def test_hooks_with_kwargs():
    m = Logged([])
    got = []
    m.register_forward_pre_hook(lambda mod, args, kwargs: (args, {**kwargs, "scale": 5.0}), with_kwargs=True)
    m.register_forward_hook(lambda mod, args, kwargs, out: got.append(kwargs), with_kwargs=True)
    np.testing.assert_allclose(m(f64([1.0]), scale=2.0).data, [10.0])
    assert got == [{"scale": 5.0}]
    m2 = Logged([])
    m2.register_forward_pre_hook(lambda mod, args, kwargs: "nonsense", with_kwargs=True)
    with pytest.raises(RuntimeError, match=r"with_kwargs=True.*\(args, kwargs\)"):
        m2(f64([1.0]))


def test_always_call_forward_hook_runs_when_forward_raises():
    class Boom(nn.Module):
        def forward(self, x):
            raise ValueError("boom")

    m = Boom()
    calls = []
    m.register_forward_hook(lambda mod, args, out: calls.append(("normal", out)))
    m.register_forward_hook(lambda mod, args, out: calls.append(("always", out)), always_call=True)
    with pytest.raises(ValueError, match="boom"):
        m(f64([1.0]))
    assert calls == [("always", None)]


def test_hook_must_be_callable():
    m = Logged([])
    for register in (m.register_forward_pre_hook, m.register_forward_hook, m.register_full_backward_hook,
                     m.register_full_backward_pre_hook):
        with pytest.raises(TypeError, match="must be callable, got int 3"):
            register(3)
    with pytest.raises(TypeError, match="must be callable"):
        f64([1.0]).register_hook("not a function")


def test_module_without_hooks_adds_nothing_to_the_graph():
    lin = nn.Linear(3, 2)
    y = lin(tg.randn(4, 3, requires_grad=True))
    assert y.grad_fn.fn is not BackwardHookOutputs
    seen = []
    with lin.register_full_backward_hook(lambda *a: None), lin.register_forward_hook(lambda m, a, o: seen.append(a)):
        assert lin(tg.randn(4, 3)).grad_fn.fn is BackwardHookOutputs
        lin(tg.randn(4, 3, requires_grad=True))
        assert seen[1][0].grad_fn.fn is BackwardHookInputs  # forward hooks see the routed args (as PyTorch)
    y = lin(tg.randn(4, 3, requires_grad=True))
    assert y.grad_fn.fn is not BackwardHookOutputs and hook_dicts_empty(lin)


# ----------------------------------------------------------------------------------------
# full backward hooks, by hand
# ----------------------------------------------------------------------------------------
def linear64(n_in, n_out, seed):
    lin = nn.Linear(n_in, n_out).double()
    rng = np.random.default_rng(seed)
    with tg.no_grad():
        lin.weight.copy_(rng.standard_normal((n_out, n_in)))
        lin.bias.copy_(rng.standard_normal(n_out))
    return lin


@given(batch=st.integers(1, 4), n_in=st.integers(1, 5), n_out=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_linear_backward_hook_sees_grad_output_and_grad_output_times_w(batch, n_in, n_out, seed):
    lin = linear64(n_in, n_out, seed)
    rng = np.random.default_rng(seed + 1)
    x = f64(rng.standard_normal((batch, n_in)))
    upstream = rng.standard_normal((batch, n_out))
    calls, pre_calls = [], []
    lin.register_full_backward_pre_hook(lambda mod, go: pre_calls.append(go))
    lin.register_full_backward_hook(lambda mod, gi, go: calls.append((mod, gi, go)))
    lin(x).backward(tg.tensor(upstream))
    assert len(calls) == 1 and len(pre_calls) == 1
    mod, grad_input, grad_output = calls[0]
    assert mod is lin and len(grad_input) == 1 and len(grad_output) == 1
    np.testing.assert_allclose(grad_output[0].data, upstream)
    np.testing.assert_allclose(pre_calls[0][0].data, upstream)
    np.testing.assert_allclose(grad_input[0].data, upstream @ lin.weight.data, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(x.grad.data, grad_input[0].data)


def test_backward_hook_fires_once_after_every_path_inside_the_module():
    class Poly(nn.Module):
        def forward(self, x):
            return x * x + x * 3  # two paths from x to the output

    m = Poly()
    calls = []
    m.register_full_backward_hook(lambda mod, gi, go: calls.append(gi[0].data.copy()))
    x = f64([1.0, -2.0])
    m(x).sum().backward()
    assert len(calls) == 1
    np.testing.assert_allclose(calls[0], 2 * x.data + 3)


def test_backward_hook_replacing_grad_input_changes_the_leaf_gradients():
    first, second = linear64(3, 4, 0), linear64(4, 2, 1)
    x = f64(np.random.default_rng(2).standard_normal((5, 3)))
    upstream = np.ones((5, 2))
    second.register_full_backward_hook(lambda mod, gi, go: (gi[0] * 2,))
    second(first(x)).backward(tg.tensor(upstream))
    g_h = 2 * upstream @ second.weight.data  # what reaches first's output
    np.testing.assert_allclose(first.weight.grad.data, g_h.T @ x.data)
    np.testing.assert_allclose(first.bias.grad.data, g_h.sum(0))
    np.testing.assert_allclose(x.grad.data, g_h @ first.weight.data)
    np.testing.assert_allclose(second.weight.grad.data, upstream.T @ first(x).data)  # its own: unchanged


def test_backward_pre_hook_replacing_grad_output_flows_into_the_module():
    lin = linear64(3, 2, 3)
    x = f64(np.random.default_rng(4).standard_normal((4, 3)))
    seen = []
    lin.register_full_backward_pre_hook(lambda mod, go: (go[0] * 10,))
    lin.register_full_backward_hook(lambda mod, gi, go: seen.append(go[0].data.copy()))
    lin(x).sum().backward()
    np.testing.assert_allclose(seen[0], 10 * np.ones((4, 2)))
    np.testing.assert_allclose(lin.weight.grad.data, 10 * np.ones((4, 2)).T @ x.data)
    np.testing.assert_allclose(x.grad.data, 10 * np.ones((4, 2)) @ lin.weight.data)


def test_module_called_twice_fires_twice_with_each_calls_gradients():
    lin = linear64(2, 2, 5)
    calls = []
    lin.register_full_backward_hook(lambda mod, gi, go: calls.append((gi[0].data.copy(), go[0].data.copy())))
    x = f64([[1.0, 2.0]])
    y = lin(lin(x))
    y.sum().backward()
    w = lin.weight.data
    assert len(calls) == 2
    # the outer call is walked first
    np.testing.assert_allclose(calls[0][1], [[1.0, 1.0]])
    np.testing.assert_allclose(calls[0][0], np.ones((1, 2)) @ w)
    np.testing.assert_allclose(calls[1][1], np.ones((1, 2)) @ w)
    np.testing.assert_allclose(calls[1][0], np.ones((1, 2)) @ w @ w)


def test_grad_input_layout_non_tensor_args_and_unused_outputs():
    class Two(nn.Module):
        def forward(self, a, b, k):
            return a * k, a + b

    m = Two()
    calls, pre = [], []
    m.register_full_backward_pre_hook(lambda mod, go: pre.append(go))
    m.register_full_backward_hook(lambda mod, gi, go: calls.append((gi, go)))
    a, b = f64([1.0, 2.0]), f64([3.0, 4.0], requires_grad=False)
    y1, _ = m(a, b, 5.0)
    y1.sum().backward()
    (gi, go), = calls
    assert len(gi) == 3 and len(go) == 2
    np.testing.assert_allclose(gi[0].data, [5.0, 5.0])
    np.testing.assert_allclose(gi[1].data, [0.0, 0.0])  # a Tensor that doesn't require grad: zeros (PyTorch)
    assert gi[2] is None  # not a Tensor
    np.testing.assert_allclose(go[0].data, [1.0, 1.0])
    assert go[1] is None  # an output that requires grad but received none: None, not zeros
    assert pre[0][1] is None


def test_backward_hook_when_no_input_requires_grad():
    lin = linear64(3, 2, 6)
    calls = []
    h = lin.register_full_backward_hook(lambda mod, gi, go: calls.append((gi, go)))
    with pytest.warns(UserWarning, match="no input of this call requires grad"):  # PyTorch warns too
        lin(f64(np.ones((1, 3)), requires_grad=False)).sum().backward()
    (gi, go), = calls
    assert gi == (None,)
    np.testing.assert_allclose(go[0].data, [[1.0, 1.0]])
    h.remove()
    lin.register_full_backward_hook(lambda mod, gi, go: (tg.ones(1, 3),))
    with pytest.raises(RuntimeError, match="no input of this module call requires grad"), pytest.warns(UserWarning):
        lin(f64(np.ones((1, 3)), requires_grad=False)).sum().backward()


def test_backward_hooks_do_nothing_under_no_grad():
    lin = linear64(3, 2, 7)
    lin.register_full_backward_hook(lambda *a: pytest.fail("must not fire"))
    with tg.no_grad():
        y = lin(f64(np.ones((1, 3))))
    assert not y.requires_grad and y.grad_fn is None


def test_backward_hook_bad_returns_are_clear_errors():
    x = f64(np.ones((2, 3)))
    cases = [
        (lambda mod, gi, go: (gi[0], gi[0]), RuntimeError, "returned 2 gradients, but expected 1"),
        (lambda mod, gi, go: (tg.ones(5, 5, dtype=tg.float64),), RuntimeError, r"shape \(5, 5\) at position 0.*\(2, 3\)"),
        (lambda mod, gi, go: (np.ones((2, 3)),), TypeError, "returned a ndarray at position 0"),
        (lambda mod, gi, go: gi[0], TypeError, "expected None or a tuple of 1 gradients"),
    ]
    for hook, error, message in cases:
        lin = linear64(3, 2, 8)
        lin.register_full_backward_hook(hook)
        with pytest.raises(error, match=message):
            lin(x).sum().backward()
    lin = linear64(3, 2, 8)
    lin.register_full_backward_pre_hook(lambda mod, go: (go[0], go[0]))
    with pytest.raises(RuntimeError, match="full backward pre hook .* of Linear returned 2 gradients"):
        lin(x).sum().backward()


def test_backward_hook_removed_before_the_call_does_not_fire():
    lin = linear64(3, 2, 9)
    calls = []
    lin.register_full_backward_hook(lambda *a: calls.append("kept"))
    lin.register_full_backward_hook(lambda *a: calls.append("removed")).remove()
    lin(f64(np.ones((1, 3)))).sum().backward()
    assert calls == ["kept"]


def test_backward_hook_with_retain_graph_fires_per_backward_and_with_grad():
    lin = linear64(3, 2, 10)
    calls = []
    lin.register_full_backward_hook(lambda mod, gi, go: calls.append(gi[0].data.copy()))
    x = f64(np.ones((1, 3)))
    y = lin(x).sum()
    y.backward(retain_graph=True)
    (gx,) = tg.grad(y, [x])
    assert len(calls) == 2
    np.testing.assert_allclose(calls[1], gx.data)
    np.testing.assert_allclose(calls[0], lin.weight.data.sum(0, keepdims=True))


def test_backward_hook_identities_keep_version_counters():
    """An in-place change to an input after forward is still caught with hooks in between."""
    lin = linear64(3, 2, 11)
    lin.register_full_backward_hook(lambda *a: None)
    x = f64(np.ones((1, 3)))
    h = x * 1
    y = lin(h).sum()
    with tg.no_grad():
        h.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


# ----------------------------------------------------------------------------------------
# full backward hooks against PyTorch
# ----------------------------------------------------------------------------------------
def lenet_like(lib):
    return lib.nn.Sequential(
        lib.nn.Conv2d(1, 3, 3, padding=1), lib.nn.ReLU(), lib.nn.MaxPool2d(2),
        lib.nn.Conv2d(3, 4, 3), lib.nn.ReLU(), lib.nn.Flatten(), lib.nn.Linear(4 * 2 * 2, 5), lib.nn.ReLU(),
        lib.nn.Linear(5, 3),
    )


def record_backward_hooks(model, to_numpy):
    log = []

    def pack(grads):
        return tuple(None if g is None else to_numpy(g) for g in grads)

    for name, m in model.named_modules():
        m.register_full_backward_pre_hook(lambda mod, go, name=name: log.append(("pre", name, pack(go))))
        m.register_full_backward_hook(lambda mod, gi, go, name=name: log.append(("full", name, pack(gi), pack(go))))
    return log


@pytest.mark.filterwarnings("ignore:.*[Ff]ull backward hook.*:UserWarning")
@pytest.mark.parametrize("input_requires_grad", [True, False])
def test_backward_hooks_match_pytorch_on_a_lenet_like_network(input_requires_grad):
    torch = pytest.importorskip("torch")
    ours, theirs = lenet_like(tg).double(), lenet_like(torch).double()
    theirs.load_state_dict({k: torch.from_numpy(v.data.copy()) for k, v in ours.state_dict().items()})
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 1, 8, 8))
    upstream = rng.standard_normal((2, 3))
    log_ours = record_backward_hooks(ours, lambda g: np.array(g.data))
    log_theirs = record_backward_hooks(theirs, lambda g: g.detach().numpy())
    xa = tg.tensor(x, requires_grad=input_requires_grad)
    xb = torch.tensor(x, requires_grad=input_requires_grad)
    ours(xa).backward(tg.tensor(upstream))
    theirs(xb).backward(torch.from_numpy(upstream))
    assert [e[:2] for e in log_ours] == [e[:2] for e in log_theirs]
    assert len(log_ours) == 2 * 10  # every module incl. the Sequential, pre and full
    for a, b in zip(log_ours, log_theirs):
        for ga, gb in zip(a[2:], b[2:]):
            assert len(ga) == len(gb), a[:2]
            for u, v in zip(ga, gb):
                assert (u is None) == (v is None), a[:2]
                if u is not None:
                    np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-12, err_msg=str(a[:2]))
    if input_requires_grad:
        np.testing.assert_allclose(xa.grad.data, xb.grad.numpy(), rtol=1e-10, atol=1e-12)
    for (n, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(p.grad.data, q.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=n)


def test_replacing_grad_input_matches_pytorch():
    torch = pytest.importorskip("torch")
    ours, theirs = lenet_like(tg).double(), lenet_like(torch).double()
    theirs.load_state_dict({k: torch.from_numpy(v.data.copy()) for k, v in ours.state_dict().items()})
    for model in (ours, theirs):
        model[3].register_full_backward_hook(lambda mod, gi, go: (gi[0] * -0.5,))
        model[6].register_full_backward_pre_hook(lambda mod, go: (go[0] * 3,))
    x = np.random.default_rng(13).standard_normal((2, 1, 8, 8))
    xa, xb = tg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ours(xa).sum().backward()
    theirs(xb).sum().backward()
    np.testing.assert_allclose(xa.grad.data, xb.grad.numpy(), rtol=1e-10, atol=1e-12)
    for (n, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(p.grad.data, q.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=n)


def test_tensor_hook_order_with_module_hooks_matches_pytorch():
    torch = pytest.importorskip("torch")
    logs = []
    for lib, mk in ((tg, lambda v: tg.tensor(v, requires_grad=True)), (torch, lambda v: torch.tensor(v, requires_grad=True))):
        log = []
        lin = lib.nn.Linear(2, 2)
        lin.register_full_backward_hook(lambda *a: log.append("module"))
        lin.weight.register_hook(lambda g: log.append("weight"))
        a = mk([1.0, 2.0])
        a.register_hook(lambda g: log.append("a"))
        x = a * 1
        x.register_hook(lambda g: log.append("x"))
        lin(x).sum().backward()
        log.append("|")
        lib.autograd.grad(lin(x).sum(), [x]) if lib is torch else tg.grad(lin(x).sum(), [x])
        logs.append(log)
    assert logs[0] == logs[1] == ["weight", "module", "x", "a", "|", "module", "x"]


# ----------------------------------------------------------------------------------------
# Tensor.register_hook
# ----------------------------------------------------------------------------------------
def test_leaf_hook_sees_the_summed_gradient_once_and_can_replace_it():
    x = f64([1.0, 2.0])
    seen = []
    x.register_hook(lambda g: seen.append(g.data.copy()))
    x.register_hook(lambda g: g * 10)
    (x * x + x * 3).sum().backward()
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], 2 * x.data + 3)
    np.testing.assert_allclose(x.grad.data, 10 * (2 * x.data + 3))


@given(factors=st.lists(st.floats(-3, 3, allow_nan=False), min_size=1, max_size=4))
def test_hooks_run_in_registration_order_each_seeing_the_previous_result(factors):
    x = f64([1.0, -2.0])
    seen = []
    for c in factors:
        x.register_hook(lambda g, c=c: (seen.append(g.data.copy()), g * c + 1)[1])
    (x * 2).sum().backward()
    expected = np.full(2, 2.0)
    for c, s in zip(factors, seen):
        np.testing.assert_allclose(s, expected)
        expected = expected * c + 1
    np.testing.assert_allclose(x.grad.data, expected)


def test_non_leaf_hook_replacement_flows_back_and_into_retain_grad():
    x = f64([1.0, 2.0])
    h = x * x
    h.retain_grad()
    h.register_hook(lambda g: g * -1)
    (h * 3).sum().backward()
    np.testing.assert_allclose(h.grad.data, [-3.0, -3.0])
    np.testing.assert_allclose(x.grad.data, -3 * 2 * x.data)


def test_hook_on_an_intermediate_fires_after_the_python_object_is_gone():
    x = f64([1.0, 2.0])
    seen = []
    h = x * 2
    h.register_hook(lambda g: seen.append(g.data.copy()))
    y = (h * h).sum()
    del h
    gc.collect()
    y.backward()
    np.testing.assert_allclose(seen[0], 2 * 2 * x.data)


def test_tensor_hook_removal():
    x = f64([1.0])
    handle = x.register_hook(lambda g: g * 100)
    handle.remove()
    (x * 2).sum().backward()
    np.testing.assert_allclose(x.grad.data, [2.0])
    x.grad = None
    with x.register_hook(lambda g: g * 100):
        (x * 2).sum().backward()
    np.testing.assert_allclose(x.grad.data, [200.0])
    x.grad = None
    (x * 2).sum().backward()
    np.testing.assert_allclose(x.grad.data, [2.0])


def test_hooked_tensors_are_freed_and_copies_carry_no_hooks():
    import weakref

    from tinygrad_cv import autograd

    x = f64([1.0, 2.0])
    x.register_hook(lambda g: g * x)  # the hook refers to its own tensor: a cycle, not a leak
    twin = copy.deepcopy(x)
    (twin * 2).sum().backward()
    np.testing.assert_allclose(twin.grad.data, [2.0, 2.0])  # the copy has no hook
    hooked = tg.tensor([1.0], requires_grad=True)
    hooked.register_hook(double)
    restored = pickle.loads(pickle.dumps(hooked))
    (restored * 1).sum().backward()
    np.testing.assert_allclose(restored.grad.data, [1.0])
    ref = weakref.ref(x)
    del x
    gc.collect()
    assert ref() is None
    assert all(r() is not None for r in autograd._hooked_leaf_refs.values())


def test_register_hook_refuses_tensors_that_do_not_require_grad():
    with pytest.raises(RuntimeError, match="cannot register a hook on a tensor that doesn't require gradient"):
        tg.tensor([1.0]).register_hook(lambda g: g)


def test_tensor_hooks_with_grad_apply_to_captured_gradients():
    x = f64([1.0, 2.0])
    h = x * x
    x.register_hook(lambda g: g + 1)
    h.register_hook(lambda g: g * 2)
    y = (h * 3).sum()
    gh, gx = tg.grad(y, [h, x], retain_graph=True)
    np.testing.assert_allclose(gh.data, [6.0, 6.0])
    np.testing.assert_allclose(gx.data, 6 * 2 * x.data + 1)
    assert x.grad is None and h.grad is None


def test_grad_fires_no_hook_off_the_path_to_its_inputs():
    x = f64([1.0, 2.0])
    w = f64([3.0])
    fired = []
    w.register_hook(lambda g: fired.append("w"))
    x.register_hook(lambda g: fired.append("x"))
    a = x * 2
    a.register_hook(lambda g: fired.append("a"))
    h = a * w
    y = (h * h).sum()
    (gh,) = tg.grad(y, [h])
    np.testing.assert_allclose(gh.data, 2 * h.data)
    assert fired == []
    # the graph below h was not walked, so it was not freed either
    y2 = (h * 1).sum()
    y2.backward()
    assert fired == ["w", "a", "x"]


def test_tensor_hooks_with_create_graph_are_differentiable():
    x = f64([1.0, 2.0])
    x.register_hook(lambda g: g * x)  # recorded: d/dx of (2x * x) is 4x
    (g,) = tg.grad((x * x).sum(), [x], create_graph=True)
    np.testing.assert_allclose(g.data, 2 * x.data ** 2)
    assert g.requires_grad
    (h,) = tg.grad(g.sum(), [x])
    # the hook runs again on the second walk: (4x) * x
    np.testing.assert_allclose(h.data, 4 * x.data * x.data)


def test_retain_grad_on_a_non_leaf_with_create_graph():
    x = f64([1.0, 2.0])
    h = x * x
    h.retain_grad()
    (h * h).sum().backward(create_graph=True)
    np.testing.assert_allclose(h.grad.data, 2 * h.data)
    assert h.grad.requires_grad
    (gx,) = tg.grad(h.grad.sum(), [x])  # d/dx sum(2 x^2)
    np.testing.assert_allclose(gx.data, 4 * x.data)


def test_tensor_hook_bad_returns_are_clear_errors():
    for hook, error, message in [
        (lambda g: g.sum(), RuntimeError, r"changed the shape of the gradient from \(2,\) to \(\)"),
        (lambda g: g.to(tg.float32), RuntimeError, "changed the dtype of the gradient from float64 to float32"),
        (lambda g: 3, TypeError, "returned int; a hook must return None or a gradient"),
    ]:
        x = f64([1.0, 2.0])
        x.register_hook(hook)
        with pytest.raises(error, match=message):
            (x * 2).sum().backward()


def test_parameter_hooks_and_model_copies():
    lin = linear64(2, 1, 14)
    lin.weight.register_hook(lambda g: g * 0)
    lin(f64([[1.0, 1.0]])).sum().backward()
    np.testing.assert_allclose(lin.weight.grad.data, [[0.0, 0.0]])
    np.testing.assert_allclose(lin.bias.grad.data, [1.0])
    twin = copy.deepcopy(lin)  # the hook stays with the original parameter object
    twin(f64([[1.0, 1.0]])).sum().backward()
    np.testing.assert_allclose(twin.weight.grad.data, [[1.0, 1.0]])


# ----------------------------------------------------------------------------------------
# Module copies and state
# ----------------------------------------------------------------------------------------
def test_hooks_are_not_state_and_copies_work():
    model = LeNet5()
    keys = list(model.state_dict())
    calls = []
    model.features[0].register_forward_hook(lambda *a: calls.append(1))
    model.classifier[1].register_full_backward_hook(lambda *a: None)
    assert list(model.state_dict()) == keys
    twin = copy.deepcopy(model)  # hooks are copied, as in PyTorch
    twin(tg.zeros(1, 1, 28, 28))
    assert calls == [1]
    plain = LeNet5()
    restored = pickle.loads(pickle.dumps(plain))
    assert list(restored.state_dict()) == keys
    np.testing.assert_array_equal(restored(tg.ones(1, 1, 28, 28)).data, plain(tg.ones(1, 1, 28, 28)).data)


def test_a_module_pickled_without_hook_registries_still_works():
    lin = nn.Linear(2, 2)
    state = dict(lin.__dict__)
    for name in nn.Module._HOOK_DICTS:
        del state[name]
    old = nn.Linear.__new__(nn.Linear)
    old.__setstate__(state)
    assert old(tg.ones(1, 2)).shape == (1, 2)
    with old.register_forward_hook(lambda mod, args, out: out * 0):
        np.testing.assert_array_equal(old(tg.ones(1, 2)).data, [[0.0, 0.0]])


# ----------------------------------------------------------------------------------------
# feature_extractor
# ----------------------------------------------------------------------------------------
@pytest.fixture
def lenet():
    tg.manual_seed(0)
    return LeNet5().double()


def test_feature_extractor_outputs_equal_manual_slicing(lenet):
    x = tg.tensor(np.random.default_rng(15).standard_normal((2, 1, 28, 28)))
    fx = feature_extractor(lenet, ["classifier.2", "features.2", "features"], return_output=True)
    feats = fx(x)
    assert list(feats) == ["classifier.2", "features.2", "features", "output"]
    np.testing.assert_array_equal(feats["features.2"].data, lenet.features[:3](x).data)
    np.testing.assert_array_equal(feats["features"].data, lenet.features(x).data)
    np.testing.assert_array_equal(feats["classifier.2"].data, lenet.classifier[:3](lenet.features(x)).data)
    np.testing.assert_array_equal(feats["output"].data, lenet(x).data)
    assert list(feature_extractor(lenet, ["features.0"])(x)) == ["features.0"]
    assert hook_dicts_empty(lenet)


def test_feature_extractor_outputs_keep_their_graph(lenet):
    x = tg.tensor(np.random.default_rng(16).standard_normal((1, 1, 28, 28)), requires_grad=True)
    feats = feature_extractor(lenet, ["features.5"], return_output=True)(x)
    # saliency: d(activation)/d(input) equals the one computed without hooks
    (g,) = tg.grad(feats["features.5"].sum(), [x])
    x2 = tg.tensor(x.data, requires_grad=True)
    (g2,) = tg.grad(lenet.features(x2).sum(), [x2])
    np.testing.assert_allclose(g.data, g2.data)
    # Grad-CAM: d(class score)/d(activation) equals the classifier's own gradient
    (ga,) = tg.grad(feats["output"][0, 3], [feats["features.5"]])
    a = tg.tensor(lenet.features(x).data, requires_grad=True)
    (ga2,) = tg.grad(lenet.classifier(a)[0, 3], [a])
    np.testing.assert_allclose(ga.data, ga2.data)


def test_feature_extractor_renames_with_a_dict(lenet):
    feats = feature_extractor(lenet, {"features.5": "pool2", "features.0": "conv1"})(
        tg.ones(1, 1, 28, 28, dtype=tg.float64)
    )
    assert list(feats) == ["pool2", "conv1"] and feats["conv1"].shape == (1, 6, 28, 28)


def test_feature_extractor_bad_names_are_clear_errors(lenet):
    with pytest.raises(KeyError, match=r"unknown layer name\(s\) \['features.9', 'fc'\].*'features.0', 'features.1'"):
        feature_extractor(lenet, ["features.0", "features.9", "fc"])
    with pytest.raises(ValueError, match="'features.0' is named twice"):
        feature_extractor(lenet, ["features.0", "features.0"])
    with pytest.raises(ValueError, match="empty"):
        feature_extractor(lenet, [])
    with pytest.raises(TypeError, match="list of names"):
        feature_extractor(lenet, "features.0")
    with pytest.raises(ValueError, match="'output' is taken by return_output=True"):
        feature_extractor(lenet, {"features.0": "output"}, return_output=True)
    with pytest.raises(TypeError, match="needs a Module"):
        feature_extractor(lambda x: x, ["a"])


def test_feature_extractor_leaves_no_hooks_even_when_forward_raises(lenet):
    fx = feature_extractor(lenet, ["features.0", "classifier.1"])
    fx(tg.ones(1, 1, 28, 28, dtype=tg.float64))
    assert hook_dicts_empty(lenet)
    with pytest.raises(Exception):
        fx(tg.ones(1, 1, 5, 5, dtype=tg.float64))  # too small for the classifier: forward fails half-way
    assert hook_dicts_empty(lenet)


def test_feature_extractor_refuses_layers_called_twice_or_never():
    shared = nn.ReLU()
    model = nn.Sequential(OrderedDict(lin=nn.Linear(2, 2), act=shared, lin2=nn.Linear(2, 2), act2=shared))
    with pytest.raises(RuntimeError, match="'act' .* called more than once"):
        feature_extractor(model, ["act"])(tg.ones(1, 2))
    assert hook_dicts_empty(model)
    assert feature_extractor(model, ["lin2"])(tg.ones(1, 2))["lin2"].shape == (1, 2)

    class Skips(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Identity(), nn.Identity()

        def forward(self, x):
            return self.used(x)

    with pytest.raises(RuntimeError, match=r"\['unused'\] were not called"):
        feature_extractor(Skips(), ["used", "unused"])(tg.ones(1))
