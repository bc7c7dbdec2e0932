"""The book's figure style: applied locally, rendered reproducibly as PNG."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

from kexue_nb.plotting import BOOK_STYLE, PALETTE, book_style, image_tiles, png_bytes, show


def test_style_is_local():
    before = dict(matplotlib.rcParams)
    with book_style():
        assert matplotlib.rcParams["axes.spines.top"] is False
        assert matplotlib.rcParams["axes.prop_cycle"].by_key()["color"][0] == PALETTE[0]
    assert dict(matplotlib.rcParams) == before


def test_png_is_reproducible_and_png():
    with book_style():
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
    first, second = png_bytes(fig), png_bytes(fig)
    plt.close(fig)
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    assert first == second
    width = int.from_bytes(first[16:20], "big")
    assert width == round(BOOK_STYLE["figure.figsize"][0] * BOOK_STYLE["figure.dpi"])


def test_show_displays_png_and_closes(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    fig, _ = plt.subplots()
    show(fig)
    assert shown[0].format == "png" and shown[0].data[:4] == b"\x89PNG"
    assert not plt.fignum_exists(fig.number)


def test_png_bytes_rejects_non_figures():
    with pytest.raises(ValueError, match="`fig` must be a matplotlib Figure"):
        png_bytes("not a figure")


def _decoded(data):
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


@pytest.mark.parametrize("colours", [3, 40000])
def test_compact_png_is_lossless_and_smaller(colours):
    import io

    from PIL import Image

    from kexue_nb.plotting import compact_png

    values = np.arange(200 * 200) % colours
    rgb = np.stack([values % 256, values // 256 % 256, values // 65536], -1).astype(np.uint8)
    image = Image.fromarray(np.dstack([rgb.reshape(200, 200, 3),
                                       np.full((200, 200), 255, np.uint8)]), "RGBA")
    buffer = io.BytesIO()
    image.save(buffer, format="png")
    data = buffer.getvalue()
    small = compact_png(data)
    assert (_decoded(small) == _decoded(data)).all() and len(small) < len(data)
    assert Image.open(io.BytesIO(small)).mode == ("P" if colours <= 256 else "RGB")


def test_compact_png_keeps_transparency():
    import io

    from PIL import Image

    from kexue_nb.plotting import compact_png

    pixels = np.zeros((20, 20, 4), np.uint8)
    pixels[..., 3] = np.arange(20)[:, None] * 10
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, format="png")
    assert (_decoded(compact_png(buffer.getvalue())) == pixels).all()


def test_image_tiles_layout_and_padding():
    images = np.arange(5 * 2 * 3, dtype=float).reshape(5, 1, 2, 3)
    tiles = image_tiles(images, rows=2, cols=3, pad_value=-1)
    assert tiles.shape == (2 * 3, 3 * 4)
    for i in range(5):
        r, c = divmod(i, 3)
        assert np.array_equal(tiles[3 * r: 3 * r + 2, 4 * c: 4 * c + 3], images[i, 0])
    assert np.all(tiles[2::3] == -1) and np.all(tiles[:, 3::4] == -1)
    assert np.all(tiles[3:, 8:] == -1)                       # the sixth place is empty


def test_image_tiles_bad_input():
    with pytest.raises(ValueError, match="`images`"):
        image_tiles(np.zeros((7, 2, 2)), rows=2, cols=3)
    with pytest.raises(ValueError, match="`images`"):
        image_tiles(np.zeros((2, 3, 2, 2)), rows=2, cols=3)
    with pytest.raises(ValueError, match="`rows`"):
        image_tiles(np.zeros((1, 2, 2)), rows=0, cols=3)
    with pytest.raises(TypeError, match="`images`"):
        image_tiles("tiles", rows=1, cols=1)
    with pytest.raises(TypeError, match="`pad_value`"):
        image_tiles(np.zeros((1, 2, 2)), rows=1, cols=1, pad_value="white")
