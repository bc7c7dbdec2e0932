"""Sphinx extension: the book's search index keeps one-character Chinese words.

The book is indexed with Sphinx's Chinese splitter (``html_search_language: zh``, jieba), so
Chinese queries find the pages that contain them while English words are still split and
stemmed as English. Sphinx's splitter drops every word of one character, which loses real
Chinese terms such as 熵 (entropy); this subclass keeps a single CJK character and drops only
single Latin letters and digits, as before.
"""

from __future__ import annotations

import re

from sphinx.application import Sphinx
from sphinx.search import languages
from sphinx.search.zh import SearchChinese

_ONE_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


class SearchChineseKeepingHan(SearchChinese):
    """Sphinx's Chinese search, with one-character Chinese words kept in the index."""

    def word_filter(self, stemmed_word: str) -> bool:
        return len(stemmed_word) > 1 or bool(_ONE_HAN.fullmatch(stemmed_word))


def setup(app: Sphinx) -> dict[str, object]:
    languages["zh"] = SearchChineseKeepingHan
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
