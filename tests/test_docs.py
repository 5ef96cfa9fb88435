"""Run the code in the documentation, so the docs cannot drift away from the code.

Every fenced block tagged ```python in ``docs/*.md`` and in ``README.md`` is
executed. The blocks of one file run in order in one shared namespace (a
chapter builds up its example step by step), inside a temporary working
directory so that nothing is written into the repository. One test per file.

Blocks tagged ```python no-run, and blocks in any other language (text, math,
bash, dot, ...), are only shown, never run. A failing block is reported with
its file and the line its fence starts on; tracebacks point into the Markdown
file at the right line.

**Shown output.** What a block prints is shown under it, in a block fenced
```text output that follows it with only blank lines between, and it is
checked: a block that prints must have one, and what it prints must match it.
Lines are compared with runs of spaces collapsed; numbers are compared to a
relative tolerance of 1e-3 (and an absolute one of 1e-9), so a last digit that
differs between machines does not fail, a changed result does. ``...`` in a
line matches any text there, and a line that is only ``...`` matches any
number of lines (for timings and long logs). Options after ``output`` change
the tolerances: ```text output rtol=0.05 atol=1e-3.

    python -m pytest tests/test_docs.py
    python tests/test_docs.py --update docs/05_softmax_cross_entropy.md   # write the shown outputs
    python tests/test_docs.py --figures docs/10a_modules_and_initialisation.md  # redraw its figures

``--update`` runs the chapter and writes what each block printed under it,
keeping a shown output that still matches (so its ``...`` stay). A chapter's
figures are drawn by its own blocks, which save them in the current directory;
``--figures`` runs the chapter in a temporary directory and copies the files
that it wrote and that the chapter shows as ``](images/NAME)`` to ``docs/images``.
"""
import contextlib
import io
import math
import os
import re
import shutil
import sys
import tempfile
import textwrap
from collections import namedtuple
from pathlib import Path

import pytest

import tinygrad_cv as tg
from tinygrad_cv import kernels

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = sorted((ROOT / "docs").glob("*.md")) + [p for p in [ROOT / "README.md"] if p.is_file()]

# an opening fence: up to 3 spaces, ``` or ~~~ (3 or more), then the info string
FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})\s*([^`]*)$")

# ``line``: 1-based line of the opening fence; ``end``: 1-based line of the closing fence
Block = namedtuple("Block", "line words body end")


def fenced_blocks(text):
    """A ``Block(line, words, body, end)`` for every fenced block: its fence lines, info words and body lines."""
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
        blocks.append(Block(start, info.split(), body, i))
    return blocks


def _runs(words):
    return words[:1] == ["python"] and "no-run" not in words[1:]


def python_blocks(text):
    """``(line, code)`` for each block to run; ``line`` is the 1-based line of its opening fence."""
    return [(b.line, textwrap.dedent("\n".join(b.body)) + "\n") for b in fenced_blocks(text) if _runs(b.words)]


def _is_output(words):
    return words[:2] == ["text", "output"]


def code_and_outputs(text):
    """``[(code block, its output block or None), ...]`` for the blocks to run, in order.

    An output block belongs to the python block before it when only blank lines lie between them.
    """
    lines, blocks, pairs = text.splitlines(), fenced_blocks(text), []
    for n, b in enumerate(blocks):
        if not _runs(b.words):
            continue
        nxt = blocks[n + 1] if n + 1 < len(blocks) else None
        between = lines[b.end:nxt.line - 1] if nxt else []
        follows = nxt is not None and _is_output(nxt.words) and all(not s.strip() for s in between)
        pairs.append((b, nxt if follows else None))
    return pairs


def _options(words):
    """``rtol``/``atol`` from an output block's info words (``rtol=0.05``)."""
    opts = {"rtol": 1e-3, "atol": 1e-9}
    for word in words[2:]:
        key, _, value = word.partition("=")
        if key not in opts or not value:
            raise ValueError(f"unknown option {word!r} on a text output block; expected rtol=X or atol=X")
        opts[key] = float(value)
    return opts


NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TOKEN = re.compile(rf"(\.\.\.|{NUMBER}|\s+)")


def _normalise(text):
    """The lines of ``text``, each stripped and with runs of spaces collapsed, without blank lines at the ends."""
    lines = [" ".join(line.split()) for line in text.strip("\n").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return lines


def _line_pattern(expected):
    """A regex for one shown line (numbers and ``...`` captured), and which groups are numbers."""
    parts, numbers = [], []
    for token in _TOKEN.split(expected):
        if not token:
            continue
        if token == "...":
            parts.append("(.*?)")
            numbers.append(None)
        elif re.fullmatch(NUMBER, token):
            parts.append(f" ?({NUMBER})")  # numbers may be padded to a width
            numbers.append(float(token))
        elif token.isspace():
            parts.append(" ?")  # a number's width may change where the shown one was padded
        else:
            parts.append(re.escape(token))
    return re.compile("".join(parts)), numbers


def _line_matches(expected, actual, rtol, atol):
    pattern, numbers = _line_pattern(expected)
    m = pattern.fullmatch(actual)
    if not m:
        return False
    for want, got in zip(numbers, m.groups()):
        if want is not None and not math.isclose(float(got), want, rel_tol=rtol, abs_tol=atol):
            return False
    return True


def output_matches(expected, actual, rtol=1e-3, atol=1e-9):
    """Whether the printed ``actual`` matches the shown ``expected`` (see the module's docstring)."""
    want, got = _normalise(expected), _normalise(actual)

    def match(i, j):
        if i == len(want):
            return j == len(got)
        if want[i] == "...":
            return any(match(i + 1, k) for k in range(j, len(got) + 1))
        return j < len(got) and _line_matches(want[i], got[j], rtol, atol) and match(i + 1, j + 1)

    return match(0, 0)


def run_doc(path, outputs=None):
    """Execute the python blocks of ``path`` in order, in one namespace; check what they print.

    ``outputs``: None to check each block's printed text against its shown output (a block that
    prints needs one); a list to append ``(code block, output block or None, printed)`` to instead.
    """
    name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
    namespace = {"__name__": "doc_" + path.stem}
    for block, shown in code_and_outputs(path.read_text(encoding="utf-8")):
        code = textwrap.dedent("\n".join(block.body)) + "\n"
        # pad with blank lines so that line numbers in tracebacks are the Markdown file's own
        compiled = compile("\n" * block.line + code, str(path), "exec")
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                exec(compiled, namespace)
        except Exception as exc:
            sys.stdout.write(printed.getvalue())
            raise AssertionError(f"{name}: the python block starting at line {block.line} failed: {exc!r}") from exc
        if outputs is not None:
            outputs.append((block, shown, printed.getvalue()))
        else:
            _check_output(name, block, shown, printed.getvalue())


def _check_output(name, block, shown, printed):
    where = f"{name}: the python block starting at line {block.line}"
    fix = f"(python tests/test_docs.py --update {name} writes it)"
    if shown is None:
        if printed.strip():
            raise AssertionError(f"{where} prints, but no ```text output block shows it {fix}:\n{printed}")
        return
    if not printed.strip():
        raise AssertionError(f"{where} prints nothing, but the output block at line {shown.line} shows output")
    expected = "\n".join(shown.body)
    if not output_matches(expected, printed, **_options(shown.words)):
        raise AssertionError(f"{where} printed something else than its output block at line {shown.line} "
                             f"shows {fix}.\nshown:\n{expected}\nprinted:\n{printed}")


@contextlib.contextmanager
def _doc_state():
    default_dtype = tg.get_default_dtype()
    backend = kernels.active_backend_name()
    try:
        yield
    finally:
        tg.set_default_dtype(default_dtype)  # a chapter may change it; later tests must not see that
        kernels.set_backend(backend)  # likewise a chapter that fails while on the reference twin


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_doc_examples_run(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with _doc_state():
        run_doc(path)


def update_outputs(path, cwd):
    """Run ``path`` in ``cwd`` and rewrite its shown outputs; returns how many blocks changed."""
    results = []
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with _doc_state():
            run_doc(path, outputs=results)
    finally:
        os.chdir(old)
    lines = path.read_text(encoding="utf-8").splitlines()
    changed = 0
    # edit from the end so that earlier line numbers stay valid
    for block, shown, printed in reversed(results):
        indent = re.match(r"^ *", lines[block.line - 1]).group(0)
        body = [indent + line if line else "" for line in printed.rstrip("\n").splitlines()]
        if shown is not None and not printed.strip():
            del lines[block.end:shown.end]  # the output block and the blank lines before it
        elif shown is not None:
            if output_matches("\n".join(shown.body), printed, **_options(shown.words)):
                continue
            lines[shown.line:shown.end - 1] = body
        elif printed.strip():
            lines[block.end:block.end] = ["", indent + "```text output"] + body + [indent + "```"]
        else:
            continue
        changed += 1
    text = "\n".join(lines) + "\n"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # atomic: an interrupted update leaves the chapter as it was
    return changed


def draw_figures(path):
    """Run ``path`` in a temporary directory and copy the figures it wrote and links to into docs/images."""
    images = ROOT / "docs" / "images"
    linked = re.findall(r"\]\(images/([^)\s]+)\)", path.read_text(encoding="utf-8"))
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        old = os.getcwd()
        os.chdir(tmp)
        try:
            with _doc_state():
                run_doc(path)
        finally:
            os.chdir(old)
        for name in dict.fromkeys(linked):
            made = Path(tmp) / name
            if made.is_file():
                # other files the chapter writes (checkpoints, data) stay behind in the temporary directory
                shutil.copyfile(made, images / name)
                written.append(name)
    return written


def main(argv):
    import argparse

    p = argparse.ArgumentParser(description="Write the shown outputs of chapters, or redraw their figures.")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--update", action="store_true", help="run each chapter and write what its blocks print")
    mode.add_argument("--figures", action="store_true", help="run each chapter and copy its figures to docs/images")
    p.add_argument("paths", nargs="+", type=Path)
    args = p.parse_args(argv)
    for path in args.paths:
        path = path.resolve()
        if args.update:
            with tempfile.TemporaryDirectory() as tmp:
                print(f"{path.name}: {update_outputs(path, tmp)} output block(s) written")
        else:
            print(f"{path.name}: {', '.join(draw_figures(path)) or 'no figures'} written to docs/images")


if __name__ == "__main__":
    import ctypes.util

    if ctypes.util.find_library("cuda") is None:  # as tests/conftest.py: the GPU chapter on the simulator
        os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
    main(sys.argv[1:])
