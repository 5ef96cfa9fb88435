"""How every CPU kernel is compiled: one set of Numba options, and where compiled code is kept.

Imported by each family's ``cpu.py`` before it defines a kernel, never by
``import tinygrad_cv`` (Numba loads only when a kernel is first needed).

Options
-------
``PAR`` (parallel loops) and ``SEQ`` (sequential helpers) are the defaults.
``PAR`` parallelises the kernel's ``prange`` loop and nothing else: with
``parallel=True`` Numba also turns every array expression, slice assignment
and NumPy reduction in the kernel (``acc[:] = b[o]``, ``offs.max()``) into a
parallel loop of its own, each one more function to compile, for work that
is already inside a parallel loop or too small to split. Measured, the first
LeNet-5 training step on an empty cache: 14.6 s -> 13.3 s, with the same
step times afterwards (LeNet-5 and ResNet-20 steps within 2 %).
fastmath stays off: results must be reproducible and comparable to the
reference twin to ~1e-10 in float64. ``error_model="numpy"``: a division by
zero gives inf/NaN as in NumPy instead of raising, so no zero-divisor branch
keeps a loop from being vectorised (the arguments are validated before any
kernel runs).

The register-blocked convolution kernels allow two rewrites, and only these:
``"contract"`` fuses ``a*b + c`` into one FMA instruction (one rounding
instead of two: a different, not a worse, result; PyTorch's kernels do the
same), and ``"reassoc"`` (backward-weight only) lets LLVM split each dot
product over the 16 lanes of a vector register. No ``"nnan"``/``"ninf"``:
NaN and inf propagate as in the reference. The order of operations is fixed
by the code and the fixed work split, so repeated runs stay bit-identical.

OpenMP's waiting threads
------------------------
Numba's parallel loops run on an OpenMP pool whose workers spin for a while
after their work ends, waiting for more; a spinning worker steals the core
that BLAS's next call needs (see ``matmul/cpu.py``). They sleep after
``GOMP_SPINCOUNT`` spins, set here unless the user chose ``GOMP_SPINCOUNT``
or ``OMP_WAIT_POLICY``. Waking a sleeping worker costs ~0.1 ms, and a LeNet
step makes about 17 parallel calls; spinning forever
(``OMP_WAIT_POLICY=ACTIVE``) would starve any other work. Measured, LeNet-5
training step with one-thread BLAS (ms per step, min of 3 runs; batch 1 / 64
/ 256): sleeping at once (``OMP_WAIT_POLICY=PASSIVE``) 4.3 / 8.3 / 22.4;
``GOMP_SPINCOUNT=20000`` 1.9-3.1 / 5.5-6.0 / 19.3-19.4; 10000 and 50000 within
the noise of 20000. Before the BLAS change: 4.9 / 10.9 / 30.3 with PASSIVE.

The variables must be in the environment before the OpenMP runtime starts,
i.e. before the first parallel Numba call in the process - and before
``import torch``, whose libgomp has the same soname and is then the one Numba
uses.

Where compiled kernels are kept
-------------------------------
``@njit(cache=True)`` writes the compiled machine code next to the source
(``__pycache__``) or, when that folder is read-only (a system-wide install),
in the user's cache folder under ``$HOME``. When neither can be written Numba
refuses at *decoration* time ("no locator available"), so a read-only
install under a read-only home could not even compute. :func:`cache_enabled`
is asked once, before the first kernel is decorated, and answers:

1. ``True`` when Numba's own rules find a writable place (or the user set
   ``NUMBA_CACHE_DIR``);
2. else ``True`` after pointing Numba at a private folder in the system's
   temporary directory (``<tmp>/tinygrad_cv-numba-cache-<uid>``);
3. else ``False``: kernels are compiled afresh in every process (slower
   start, same results).

Numba checks a cached kernel against the modification stamp of *its own*
source file only, yet a kernel contains every helper it calls, compiled in:
after an edit of ``conv/cpu_layout.py`` the cached ``_conv_fwd_unit`` of
``conv/cpu_direct.py`` would still run the old helper, silently, and a test
run could pass on code that is no longer there. So every kernel is
decorated with this module's :func:`njit`, which adds a fingerprint of all
the kernel sources (:data:`SOURCES`, a hash of every ``.py`` file in this
package folder) to the stamp its cache entries are checked against: any
edit of any kernel file makes every cached kernel stale, and it is compiled
again on first use. Installed copies never change, so they never pay for it.

Memory the process keeps
------------------------
A training step allocates and frees the same large arrays every time
(activations, gradients, padded copies: 1-10 MB each). glibc's malloc gives
blocks above its mmap threshold (dynamic, from 128 KiB) back to the system
on ``free`` and trims the top of the heap once more than its trim threshold
is free there, so the next step's arrays are fresh pages, which the system
must fault in and zero: in a virtual machine that is slower still. The
first CPU kernel therefore raises both thresholds (:func:`keep_freed_memory`,
glibc only): blocks up to 32 MiB (glibc's limit) come from the heap, and up
to 1 GiB of freed memory stays with the process for the next step. Measured,
ResNet-20 training step on 3x32x32 input, batch 128, 2 cores (median of 8
steps, three alternating runs): 531-737 ms with glibc's defaults, 423-511 ms
with the thresholds raised. The cost is a resident size that stays at its
peak (what a training loop reaches in its first step anyway). Nothing is
changed when the user has chosen malloc settings (``MALLOC_TRIM_THRESHOLD_``,
``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TOP_PAD_``, or ``malloc`` in
``GLIBC_TUNABLES``).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import warnings

if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "20000")

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 << 20  # the largest glibc accepts on 64-bit systems
_TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds (see "Memory the process keeps" above); True if done.

    Does nothing (False) on other C libraries, or when the user chose malloc settings.
    """
    env = os.environ
    if any(k in env for k in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")) or (
        "malloc" in env.get("GLIBC_TUNABLES", "")
    ):
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt  # glibc's; absent from musl, macOS and Windows C libraries
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))


KEEPS_FREED_MEMORY = keep_freed_memory()

__all__ = ["cache_enabled", "compile_notice", "njit", "SOURCES", "PAR", "SEQ", "PAR_FMA", "SEQ_DOT", "SEQ_FMA",
           "LANES"]


def sources_fingerprint(folder: str) -> str:
    """SHA-256 (hex) of every ``.py`` file under ``folder``: relative paths and contents, in sorted order."""
    digest = hashlib.sha256()
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        files += [os.path.join(root, n) for n in names if n.endswith(".py")]
    for path in sorted(files, key=lambda f: os.path.relpath(f, folder)):
        digest.update(os.path.relpath(path, folder).replace(os.sep, "/").encode() + b"\0")
        with open(path, "rb") as f:
            data = f.read()
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


#: fingerprint of the kernel sources (this package folder), part of every cached kernel's stamp
SOURCES = sources_fingerprint(os.path.dirname(os.path.abspath(__file__)))


def njit(signature=None, **options):
    """``numba.njit(signature, **options)``, with :data:`SOURCES` added to the stamp of the kernel's cache entries.

    See "Where compiled kernels are kept" above: without it, a cached kernel
    outlives an edit of a helper in another file.  With a ``signature`` the
    function is compiled (or loaded from the cache) for it at once and for no
    other types, as with Numba's own eager form - but only after the stamp
    is set, so the entry it loads or writes is the stamped one.
    """
    import numba

    if isinstance(options.get("parallel"), dict):
        # as Numba's own option object: given a dict, Numba pops its keys at every compilation, so a
        # kernel's second signature (float64 after float32, say) would get parallel=True in full
        from numba.core.cpu_options import ParallelOptions

        options = dict(options, parallel=ParallelOptions(dict(options["parallel"])))

    def decorate(fn):
        dispatcher = _stamp_with_sources(numba.njit(**options)(fn))
        if signature is not None:
            dispatcher.compile(signature)
            dispatcher.disable_compile()
        return dispatcher

    return decorate


def _stamp_with_sources(dispatcher):
    """Make the dispatcher's cache index stale unless it was written for these kernel sources.

    Numba keeps the source file's stamp in ``IndexDataCacheFile._source_stamp``
    and discards an index written with a different one; without a cache
    (``cache=False``) there is nothing to stamp.  ``tests/kernels/
    test_process_settings.py`` checks that the attribute is still there.
    """
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    if cache_file is not None and hasattr(cache_file, "_source_stamp"):
        cache_file._source_stamp = (cache_file._source_stamp, SOURCES)
    return dispatcher


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


def cache_enabled() -> bool:
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


_CACHE = cache_enabled()
#: every parallel kernel
PAR = dict(parallel=dict(prange=True, comprehension=False, reduction=False, inplace_binop=False, setitem=False,
                         numpy=False, stencil=False, fusion=False), cache=_CACHE, fastmath=False, nogil=True, error_model="numpy")
#: every sequential helper
SEQ = dict(cache=_CACHE, fastmath=False, nogil=True, error_model="numpy")
#: register-blocked convolution loops: a*b + c may be one FMA
PAR_FMA = dict(PAR, fastmath={"contract"})
#: the weight gradient's register-held dot products: FMA, and split over vector lanes
SEQ_DOT = dict(SEQ, fastmath={"contract", "reassoc"})
SEQ_FMA = dict(SEQ, fastmath={"contract"})

#: vector width (float32 lanes of an AVX-512 register) that the flat stride-1
#: loops are rounded up to, so no loop ends in a scalar remainder
LANES = 16


class compile_notice:
    """``with compile_notice(): ...`` says when kernels are being compiled, and how long that took.

    The first time a kernel runs with new argument types, Numba compiles it
    (a second or so each); later runs load the machine code from the cache
    (see above). A first training step can therefore take seconds where the
    next takes milliseconds, and a user deserves to know why. Inside the
    block, the first compilation prints one line saying so, and leaving the
    block prints how many kernels were compiled in how many seconds (nothing
    at all when every kernel came from the cache). ``write`` prints a line
    (default: to stderr; ``tqdm.write`` keeps a progress bar intact).
    ``count`` and ``seconds`` hold the totals afterwards.

    Numba reports each compilation as a "numba:compile" event (only on a
    cache miss); a kernel that calls other kernels compiles them inside its
    own event, so only the outermost events are counted and timed.
    """

    def __init__(self, write=None):
        self.write = write
        self.count = 0
        self.seconds = 0.0
        self._depth = 0
        self._start = 0.0
        self._listener = None

    def _say(self, line):
        if self.write is not None:
            self.write(line)
        else:
            import sys

            print(line, file=sys.stderr, flush=True)

    def __enter__(self):
        import time

        from numba.core import event

        notice = self

        class _Listener(event.Listener):
            def on_start(self, ev):
                if notice._depth == 0:
                    if notice.count == 0:
                        notice._say("tinygrad_cv: compiling kernels for this machine (once: later runs load them "
                                    "from the cache) ...")
                    notice._start = time.perf_counter()
                notice._depth += 1

            def on_end(self, ev):
                notice._depth -= 1
                if notice._depth == 0:
                    notice.count += 1
                    notice.seconds += time.perf_counter() - notice._start

        self._listener = _Listener()
        event.register("numba:compile", self._listener)
        return self

    def __exit__(self, *exc):
        from numba.core import event

        event.unregister("numba:compile", self._listener)
        if self.count:
            self._say(f"tinygrad_cv: compiled {self.count} kernel{'s' if self.count > 1 else ''} in "
                      f"{self.seconds:.1f} s")
        return False
