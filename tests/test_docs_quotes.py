"""Source excerpts in the docs must still be in the source.

A chapter that shows library code marks the block with the file it quotes::

    ```python no-run quote=tinygrad_cv/kernels/pool/reference.py
    for p in range(KH):
        h = i * sh + p * dh - ph
    ```

``no-run`` keeps ``tests/test_docs.py`` from executing it; this test checks
that the block is a verbatim excerpt of the named file (relative to the
repository root): its lines, dedented, must equal a run of consecutive lines
of the file, dedented the same way. Indentation relative to the block's
first line is compared, so an excerpt from inside a function may be shown
flush left. A line that is only ``# ...`` (at any indentation) marks an
elision: the parts before and after it must each be such a run, in that
order in the file. A block whose file or lines are no longer there fails
with the chapter, the line of its fence and the first line that was not
found, so an edit to the kernels cannot silently leave a chapter quoting
code that no longer exists.

    python -m pytest tests/test_docs_quotes.py
"""
import re
import textwrap
from pathlib import Path

import pytest
from test_docs import fenced_blocks

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = sorted((ROOT / "docs").glob("*.md")) + [p for p in [ROOT / "README.md"] if p.is_file()]

ELISION = re.compile(r"^\s*# \.\.\.\s*$")


def quote_blocks(text):
    """``(line, path, body)`` for each block whose info string has ``quote=PATH``."""
    return [(b.line, word[len("quote="):], b.body) for b in fenced_blocks(text)
            for word in b.words[1:] if word.startswith("quote=")]


def _segments(body):
    """The block cut at its ``# ...`` lines, each part dedented, blank parts dropped."""
    parts, current = [], []
    for line in body + [None]:
        if line is None or ELISION.match(line):
            text = textwrap.dedent("\n".join(current)).strip("\n")
            if text:
                parts.append(text.split("\n"))
            current = []
        else:
            current.append(line)
    return parts


def find_excerpt(body, source):
    """None when ``body`` is an excerpt of ``source``, else the first line of it that was not found."""
    src = source.splitlines()
    pos = 0
    for seg in _segments(body):
        n = len(seg)
        for k in range(pos, len(src) - n + 1):
            if textwrap.dedent("\n".join(src[k:k + n])).split("\n") == seg:
                pos = k + n
                break
        else:
            return seg[0] if n == 1 else "\n".join(seg[:2]) + " ..."
    return None


def _all_quotes():
    out = []
    for path in DOC_FILES:
        for line, target, body in quote_blocks(path.read_text(encoding="utf-8")):
            out.append(pytest.param(path, line, target, body, id=f"{path.relative_to(ROOT).as_posix()}:{line}"))
    return out


@pytest.mark.parametrize("doc, line, target, body", _all_quotes())
def test_quote_is_in_its_source(doc, line, target, body):
    where = f"{doc.relative_to(ROOT).as_posix()}, the block at line {line}"
    source = ROOT / target
    assert source.is_file(), f"{where} quotes {target}, which does not exist"
    missing = find_excerpt(body, source.read_text(encoding="utf-8"))
    assert missing is None, f"{where} is no longer an excerpt of {target}; not found:\n{missing}"


def test_quotes_are_found():
    # a misspelt marker would silently check nothing: chapters 4, 8 and 9 quote kernels and Functions
    chapters = {p.values[0].name[:3] for p in _all_quotes()}
    assert {"04_", "08_", "09_"} <= chapters
    assert len(_all_quotes()) >= 8


def test_excerpt_rules():
    source = "def f(x):\n    if x:\n        y = 1\n    return y\n\nz = 2\n"
    assert find_excerpt(["if x:", "    y = 1"], source) is None            # shown flush left
    assert find_excerpt(["if x:", "y = 1"], source) == "if x:\ny = 1 ..."   # relative indent kept
    assert find_excerpt(["def f(x):", "    # ...", "    return y"], source) is None
    assert find_excerpt(["return y", "# ...", "if x:"], source) == "if x:"  # order matters
    text = "intro\n```python no-run quote=a/b.py\n  x = 1\n```\n```python\ny\n```\n"
    assert quote_blocks(text) == [(2, "a/b.py", ["  x = 1"])]
