"""Shared test configuration.

Hypothesis runs without deadlines (Numba compiles a kernel the first time it
sees a new signature, which would trip any per-example deadline) and is
derandomised in CI so a red run can be reproduced exactly.
"""
import ctypes.util
import os

# GPU tests run on a real GPU when this machine has the CUDA driver, and on
# Numba's CUDA simulator otherwise. The switch must be set before anything
# imports numba, which is why it lives at the top of conftest.
if ctypes.util.find_library("cuda") is None:
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "dev",
    deadline=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    parent=settings.get_profile("dev"),
    derandomize=True,
    print_blob=True,
)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture
def no_cuda(monkeypatch):
    """Pretend this machine has no usable GPU (whatever it really has)."""
    from tinygrad_cv import cuda

    monkeypatch.setattr(cuda, "_state", {"why_not": "no GPU in this test"})


@pytest.fixture(scope="session")
def warm_kernels():
    """Compile (or load from the on-disk cache) the Numba kernels once per session.

    Tests that time nothing don't strictly need it (hypothesis runs without
    deadlines), but it moves the one-off compile out of the first hypothesis
    example, so a slow first example never looks like a slow kernel.
    """
    import numpy as np

    from tinygrad_cv.kernels import cpu

    for dtype in (np.float32, np.float64):
        x = np.ones((1, 2, 5, 5), dtype)
        w = np.ones((2, 2, 3, 3), dtype)
        y = cpu.conv2d_forward(x, w, None, (1, 1), (1, 1), (1, 1), 1)
        cpu.conv2d_backward_input(y, w, x.shape, (1, 1), (1, 1), (1, 1), 1)
        cpu.conv2d_backward_weight(x, y, w.shape, (1, 1), (1, 1), (1, 1), 1)
        p, idx = cpu.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1), False)
        cpu.max_pool2d_backward(p, idx, x.shape)
        a = cpu.avg_pool2d_forward(x, (2, 2), (2, 2), (0, 0), False, True)
        cpu.avg_pool2d_backward(a, x.shape, (2, 2), (2, 2), (0, 0), False, True)
    return cpu


def pytest_addoption(parser):
    parser.addoption(
        "--fail-on-skip",
        action="store_true",
        help="fail the run if any test was skipped (CI's cross-check run, where every optional package is installed)",
    )


def pytest_sessionfinish(session, exitstatus):
    if not session.config.getoption("--fail-on-skip"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped and session.exitstatus == 0:
        reporter.write_line(f"--fail-on-skip: {len(skipped)} test(s) skipped", red=True)
        session.exitstatus = 1


def write_fake_mnist(folder, n_train, n_test):
    """Tiny MNIST-format files in ``folder``: each class is a bright bar at its own height, so it is learnable.

    One generator (seed 0) draws the training split, then the test split, so
    the same sizes always give the same files.
    """
    import numpy as np

    from tinygrad_cv.data.idx import write_idx

    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = (rng.random((n, 28, 28)) * 40).astype(np.uint8)
        for i, c in enumerate(labels):
            images[i, 2 + 2 * c : 4 + 2 * c, 4:24] = 255
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
    return folder


@pytest.fixture(scope="session")  # session: module-scoped fixtures build their data with it too
def fake_mnist_files():
    """``write_fake_mnist`` for the demo tests (each picks its own sizes)."""
    return write_fake_mnist
