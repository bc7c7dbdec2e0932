"""The browser check: table of contents, local server, and a real page in Chromium."""

import urllib.request

import pytest

from kexue_nb.tools.check_browser import check_site, serve, toc_pages

TOC = """format: jb-book
root: book/intro
parts:
  - caption: A
    chapters:
      - file: book/a/one
        sections:
          - file: book/a/two
"""


def test_toc_pages_lists_root_and_nested_files(tmp_path):
    (tmp_path / "_toc.yml").write_text(TOC)
    assert toc_pages(tmp_path / "_toc.yml") == [
        "book/intro.html", "book/a/one.html", "book/a/two.html"]


def test_serve_is_local_and_stops(tmp_path):
    (tmp_path / "x.html").write_text("hello")
    with serve(tmp_path) as base:
        assert base.startswith("http://127.0.0.1:")
        assert urllib.request.urlopen(f"{base}/x.html").read() == b"hello"


@pytest.fixture
def site(tmp_path):
    html = tmp_path / "html"
    (html / "book").mkdir(parents=True)
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\n")
    return tmp_path, html




def test_sound_page_passes_and_is_screenshot(chromium, site):
    root, html = site
    page = "<html><body><main><p>plain text</p></main></body></html>"
    (html / "book" / "intro.html").write_text(page)
    problems = check_site(html, root / "_toc.yml", root / "shots", chromium)
    assert problems == []
    assert (root / "shots" / "book__intro.png").stat().st_size > 0


def test_external_request_raw_tex_and_broken_image_are_reported(chromium, site):
    root, html = site
    (html / "book" / "intro.html").write_text(
        "<html><body><main><p>raw $$x^2$$ here</p><img src='missing.png'>"
        "<img src='https://example.invalid/a.png'></main></body></html>")
    problems = check_site(html, root / "_toc.yml", root / "shots", chromium)
    text = "\n".join(problems)
    assert "external request https://example.invalid/a.png" in text
    assert "raw TeX left in the text" in text
    assert "image did not load" in text and "HTTP 404" in text


LEDGER_PAGE = """<html><body><main style='max-width: 600px'>
<div class='cell_output'><p><strong>Ledger:</strong> 1/1 claims passed.</p>
<p>{claim}</p></div></main></body></html>"""


def test_ledger_wider_than_its_column_is_reported_at_both_widths(chromium, site):
    root, html = site
    wide = "<span style='display:inline-block; width:900px'>a statement too wide</span>"
    (html / "book" / "intro.html").write_text(LEDGER_PAGE.format(claim=wide))
    problems = check_site(html, root / "_toc.yml", root / "shots", chromium)
    assert any("at 1280 px a ledger is" in p for p in problems)
    assert any("at 390 px a ledger is" in p for p in problems)


def test_ledger_that_wraps_fits_at_phone_width(chromium, site):
    root, html = site
    words = "a long statement that wraps " * 20
    (html / "book" / "intro.html").write_text(LEDGER_PAGE.format(claim=words))
    assert check_site(html, root / "_toc.yml", root / "shots", chromium) == []
    assert (root / "shots" / "book__intro__ledger-390px.png").stat().st_size > 0


def test_page_wider_than_a_phone_is_reported(chromium, site):
    root, html = site
    (html / "book" / "intro.html").write_text(
        "<html><body><main><div style='width: 800px'>a wide block</div></main></body></html>")
    problems = check_site(html, root / "_toc.yml", root / "shots", chromium)
    assert any("at 390 px the page is" in p for p in problems)
    assert not any("at 1280 px" in p for p in problems)


def test_alt_text_that_is_a_path_and_unnumbered_figure_are_reported(chromium, site):
    root, html = site
    png = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8"
           "z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
    (html / "book" / "intro.html").write_text(
        f"<html><body><main><div class='cell_output'><img src='{png}' alt='_build/x.png'>"
        "</div></main></body></html>")
    problems = check_site(html, root / "_toc.yml", root / "shots", chromium)
    assert any("alt text is not a describing sentence: '_build/x.png'" in p for p in problems)
    assert any("1 figures without a numbered caption" in p for p in problems)


def test_formulas_in_the_tab_order_and_bare_permalinks_are_reported(chromium, site):
    """A MathJax-like formula that is a Tab stop without scrolling, and a heading permalink
    whose only text is "#", are reported at both widths; a scrolling, named formula and a
    permalink named by its title are not."""
    root, html = site
    narrow = "<mjx-container jax='CHTML' tabindex='0'>x</mjx-container>"
    scrolling = ("<mjx-container jax='CHTML' display='true' tabindex='0' role='region' "
                 "aria-label='formula, scrolls sideways' style='display:block; width:200px; "
                 "overflow-x:auto'><span style='display:inline-block; width:600px'>y</span>"
                 "</mjx-container>")
    (html / "book" / "intro.html").write_text(
        f"<html><body><main><h2>A<a class='headerlink' href='#a'>#</a></h2>"
        f"<h2>B<a class='headerlink' href='#b' title='Link to this heading'>"
        f"<span aria-hidden='true'>#</span></a></h2><p>{narrow}</p>{scrolling}</main>"
        f"</body></html>")
    problems = check_site(html, root / "_toc.yml", root / "shots", chromium)
    for width in (1280, 390):
        assert any(f"at {width} px 1 of 4 Tab stops are formulas that do not scroll" in p
                   for p in problems), problems
        assert any(f"at {width} px 1 links are read as '#', the first to '#a'" in p
                   for p in problems), problems
    assert not any("without a name" in p for p in problems)


def test_chinese_not_marked_as_chinese_is_reported(chromium, site):
    root, html = site
    (html / "book" / "intro.html").write_text(
        "<html lang='en'><head><meta charset='utf-8'></head><body><main><p>概率 unmarked</p>"
        "<p><span lang='zh-Hans'>熵归一化</span> marked</p></main></body></html>")
    problems = check_site(html, root / "_toc.yml", root / "shots", chromium)
    assert problems == ["book/intro.html: 1 runs of Chinese not marked lang=\"zh-Hans\", the "
                        "first '概率 unmarked'"]


def test_a_formula_that_scrolls_without_a_cue_is_reported(chromium, site):
    root, html = site
    box = ("<mjx-container jax='CHTML' style='display:inline-block; max-width:100px; "
           "overflow-x:auto; {cue}'><span style='display:inline-block; width:300px'>x</span>"
           "</mjx-container>")
    (html / "book" / "intro.html").write_text(
        f"<html><body><main><p>{box.format(cue='')}</p>"
        f"<p>{box.format(cue='background: linear-gradient(to right, #fff, transparent)')}</p>"
        f"</main></body></html>")
    problems = check_site(html, root / "_toc.yml", root / "shots", chromium)
    assert [p for p in problems if "without a cue" in p] == [
        f"book/intro.html: at {width} px a formula scrolls without a cue (edge shadow): 'x'"
        for width in (1280, 390)]


def test_low_contrast_link_on_a_tint_is_reported(chromium, site):
    """The theme's link blue on a 10 % green tint (sphinx-proof's box) is 4.41:1: reported; the
    same link on white is not, and a hidden permalink is left out."""
    root, html = site
    link = "<a href='#x' style='color: rgb(23, 109, 232)'>{}</a>"
    (html / "book" / "intro.html").write_text(
        f"<html><body><main><p id='x'>{link.format('on white')}</p>"
        f"<div style='background: rgba(54, 207, 3, 0.1)'><p>{link.format('Theorem 1')}</p></div>"
        f"</main></body></html>")
    problems = check_site(html, root / "_toc.yml", root / "shots", chromium)
    assert problems == ["book/intro.html: in light mode 1 links or code below 4.5:1 contrast, "
                        "the first 'Theorem 1' at 4.41:1",
                        "book/intro.html: in dark mode 1 links or code below 4.5:1 contrast, "
                        "the first 'Theorem 1' at 4.41:1"]
