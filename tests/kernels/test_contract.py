"""The kernel boundary: one contract, three twins that provide exactly it, one dispatch, no tangles.

Every twin module (``kernels/{reference,cpu,cuda}.py``) must export exactly
the functions ``kernels/contract.py`` declares, each with exactly the
declared signature, and every family folder must hold its three twins. The
dispatch (``kernels.backend_for``) is built from the same list. The last
tests check the layering the boundary promises: ``import tinygrad_cv``
loads no Numba, ``cuda/`` never imports ``kernels/``, nothing imports by
string, and the operations never test for a device themselves.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_cv
from tinygrad_cv import cuda as tg_cuda
from tinygrad_cv import kernels
from tinygrad_cv.kernels import contract

PKG = Path(tinygrad_cv.__file__).resolve().parent
TWINS = ["reference", "cpu"] + (["cuda"] if tg_cuda.is_available() else [])


def _public_functions(module):
    return {name for name, v in vars(module).items()
            if not name.startswith("_") and callable(v) and not inspect.isclass(v) and not inspect.ismodule(v)}


def test_the_contract_is_well_formed():
    assert contract.KERNELS, "the contract lists no kernel"
    for name, entry in contract.KERNELS.items():
        assert entry.name == name and entry.family in contract.FAMILIES
        assert entry.doc, f"{name}: the contract's docstring (formula and shapes) is missing"
        params = entry.signature.parameters
        assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params.values()), name
        assert set(entry.writes) <= set(params), name
    assert {e.family for e in contract.KERNELS.values()} == set(contract.FAMILIES)


@pytest.mark.parametrize("twin", TWINS)
def test_every_twin_provides_exactly_the_contract(twin):
    module = kernels.get_backend(twin) if twin != "cuda" else importlib.import_module("tinygrad_cv.kernels.cuda")
    assert module.__all__ == list(contract.KERNELS)
    assert _public_functions(module) == set(contract.KERNELS), "a twin exports a function the contract lacks"
    for name, entry in contract.KERNELS.items():
        fn = getattr(module, name)
        assert inspect.signature(fn) == entry.signature, f"{twin}.{name}"
        assert inspect.signature(fn.unchecked) == entry.signature, f"{twin}.{name} (unchecked)"


@pytest.mark.parametrize("family", contract.FAMILIES)
def test_every_family_has_its_three_twins(family):
    folder = PKG / "kernels" / family
    for twin in ("reference", "cpu", "cuda"):
        assert (folder / f"{twin}.py").is_file(), f"kernels/{family}/{twin}.py is missing"
    assert (folder / "__init__.py").read_text().lstrip().startswith(('"""', 'r"""')), "the family's docstring"
    names = [n for n, e in contract.KERNELS.items() if e.family == family]
    for twin in TWINS:
        module = importlib.import_module(f"tinygrad_cv.kernels.{family}.{twin}")
        for name in names:
            assert inspect.signature(getattr(module, name)) == contract.KERNELS[name].signature, f"{family}.{twin}"


def test_direct_calls_are_checked_and_the_operations_get_the_unchecked_functions():
    cpu = kernels.get_backend("cpu")
    with pytest.raises(ValueError, match=r"\(2, 3\) @ \(4, 5\)"):
        cpu.matmul(np.zeros((2, 3)), np.zeros((4, 5)))
    twin = kernels.backend_for(np.zeros(3))
    assert isinstance(twin, kernels.Twin) and twin.name == "cpu"
    for name in contract.KERNELS:
        assert getattr(twin, name) is getattr(cpu, name).unchecked
    with kernels.use_backend("reference"):
        assert kernels.backend_for(np.zeros(3)).name == "reference"
    assert kernels.backend_for(np.zeros(3)) is twin


@pytest.mark.skipif(not tg_cuda.is_available(), reason="CUDA tensors are not available here")
def test_gpu_arrays_get_the_cuda_twin():
    from tinygrad_cv.cuda.array import to_device

    g = to_device(np.ones((2, 3)))
    assert tg_cuda.is_cuda_array(g) and not tg_cuda.is_cuda_array(np.ones(2))
    twin = kernels.backend_for(g)
    assert twin.name == "cuda"
    y = twin.relu_forward(g - 2)  # CudaArrays in, CudaArrays out
    assert tg_cuda.is_cuda_array(y)
    np.testing.assert_array_equal(tg_cuda.move(y, "cpu"), np.zeros((2, 3)))
    assert tg_cuda.move(g, "cuda") is g


def test_import_tinygrad_cv_loads_no_numba():
    code = ("import sys, tinygrad_cv, tinygrad_cv.functional, tinygrad_cv.optim, tinygrad_cv.kernels\n"
            "import tinygrad_cv.kernels.reference  # the oracle is plain NumPy too\n"
            "print(sorted(m for m in sys.modules if m == 'numba' or m.startswith('numba.')))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PKG.parent, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "[]", run.stdout


def _imports(path):
    """(module imported, line) for every import statement of a source file, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(PKG.parent).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found += [(base, node.lineno)] + [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return found


def test_cuda_package_never_imports_the_kernels():
    for path in (PKG / "cuda").glob("*.py"):
        for module, line in _imports(path):
            assert not module.startswith("tinygrad_cv.kernels"), f"{path.name}:{line} imports {module}"


def test_no_imports_hidden_in_strings():
    for path in PKG.rglob("*.py"):
        text = path.read_text()
        assert "import_module(" not in text and "__import__(" not in text, path


@pytest.mark.parametrize("path", sorted([*(PKG / "ops").glob("*.py"), PKG / "functional.py", *(PKG / "optim").glob("*.py")]),
                         ids=lambda p: p.relative_to(PKG).as_posix())
def test_operations_do_not_test_for_a_device(path):
    """ops/, functional.py and optim/ reach device code only through kernels.backend_for (and cuda.move)."""
    text = path.read_text()
    for pattern in ('== "cuda"', '!= "cuda"', "isinstance(x, np.ndarray)", "isinstance(input.data, np.ndarray)"):
        assert pattern not in text, f"{path.name}: {pattern}"
    for module, line in _imports(path):
        if module != "tinygrad_cv.kernels.shapes":  # shape arithmetic and validators: pure Python, any device
            assert not module.startswith(("tinygrad_cv.cuda.", "tinygrad_cv.kernels.")), f"{path.name}:{line} {module}"


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if tg_cuda.is_available() else []))
def test_every_kernel_is_reached_by_the_operations(device, monkeypatch):
    """Used or gone: a small training step's forward, first-order backward and optimiser steps call every kernel."""
    import tinygrad_cv as tg
    import tinygrad_cv.functional as F
    from tinygrad_cv import optim

    twin = kernels._twin("cuda" if device == "cuda" else kernels.active_backend_name())
    called = set()
    for name in contract.KERNELS:
        def spy(*args, _original=getattr(twin, name), _name=name, **kwargs):
            called.add(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(twin, name, spy)
    tg.manual_seed(0)
    t = lambda *shape: tg.randn(*shape, dtype=tg.float64, device=device, requires_grad=True)  # noqa: E731
    x, w, wt, b = t(2, 2, 5, 5), t(3, 2, 3, 3), t(2, 2, 2, 2), t(3)
    h = F.conv2d(x, w, b, padding=1).relu()
    h = F.max_pool2d(h, 2) + F.avg_pool2d(h, 2)
    h = F.batch_norm(h, None, None, t(3), t(3), training=True)
    h = F.dropout(h, 0.25)
    z = F.linear(h.flatten(1), t(4, 12), t(4))
    loss = F.cross_entropy(z, tg.tensor([1, 3], device=device)) + F.nll_loss(z.log_softmax(-1), tg.tensor([0, 2], device=device))
    loss = loss + z.softmax(-1).sum() * 0.5 + (z @ t(4, 2)).sum() + F.conv_transpose2d(x, wt, stride=2).sum()
    loss = loss + z.gather(1, tg.tensor([[1], [0]], device=device)).sum()
    loss.backward()
    F.conv2d(x.detach(), w).sum().backward()  # only the weight needs a gradient
    F.conv2d(x, w.detach()).sum().backward()  # only the input does
    optim.SGD([w], lr=0.1, momentum=0.9).step()
    optim.Adam([b]).step()
    assert called == set(contract.KERNELS), f"never called: {sorted(set(contract.KERNELS) - called)}"
