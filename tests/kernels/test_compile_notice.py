"""compile_notice: a cold cache is announced once, with the count and time of the compilations."""
from __future__ import annotations

from numba import njit

from tinygrad_cv.kernels.jit import compile_notice


def _fresh_kernels():
    # defined here, uncached: every call of this test compiles them anew
    @njit(cache=False)
    def inner(x):
        return x * 2

    @njit(cache=False)
    def outer(x):
        return inner(x) + 1

    return outer


def test_compilations_are_announced_counted_and_timed():
    kernel = _fresh_kernels()
    lines = []
    with compile_notice(write=lines.append) as notice:
        assert kernel(3) == 7
        assert kernel(4) == 9  # same types: no second compilation
        assert kernel(2.5) == 6.0  # new types: a second one
    assert notice.count == 2  # outer twice; inner compiled inside outer's first compilation is not counted apart
    assert notice.seconds > 0
    assert len(lines) == 2
    assert "compiling kernels" in lines[0] and "once" in lines[0]
    assert lines[1].startswith("tinygrad_cv: compiled 2 kernels in ")


def test_nothing_is_said_when_nothing_compiles():
    kernel = _fresh_kernels()
    kernel(1)
    lines = []
    with compile_notice(write=lines.append) as notice:
        kernel(5)
    assert notice.count == 0 and lines == []
    # and the listener is gone after the block: later compilations are not recorded
    kernel(1.5)
    assert notice.count == 0 and lines == []
