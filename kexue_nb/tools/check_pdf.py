"""Check the PDF edition as a reader of the printed book meets it.

    python -m kexue_nb.tools.check_pdf _build/latex/kexue-notes.pdf \\
        --log _build/latex/kexue-notes.log --screenshots _build/screenshots

Checked with poppler's tools (Debian's ``poppler-utils``): every chapter of ``_toc.yml`` is in the
PDF (its title is found in the text); no reference is left unresolved (``??``); XeLaTeX reported
no missing glyph; no word runs past the right edge of its page (code, formulas and ledgers are
printed whole); every ledger's summary line is there. The pages holding the first ledger and
the first figure are rendered to PNG with ``pdftoppm`` for a person to look at.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import nbformat

from kexue_nb.tools.check_browser import toc_files
from kexue_nb.tools.system_tools import require


def chapter_titles(toc_file: Path) -> list[str]:
    """The first heading of every notebook or page named in ``_toc.yml`` (its title)."""
    root = toc_file.parent
    files = toc_files(toc_file)
    titles = []
    for name in files:
        notebook, page = root / f"{name}.ipynb", root / f"{name}.md"
        if notebook.exists():
            cells = nbformat.read(notebook, as_version=4).cells
            text = next(c.source for c in cells if c.cell_type == "markdown")
        else:
            text = page.read_text(encoding="utf-8")
        heading = next(line for line in text.splitlines() if line.startswith("# "))
        titles.append(heading[2:].strip())
    return titles


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).replace("ﬁ", "fi").replace("ﬂ", "fl").strip()


def pdf_problems(pdf: Path, log: Path | None, titles: list[str], ledgers: int) -> list[str]:
    """Everything a reader of ``pdf`` would find missing or broken."""
    problems = []
    text = _normalise(subprocess.run([require("pdftotext"), "-layout", str(pdf), "-"], check=True,
                                     capture_output=True, text=True).stdout)
    for title in titles:
        # LaTeX may break a long title over lines; compare its first words, whitespace-normalised.
        words = _normalise(re.sub(r"[$\\`*]", "", title)).split(" ")[:4]
        if " ".join(words) not in text:
            problems.append(f"chapter missing from the PDF: {title!r}")
    unresolved = len(re.findall(r"\?\?", text))
    if unresolved:
        problems.append(f"{unresolved} unresolved references ('??') in the text")
    if log is not None:
        missing = sorted(set(re.findall(r"Missing character: There is no (.+?) in font",
                                        log.read_text(encoding="utf-8", errors="replace"))))
        problems += [f"missing glyph: {m}" for m in missing]
    found = text.count("Ledger:")
    if found < ledgers:
        problems.append(f"{found} ledgers in the PDF, the book has {ledgers}")
    problems += overflow_problems(pdf)
    return problems


_PAGE_TAG = re.compile(r'<page width="([\d.]+)"')
_WORD_TAG = re.compile(
    r'<word xMin="[\d.-]+" yMin="[\d.-]+" xMax="([\d.-]+)" yMax="[\d.-]+">(.*?)</word>')


def overflow_problems(pdf: Path) -> list[str]:
    """Words printed past the right edge of their page (cut off in print). Poppler's bounding
    boxes are read with a pattern: its XHTML leaves some characters unescaped."""
    html = subprocess.run([require("pdftotext"), "-bbox", str(pdf), "-"], check=True,
                          capture_output=True, text=True).stdout
    problems = []
    for number, page in enumerate(html.split("<page ")[1:], 1):
        width = float(_PAGE_TAG.match("<page " + page).group(1))
        for right, word in _WORD_TAG.findall(page):
            if float(right) > width + 0.5:
                problems.append(f"page {number}: {word!r} runs past the right edge")
                break
    return problems


def render_pages(pdf: Path, screenshots: Path) -> list[Path]:
    """PNGs of the first page with a ledger and of the first page with a figure."""
    text = subprocess.run([require("pdftotext"), str(pdf), "-"], check=True, capture_output=True,
                          text=True).stdout
    pages = text.split("\f")
    wanted = {}
    for number, page in enumerate(pages, 1):
        if "Ledger:" in page and "ledger" not in wanted:
            wanted["ledger"] = number
        if re.search(r"\bFig(ure|\.)\s*\d", page) and "figure" not in wanted:
            wanted["figure"] = number
    screenshots.mkdir(parents=True, exist_ok=True)
    made = []
    for name, number in wanted.items():
        prefix = screenshots / f"pdf__{name}"
        subprocess.run([require("pdftoppm"), "-png", "-r", "80", "-f", str(number),
                        "-l", str(number), "-singlefile", str(pdf), str(prefix)], check=True)
        made.append(prefix.with_suffix(".png"))
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pdf", type=Path)
    parser.add_argument("--log", type=Path, help="XeLaTeX's log, read for missing glyphs")
    parser.add_argument("--toc", type=Path, default=Path("_toc.yml"))
    parser.add_argument("--screenshots", type=Path, default=Path("_build/screenshots"))
    args = parser.parse_args(argv)
    if not args.pdf.is_file():
        parser.error(f"no PDF at {args.pdf}: run `make pdf` first")
    from kexue_nb.checks import collect_ledgers

    ledgers = len(collect_ledgers(args.toc.parent / "book"))
    problems = pdf_problems(args.pdf, args.log, chapter_titles(args.toc), ledgers)
    shots = render_pages(args.pdf, args.screenshots)
    pages = subprocess.run([require("pdfinfo"), str(args.pdf)], check=True, capture_output=True,
                           text=True).stdout
    count = re.search(r"Pages:\s+(\d+)", pages).group(1)
    for problem in problems:
        print(f"{args.pdf}: {problem}")
    print(f"PDF check: {count} pages, {args.pdf.stat().st_size / 1e6:.1f} MB, "
          f"{len(shots)} pages rendered; " + ("sound" if not problems else
                                             f"{len(problems)} problems"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
