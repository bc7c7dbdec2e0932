"""The language marking of Chinese runs: the splitter, and a real Sphinx build."""

import re

import pytest

from kexue_nb.sphinx_lang import HAN_RUN, split_runs

HAN = {"zh-Hans": re.compile(HAN_RUN)}


@pytest.mark.parametrize(("text", "pieces"), [
    ("plain English", [(None, "plain English")]),
    ("熵归一化 · Su Jianlin", [("zh-Hans", "熵归一化"), (None, " · Su Jianlin")]),
    ("随机n点为θ的扇形", [("zh-Hans", "随机n点为θ的扇形")]),  # short groups join the run
    ("方程和Fokker-Planck方程",
     [("zh-Hans", "方程和"), (None, "Fokker-Planck"), ("zh-Hans", "方程")]),
    ("a，b（注）", [(None, "a"), ("zh-Hans", "，b（注）")]),  # b sits between Chinese
])
def test_split_runs_cuts_chinese_from_the_rest(text, pieces):
    assert split_runs(text, HAN) == pieces
    assert "".join(piece for _, piece in pieces) == text


def test_split_runs_serves_the_other_edition():
    english = {"en": re.compile(r"[A-Za-z][A-Za-z'-]*(?:\s+[A-Za-z][A-Za-z'-]*)*")}
    assert split_runs("扩散模型 (diffusion model) 的训练", english) == [
        (None, "扩散模型 ("), ("en", "diffusion model"), (None, ") 的训练")]
    assert split_runs("x", {}) == [(None, "x")]


def test_a_sphinx_build_marks_chinese_but_not_code_or_math(tmp_path):
    from sphinx.application import Sphinx

    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text("extensions = ['kexue_nb.sphinx_lang']\n")
    (src / "index.rst").write_text(
        "Title\n=====\n\n**概率分布** · Su, and ``代码`` and :math:`熵`.\n")
    app = Sphinx(str(src), str(src), str(tmp_path / "out"), str(tmp_path / "dt"), "html",
                 status=None, warning=None, freshenv=True)
    app.build()
    page = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert '<strong><span lang="zh-Hans">概率分布</span></strong> · Su' in page
    assert "<span class=\"pre\">代码</span>" in page and 'lang="zh-Hans">代码' not in page
    assert 'lang="zh-Hans">熵' not in page
