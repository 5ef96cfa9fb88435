"""Misuse and faults that once gave wrong results silently, kept as regression tests.

- in-place changes to a tensor saved for backward, made through a view or a
  ``detach()``ed alias, are refused at backward (version counters shared by
  a tensor, its views and its aliases), as PyTorch does;
- grad mode is per thread: ``no_grad()`` in one thread leaves another
  thread's recording alone, and two models train side by side;
- the BLAS thread-count switch survives overlapping calls from two threads;
- odd but legal inputs (a zero-width softmax, ``Linear(0, n)``, big-endian
  arrays, ``"cpu:0"``) work or fail with a message that says what is wrong;
- a read-only install under a read-only home still imports and computes.

Checkpoint, data and command-line faults have their own files
(``test_faults_checkpoint.py``, ``test_faults_data.py``, ``test_faults_cli.py``).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import nn, optim, tensor

REPO = Path(__file__).resolve().parents[1]
STALE = "modified by an inplace operation"


# --- version counters: views and aliases share them ------------------------------------------------
def _mul_graph():
    w = tensor([1.0, 2.0, 3.0], requires_grad=True)
    x = tensor([1.0, 1.0, 1.0])
    return w, x, (x * w).sum()  # Mul saves x for dL/dw


@pytest.mark.parametrize("change", [
    lambda x: x[0:2].add_(10),
    lambda x: x.reshape(3, 1).mul_(5),
    lambda x: x.T.fill_(0),
    lambda x: x.view(3).zero_(),
    lambda x: x.unsqueeze(0)[0, 1:].sub_(1),
    lambda x: x.detach().mul_(2),
    lambda x: x.detach()[2:].copy_(tensor([7.0])),
    lambda x: x[::2].div_(4),
])
def test_change_through_a_view_of_a_saved_input_is_refused(change):
    w, x, y = _mul_graph()
    change(x)
    with pytest.raises(RuntimeError, match=STALE) as err:
        y.backward()
    assert "Mul" in str(err.value) and "version" in str(err.value)
    assert w.grad is None  # nothing was accumulated from the stale values


def test_change_through_a_detached_alias_of_a_saved_output_is_refused():
    w = tensor([1.0, 2.0, 3.0], requires_grad=True)
    e = w.exp()  # Exp saves its output
    z = e.sum()
    e.detach().zero_()
    with pytest.raises(RuntimeError, match=STALE) as err:
        z.backward()
    assert "Exp" in str(err.value)


def test_change_to_a_leaf_under_no_grad_through_a_view_is_refused():
    w = tensor([1.0, 2.0, 3.0], requires_grad=True)
    x = tensor([1.0, 1.0, 1.0], requires_grad=True)
    y = (x * w).sum()  # Mul saves w for dL/dx
    with tg.no_grad():
        w[0:2].mul_(100)
    with pytest.raises(RuntimeError, match=STALE):
        y.backward()


def test_relu_output_changed_under_no_grad_is_refused():
    w = tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = w.relu()
    s = y.sum()
    with tg.no_grad():
        y.zero_()
    with pytest.raises(RuntimeError, match=STALE) as err:
        s.backward()
    assert "ReLU" in str(err.value)


def test_optimizer_step_invalidates_a_retained_graph():
    lin = nn.Linear(3, 2)
    loss = lin(tg.ones(4, 3)).pow(2).sum()
    loss.backward(retain_graph=True)
    optim.SGD(lin.parameters(), lr=0.1).step()
    with pytest.raises(RuntimeError, match=STALE):
        loss.backward()


def test_unrelated_changes_leave_backward_alone():
    # a copy, and a tensor that only *looks* like a view (reshape of a non-contiguous array copies)
    w, x, y = _mul_graph()
    x.clone().add_(1)
    tensor(x.data).add_(1)  # tensor() copies
    y.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, 1.0, 1.0])
    a = tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    b = tensor(np.ones((2, 3)))
    y = (a * b).sum()
    b.T.reshape(6)  # a copy: b.T is not contiguous
    b.clone().mul_(3)
    y.backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.ones((2, 3)))


def test_versions_are_shared_and_counted():
    x = tensor(np.zeros((2, 3)))
    v, d = x[0], x.detach()
    assert x._version == v._version == d._version == 0
    v.add_(1)
    assert x._version == d._version == 1
    d.zero_()
    assert v._version == 2
    assert x.clone()._version == 0
    p = nn.Parameter(x)  # shares memory, so shares the counter (as torch.nn.Parameter)
    with tg.no_grad():
        p.mul_(2)
    assert x._version == 3


def test_changes_before_use_are_fine():
    w = tensor([1.0, 2.0], requires_grad=True)
    x = tensor([3.0, 4.0])
    x[0:1].add_(1)  # before the graph is built
    y = (x * w).sum()
    y.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [4.0, 4.0])


# --- grad mode is per thread --------------------------------------------------------------------------
def test_no_grad_in_another_thread_does_not_switch_off_recording():
    inside, leave = threading.Event(), threading.Event()

    def evaluator():
        with tg.no_grad():
            inside.set()
            leave.wait(10)

    t = threading.Thread(target=evaluator)
    t.start()
    try:
        assert inside.wait(10)
        assert tg.is_grad_enabled()  # this thread is not inside no_grad
        w = tensor([1.0, 2.0], requires_grad=True)
        (w * w).sum().backward()
        np.testing.assert_array_equal(w.grad.numpy(), [2.0, 4.0])
    finally:
        leave.set()
        t.join()


def test_threads_entering_and_leaving_no_grad_leave_the_mode_alone():
    errors = []

    def worker(n):
        for _ in range(n):
            with tg.no_grad():
                time.sleep(0)  # let the other threads run while this one is inside
                if tg.is_grad_enabled():
                    errors.append("on inside no_grad")
            time.sleep(0)
            if not tg.is_grad_enabled():
                errors.append("off outside no_grad")

    threads = [threading.Thread(target=worker, args=(300,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert tg.is_grad_enabled()


def test_new_threads_start_with_grad_enabled():
    seen = []
    with tg.no_grad():
        t = threading.Thread(target=lambda: seen.append(tg.is_grad_enabled()))
        t.start()
        t.join()
    assert seen == [True]


class _SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        return self.fc(F.max_pool2d(self.conv(x).relu(), 2).flatten(1))


def _train(seed, steps, out, errors=None):
    """Train a small CNN for ``steps`` Adam steps on fixed data; record final weights in ``out``."""
    try:
        gen = np.random.default_rng(seed)
        x = tensor(gen.standard_normal((16, 1, 8, 8)).astype(np.float32))
        y = tensor(gen.integers(0, 3, 16))
        tg.manual_seed(seed)
        model = _SmallCNN()
        # parameters from a seeded NumPy generator: tg's global RNG is shared between threads
        with tg.no_grad():
            for p in model.parameters():
                p.copy_(tensor(gen.standard_normal(p.shape).astype(np.float32) * 0.3))
        opt = optim.Adam(model.parameters(), lr=0.01)
        for _ in range(steps):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            if model.conv.weight.grad is None:
                raise AssertionError("no gradient for the conv weights")
            opt.step()
        out[seed] = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    except BaseException as e:  # reported to the main thread
        if errors is None:
            raise
        errors.append(repr(e))


def test_training_beside_an_evaluation_thread():
    stop, errors, evaluated = threading.Event(), [], []

    def evaluator():
        model = _SmallCNN()
        x = tg.ones(8, 1, 8, 8)
        while not stop.is_set():
            with tg.no_grad():
                out = model(x)
            if out.requires_grad:
                errors.append("evaluation recorded a graph")
            evaluated.append(1)

    t = threading.Thread(target=evaluator)
    t.start()
    try:
        out = {}
        _train(1, 40, out, errors)
    finally:
        stop.set()
        t.join()
    assert not errors, errors[:3]
    assert evaluated and 1 in out
    alone = {}
    _train(1, 40, alone)
    for k in alone[1]:
        np.testing.assert_array_equal(out[1][k], alone[1][k], err_msg=k)


def test_two_models_train_in_two_threads_as_they_would_alone():
    together, errors = {}, []
    threads = [threading.Thread(target=_train, args=(seed, 30, together, errors)) for seed in (2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    alone = {}
    for seed in (2, 3):
        _train(seed, 30, alone)
        for k in alone[seed]:
            np.testing.assert_array_equal(together[seed][k], alone[seed][k], err_msg=f"seed {seed}: {k}")


# --- the BLAS thread switch ------------------------------------------------------------------------
def test_overlapping_one_thread_products_restore_the_blas_thread_count(monkeypatch):
    """Two threads inside a one-thread product at once: the count before the first is restored after the last.

    Saving and restoring per call (the old code) made the second call save the
    first call's "1" and restore it last, leaving BLAS on one thread for good.
    """
    from tinygrad_cv.kernels.matmul import cpu

    count = [4]
    monkeypatch.setattr(cpu, "_blas_libs", lambda: [(lambda: count[0], lambda n: count.__setitem__(0, n))])
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    real_dot = np.dot

    class _NP:  # the module's `np`, with a dot that makes the two calls overlap in a fixed order
        def __getattr__(self, name):
            return getattr(np, name)

        @staticmethod
        def dot(a, b):
            if threading.current_thread().name == "first":
                first_in.set()
                assert second_in.wait(10)
                r = real_dot(a, b)
                first_out.set()
                return r
            second_in.set()
            assert first_out.wait(10)
            return real_dot(a, b)

    monkeypatch.setattr(cpu, "np", _NP())
    a = np.ones((2, 2))
    t1 = threading.Thread(target=cpu._dot_one_thread, args=(a, a), name="first")
    t1.start()
    assert first_in.wait(10)
    t2 = threading.Thread(target=cpu._dot_one_thread, args=(a, a), name="second")
    t2.start()
    t1.join()
    t2.join()
    assert count[0] == 4


def test_one_thread_products_from_many_threads_leave_blas_as_it_was():
    from tinygrad_cv.kernels.matmul import cpu

    libs = cpu._blas_libs()
    before = [get() for get, _ in libs]
    a = np.ones((40, 40))

    def worker():
        for _ in range(300):
            cpu._dot_one_thread(a, a)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [get() for get, _ in libs] == before


# --- odd but legal inputs ------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax])
def test_zero_width_softmax_is_empty(fn):
    x = tg.zeros(3, 0, requires_grad=True)
    y = fn(x, dim=1)
    assert y.shape == (3, 0)
    y.sum().backward()
    assert x.grad.shape == (3, 0)
    assert fn(tg.zeros(0, 4), dim=1).shape == (0, 4)


def test_linear_with_no_inputs_gives_its_bias():
    with pytest.warns(UserWarning, match="zero-element"):
        lin = nn.Linear(0, 3)
    x = tg.zeros(4, 0, requires_grad=True)
    y = lin(x)
    assert y.shape == (4, 3)
    np.testing.assert_array_equal(y.detach().numpy(), np.broadcast_to(lin.bias.detach().numpy(), (4, 3)))
    y.sum().backward()
    assert x.grad.shape == (4, 0) and lin.weight.grad.shape == (3, 0)
    np.testing.assert_array_equal(lin.bias.grad.numpy(), [4.0, 4.0, 4.0])
    with pytest.warns(UserWarning, match="zero-element"):
        empty = nn.Linear(3, 0)
    assert empty(tg.ones(2, 3)).shape == (2, 0)


def test_big_endian_arrays_are_converted_by_tensor():
    x = np.arange(2 * 1 * 6 * 6, dtype=">f4").reshape(2, 1, 6, 6)
    w = np.ones((2, 1, 3, 3), dtype=">f4")
    native = F.conv2d(tensor(x.astype("<f4")), tensor(w.astype("<f4")))
    got = F.conv2d(tensor(x), tensor(w))
    assert got.dtype == np.float32 and got.dtype.isnative
    np.testing.assert_array_equal(got.numpy(), native.numpy())
    np.testing.assert_array_equal(F.max_pool2d(tensor(x), 2).numpy(), F.max_pool2d(tensor(x.astype("<f4")), 2).numpy())
    assert tensor(np.array([1, 2], dtype=">i8")).dtype == np.int64


def test_from_numpy_refuses_big_endian_with_a_reason():
    with pytest.raises(ValueError, match="byte order") as err:
        tg.from_numpy(np.zeros(3, dtype=">f4"))
    assert "'>f4'" in str(err.value)


@pytest.mark.parametrize("device", ["cpu", "cpu:0"])
def test_cpu_device_names(device):
    x = tg.ones(2)
    assert x.to(device) is x
    assert tg.ones(2, device=device).device == "cpu"
    assert tg.ones(2).to(device, tg.float64).dtype == np.float64


@pytest.mark.parametrize("device", ["tpu", "mps", "cuda:7", "gpu"])
def test_unknown_device_is_named(device):
    with pytest.raises(ValueError, match=repr(device)):
        tg.ones(2).to(device)
    with pytest.raises(ValueError, match=repr(device)):
        tg.ones(2, device=device)


def test_dtype_names_still_cast():
    assert tg.ones(2).to("float64").dtype == np.float64


# --- a read-only install under a read-only home --------------------------------------------------
@pytest.mark.skipif(os.name != "posix", reason="POSIX paths")
def test_import_and_compute_without_a_writable_numba_cache(tmp_path):
    """The package folder and $HOME unusable for Numba's cache: import works, kernels run.

    Permissions cannot stop root, so "unwritable" is made with files where
    Numba needs folders: ``kernels/__pycache__`` and ``$HOME`` are plain files.
    """
    pkg = tmp_path / "site"
    shutil.copytree(REPO / "tinygrad_cv", pkg / "tinygrad_cv", ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "tinygrad_cv" / "kernels" / "__pycache__").write_text("not a folder")
    home = tmp_path / "home"
    home.write_text("not a folder")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_CACHE_DIR", "XDG_"))}
    env.update(HOME=str(home), PYTHONPATH=str(pkg), PYTHONDONTWRITEBYTECODE="1", TMPDIR=str(tmp))
    code = (
        "import tinygrad_cv as tg, tinygrad_cv.functional as F\n"
        "from tinygrad_cv import optim\n"
        "w = tg.ones(2, 1, 3, 3, requires_grad=True)\n"
        "F.conv2d(tg.ones(1, 1, 5, 5), w).sum().backward()\n"
        "optim.Adam([w]).step()\n"
        "from numba.core import config\n"
        "print('cache', config.CACHE_DIR)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"cache {tmp}" in run.stdout  # fell back to the temporary folder
