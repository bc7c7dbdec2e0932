"""One figure style for the whole book, rendered to PNG.

Use it as::

    with book_style():
        fig, ax = plt.subplots()
        ax.plot(...)
        show(fig)

The style is applied through :func:`matplotlib.rc_context`, so nothing global changes, and
:func:`show` renders the figure to PNG inside the same style, displays it and closes it.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__ = ["BOOK_STYLE", "DPI", "PALETTE", "book_style", "png_bytes", "show"]

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
    """Render ``fig`` as PNG (no timestamp or software metadata, so bytes are reproducible)."""
    if not isinstance(fig, Figure):
        raise ValueError(f"`fig` must be a matplotlib Figure, got {type(fig).__name__}")
    buffer = io.BytesIO()
    with matplotlib.rc_context(BOOK_STYLE):
        fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def show(fig: Figure) -> None:
    """Display ``fig`` as a PNG in the notebook and close it."""
    from IPython.display import Image, display

    data = png_bytes(fig)
    plt.close(fig)
    display(Image(data=data, format="png"))
