"""Matrix product kernels: BLAS matmul and the blocked teaching kernel against the triple loop."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernel_test_utils import DTYPES, assert_close
from tinygrad_cv import kernels
from tinygrad_cv.kernels import reference as ref
from tinygrad_cv.kernels.matmul import cpu  # matmul_blocked and the BLAS thread switch live with the family


def _operand(rng, shape, dtype, layout):
    """An operand laid out as ``layout`` says: "c" contiguous, "t" a transposed view, "s" every other column."""
    if layout == "t":  # a transposed view, as in x @ W.T
        return rng.standard_normal(shape[::-1]).astype(dtype).T
    if layout == "s":  # neither C- nor F-contiguous: matmul_split copies it
        return rng.standard_normal((shape[0], 2 * shape[1])).astype(dtype)[:, ::2]
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(deadline=None, max_examples=30)
@given(m=st.integers(1, 70), k=st.integers(1, 70), n=st.integers(1, 70),
       la=st.sampled_from("cts"), lb=st.sampled_from("cts"), seed=st.integers(0, 2**32 - 1),
       block=st.sampled_from([(64, 128, 128), (3, 5, 7), (1, 1, 1)]), parts=st.integers(1, 5))
def test_matmul_twins_agree(dtype, m, k, n, la, lb, seed, block, parts):
    rng = np.random.default_rng(seed)
    a = _operand(rng, (m, k), dtype, la)
    b = _operand(rng, (k, n), dtype, lb)
    expected = ref.matmul(a, b)
    scale = ref.matmul(np.abs(a), np.abs(b))
    for got in (cpu.matmul(a, b), cpu.matmul_blocked(a, b, block), cpu.matmul_split(a, b, parts)):
        assert got.shape == (m, n) and got.dtype == dtype
        assert_close(got, expected, scale, dtype)


@pytest.mark.parametrize("shape", [(130, 57, 40), (20, 33, 150), (0, 5, 7), (6, 0, 7), (6, 5, 0)])
def test_matmul_split_is_deterministic_and_thread_count_free(shape):
    """The blocks depend on ``parts`` only: 1 or 2 threads, and repeated calls, give the same bits."""
    import numba

    m, k, n = shape
    rng = np.random.default_rng(1)
    a = rng.standard_normal((k, m)).astype(np.float32).T
    b = rng.standard_normal((k, n)).astype(np.float32)
    first = cpu.matmul_split(a, b)
    np.testing.assert_allclose(first, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
    saved = numba.get_num_threads()
    try:
        for threads in (1, saved):
            numba.set_num_threads(threads)
            np.testing.assert_array_equal(cpu.matmul_split(a, b), first)
    finally:
        numba.set_num_threads(saved)


def test_matmul_takes_the_split_path_between_the_thresholds(monkeypatch):
    """One BLAS call below _SPLIT_WORK, matmul_split up to _BLAS_ONE_THREAD_WORK, np.dot above."""
    calls = []
    monkeypatch.setattr(cpu, "matmul_split", lambda a, b: calls.append("split") or a @ b)
    monkeypatch.setattr(cpu, "_dot_one_thread", lambda a, b: calls.append("one") or a @ b)
    a, b = np.ones((64, 400)), np.ones((400, 120))  # 3.1 M multiply-adds
    monkeypatch.setattr(cpu, "_SPLIT_WORK", 64 * 400 * 120 + 1)
    cpu.matmul(a, b)
    monkeypatch.setattr(cpu, "_SPLIT_WORK", 64 * 400 * 120)
    cpu.matmul(a, b)
    monkeypatch.setattr(cpu, "_BLAS_ONE_THREAD_WORK", 64 * 400 * 120)
    cpu.matmul(a, b)
    assert calls == ["one", "split"]


def test_matmul_split_rejects_bad_arguments():
    with pytest.raises(TypeError, match="int64"):
        cpu.matmul_split(np.ones((2, 3), np.int64), np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"3 != 4"):
        cpu.matmul_split(np.ones((2, 3)), np.ones((4, 5)))
    with pytest.raises(ValueError, match="parts"):
        cpu.matmul_split(np.ones((2, 3)), np.ones((3, 4)), parts=0)


def test_matmul_blocked_is_deterministic():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((130, 257)).astype(np.float32)
    b = rng.standard_normal((257, 99)).astype(np.float32)
    c = cpu.matmul_blocked(a, b)
    for _ in range(3):
        np.testing.assert_array_equal(cpu.matmul_blocked(a, b), c)


@pytest.mark.parametrize("twin", ["reference", "cpu"])
def test_matmul_shape_errors(twin):
    k = kernels.get_backend(twin)
    with pytest.raises(ValueError, match=r"\(2, 3\) @ \(4, 5\).*3 != 4"):
        k.matmul(np.zeros((2, 3)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="2-D"):
        k.matmul(np.zeros((2, 3, 4)), np.zeros((4, 5)))
    if twin == "cpu":
        with pytest.raises(ValueError, match=r"3 != 4"):
            cpu.matmul_blocked(np.zeros((2, 3)), np.zeros((4, 5)))


def test_small_products_use_one_blas_thread_and_restore_the_setting(monkeypatch):
    """matmul limits BLAS to one thread for the call only; the user's setting comes back."""
    class FakeBlas:  # records what matmul asks of the BLAS library
        def __init__(self):
            self.threads, self.calls = 3, []

        def get_num_threads(self):
            return self.threads

        def set_num_threads(self, n):
            self.calls.append(n)
            self.threads = n

    fake = FakeBlas()
    monkeypatch.setattr(cpu, "_BLAS_LIBS", [(fake.get_num_threads, fake.set_num_threads)])
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((64, 400)), rng.standard_normal((400, 120))
    np.testing.assert_allclose(cpu.matmul(a, b), a @ b, rtol=1e-12, atol=1e-12)
    assert fake.calls == [1, 3] and fake.threads == 3
    # a product above the threshold leaves the library's thread count alone
    monkeypatch.setattr(cpu, "_BLAS_ONE_THREAD_WORK", 64 * 400 * 120)
    cpu.matmul(a, b)
    assert fake.calls == [1, 3]


def test_blas_libraries_are_found():
    """threadpoolctl sees the BLAS that NumPy uses, so the one-thread switch has an effect."""
    libs = cpu._blas_libs()
    assert libs, "threadpoolctl found no BLAS library in this NumPy"
    assert all(get() >= 1 for get, _ in libs)


def test_blas_one_thread_blocks_nest_and_restore(monkeypatch):
    """Nested blocks switch once: one thread inside, the saved count back after the outermost."""
    threads = {"n": 4}
    calls = []

    def put(n):
        calls.append(n)
        threads["n"] = n

    monkeypatch.setattr(cpu, "_BLAS_LIBS", [(lambda: threads["n"], put)])
    with cpu.blas_one_thread():
        assert threads["n"] == 1
        with cpu.blas_one_thread():
            assert threads["n"] == 1
        assert threads["n"] == 1
    assert threads["n"] == 4 and calls == [1, 4]
    with pytest.raises(RuntimeError):  # an error inside still restores the count
        with cpu.blas_one_thread():
            raise RuntimeError("inside")
    assert threads["n"] == 4


def test_the_blas_numba_calls_is_switched_too():
    """Numba's compiled np.dot calls SciPy's bundled BLAS: the one-thread switch must reach it as well."""
    from threadpoolctl import threadpool_info

    import scipy.linalg.cython_blas  # noqa: F401  (loads the library Numba calls)

    paths = {info["filepath"] for info in threadpool_info() if info["user_api"] == "blas"}
    with cpu.blas_one_thread():
        inside = {info["filepath"]: info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}
    assert set(inside) == paths and all(n == 1 for n in inside.values()), inside
