"""The search splitter keeps one-character Chinese words and still drops stray letters."""

from kexue_nb.sphinx_search import SearchChineseKeepingHan


def test_single_han_kept_single_latin_dropped():
    lang = SearchChineseKeepingHan({})
    words = [w for w in lang.split("概率分布的熵归一化 and x entropy") if lang.word_filter(w)]
    assert "熵" in words and "归一化" in words and "entropy" in words
    assert not lang.word_filter("x") and not lang.word_filter("7")
    assert lang.stem("Entropies") == "entropi"
