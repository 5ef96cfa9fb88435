"""tinygrad_cv.io.figures: the optional pyplot, and PNGs written atomically as palette images."""
import builtins
import os

import pytest

from tinygrad_cv.io import figures


def test_pyplot_is_none_without_matplotlib(monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("no matplotlib here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert figures.pyplot() is None


def test_save_png_writes_a_complete_palette_png_atomically(tmp_path, monkeypatch):
    plt = figures.pyplot()
    if plt is None:
        pytest.skip("needs matplotlib")
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1, 2], [1, 0, 1])
    path = tmp_path / "plot.png"
    assert figures.save_png(fig, str(path), dpi=50) == str(path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data.rstrip(b"\x00").endswith(b"IEND\xaeB`\x82")
    pil = pytest.importorskip("PIL.Image")
    assert pil.open(path).mode == "P"  # a 256-colour palette image
    # a figure that fails half-way leaves the old file as it was, and no temporary file behind
    monkeypatch.setattr(fig, "savefig", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("disk full")))
    with pytest.raises(RuntimeError, match="disk full"):
        figures.save_png(fig, str(path))
    assert path.read_bytes() == data and os.listdir(tmp_path) == ["plot.png"]
    plt.close(fig)


def test_palette_png_without_pillow_returns_the_bytes(monkeypatch):
    real_import = builtins.__import__

    def no_pillow(name, *args, **kwargs):
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError("no Pillow here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pillow)
    assert figures.palette_png(b"not even a png") == b"not even a png"
