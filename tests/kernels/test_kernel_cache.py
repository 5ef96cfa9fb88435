"""Cached kernels are stale as soon as any kernel source changes (kernels/jit.py: njit, SOURCES)."""
from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

import tinygrad_cv.kernels as kernels_pkg
from tinygrad_cv.kernels import jit

KERNELS = os.path.dirname(os.path.abspath(jit.__file__))


def test_fingerprint_covers_every_source_file_and_nothing_else(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "sub" / "b.py").write_text("y = 2\n")
    first = jit.sources_fingerprint(str(tmp_path))
    assert first == jit.sources_fingerprint(str(tmp_path))
    # compiled files, caches and other files are not sources
    (tmp_path / "__pycache__" / "c.py").write_text("z = 3\n")
    (tmp_path / "notes.txt").write_text("hello\n")
    assert jit.sources_fingerprint(str(tmp_path)) == first
    # an edit anywhere, or a renamed file, is a different fingerprint
    (tmp_path / "sub" / "b.py").write_text("y = 3\n")
    edited = jit.sources_fingerprint(str(tmp_path))
    assert edited != first
    (tmp_path / "sub" / "b.py").rename(tmp_path / "sub" / "b2.py")
    assert jit.sources_fingerprint(str(tmp_path)) not in (first, edited)


def test_the_package_fingerprint_is_that_of_the_kernel_folder():
    assert jit.SOURCES == jit.sources_fingerprint(KERNELS)


def _cpu_kernel_dispatchers():
    found = {}
    for info in pkgutil.walk_packages(kernels_pkg.__path__, kernels_pkg.__name__ + "."):
        if "cuda" in info.name or info.name.endswith((".index",)):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, numba.core.registry.CPUDispatcher) and value.__module__ == module.__name__:
                found[f"{info.name}.{name}"] = value
    return found


@pytest.mark.skipif(not jit.cache_enabled(), reason="no writable folder for Numba's cache here")
def test_every_cached_cpu_kernel_is_stamped_with_the_kernel_sources():
    """Also a guard on Numba's internals: if the stamp's attribute moves, this fails instead of the
    protection silently lapsing."""
    dispatchers = _cpu_kernel_dispatchers()
    assert len(dispatchers) > 30
    for name, dispatcher in dispatchers.items():
        stamp = dispatcher._cache._cache_file._source_stamp
        assert isinstance(stamp, tuple) and stamp[1] == jit.SOURCES, name


def test_no_kernel_module_compiles_with_numba_njit_directly():
    offenders = []
    for root, _, names in os.walk(KERNELS):
        for name in names:
            path = os.path.join(root, name)
            if not name.endswith(".py") or path == os.path.abspath(jit.__file__):
                continue
            with open(path, encoding="utf-8") as f:
                text = f.read()
            if "from numba import njit" in text or "numba.njit(" in text or "from numba import jit" in text:
                offenders.append(os.path.relpath(path, KERNELS))
    assert not offenders, f"use kernels.jit.njit (cache stamp of all kernel sources) in {offenders}"


_MAIN = textwrap.dedent("""
    import sys
    folder, stamped = sys.argv[1], sys.argv[2] == "1"
    sys.path.insert(0, folder)
    from tinygrad_cv.kernels import jit
    jit.SOURCES = jit.sources_fingerprint(folder)   # this toy package's sources
    import numba
    import helper
    decorate = jit.njit if stamped else numba.njit
    signature = ("int64(int64)",) if sys.argv[3] == "1" else ()   # eager: compiled (or loaded) at decoration
    @decorate(*signature, cache=True)
    def kernel(x):
        return helper.f(x) + 1
    print(kernel(1))
""")


@pytest.mark.parametrize("eager", [False, True])
@pytest.mark.parametrize("stamped", [True, False])
def test_an_edited_helper_in_another_file_is_not_served_from_the_cache(tmp_path, stamped, eager):
    """The hazard, shown with plain numba.njit, and its cure: a kernel compiled from main.py with a
    helper from helper.py; then only helper.py changes."""
    (tmp_path / "main.py").write_text(_MAIN)
    helper = tmp_path / "helper.py"
    decorator = "from tinygrad_cv.kernels.jit import njit\n" if stamped else "from numba import njit\n"
    helper.write_text(decorator + "@njit(cache=True)\ndef f(x):\n    return x * 10\n")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))

    def run():
        out = subprocess.run([sys.executable, str(tmp_path / "main.py"), str(tmp_path), "1" if stamped else "0",
                              "1" if eager else "0"],
                             capture_output=True, text=True, env=env, timeout=300)
        assert out.returncode == 0, out.stderr
        return int(out.stdout.split()[-1])

    assert run() == 11
    helper.write_text(helper.read_text().replace("x * 10", "x * 20"))
    if stamped:
        assert run() == 21
    else:
        assert run() == 11  # Numba's own stamp: the stale kernel (if this ever fails, Numba fixed it)


def test_parallel_kernels_parallelise_only_their_prange_loops():
    """jit.PAR turns on prange and nothing else (array expressions inside a kernel are not made into
    parallel loops of their own: each one costs a compilation, measured 1.3 s of LeNet-5's cold start),
    for every kernel and every signature it is compiled for (given a dict, Numba pops its keys at each
    compilation, and a second signature got parallel=True in full)."""
    wanted = jit.PAR["parallel"]
    assert wanted == dict(prange=True, comprehension=False, reduction=False, inplace_binop=False,
                          setitem=False, numpy=False, stencil=False, fusion=False)

    def settings(options):
        return {name: getattr(options, name) for name in wanted}

    parallel = [d for d in _cpu_kernel_dispatchers().values() if "parallel" in d.targetoptions]
    assert len(parallel) > 20
    for dispatcher in parallel:
        assert settings(dispatcher.targetoptions["parallel"]) == wanted, dispatcher.py_func.__qualname__

    @jit.njit(**dict(jit.PAR, cache=False))
    def kernel(a):
        b = a * 2  # with numpy=True, a parallel loop of its own
        for i in numba.prange(a.shape[0]):
            a[i] += b[i]

    for dtype in (np.float32, np.float64, np.int64):
        kernel(np.zeros(3, dtype))
    assert len(kernel.overloads) == 3
    assert [len(r.metadata["parfor_diagnostics"].initial_parfors) for r in kernel.overloads.values()] == [1, 1, 1]
    assert settings(kernel.targetoptions["parallel"]) == wanted


def test_an_eager_signature_is_the_only_one_compiled():
    """jit.njit(signature): compiled at decoration and for nothing else, so calls with constant
    (literal) arguments from other kernels convert instead of compiling copies."""
    from tinygrad_cv.kernels.conv import cpu_layout

    @jit.njit(cache=False)
    def caller(n):
        return cpu_layout._phase_tap_offsets(1, n, n, 3, 3, 1, 1, 1, 1, True)[-1] + \
            cpu_layout._phase_tap_offsets(n, n, n, 3, 3, 1, 1, 1, 1, False)[0]

    assert caller(10) == 22
    assert cpu_layout._phase_tap_offsets(np.int32(1), 10, 10, 3, 3, 1, 1, 1, 1, True)[-1] == 22
    assert len(cpu_layout._phase_tap_offsets.signatures) == 1
