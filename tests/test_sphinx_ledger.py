"""The {claims} role reads counts from a stored notebook during a real Sphinx build."""

import io
import json

from sphinx.application import Sphinx

from kexue_nb.checks import Ledger


def _build(tmp_path, role_target):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    (src / "conf.py").write_text(
        "extensions = ['kexue_nb.sphinx_ledger']\nexclude_patterns = ['*.ipynb']\n"
    )
    (src / "index.rst").write_text(f"Index\n=====\n\nVerified: :claims:`{role_target}`\n")
    ledger = Ledger("chap")
    ledger.numeric("a", "a", 1.0, 1.0, atol=0.1, basis="b", rules_out={"twice": 2.0})
    ledger.numeric("b", "b", 2.0, 2.0, atol=0.1, basis="b", rules_out={"half": 1.0})
    cell = {
        "cell_type": "code",
        "source": "",
        "outputs": [{"output_type": "display_data", "data": {}, "metadata": ledger.metadata()}],
    }
    (src / "chap.ipynb").write_text(json.dumps({"cells": [cell]}))
    warnings = io.StringIO()
    app = Sphinx(
        str(src),
        str(src),
        str(out),
        str(out / ".doctrees"),
        "html",
        status=None,
        warning=warnings,
        freshenv=True,
    )
    app.build()
    return (out / "index.html").read_text(), app.statuscode, warnings.getvalue()


def test_claims_role_counts_passing_over_total(tmp_path):
    html, status, warnings = _build(tmp_path, "chap")
    assert status == 0 and "claims:" not in warnings
    assert "Verified: <span>2/2</span>" in html


def test_claims_role_warns_on_missing_notebook(tmp_path):
    html, _, warnings = _build(tmp_path, "missing")
    assert "claims: no notebook" in warnings and "<span>?</span>" in html
