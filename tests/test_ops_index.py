"""docs/ops.md is generated (``python -m tinygrad_cv.kernels.index``) and must be up to date;
the optional submodules are attributes of the package, loaded lazily."""
import subprocess
import sys

import pytest

from tinygrad_cv.kernels import contract, index


def test_docs_ops_md_is_up_to_date():
    committed = index.OUTPUT.read_text(encoding="utf-8") if index.OUTPUT.exists() else ""
    if committed != index.generate():
        pytest.fail("docs/ops.md is stale: run python -m tinygrad_cv.kernels.index")


def test_the_index_lists_every_kernel_with_its_three_twins():
    text = index.generate()
    assert text == index.generate()  # deterministic
    for family in contract.FAMILIES:
        assert f"\n## {family}\n" in text
    for name, entry in contract.KERNELS.items():
        section = text.split(f"\n### {name}\n", 1)[1].split("\n### ", 1)[0]
        for twin in index.TWINS:
            assert f"../tinygrad_cv/kernels/{entry.family}/" in section and f"{twin} [" in section, (name, twin)
        assert "(not found)" not in section, name
    assert "`tinygrad_cv.ops.conv.Conv2d`" in text and "`F.conv2d`" in text and "`F.linear`" in text


def test_docs_readme_links_the_index():
    assert "(ops.md)" in (index.DOCS / "README.md").read_text(encoding="utf-8")


def test_import_stays_numba_free_and_submodules_load_lazily():
    code = (
        "import sys, tinygrad_cv as tg\n"
        "assert 'numba' not in sys.modules, 'import tinygrad_cv loaded numba'\n"
        "lazy = ('adversarial', 'checkpoint', 'data', 'models', 'visualize')\n"
        "assert not any(f'tinygrad_cv.{m}' in sys.modules for m in lazy), [m for m in lazy if f'tinygrad_cv.{m}' in sys.modules]\n"
        "assert set(lazy) <= set(dir(tg))\n"
        "net = tg.models.LeNet5()\n"
        "assert tg.models.LeNet5 is sys.modules['tinygrad_cv.models'].LeNet5\n"
        "assert callable(tg.data.DataLoader) and hasattr(tg.checkpoint, '__file__')\n"
        "assert tg.visualize.__name__ == 'tinygrad_cv.visualize' and tg.adversarial.__name__ == 'tinygrad_cv.adversarial'\n"
        "try:\n    tg.no_such_thing\nexcept AttributeError:\n    pass\nelse:\n    raise AssertionError('no AttributeError')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
