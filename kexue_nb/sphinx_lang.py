"""Sphinx extension: runs of another language's script are marked with their language.

A screen reader reads a page in the voice of its ``lang`` and a browser picks fonts by it
(WCAG 3.1.2, language of parts). The English edition quotes Chinese: the articles' original
titles, the article index, the bibliography. Every run of Chinese characters in the built HTML
is therefore wrapped as ``<span lang="zh-Hans">…</span>``, without any markup in the sources,
after every other transform (so the bibliography's entries are covered too). Literal text,
code and math are left alone.

``kexue_foreign_runs`` maps each language tag to the regular expression of its runs; the
default marks Chinese for an English edition. The Chinese edition sets it to mark English
words instead, e.g. ``{"en": r"[A-Za-z][A-Za-z'’-]*(?:\\s+[A-Za-z][A-Za-z'’-]*)*"}``.
"""

from __future__ import annotations

import re
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform

#: A run of Chinese: Han ideographs (with extension A and the compatibility block), CJK
#: punctuation and full-width forms; a short Latin, Greek or digit group between two such
#: stretches (the n and θ of 圆内随机n点…θ的扇形) belongs to the run, a long one (a name such as
#: Fokker-Planck) does not.
_CJK = r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]"
HAN_RUN = rf"{_CJK}+(?:[A-Za-z0-9\u0370-\u03ff\s-]{{1,6}}{_CJK}+)*"
#: Nodes whose text is not prose: code, math, raw output.
_SKIP = (nodes.FixedTextElement, nodes.literal, nodes.math, nodes.math_block, nodes.raw,
         nodes.comment)


class foreign(nodes.inline):  # noqa: N801 (docutils names node classes in lower case)
    """An inline run in another language than the document's; ``lang`` is its tag."""


def visit_foreign(self: Any, node: foreign) -> None:
    self.body.append(self.starttag(node, "span", "", lang=node["lang"]))


def depart_foreign(self: Any, node: foreign) -> None:
    self.body.append("</span>")


def split_runs(text: str, patterns: dict[str, re.Pattern[str]]) -> list[tuple[str | None, str]]:
    """``text`` cut into ``(lang, piece)`` pairs: ``lang`` is the tag of a pattern's run, or
    ``None`` for the text between runs; the pieces join back to ``text``."""
    if not patterns:
        return [(None, text)]
    joined = re.compile("|".join(f"(?P<g{i}>{p.pattern})" for i, p in enumerate(patterns.values())))
    tags = list(patterns)
    pieces: list[tuple[str | None, str]] = []
    end = 0
    for match in joined.finditer(text):
        if match.start() > end:
            pieces.append((None, text[end:match.start()]))
        pieces.append((tags[int(match.lastgroup[1:])], match.group()))
        end = match.end()
    if end < len(text):
        pieces.append((None, text[end:]))
    return pieces


class MarkForeignRuns(SphinxPostTransform):
    """Wrap each run that :confval:`kexue_foreign_runs` matches in a :class:`foreign` node."""

    default_priority = 999  # after sphinxcontrib-bibtex has written the bibliography
    formats = ("html",)

    def run(self, **kwargs: Any) -> None:
        patterns = {tag: re.compile(p) for tag, p in self.config.kexue_foreign_runs.items()}
        for text in list(self.document.findall(nodes.Text)):
            parent = text.parent
            if parent is None or isinstance(parent, foreign) or any(
                    isinstance(a, _SKIP) for a in _ancestors(parent)):
                continue
            pieces = split_runs(str(text), patterns)
            if all(lang is None for lang, _ in pieces):
                continue
            parts = [nodes.Text(piece) if lang is None else foreign(piece, piece, lang=lang)
                     for lang, piece in pieces]
            parent.replace(text, parts)


def _ancestors(node: nodes.Node):
    while node is not None:
        yield node
        node = node.parent


def setup(app: Sphinx) -> dict[str, object]:
    app.add_config_value("kexue_foreign_runs", {"zh-Hans": HAN_RUN}, "html", types=[dict])
    app.add_node(foreign, html=(visit_foreign, depart_foreign))
    app.add_post_transform(MarkForeignRuns)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
