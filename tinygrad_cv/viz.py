"""Draw a computational graph as Graphviz DOT text (no graphviz package needed).

Value nodes are boxes with their data and gradient; each operation is an
ellipse between its inputs and its output. Render with ``dot -Tsvg``.
"""
from __future__ import annotations

import shutil
import subprocess

import numpy as np


def _fmt(node, attr):
    v = getattr(node, attr)
    if v is None:
        return "None"
    if hasattr(v, "data") and not isinstance(v, (float, int)):
        v = v.data
    arr = np.asarray(v)
    if arr.size == 1:
        return f"{arr.item():.4g}"
    return f"shape {arr.shape}"


def to_dot(root, rankdir: str = "LR") -> str:
    """DOT text of every node and operation that ``root`` was computed from."""
    lines = [f"digraph G {{\n  rankdir={rankdir};", '  node [fontname="Helvetica"];']
    ids, stack, seen_ctx = {}, [root], set()

    def node_id(n):
        if id(n) not in ids:
            ids[id(n)] = f"v{len(ids)}"
            label = getattr(n, "label", "") or ""
            prefix = f"{label} | " if label else ""
            lines.append(
                f'  {ids[id(n)]} [shape=record, label="{{ {prefix}data {_fmt(n, "data")} | grad {_fmt(n, "grad")} }}"];'
            )
        return ids[id(n)]

    node_id(root)
    while stack:
        n = stack.pop()
        ctx = n._ctx
        if ctx is None or id(ctx) in seen_ctx:
            continue
        seen_ctx.add(id(ctx))
        op = f"op{len(seen_ctx)}"
        lines.append(f'  {op} [shape=ellipse, label="{ctx.name}"];')
        for ref in ctx.outputs:
            out = ref()
            if out is not None:
                lines.append(f"  {op} -> {node_id(out)};")
        for inp in ctx.inputs:
            if inp is not None:
                lines.append(f"  {node_id(inp)} -> {op};")
                stack.append(inp)
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(dot_text: str, path: str, fmt: str | None = None) -> bool:
    """Render DOT text with the ``dot`` program if it is installed; returns whether it did."""
    exe = shutil.which("dot")
    if exe is None:
        return False
    fmt = fmt or path.rsplit(".", 1)[-1]
    subprocess.run([exe, f"-T{fmt}", "-o", path], input=dot_text.encode(), check=True)
    return True
