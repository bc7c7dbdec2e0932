"""One figure style for the whole book, rendered to PNG.

Use it as::

    with book_style():
        fig, ax = plt.subplots()
        ax.plot(...)
        show(fig)

The style is applied through :func:`matplotlib.rc_context`, so nothing global changes, and
:func:`show` renders the figure to PNG inside the same style, displays it and closes it.
:func:`image_tiles` lays small images out as one grid for ``imshow``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from PIL import Image

__all__ = ["BOOK_STYLE", "DPI", "PALETTE", "book_style", "compact_png", "image_tiles", "png_bytes",
           "show"]

#: Colour-blind-safe palette (Okabe–Ito), in the order lines are drawn.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
#: Resolution of every PNG in the book.
DPI = 110

BOOK_STYLE: dict[str, object] = {
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "figure.constrained_layout.use": True,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": matplotlib.cycler(color=list(PALETTE)),
    "lines.linewidth": 1.6,
    "legend.frameon": False,
    "image.cmap": "viridis",
}


@contextmanager
def book_style() -> Iterator[None]:
    """Apply :data:`BOOK_STYLE` inside the ``with`` block only."""
    with matplotlib.rc_context(BOOK_STYLE):
        yield


def png_bytes(fig: Figure) -> bytes:
    """Render ``fig`` as PNG (no timestamp or software metadata, so bytes are reproducible),
    stored losslessly in its smallest form (see :func:`compact_png`)."""
    if not isinstance(fig, Figure):
        raise ValueError(f"`fig` must be a matplotlib Figure, got {type(fig).__name__}")
    buffer = io.BytesIO()
    with matplotlib.rc_context(BOOK_STYLE):
        fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return compact_png(buffer.getvalue())


def compact_png(data: bytes) -> bytes:
    """The same pixels in fewer bytes: an opaque image drops its alpha channel, one with at most
    256 colours becomes a palette image, and the result is deflated with Pillow's ``optimize``.
    Lossless: the decoded pixels are checked equal, else ``data`` is returned unchanged."""
    if not isinstance(data, bytes) or not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError(f"`data` must be the bytes of a PNG file, got {type(data).__name__}")
    try:
        original = Image.open(io.BytesIO(data))
        pixels = np.asarray(original.convert("RGBA"))
    except OSError as exc:  # Pillow's errors for a truncated or corrupt file
        raise ValueError(f"`data` must be the bytes of a PNG file: {exc}") from exc
    image = original.convert("RGBA")
    if (pixels[..., 3] == 255).all():
        image = image.convert("RGB")
        colours = image.getcolors(256)
        if colours is not None:
            image = image.quantize(len(colours), method=Image.Quantize.MEDIANCUT,
                                   dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    image.save(buffer, format="png", optimize=True)
    if not np.array_equal(np.asarray(Image.open(buffer).convert("RGBA")), pixels):
        return data
    return min(buffer.getvalue(), data, key=len)


def show(fig: Figure) -> None:
    """Display ``fig`` as a PNG in the notebook and close it."""
    from IPython.display import Image, display

    data = png_bytes(fig)
    plt.close(fig)
    display(Image(data=data, format="png"))


def image_tiles(images: object, rows: int, cols: int, pad_value: float = -1.0) -> np.ndarray:
    """Lay ``images`` (N, H, W) or (N, 1, H, W), N ≤ rows·cols, out row by row as one
    (rows·(H + 1), cols·(W + 1)) array: each tile followed by one line of ``pad_value`` on its
    right and below, and empty places filled with ``pad_value`` (−1 is the digits' background)."""
    for name, value in (("rows", rows), ("cols", cols)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
    if isinstance(pad_value, bool) or not isinstance(pad_value, int | float | np.number):
        raise TypeError(f"`pad_value` must be a real number, got {pad_value!r}")
    try:
        x = np.asarray(images, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"`images` must be an array of real numbers, "
                        f"got {type(images).__name__}") from exc
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3 or not 1 <= len(x) <= rows * cols:
        raise ValueError(f"`images` must have shape (N, H, W) or (N, 1, H, W) with 1 <= N <= "
                         f"rows * cols = {rows * cols}, got {np.shape(images)}")
    n, h, w = x.shape
    canvas = np.full((rows * cols, h + 1, w + 1), float(pad_value))
    canvas[:n, :h, :w] = x
    return canvas.reshape(rows, cols, h + 1, w + 1).transpose(0, 2, 1, 3).reshape(rows * (h + 1),
                                                                                   cols * (w + 1))
