"""Open every page of the built book in headless Chromium and check it as a reader meets it.

    python -m kexue_nb.tools.check_browser _build/html --screenshots _build/screenshots

The site is served on 127.0.0.1 from the build folder. For every page: no request leaves the
local server and none fails; MathJax has typeset every formula (each ``.math`` element holds a
rendered ``mjx-container``, no ``mjx-merror`` node, no raw ``\\(``, ``\\[`` or ``$$`` left in
the text outside code); every image has loaded (natural width > 0) and has an alt text that
describes it in a sentence (not a file path), and every figure output carries a numbered
caption. The sidebar of the front
page must link every page of ``_toc.yml``. A screenshot of each page's first screen is saved.
At 1280 px and at 390 px (a phone), no page may scroll sideways: a display formula wider than
its column must scroll in its own box, an inline formula must stay within its line, and each
ledger (and each block of the verification page) must fit its column.
Chromium is Debian's (``/usr/bin/chromium``), driven by Playwright; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from kexue_nb.tools.system_tools import require

REDIRECT = re.compile(r"<meta[^>]+http-equiv=.refresh", re.IGNORECASE)
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

#: JavaScript run in each page once MathJax has finished: what a reader would see as broken.
PAGE_REPORT_JS = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const maths = [...document.querySelectorAll('.math')];
  const untypeset = maths.filter(m => !m.querySelector('mjx-container')).length;
  const errors = document.querySelectorAll('mjx-merror').length;
  const walker = document.createTreeWalker(document.querySelector('main') || document.body,
                                           NodeFilter.SHOW_TEXT);
  const raw = [];
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.parentElement.closest('pre, code, script, style, .highlight, mjx-container')) continue;
    if (/\\\\\\(|\\\\\\[|\\$\\$/.test(node.textContent)) raw.push(node.textContent.slice(0, 60));
  }
  const images = [...document.images];
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);
  const content = [...document.querySelectorAll('main img')];
  const badAlt = content.filter(i => { const a = (i.getAttribute('alt') || '').trim();
    return a.split(/\\s+/).length < 4 || /[\\/]|\\.(png|jpe?g|svg)$/i.test(a); })
    .map(i => i.getAttribute('alt') || '(no alt)');
  const outputs = [...document.querySelectorAll('main .cell_output img')];
  const unnumbered = outputs.filter(i => !(i.closest('figure')
    && i.closest('figure').querySelector('figcaption .caption-number'))).length;
  const han = /[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]/;
  const unmarked = [];
  const texts = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (texts.nextNode()) {  // Chinese read in the page's English voice (WCAG 3.1.2)
    const node = texts.currentNode, el = node.parentElement;
    if (!han.test(node.textContent) || el.closest('script, style, mjx-container')) continue;
    const lang = (el.closest('[lang]') || document.documentElement).getAttribute('lang') || '';
    if (!lang.toLowerCase().startsWith('zh')) unmarked.push(node.textContent.trim().slice(0, 30));
  }
  return {maths: maths.length, untypeset, errors, raw, images: images.length, broken, badAlt,
          unnumbered, unmarked};
}"""


#: JavaScript run in a page: every ledger (a chapter's, or the verification page's blocks) that is
#: wider than its column, as ``{text, width, column}``; a ledger starts with "Ledger:".
LEDGER_OVERFLOW_JS = """() => {
  const wide = [];
  for (const out of document.querySelectorAll('div.cell_output')) {
    if (!out.textContent.includes('Ledger:')) continue;
    const column = out.clientWidth;
    const right = out.getBoundingClientRect().right;
    let width = out.scrollWidth;
    for (const el of out.querySelectorAll('*')) {
      if (el.closest('mjx-container') && el.tagName.toLowerCase() !== 'mjx-container') continue;
      width = Math.max(width, el.getBoundingClientRect().right - out.getBoundingClientRect().left);
    }
    if (width > column + 1) {
      wide.push({text: out.textContent.trim().slice(0, 50), width: Math.round(width), column,
                 right: Math.round(right)});
    }
  }
  return wide;
}"""
#: JavaScript run in a page: what runs past the edge at the current width. The page itself must
#: not scroll sideways; a display formula wider than its column must scroll in its own box; an
#: inline formula must end inside its line (kexue.js gives a too-wide one its own box); a
#: formula that scrolls must show it (kexue.css's edge shadows, a background gradient).
PAGE_OVERFLOW_JS = """() => {
  const out = {page: 0, display: [], inline: [], uncued: []};
  const doc = document.documentElement;
  if (doc.scrollWidth > window.innerWidth + 1) out.page = doc.scrollWidth;
  for (const m of document.querySelectorAll('mjx-container[jax="CHTML"]')) {
    if (!m.offsetParent) continue;  // hidden (a collapsed solution)
    const box = m.getBoundingClientRect();
    const parent = m.parentElement.getBoundingClientRect();
    const tex = (m.closest('.math') || m).textContent.slice(0, 40);
    if (m.getAttribute('display') === 'true') {
      const style = getComputedStyle(m);
      const scrolls = ['auto', 'scroll'].includes(style.overflowX);
      if (box.right > parent.right + 1 || (m.scrollWidth > m.clientWidth + 1 && !scrolls)) {
        out.display.push(tex);
      }
    } else if (box.right > parent.right + 1 && getComputedStyle(m).overflowX === 'visible') {
      out.inline.push(tex);
    }
    const look = getComputedStyle(m);
    const scrolls = ['auto', 'scroll'].includes(look.overflowX) && m.scrollWidth > m.clientWidth;
    if (scrolls && !look.backgroundImage.includes('gradient')) out.uncued.push(tex);
  }
  return out;
}"""
#: JavaScript run in a page: the keyboard's view of it. Every element the Tab key reaches, in
#: order, and of those the formulas (a formula may be a Tab stop only when it scrolls, and then
#: with a name) and the links named "#" (a heading permalink read as a bare symbol).
KEYBOARD_JS = """() => {
  const selector = 'a[href], button, input, select, textarea, summary, [tabindex]';
  const stops = [...document.querySelectorAll(selector)].filter(el => {
    const index = el.getAttribute('tabindex');
    if (index !== null && Number(index) < 0) return false;
    if (el.disabled || el.closest('[hidden], [inert]')) return false;
    const style = getComputedStyle(el);
    return style.visibility !== 'hidden' && style.display !== 'none' && el.getClientRects().length;
  });
  const positive = stops.filter(el => Number(el.getAttribute('tabindex')) > 0);
  const ordered = [...positive.sort((a, b) => a.tabIndex - b.tabIndex),
                   ...stops.filter(el => !(Number(el.getAttribute('tabindex')) > 0))];
  const shown = n => !(n.nodeType === 1 && n.getAttribute('aria-hidden') === 'true');
  const name = el => (el.getAttribute('aria-label') || '').trim()
    || [...el.childNodes].filter(shown).map(n => n.textContent).join('').trim()
    || (el.getAttribute('title') || '').trim();
  const formulas = [], unnamed = [], bare = [];
  let firstFormula = -1;
  ordered.forEach((el, i) => {
    const formula = el.closest('mjx-container');
    if (formula) {
      if (firstFormula < 0) firstFormula = i;
      const scrolls = formula.scrollWidth > formula.clientWidth;
      if (!scrolls) formulas.push((formula.closest('.math') || formula).textContent.slice(0, 40));
      else if (!(formula.getAttribute('aria-label') || '').trim()) unnamed.push(i);
    } else if (el.tagName === 'A' && name(el) === '#') {
      bare.push(el.getAttribute('href'));
    }
  });
  return {stops: ordered.length, formulas, unnamed: unnamed.length, bare, firstFormula};
}"""
#: JavaScript run in a page: text of links and code whose contrast with what lies behind it is
#: below WCAG's 4.5:1 (AA), as ``{text, ratio}``. The background is composited from the element
#: up (boxes such as sphinx-proof's are translucent tints). Heading and figure permalinks, shown
#: only on hover, are left out.
CONTRAST_JS = """() => {
  const rgba = s => { const v = (s.match(/[\\d.]+/g) || []).map(Number);
                      return v.length === 3 ? [...v, 1] : v.length === 4 ? v : [0, 0, 0, 0]; };
  const over = (top, under) => { const a = top[3];
    return [0, 1, 2].map(i => top[i] * a + under[i] * (1 - a)).concat([1]); };
  const behind = el => { const layers = [];
    for (let e = el; e; e = e.parentElement) layers.push(rgba(getComputedStyle(e).backgroundColor));
    return layers.reverse().reduce((under, top) => over(top, under), [255, 255, 255, 1]); };
  const lum = c => { const [r, g, b] = c.slice(0, 3).map(v => { v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const low = [];
  for (const el of document.querySelectorAll('main a, main code')) {
    const shown = el.textContent.trim() && el.getClientRects().length;
    if (el.closest('.headerlink') || !shown) continue;
    const back = behind(el);
    const fore = over(rgba(getComputedStyle(el).color), back);
    const [hi, lo] = [lum(fore), lum(back)].sort((x, y) => y - x);
    const ratio = (hi + 0.05) / (lo + 0.05);
    if (ratio < 4.5) low.push({text: el.textContent.trim().slice(0, 30),
                               ratio: Math.round(ratio * 100) / 100});
  }
  return low;
}"""
#: Colour modes the contrast check runs in (the theme's toggle, ``html[data-theme]``).
MODES = ("light", "dark")
#: Offline search: each query must list the page (the search index segments Chinese with jieba).
SEARCH_EXPECTATIONS = {
    "熵": "book/probability/entropy-normalization.html",
    "扩散": "book/diffusion/ddpm-demolish-build.html",
    "Fokker": "book/stochastic/fokker-planck-test-functions.html",
}

#: Viewport widths at which no page may overflow and every ledger must fit: desktop and phone.
WIDTHS = (1280, 390)


def toc_files(toc_file: Path) -> list[str]:
    """The source files (without suffix) of every page named in ``_toc.yml``, in order."""
    toc = yaml.safe_load(toc_file.read_text(encoding="utf-8"))
    files = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("chapters", []) + entry.get("sections", []))

    walk(toc.get("parts", []) + toc.get("chapters", []))
    return [str(Path(f).with_suffix("")) for f in files]


def toc_pages(toc_file: Path) -> list[str]:
    """The HTML paths (relative to the build) of every page named in ``_toc.yml``."""
    return [f"{f}.html" for f in toc_files(toc_file)]


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 (a free port) for the duration of the block."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep the test output readable
        pass


def check_site(html_dir: Path, toc_file: Path, screenshots: Path, chromium: str) -> list[str]:
    """Every problem found on the site, as readable lines (empty when the site is sound)."""
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    pages = sorted(p.relative_to(html_dir).as_posix() for p in html_dir.rglob("*.html")
                   if "_static" not in p.relative_to(html_dir).parts)  # theme templates
    chapters = toc_pages(toc_file)
    missing = [c for c in chapters if c not in pages]
    problems += [f"{c}: listed in _toc.yml but not built" for c in missing]
    screenshots.mkdir(parents=True, exist_ok=True)
    with serve(html_dir) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        for rel in pages:
            page = context.new_page()
            bad_requests: list[str] = []
            page.on("request", lambda r, bad=bad_requests: None if r.url.startswith(base)
                    or r.url.startswith("data:") else bad.append(f"external request {r.url}"))
            page.on("requestfailed", lambda r, bad=bad_requests: bad.append(
                f"failed request {r.url}"))
            page.on("response", lambda r, bad=bad_requests: bad.append(
                f"HTTP {r.status} for {r.url}") if r.status >= 400 else None)
            response = page.goto(f"{base}/{rel}", wait_until="load")
            if response is None or response.status != 200:
                problems.append(f"{rel}: did not load")
                page.close()
                continue
            if REDIRECT.search((html_dir / rel).read_text(encoding="utf-8", errors="replace")):
                page.wait_for_url(lambda url, rel=rel: not url.endswith("/" + rel))
                page.wait_for_load_state("load")  # the redirect target is checked as its own page
                page.close()
                continue
            report = page.evaluate(PAGE_REPORT_JS)
            problems += [f"{rel}: {b}" for b in bad_requests]
            if report["untypeset"]:
                problems.append(f"{rel}: {report['untypeset']} of {report['maths']} formulas "
                                "not typeset by MathJax")
            if report["errors"]:
                problems.append(f"{rel}: {report['errors']} MathJax error nodes")
            problems += [f"{rel}: raw TeX left in the text: {t!r}" for t in report["raw"]]
            problems += [f"{rel}: image did not load: {src}" for src in report["broken"]]
            problems += [f"{rel}: image alt text is not a describing sentence: {alt!r}"
                         for alt in report["badAlt"]]
            if report["unmarked"]:
                problems.append(f"{rel}: {len(report['unmarked'])} runs of Chinese not marked "
                                f"lang=\"zh-Hans\", the first {report['unmarked'][0]!r}")
            for mode in MODES:
                page.evaluate(f"() => {{ document.documentElement.dataset.theme = '{mode}'; }}")
                low = page.evaluate(CONTRAST_JS)
                if low:
                    problems.append(f"{rel}: in {mode} mode {len(low)} links or code below "
                                    f"4.5:1 contrast, the first {low[0]['text']!r} at "
                                    f"{low[0]['ratio']}:1")
            page.evaluate("() => { document.documentElement.dataset.theme = 'light'; }")
            if report["unnumbered"]:
                problems.append(f"{rel}: {report['unnumbered']} figures without a numbered "
                                "caption")
            if rel in chapters:
                shot = screenshots / (rel.removesuffix(".html").replace("/", "__") + ".png")
                page.screenshot(path=str(shot))
            problems += layout_problems(page, rel, screenshots)
            if rel == chapters[0]:
                hrefs = page.eval_on_selector_all(
                    "nav.bd-links a, .bd-sidenav a", "els => els.map(e => e.href)")
                linked = {h.split("#")[0].removeprefix(base + "/") for h in hrefs}
                problems += [f"{c}: not reachable from the front page's navigation"
                             for c in chapters[1:] if c not in linked]
            page.close()
        if "search.html" in pages:
            problems += search_problems(context, base)
        browser.close()
    print(f"checked {len(pages)} pages in Chromium; {len(chapters)} screenshots in {screenshots}")
    return problems


def search_problems(context, base: str) -> list[str]:
    """Each query of :data:`SEARCH_EXPECTATIONS` run on the site's search page must list its
    page among the results."""
    from urllib.parse import quote

    problems = []
    page = context.new_page()
    for query, expected in SEARCH_EXPECTATIONS.items():
        page.goto(f"{base}/search.html?q={quote(query)}", wait_until="load")
        try:
            page.wait_for_selector("#search-results ul.search li a", timeout=20_000)
        except Exception:  # noqa: BLE001  (Playwright's timeout: no result appeared)
            problems.append(f"search for {query!r} found nothing")
            continue
        hrefs = page.eval_on_selector_all("#search-results ul.search li a",
                                          "els => els.map(e => e.getAttribute('href'))")
        if not any(h and h.split("?")[0].split("#")[0].endswith(expected) for h in hrefs):
            problems.append(f"search for {query!r} does not list {expected}")
    page.close()
    return problems


def layout_problems(page, rel: str, screenshots: Path) -> list[str]:
    """What runs past the edge of ``page`` at each of :data:`WIDTHS`: the page itself, a display
    formula that does not scroll in its own box, an inline formula past its line, a ledger wider
    than its column; and what the keyboard meets there: a formula that is a Tab stop although it
    does not scroll (or scrolls without a name), a link read as "#". At the phone width a
    screenshot of the page's first ledger is kept."""
    problems = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        page.wait_for_timeout(150)  # the layout, and kexue.js's resize handler, settle
        found = page.evaluate(PAGE_OVERFLOW_JS)
        if found["page"]:
            problems.append(f"{rel}: at {width} px the page is {found['page']} px wide")
        problems += [f"{rel}: at {width} px a display formula runs past its column without "
                     f"scrolling: {tex!r}" for tex in found["display"]]
        problems += [f"{rel}: at {width} px an inline formula runs past the text: {tex!r}"
                     for tex in found["inline"]]
        problems += [f"{rel}: at {width} px a formula scrolls without a cue (edge shadow): "
                     f"{tex!r}" for tex in found["uncued"]]
        keys = page.evaluate(KEYBOARD_JS)
        if keys["formulas"]:
            problems.append(f"{rel}: at {width} px {len(keys['formulas'])} of "
                            f"{keys['stops']} Tab stops are formulas that do not scroll, the "
                            f"first {keys['formulas'][0]!r}")
        if keys["unnamed"]:
            problems.append(f"{rel}: at {width} px {keys['unnamed']} scrolling formulas are Tab "
                            "stops without a name")
        if keys["bare"]:
            problems.append(f"{rel}: at {width} px {len(keys['bare'])} links are read as '#', "
                            f"the first to {keys['bare'][0]!r}")
        for wide in page.evaluate(LEDGER_OVERFLOW_JS):
            problems.append(f"{rel}: at {width} px a ledger is {wide['width']} px wide in a "
                            f"{wide['column']} px column: {wide['text']!r}")
        ledger = page.locator("div.cell_output", has_text="Ledger:").first
        if width < 1280 and ledger.count():
            ledger.scroll_into_view_if_needed()
            name = rel.removesuffix(".html").replace("/", "__") + f"__ledger-{width}px.png"
            page.screenshot(path=str(screenshots / name))
    page.set_viewport_size({"width": 1280, "height": 800})
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", type=Path, help="the built HTML folder, e.g. _build/html")
    parser.add_argument("--toc", type=Path, default=Path("_toc.yml"), help="the book's _toc.yml")
    parser.add_argument("--screenshots", type=Path, default=Path("_build/screenshots"),
                        help="folder for the first-screen screenshots")
    parser.add_argument("--chromium", default=None,
                        help="the Chromium executable (default: Debian's, on the PATH)")
    args = parser.parse_args(argv)
    problems = check_site(args.html_dir, args.toc, args.screenshots,
                          args.chromium or require("chromium"))
    for problem in problems:
        print(problem)
    print("browser check: " + ("all pages sound" if not problems else f"{len(problems)} problems"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
