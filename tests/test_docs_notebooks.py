"""The chapters as Jupyter notebooks (docs/notebooks/*.ipynb) must match the chapters, and run.

The notebooks are generated from the Markdown by ``tools/docs_site.py`` and
committed with their outputs stripped, so that Jupyter and Colab can open them
straight from the repository. These tests check that

- every chapter has its notebook and every notebook is exactly what the
  generator makes from the chapter now (after editing a chapter, run
  ``python tools/docs_site.py notebooks``),
- the code cells are exactly the blocks that tests/test_docs.py executes,
- and, with the docs extra installed (``nbformat``, ``nbclient``, ``ipykernel``),
  that the notebooks are valid and that a few of them run from top to bottom
  in a Jupyter kernel, in a temporary directory. Set
  ``TINYGRAD_CV_ALL_NOTEBOOKS=1`` to run every one (about 90 s; tests/test_docs.py
  already runs the same code in one process in about 30 s).

    python -m pytest tests/test_docs_notebooks.py
"""
import importlib.util
import json
import os
from pathlib import Path

import pytest
from test_docs import python_blocks

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("docs_site", ROOT / "tools" / "docs_site.py")
docs_site = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(docs_site)

CHAPTERS = docs_site.chapters()
# the first chapter, the convolution chapter (reference twin, many blocks), LeNet-5 (files in the cwd, training)
REPRESENTATIVE = ["01_derivatives_and_the_chain_rule", "08_convolution", "13_lenet5_walkthrough"]
RUN_ALL = os.environ.get("TINYGRAD_CV_ALL_NOTEBOOKS", "") not in ("", "0")


def test_every_chapter_is_a_chapter():
    assert len(CHAPTERS) >= 19
    assert [c.name for c in CHAPTERS][:2] == ["01_derivatives_and_the_chain_rule.md", "02_computational_graph.md"]
    names = [c.stem for c in CHAPTERS]
    assert names.index("10_mlp_and_the_delta_rule") + 1 == names.index("10a_modules_and_initialisation")


def test_notebooks_are_up_to_date():
    problems = docs_site.stale_notebooks()
    assert not problems, "\n".join(problems) + "\nregenerate them: python tools/docs_site.py notebooks"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_code_cells_are_the_blocks_test_docs_runs(chapter):
    nb = json.loads(docs_site.notebook(chapter))
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert "google.colab" in code[0] and "%pip install" in code[0]
    assert code[1:] == [b.strip("\n") for _, b in python_blocks(chapter.read_text(encoding="utf-8"))]
    for cell in nb["cells"]:
        assert cell["cell_type"] == "markdown" or (cell["outputs"] == [] and cell["execution_count"] is None)


def test_split_and_links():
    text = "\n".join([
        "# Title",
        "See [chapter 8](08_convolution.md#groups), [the test](../tests/test_x.py) and",
        "![a figure](images/f.png) or [the web](https://example.org).",
        "```python",
        "x = 1",
        "```",
        "```python no-run quote=tinygrad_cv/x.py",
        "shown_only()",
        "```",
        "- a list item:",
        "  ```python",
        "  y = x + 1",
        "  ```",
        "",
        "$$",
        "a = b",
        "$$",
    ])
    cells = docs_site.split_chapter(text)
    assert [kind for kind, _ in cells] == ["markdown", "code", "markdown", "code", "markdown"]
    assert cells[1][1] == "x = 1" and cells[3][1] == "y = x + 1"
    assert cells[2][1] == "```python\nshown_only()\n```\n- a list item:"
    assert cells[4][1] == "$$\na = b\n$$"
    md = docs_site.rewrite_links(cells[0][1], None)
    assert "(08_convolution.ipynb#groups)" in md and "(../../tests/test_x.py)" in md
    assert "(../images/f.png)" in md and "(https://example.org)" in md
    md = docs_site.rewrite_links(cells[0][1], "https://github.com/o/r")
    assert "(08_convolution.ipynb#groups)" in md and "(https://github.com/o/r/blob/main/tests/test_x.py)" in md
    assert "(https://github.com/o/r/raw/main/docs/images/f.png)" in md


def _need(*modules):
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"needs the docs extra (pip install -e \".[docs]\"): {', '.join(missing)} not installed")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_notebook_is_valid(chapter):
    _need("nbformat")
    import nbformat

    text = docs_site.notebook(chapter)
    nb = nbformat.reads(text, as_version=4)
    nbformat.validate(nb)
    assert nbformat.writes(nb) + "\n" == text  # what Jupyter would save: opening and saving changes nothing


@pytest.mark.parametrize("name", [c.stem for c in CHAPTERS] if RUN_ALL else REPRESENTATIVE)
def test_notebook_runs(name, tmp_path):
    _need("nbformat", "nbclient", "ipykernel")
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(docs_site.NOTEBOOKS / f"{name}.ipynb", as_version=4)  # the committed notebook
    # the kernel inherits this process's environment (conftest's CUDA simulator switch included)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
