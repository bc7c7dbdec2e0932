"""Fail if the built HTML loads anything from the network.

    python -m kexue_nb.tools.check_offline _build/html

Looks at every ``<script src>``, stylesheet/preload/icon ``<link href>``, ``<img src>``,
``<iframe src>``, ``<source src>`` and ``<video src>`` of every page: none may be ``http(s)://``
or protocol-relative (``//host``). Ordinary ``<a href>`` links to the articles are fine: they
load nothing until clicked. MathJax must be served from the build itself.
"""

from __future__ import annotations

import argparse
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

REMOTE = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)
#: (tag, attribute) pairs whose URL the browser fetches while loading the page.
LOADED = {
    ("script", "src"),
    ("img", "src"),
    ("iframe", "src"),
    ("source", "src"),
    ("video", "src"),
    ("audio", "src"),
    ("embed", "src"),
}
LOADED_LINK_RELS = {
    "stylesheet",
    "preload",
    "modulepreload",
    "icon",
    "shortcut",
    "prefetch",
    "manifest",
}


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.remote: list[str] = []
        self.mathjax_local = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        urls = [a[attr] for t, attr in LOADED if t == tag and attr in a]
        if tag == "link" and set(a.get("rel", "").lower().split()) & LOADED_LINK_RELS:
            urls.append(a.get("href", ""))
        for url in urls:
            if REMOTE.match(url):
                self.remote.append(f"<{tag}> {url}")
        if tag == "script" and "mathjax" in a.get("src", "").lower() and not REMOTE.match(a["src"]):
            self.mathjax_local = True


def scan(html_dir: Path) -> tuple[dict[Path, list[str]], int, bool]:
    """Remote loads per page, the number of pages, and whether any page loads local MathJax."""
    pages = sorted(html_dir.rglob("*.html"))
    remote: dict[Path, list[str]] = {}
    mathjax = False
    for page in pages:
        collector = _Collector()
        collector.feed(page.read_text(encoding="utf-8", errors="replace"))
        if collector.remote:
            remote[page] = collector.remote
        mathjax |= collector.mathjax_local
    return remote, len(pages), mathjax


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", type=Path, help="the built HTML folder, e.g. _build/html")
    args = parser.parse_args(argv)
    remote, n_pages, mathjax = scan(args.html_dir)
    if n_pages == 0:
        print(f"no HTML pages under {args.html_dir}")
        return 1
    for page, urls in remote.items():
        for url in urls:
            print(f"{page}: loads {url}")
    if not mathjax:
        print("no page loads MathJax from the build")
    ok = not remote and mathjax
    print(f"checked {n_pages} pages: {'offline' if ok else 'NOT offline'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
