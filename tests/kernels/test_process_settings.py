"""Process-wide settings made by kernels/jit.py: glibc's malloc thresholds (and the user's veto)."""
from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import sys

import pytest

from tinygrad_cv.kernels import jit

_MALLOC_VARS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")


def _has_glibc_mallopt():
    try:
        ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return platform.libc_ver()[0] == "glibc"


class _FakeLibc:
    def __init__(self, answer=1):
        self.calls = []
        self.answer = answer
        outer = self

        class _Fn:
            argtypes = restype = None

            def __call__(self, param, value):
                outer.calls.append((param, value))
                return outer.answer

        self.mallopt = _Fn()


@pytest.fixture
def clean_env(monkeypatch):
    for name in _MALLOC_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_thresholds_are_raised_to_the_documented_values(clean_env):
    fake = _FakeLibc()
    clean_env.setattr(ctypes, "CDLL", lambda name: fake)
    assert jit.keep_freed_memory() is True
    # M_MMAP_THRESHOLD (-3) to glibc's 32 MiB maximum, M_TRIM_THRESHOLD (-1) to 1 GiB
    assert fake.calls == [(-3, 32 << 20), (-1, 1 << 30)]


def test_a_refused_setting_is_reported(clean_env):
    fake = _FakeLibc(answer=0)  # glibc's mallopt returns 0 for a value it rejects
    clean_env.setattr(ctypes, "CDLL", lambda name: fake)
    assert jit.keep_freed_memory() is False


@pytest.mark.parametrize("name, value", [
    ("MALLOC_TRIM_THRESHOLD_", "131072"),
    ("MALLOC_MMAP_THRESHOLD_", "131072"),
    ("MALLOC_TOP_PAD_", "0"),
    ("GLIBC_TUNABLES", "glibc.malloc.tcache_count=7"),
])
def test_the_users_own_malloc_settings_are_left_alone(clean_env, name, value):
    fake = _FakeLibc()
    clean_env.setattr(ctypes, "CDLL", lambda name: fake)
    clean_env.setenv(name, value)
    assert jit.keep_freed_memory() is False
    assert fake.calls == []


def test_without_mallopt_nothing_happens(clean_env):
    class NoMallopt:
        pass

    clean_env.setattr(ctypes, "CDLL", lambda name: NoMallopt())
    assert jit.keep_freed_memory() is False


def test_a_fresh_process_applies_it_once_the_kernels_load():
    env = {k: v for k, v in os.environ.items() if k not in _MALLOC_VARS}
    code = "import tinygrad_cv.kernels.jit as j; print(j.KEEPS_FREED_MEMORY)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(_has_glibc_mallopt())
    env["GLIBC_TUNABLES"] = "glibc.malloc.tcache_count=7"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
