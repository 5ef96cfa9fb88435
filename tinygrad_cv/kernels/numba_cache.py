"""Where Numba keeps compiled kernels between runs — and what to do when it can't.

``@njit(cache=True)`` writes the compiled machine code next to the source
(``kernels/__pycache__``) or, when that folder is read-only (a system-wide
install), in the user's cache folder under ``$HOME``. When neither can be
written Numba refuses at *decoration* time ("no locator available"), so a
read-only install under a read-only home could not even ``import
tinygrad_cv``. :func:`enabled` is asked once, before the first kernel is
decorated, and answers:

1. ``True`` when Numba's own rules find a writable place (or the user set
   ``NUMBA_CACHE_DIR``);
2. else ``True`` after pointing Numba at a private folder in the system's
   temporary directory (``<tmp>/tinygrad_cv-numba-cache-<uid>``);
3. else ``False``: kernels are compiled afresh in every process (slower
   start, same results).
"""
from __future__ import annotations

import os
import tempfile
import warnings

__all__ = ["enabled"]

_DECISION = []  # [bool] once decided


def _probe():  # pragma: no cover - never called, only decorated
    return 0


def _numba_can_cache() -> bool:
    """Ask Numba itself: decorating with cache=True fails at once when it has no usable folder."""
    from numba import njit

    try:
        njit(cache=True)(_probe)
    except RuntimeError:  # "cannot cache function ...: no locator available for file ..."
        return False
    return True


def enabled() -> bool:
    """The ``cache=`` option for every ``@njit`` in this package (decided once per process)."""
    if _DECISION:
        return _DECISION[0]
    ok = _numba_can_cache()
    if not ok:
        from numba.core import config

        folder = os.path.join(tempfile.gettempdir(), f"tinygrad_cv-numba-cache-{_uid()}")
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            config.CACHE_DIR = folder
            ok = _numba_can_cache()
        except OSError:
            ok = False
        if not ok:
            config.CACHE_DIR = ""
            warnings.warn(
                "tinygrad_cv: no writable folder for Numba's kernel cache (the package folder, $HOME and the "
                "temporary folder are read-only); kernels are compiled afresh in every process. Set "
                "NUMBA_CACHE_DIR to a writable folder to keep them.",
                RuntimeWarning,
                stacklevel=2,
            )
    _DECISION.append(ok)
    return ok


def _uid() -> str:
    return str(os.getuid()) if hasattr(os, "getuid") else "user"
