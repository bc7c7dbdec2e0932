"""The PDF check: chapters present, no '??', no missing glyph, nothing past the page edge."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402

from kexue_nb.tools.check_pdf import chapter_titles, overflow_problems, pdf_problems  # noqa: E402


def _pdf(path, lines, x=0.05):
    fig = plt.figure(figsize=(4, 3))
    for i, line in enumerate(lines):
        fig.text(x, 0.9 - 0.15 * i, line, fontsize=10)
    fig.savefig(path, format="pdf")
    plt.close(fig)
    return path


def test_chapter_titles_from_toc(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.md").write_text("# Front page\n\ntext")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# A chapter title\n\nbody")]
    nbformat.write(nb, tmp_path / "book" / "one.ipynb")
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: book/one\n")
    assert chapter_titles(tmp_path / "_toc.yml") == ["Front page", "A chapter title"]


def test_sound_pdf_passes(tmp_path):
    pdf = _pdf(tmp_path / "a.pdf", ["Front page", "A chapter title", "Ledger: 1/1 claims passed"])
    assert pdf_problems(pdf, None, ["Front page", "A chapter title"], 1) == []


def test_each_defect_is_reported(tmp_path):
    pdf = _pdf(tmp_path / "b.pdf", ["Front page", "see Fig. ?? above"])
    log = tmp_path / "b.log"
    log.write_text("Missing character: There is no ⋯ (U+22EF) in font FreeSerif:mode=node;!\n")
    problems = pdf_problems(pdf, log, ["Front page", "A chapter title"], 1)
    assert problems == [
        "chapter missing from the PDF: 'A chapter title'",
        "1 unresolved references ('??') in the text",
        "missing glyph: ⋯ (U+22EF)",
        "0 ledgers in the PDF, the book has 1",
    ]


def test_text_past_the_right_edge_is_found(tmp_path):
    pdf = _pdf(tmp_path / "c.pdf", ["a line that is far too long to fit on this small page at all"],
               x=0.5)
    problems = overflow_problems(pdf)
    assert len(problems) == 1 and problems[0].startswith("page 1:")
    assert overflow_problems(_pdf(tmp_path / "d.pdf", ["short"])) == []
