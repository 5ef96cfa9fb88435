"""The operation index: ``docs/ops.md``, generated from the kernel contract and the source.

For every kernel family and every contract entry (``kernels/contract.py``) it
lists what reaches the kernel and where its pieces live:

* the public functions (``tinygrad_cv.functional``, ``tinygrad_cv.tensor``'s
  functions and ``Tensor`` methods) that reach it: those whose source applies
  a Function that calls the kernel, or calls such a public function in turn;
* the ``Function`` classes in ``tinygrad_cv/ops/`` whose source calls it
  (``backend_for(...).<name>(...)``, or its name passed as a string), with the
  first paragraph of each one's docstring, and any other callers (optimisers,
  ``functional``) that call the twins directly;
* each twin's implementing function (``kernels/<family>/{reference,cpu,cuda}.py``,
  following re-exports), linked as file:line relative to ``docs/``;
* the test files and the docs chapters that mention the kernel or Function name.

The source is read, not imported, wherever a twin is concerned (the CUDA twin
needs a GPU to import), so the output is the same on every machine. Run
``python -m tinygrad_cv.kernels.index`` to rewrite ``docs/ops.md``;
``tests/test_ops_index.py`` fails when the committed file is stale.
"""
from __future__ import annotations

import ast
import inspect
import pkgutil
import re
import sys
from pathlib import Path

from . import contract

PKG = Path(__file__).resolve().parent.parent  # tinygrad_cv/
ROOT = PKG.parent
DOCS = ROOT / "docs"
TESTS = ROOT / "tests"
OUTPUT = DOCS / "ops.md"
TWINS = ("reference", "cpu", "cuda")


# ---------------------------------------------------------------------------
# Source helpers
# ---------------------------------------------------------------------------
def _rel(path: Path) -> str:
    """``path`` relative to the repository root, with forward slashes."""
    return Path(path).resolve().relative_to(ROOT).as_posix()


def _link(path: Path, line: int | None = None, text: str | None = None) -> str:
    """A Markdown link from ``docs/`` to ``path`` (at ``line``)."""
    rel = _rel(path)
    target = rel[len("docs/"):] if rel.startswith("docs/") else "../" + rel
    label = text if text is not None else (f"{rel}:{line}" if line else rel)
    return f"[{label}]({target}{f'#L{line}' if line else ''})"


def _first_paragraph(doc: str | None) -> str:
    if not doc:
        return ""
    para = inspect.cleandoc(doc).split("\n\n")[0]
    text = " ".join(line.strip() for line in para.splitlines())
    return text[:-1] if text.endswith("::") else text  # a reST literal-block marker


def _calls_kernel(source: str, name: str) -> bool:
    """Whether ``source`` calls kernel ``name`` (``k.name(``) or passes its name as a string."""
    return re.search(rf"\.{name}\(|[\"']{name}[\"']", source) is not None


def _find_definition(module_path: Path, name: str, depth: int = 0):
    """(file, line) of ``name``'s definition in a module, following ``from .x import name``."""
    if not module_path.exists() or depth > 4:
        return None
    tree = ast.parse(module_path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return module_path, node.lineno
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return module_path, node.lineno
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level >= 1 and node.module:
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    base = module_path.parent
                    for _ in range(node.level - 1):
                        base = base.parent
                    target = base.joinpath(*node.module.split("."))
                    found = _find_definition(target.with_suffix(".py"), alias.name, depth + 1)
                    if found is None:
                        found = _find_definition(target / "__init__.py", alias.name, depth + 1)
                    return found
    return None


def _mentions(paths, names):
    """The paths whose text mentions any of ``names`` as a whole word (sorted)."""
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(n) for n in sorted(names)) + r")\b")
    return sorted((p for p in paths if pattern.search(p.read_text(encoding="utf-8"))), key=_rel)


# ---------------------------------------------------------------------------
# What reaches a kernel
# ---------------------------------------------------------------------------
def _modules():
    """functional, tensor and every module of ``tinygrad_cv/ops/`` (imported by plain statements)."""
    import tinygrad_cv.functional  # noqa: F401
    import tinygrad_cv.tensor  # noqa: F401  (the attribute tinygrad_cv.tensor is the function)
    from .. import ops
    from ..ops import conv, device, elementwise, linear, loss, matmul, movement, nn, pool, reduce, softmax  # noqa: F401

    names = sorted(f"{ops.__name__}.{info.name}" for info in pkgutil.iter_modules(ops.__path__))
    missing = [n for n in names if n not in sys.modules]
    if missing:
        raise RuntimeError(f"kernels/index.py: add {missing} to the imports of _modules()")
    return sys.modules["tinygrad_cv.functional"], sys.modules["tinygrad_cv.tensor"], [sys.modules[n] for n in names]


def _functions_in_ops():
    """``{qualified name: class}`` of every Function defined in ``tinygrad_cv/ops/``."""
    from ..autograd import Function

    found = {}
    for module in _modules()[2]:
        for name, obj in sorted(vars(module).items()):
            if inspect.isclass(obj) and issubclass(obj, Function) and obj.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = obj
    return found


def _with_helpers(cls):
    """A Function's source followed by that of the module-level helpers it calls (``_log_softmax``, ...)."""
    module = sys.modules[cls.__module__]
    source = inspect.getsource(cls)
    seen, todo, parts = set(), [source], [source]
    while todo:
        text = todo.pop()
        for name, obj in sorted(vars(module).items()):
            if (name not in seen and inspect.isfunction(obj) and obj.__module__ == module.__name__
                    and re.search(rf"(?<![\w.]){re.escape(name)}\(", text)):
                seen.add(name)
                helper = inspect.getsource(obj)
                parts.append(helper)
                todo.append(helper)
    return "\n".join(parts)


def _public_callables():
    """``{public name: source}``: functional's functions, tensor's functions and Tensor's methods."""
    functional, tensor, _ = _modules()

    out = {}
    for prefix, module in (("F", functional), ("tinygrad_cv", tensor)):
        for name, obj in sorted(vars(module).items()):
            if name.startswith("_") or not inspect.isfunction(obj) or obj.__module__ != module.__name__:
                continue
            out[f"{prefix}.{name}"] = inspect.getsource(obj)
    for name, obj in sorted(vars(tensor.Tensor).items()):
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        if isinstance(obj, property):
            obj = obj.fget
        if name.startswith("_") and name not in ("__matmul__",) or not inspect.isfunction(obj):
            continue
        out[f"Tensor.{name}"] = inspect.getsource(obj)
    return out


def _aliases(classes):
    """Every name the public modules bind to one of ``classes`` (``Linear as LinearFn``), with the class names."""
    names = {cls.__name__ for cls in classes}
    for module in _modules()[:2]:
        for name, obj in vars(module).items():
            if any(obj is cls for cls in classes):
                names.add(name)
    return sorted(names)


def _reachers(function_names, public):
    """Public callables that apply one of ``function_names`` directly, or call such a callable."""
    apply = re.compile(r"\b(?:" + "|".join(re.escape(n) for n in function_names) + r")\.apply\b")
    reach = {name for name, src in public.items() if apply.search(src)}
    changed = True
    while changed:  # one public callable calling another: F.cross_entropy -> F.log_softmax -> ...
        changed = False
        for name, src in public.items():
            if name in reach:
                continue
            for other in reach:
                short = other.split(".", 1)[1]
                if short.startswith("__"):
                    continue
                call = rf"\.{short}\(" if other.startswith("Tensor.") else rf"(?<![\w.]){short}\(|\b(?:F|functional)\.{short}\("
                if re.search(call, src):
                    reach.add(name)
                    changed = True
                    break
    return sorted(reach)


def _direct_callers(name):
    """Code outside ``ops/`` that calls the twins directly: functional's functions, optimisers."""
    functional = _modules()[0]

    out = []
    for fname, obj in sorted(vars(functional).items()):
        if inspect.isfunction(obj) and obj.__module__ == functional.__name__ and _calls_kernel(inspect.getsource(obj), name):
            out.append(f"F.{fname}")
    optim_dir = PKG / "optim"
    for path in sorted(optim_dir.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and _calls_kernel(ast.get_source_segment(path.read_text(encoding="utf-8"), node) or "", name):
                out.append(f"tinygrad_cv.optim.{node.name} ({_link(path, node.lineno, _rel(path) + ':' + str(node.lineno))})")
    return out


# ---------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------
def generate() -> str:
    """The text of ``docs/ops.md``."""
    functions = _functions_in_ops()
    sources = {q: _with_helpers(cls) for q, cls in functions.items()}
    public = _public_callables()
    test_files = sorted(TESTS.rglob("*.py"), key=_rel)
    chapters = sorted(DOCS.glob("[0-9][0-9]*_*.md"), key=_rel)  # 10a_... too

    lines = [
        "# Operation index",
        "",
        "<!-- Generated by `python -m tinygrad_cv.kernels.index` from kernels/contract.py and the source;",
        "     do not edit by hand. tests/test_ops_index.py fails when this file is stale. -->",
        "",
        "Every kernel of the contract ([`kernels/contract.py`](../tinygrad_cv/kernels/contract.py)), by family:",
        "the public functions that reach it, the autograd `Function`s that call it (with the first",
        "paragraph of their docstrings), its three twins, and the tests and chapters that mention it.",
        "",
    ]
    for family in contract.FAMILIES:
        entries = [e for e in contract.KERNELS.values() if e.family == family]
        lines += [f"## {family}", ""]
        lines.append(" · ".join(f"[`{e.name}`](#{e.name})" for e in entries))
        lines.append("")
        for entry in entries:
            name = entry.name
            users = sorted(q for q, src in sources.items() if _calls_kernel(src, name))
            # Functions whose backward applies one of those (MaxPool2d -> its backward Function), and so on
            reaching = set(users)
            while True:
                pattern = re.compile(r"\b(?:" + "|".join(q.rsplit(".", 1)[1] for q in sorted(reaching)) + r")\.apply\b")
                more = {q for q, src in sources.items() if q not in reaching and pattern.search(src)} if reaching else set()
                if not more:
                    break
                reaching |= more
            lines += [f"### {name}", "", f"`{name}{entry.signature}`", ""]
            formula = _first_paragraph(entry.doc)
            if formula:
                lines += [f"> {formula}", ""]
            short_names = [q.rsplit(".", 1)[1] for q in users]
            reach = _reachers(_aliases([functions[q] for q in reaching]), public) if reaching else []
            direct = _direct_callers(name)
            reach = sorted(set(reach) | {d for d in direct if d.startswith("F.")})
            lines.append("- **Public API:** " + (", ".join(f"`{r}`" for r in reach) if reach else "none directly"))
            if reaching:
                lines.append("- **Functions:**")
                for q in sorted(reaching):
                    cls = functions[q]
                    path = Path(inspect.getsourcefile(cls))
                    line = inspect.getsourcelines(cls)[1]
                    doc = _first_paragraph(cls.__doc__) or "(no docstring)"
                    backward = getattr(cls, "backward", None)
                    tag = " — first-order kernel path, `@once_differentiable(fallback=composite_backward)`" if getattr(
                        backward, "once_differentiable", False) else ""
                    via = "" if q in users else " (applies a Function that calls it)"
                    lines.append(f"  - `{q}` ({_link(path, line, f'{_rel(path)}:{line}')}){via}{tag}: {doc}")
            else:
                lines.append("- **Functions:** none")
            if direct:
                lines.append("- **Called directly by:** " + ", ".join(direct))
            twins = []
            for twin in TWINS:
                found = _find_definition(PKG / "kernels" / family / f"{twin}.py", name)
                if found is None:
                    twins.append(f"{twin}: (not found)")
                else:
                    path, line = found
                    twins.append(f"{twin} {_link(path, line)}")
            lines.append("- **Twins:** " + " · ".join(twins))
            names = [name] + short_names
            tests = _mentions(test_files, names)
            lines.append("- **Tests:** " + (", ".join(_link(p) for p in tests) if tests else "none"))
            docs = _mentions(chapters, names)
            lines.append("- **Chapters:** " + (", ".join(_link(p, text=p.name) for p in docs) if docs else "none"))
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv=None) -> int:
    text = generate()
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {_rel(OUTPUT)} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
