"""The course text as Jupyter notebooks and as a rendered web site.

    python tools/docs_site.py notebooks          # regenerate docs/notebooks/*.ipynb from docs/*.md
    python tools/docs_site.py notebooks --check  # exit 1 if a committed notebook is stale
    python tools/docs_site.py build [--out DIR]  # the HTML site (default build/site), needs ".[docs]"

**Notebooks.** Each chapter ``docs/NN_*.md`` becomes ``docs/notebooks/NN_*.ipynb``:
a first code cell that installs ``tinygrad_cv`` when the notebook runs in
Google Colab (and does nothing elsewhere), then the chapter in order, prose and
math as Markdown cells, every ```` ```python ```` block as a code cell, and the
``python no-run`` listings kept inside the Markdown as code listings. The
notebooks are committed with their outputs stripped (so that Colab can open
them from the repository); tests/test_docs_notebooks.py checks that they are
up to date with the chapters and executes some of them. Edit the Markdown,
never the notebooks, and regenerate. The code cells are exactly the blocks
that tests/test_docs.py runs.

Links are rewritten for the notebooks' place: a chapter link
``08_convolution.md#x`` points at ``08_convolution.ipynb#x``, other relative
links (figures, source files) get a ``../`` prefix. When pyproject.toml names
the repository (``[project.urls] Repository = "https://github.com/OWNER/NAME"``)
the Colab cell installs from it, and figure and file links become absolute
links into it, so that they work in Colab too.

**Site.** Sphinx with MyST-Parser reads the Markdown as it is (GitHub's
``$...$`` and ``$$...$$`` math through MyST's dollarmath, rendered by a local
copy of MathJax 3 so that the pages work offline), the Furo theme, the chapters
in order in the navigation, with ``docs/README.md`` as the front page. Links
between chapters become links between pages; links to source files outside
``docs/`` become downloadable copies. Any Sphinx warning (a broken link, a
missing figure) fails the build.
"""
import argparse
import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NOTEBOOKS = DOCS / "notebooks"
SITE = ROOT / "build" / "site"

# the same fence rule as tests/test_docs.py: up to 3 spaces, ``` or ~~~ (3 or more), then the info string
FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})\s*([^`]*)$")
CHAPTER = re.compile(r"^\d+[a-z]?_.*\.md$")


def chapters():
    """The numbered chapters, in reading order (``10_`` sorts before ``10a_``)."""
    return sorted(p for p in DOCS.glob("*.md") if CHAPTER.match(p.name))


# ---------------------------------------------------------------------------------------------
# notebooks
# ---------------------------------------------------------------------------------------------

def repository_url():
    """``Repository`` (or ``Source``/``Homepage``) under ``[project.urls]`` in pyproject.toml, if it
    is a GitHub address, else None. Read with a regular expression rather than tomllib, so that the
    notebooks come out the same on Python 3.10."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = re.search(r"^\[project\.urls\][^\n]*\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
    if section is None:
        return None
    urls = dict(re.findall(r'^\s*"?(\w+)"?\s*=\s*"([^"]*)"', section.group(1), re.M))
    for key in ("Repository", "Source", "Homepage"):
        url = urls.get(key, "")
        if url.startswith("https://github.com/"):
            return url.rstrip("/").removesuffix(".git")
    return None


def split_chapter(text):
    """``[("markdown" | "code", text), ...]``: the chapter as cells, in order.

    A ```` ```python ```` block without ``no-run`` becomes a code cell (dedented,
    like tests/test_docs.py does for a block inside a list item); everything
    else, other fences included, stays in the Markdown around it.
    """
    lines = text.splitlines()
    cells, prose, i = [], [], 0

    def flush_prose():
        md = "\n".join(prose).strip("\n")
        if md.strip():
            cells.append(("markdown", md))
        prose.clear()

    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            prose.append(lines[i])
            i += 1
            continue
        indent, fence, info = m.groups()
        start, body = i, []
        i += 1
        while i < len(lines) and not re.match(rf"^ {{0,3}}{fence[0]}{{{len(fence)},}}\s*$", lines[i]):
            body.append(lines[i])
            i += 1
        block = lines[start:i + 1]
        i += 1
        words = info.split()
        if words[:1] == ["python"] and "no-run" not in words[1:]:
            flush_prose()
            code = [b[len(indent):] if b.startswith(indent) else b.lstrip() for b in body]
            cells.append(("code", dedent("\n".join(code)).strip("\n")))
        else:
            if words[:1] == ["python"]:  # a listing: keep the language, drop no-run and quote=
                block[0] = f"{indent}{fence}python"
            prose.extend(block)
    flush_prose()
    return cells


def dedent(code):
    import textwrap

    return textwrap.dedent(code + "\n").rstrip("\n")


LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")


def rewrite_links(md, repo):
    """Make the chapter's relative links right for a notebook in docs/notebooks/."""

    def fix(m):
        target = m.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")):
            return m.group(0)  # absolute URL, mailto:, anchor in the same page
        path, _, anchor = target.partition("#")
        if CHAPTER.match(path):
            new = path[:-3] + ".ipynb"
        elif repo is not None:
            resolved = (Path("docs") / path).as_posix()
            parts = []
            for part in resolved.split("/"):  # normalise docs/../tests/x.py to tests/x.py
                if part == ".." and parts:
                    parts.pop()
                elif part not in ("", "."):
                    parts.append(part)
            kind = "raw" if m.group(1).startswith("!") else "blob"
            new = f"{repo}/{kind}/main/{'/'.join(parts)}"
        else:
            new = "../" + path
        return f"{m.group(1)}{new}{'#' + anchor if anchor else ''}{m.group(3)}"

    return LINK.sub(fix, md)


def setup_cell(source_name, repo):
    where = f'"tinygrad_cv @ git+{repo}"' if repo else '"tinygrad_cv @ git+https://github.com/OWNER/tinygrad_cv"'
    return "\n".join([
        f"# Generated from docs/{source_name} by tools/docs_site.py: edit the chapter, not this notebook.",
        "# In Google Colab this cell installs tinygrad_cv; anywhere else it does nothing",
        '# (locally: pip install -e ".[viz]" from a checkout, then start Jupyter).',
        "import sys",
        'if "google.colab" in sys.modules:',
        f"    %pip install -q {where}",
    ])


def _lines(text):
    """nbformat's on-disk form of a cell's source: a list of lines, each but the last ending in \\n."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + [parts[-1]]


def notebook(path, repo=None):
    """The notebook for chapter ``path``, as the exact text to write (nbformat 4.5, outputs stripped)."""
    cells = [("code", setup_cell(path.name, repo))] + split_chapter(path.read_text(encoding="utf-8"))
    nb_cells = []
    for n, (kind, text) in enumerate(cells):
        cell = {"cell_type": kind, "id": f"cell-{n:03d}", "metadata": {}, "source": _lines(
            rewrite_links(text, repo) if kind == "markdown" else text)}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        nb_cells.append(cell)
    nb = {
        "cells": nb_cells,
        "metadata": {
            "colab": {"name": path.stem + ".ipynb", "provenance": []},
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "tinygrad_cv": {"generated_from": f"docs/{path.name}"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def notebook_path(chapter):
    return NOTEBOOKS / (chapter.stem + ".ipynb")


def stale_notebooks():
    """Messages for every notebook that is missing, out of date, or has no chapter any more."""
    repo, problems = repository_url(), []
    expected = {notebook_path(c): c for c in chapters()}
    for nb_path, chapter in expected.items():
        if not nb_path.is_file():
            problems.append(f"{nb_path.relative_to(ROOT)} is missing")
        elif nb_path.read_text(encoding="utf-8") != notebook(chapter, repo):
            problems.append(f"{nb_path.relative_to(ROOT)} is out of date with docs/{chapter.name}")
    for extra in sorted(set(NOTEBOOKS.glob("*.ipynb")) - set(expected)):
        problems.append(f"{extra.relative_to(ROOT)} has no chapter")
    return problems


def write_notebooks():
    repo = repository_url()
    NOTEBOOKS.mkdir(exist_ok=True)
    expected = set()
    for chapter in chapters():
        nb_path = notebook_path(chapter)
        expected.add(nb_path)
        text = notebook(chapter, repo)
        if not nb_path.is_file() or nb_path.read_text(encoding="utf-8") != text:
            nb_path.write_text(text, encoding="utf-8")
            print("wrote", nb_path.relative_to(ROOT))
    for extra in sorted(set(NOTEBOOKS.glob("*.ipynb")) - expected):
        extra.unlink()
        print("removed", extra.relative_to(ROOT))


# ---------------------------------------------------------------------------------------------
# site
# ---------------------------------------------------------------------------------------------

def _prepare_source(app, docname, source):
    """Put every page into the front page's navigation (the chapters, the operation index, then any
    other Markdown under docs/, e.g. solutions/README.md). Links to folders, which Sphinx cannot
    copy, go to the folder's README.md page if it has one, else to the repository, else unlinked."""
    repo = repository_url()
    here = (DOCS / docname).parent

    def folder_link(m):
        if re.match(r"^[a-z][a-z0-9+.-]*:", m.group(2)):
            return m.group(0)
        target = (here / m.group(2)).resolve()
        if not target.is_dir():
            return m.group(0)
        if (target / "README.md").is_file() and DOCS in target.parents:  # a folder with a page
            return f"{m.group(1)}{(target / 'README.md').relative_to(here.resolve()).as_posix()}{m.group(3)}"
        if repo is None:
            return m.group(1)[1:-2]  # the link text alone
        return f"{m.group(1)}{repo}/tree/main/{target.relative_to(ROOT).as_posix()}{m.group(3)}"

    source[0] = re.sub(r"(\[[^\]]*\]\()([^)#\s]+)(\))", folder_link, source[0])
    if docname == app.config.root_doc:
        first = [c.stem for c in chapters()] + ["ops"]
        others = sorted(p.relative_to(DOCS).with_suffix("").as_posix() for p in DOCS.rglob("*.md")
                        if p.parent.name != "notebooks" and not p.name.startswith("_"))
        names = first + [n for n in others if n not in first and n != app.config.root_doc]
        source[0] += "\n\n```{toctree}\n:hidden:\n:maxdepth: 2\n\n" + "\n".join(names) + "\n```\n"


def site_config():
    return {
        "project": "tinygrad_cv",
        "html_title": "tinygrad_cv: autograd for CNNs, from the chain rule up",
        "root_doc": "README",
        "extensions": ["myst_parser", "sphinx.ext.mathjax", "sphinx-mathjax-offline"],
        "source_suffix": {".md": "markdown"},
        "exclude_patterns": ["notebooks", "_*", "**/.ipynb_checkpoints"],
        "myst_enable_extensions": ["dollarmath"],
        "myst_dmath_double_inline": True,  # GitHub allows $$...$$ inside a paragraph too
        "myst_heading_anchors": 4,  # GitHub-style #anchors on headings, so chapter#section links resolve
        "html_theme": "furo",
        "html_copy_source": False,
        "html_show_sourcelink": False,
        "language": "en",
    }


class _Tee:
    """Sphinx's warning stream: passed on to ``stream``, and counted."""

    def __init__(self, stream):
        self.stream, self.count = stream, 0

    def write(self, text):
        self.count += len(re.findall(r"\b(WARNING|ERROR|CRITICAL):", text))
        return self.stream.write(text)

    def flush(self):
        self.stream.flush()


def build_site(out=SITE, quiet=False):
    """Build the HTML site into ``out``; any warning fails the build (SystemExit with the count)."""
    try:
        from sphinx.application import Sphinx
        from sphinx.util.docutils import docutils_namespace
    except ImportError:
        sys.exit('the site needs the docs extra: pip install -e ".[docs]"')
    out = Path(out)
    doctrees = out.parent / (out.name + "-doctrees")
    warnings = _Tee(sys.stderr)
    with docutils_namespace():
        app = Sphinx(str(DOCS), None, str(out), str(doctrees), "html", confoverrides=site_config(),
                     status=None if quiet else sys.stdout, warning=warnings, freshenv=True)
        app.connect("source-read", _prepare_source)
        app.build()
    count = max(warnings.count, getattr(app, "_warncount", 0))
    if app.statuscode or count:
        sys.exit(f"site build failed: {count} warning(s), status {app.statuscode}")
    # the front page is docs/README.md (so that GitHub shows the same page); servers look for index.html
    shutil.copyfile(out / "README.html", out / "index.html")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    nb = sub.add_parser("notebooks", help="write docs/notebooks/*.ipynb from the chapters")
    nb.add_argument("--check", action="store_true", help="write nothing; exit 1 if a notebook is stale")
    b = sub.add_parser("build", help="build the HTML site")
    b.add_argument("--out", type=Path, default=SITE, help=f"output folder (default {SITE.relative_to(ROOT)})")
    b.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "notebooks":
        if args.check:
            problems = stale_notebooks()
            for p in problems:
                print(p)
            if problems:
                sys.exit("stale notebooks: run python tools/docs_site.py notebooks")
            print(f"{len(chapters())} notebooks up to date")
        else:
            write_notebooks()
    else:
        out = build_site(args.out, args.quiet)
        print(f"site: {out / 'index.html'}")


if __name__ == "__main__":
    main()
