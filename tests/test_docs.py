"""Run the code in the documentation, so the docs cannot drift away from the code.

Every fenced block tagged ```python in ``docs/*.md`` and in ``README.md`` is
executed. The blocks of one file run in order in one shared namespace (a
chapter builds up its example step by step), inside a temporary working
directory so that nothing is written into the repository. One test per file.

Blocks tagged ```python no-run, and blocks in any other language (text, math,
bash, dot, ...), are only shown, never run. A failing block is reported with
its file and the line its fence starts on; tracebacks point into the Markdown
file at the right line.

    python -m pytest tests/test_docs.py
"""
import re
import textwrap
from pathlib import Path

import pytest

import tinygrad_cv as tg
from tinygrad_cv import kernels

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = sorted((ROOT / "docs").glob("*.md")) + [p for p in [ROOT / "README.md"] if p.is_file()]

# an opening fence: up to 3 spaces, ``` or ~~~ (3 or more), then the info string
FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})\s*([^`]*)$")


def fenced_blocks(text):
    """``(line, info words, body lines)`` for every fenced block; ``line`` is the 1-based line of its opening fence."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m.groups()
        start, body = i + 1, []
        i += 1
        # the block ends at a fence of the same kind, at least as long, with nothing after it
        while i < len(lines) and not re.match(rf"^ {{0,3}}{fence[0]}{{{len(fence)},}}\s*$", lines[i]):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        i += 1
        blocks.append((start, info.split(), body))
    return blocks


def python_blocks(text):
    """``(line, code)`` for each block to run; ``line`` is the 1-based line of its opening fence."""
    return [(start, textwrap.dedent("\n".join(body)) + "\n") for start, words, body in fenced_blocks(text)
            if words[:1] == ["python"] and "no-run" not in words[1:]]


def run_doc(path):
    """Execute the python blocks of ``path`` in order, in one namespace."""
    name = path.relative_to(ROOT).as_posix()
    namespace = {"__name__": "doc_" + path.stem}
    for line, code in python_blocks(path.read_text(encoding="utf-8")):
        # pad with blank lines so that line numbers in tracebacks are the Markdown file's own
        compiled = compile("\n" * line + code, str(path), "exec")
        try:
            exec(compiled, namespace)
        except Exception as exc:
            raise AssertionError(f"{name}: the python block starting at line {line} failed: {exc!r}") from exc


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_doc_examples_run(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    default_dtype = tg.get_default_dtype()
    backend = kernels.active_backend_name()
    try:
        run_doc(path)
    finally:
        tg.set_default_dtype(default_dtype)  # a chapter may change it; later tests must not see that
        kernels.set_backend(backend)  # likewise a chapter that fails while on the reference twin


def test_only_python_blocks_are_collected():
    text = "\n".join([
        "# Title",             # 1
        "```python",           # 2  runs
        "x = 1",               # 3
        "```",                 # 4
        "```python no-run",    # 5  shown only
        "raise SystemExit",    # 6
        "```",                 # 7
        "```bash",             # 8  another language
        "ls",                  # 9
        "```",                 # 10
        "- a list item:",      # 11
        "  ```python",         # 12 indented inside a list: runs, dedented
        "  y = x + 1",         # 13
        "  ```",               # 14
        "````text",            # 15 a longer fence may contain ``` lines
        "```python",           # 16
        "```",                 # 17
        "````",                # 18
    ])
    assert python_blocks(text) == [(2, "x = 1\n"), (12, "y = x + 1\n")]
