"""Figures for the demos: matplotlib when it is there, and PNG files written the way every file here is.

Plots are optional (the ``plots`` and ``viz`` extras): ``pyplot()`` is
matplotlib's pyplot on the file-only Agg backend, or None without
matplotlib, and a demo then skips its figures. ``save_png(fig, path)``
writes a figure atomically (``atomic_output``: a reader, or a run killed
half-way, never sees a torn file; the old one stays until the new one is
complete), as an 8-bit palette PNG when Pillow is installed — about a third
of the size, with no visible change for plots.
"""
from __future__ import annotations

import io

from .safetensors import atomic_output


def pyplot():
    """``matplotlib.pyplot`` with the Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def palette_png(png):
    """The PNG bytes re-encoded with a 256-colour palette when Pillow is there; unchanged without it."""
    try:
        from PIL import Image
    except ImportError:
        return png
    image = Image.open(io.BytesIO(png)).convert("RGB")
    out = io.BytesIO()
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, format="PNG", optimize=True)
    return out.getvalue()


def save_png(fig, path, dpi=100):
    """Write matplotlib figure ``fig`` to ``path`` (tight bounding box, palette PNG), atomically; returns ``path``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    with atomic_output(path) as f:
        f.write(palette_png(buf.getvalue()))
    return path
