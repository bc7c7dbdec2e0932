"""The claim ledger: what passes, what fails, and what is rejected as malformed."""

import json

import numpy as np
import pytest
import sympy as sp
import torch

from kexue_nb.checks import (
    ClaimFailed,
    Ledger,
    collect_ledgers,
    evidence_summary,
    format_number,
    ledger_markdown,
    ledger_plain,
    read_ledger,
)

x, y = sp.symbols("x y", real=True)


@pytest.fixture
def ledger():
    return Ledger("test-chapter")


def test_symbolic_identity_passes_and_records_latex(ledger):
    claim = ledger.symbolic(
        "pythagoras", r"$\sin^2 x+\cos^2 x=1$", sp.sin(x) ** 2 + sp.cos(x) ** 2, 1
    )
    assert claim.passed and claim.kind == "symbolic"
    assert claim.evidence["residual"] == "0"
    assert claim.evidence["lhs"] == sp.latex(sp.sin(x) ** 2 + sp.cos(x) ** 2)


def test_symbolic_failure_raises_with_residual(ledger):
    with pytest.raises(ClaimFailed, match=r"'wrong'.*simplifies to 2\*x"):
        ledger.symbolic("wrong", "$(x+1)^2 = x^2+1$", (x + 1) ** 2, x**2 + 1)
    assert not ledger.claims[-1].passed


def test_symbolic_matrix_elementwise(ledger):
    a = sp.Matrix([[x, y], [0, x]])
    assert ledger.symbolic("matrix", "$A A^{-1} = I$", a * a.inv(), sp.eye(2)).passed
    with pytest.raises(ClaimFailed):
        ledger.symbolic("matrix-bad", "$A = I$", a, sp.eye(2))


def test_symbolic_custom_simplifier(ledger):
    expr = sp.log(x * y) - sp.log(x) - sp.log(y)
    with pytest.raises(ClaimFailed):
        Ledger("other").symbolic("log", "log", expr, 0, simplify=lambda e: e)
    positive = sp.symbols("p q", positive=True)
    expr = sp.log(positive[0] * positive[1]) - sp.log(positive[0]) - sp.log(positive[1])
    assert ledger.symbolic("log", "log rule", expr, 0, simplify=sp.expand_log).passed


def test_numeric_within_tolerance(ledger):
    claim = ledger.numeric("mc", "mean", 0.503, 0.5, atol=0.004, basis="4 standard errors")
    assert claim.passed
    assert claim.evidence == {
        "estimate": 0.503,
        "expected": 0.5,
        "error": pytest.approx(0.003),
        "atol": 0.004,
        "rtol": 0.0,
        "basis": "4 standard errors",
    }


def test_numeric_relative_tolerance_and_arrays(ledger):
    est = np.array([100.0, 201.0])
    assert ledger.numeric("rel", "rel", est, [100.0, 200.0], rtol=0.01, basis="1%").passed
    with pytest.raises(ClaimFailed, match="error 2 exceeds"):
        ledger.numeric("rel-bad", "rel", [100.0, 202.0], [100.0, 200.0], rtol=0.005, basis="0.5%")


def test_numeric_accepts_torch_tensors(ledger):
    assert ledger.numeric("torch", "t", torch.tensor(1.0), 1.0, atol=1e-9, basis="exact").passed


def test_numeric_failure_message_has_all_three(ledger):
    with pytest.raises(ClaimFailed, match=r"estimate 1\.5 vs expected 1\.0: error 0\.5.*atol=0\.1"):
        ledger.numeric("far", "far", 1.5, 1.0, atol=0.1, basis="b")


def test_numeric_infinite_estimate_fails(ledger):
    with pytest.raises(ClaimFailed):
        ledger.numeric("inf", "inf", np.inf, 1.0, atol=1.0, basis="b")


def test_bound_sides(ledger):
    assert ledger.bound("speed", "fast", 6.0, lower=5.0, basis="target").passed
    assert ledger.bound("inside", "in", 0.5, lower=0.0, upper=1.0, basis="range").passed
    with pytest.raises(ClaimFailed, match=r"outside \[None, 1\.0\]"):
        ledger.bound("above", "a", 1.5, upper=1.0, basis="b")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"estimate": float("nan")}, "`estimate` must not be NaN"),
        ({"expected": float("nan")}, "`expected` must not be NaN"),
        ({"atol": -1.0}, "`atol` must be a finite number >= 0"),
        ({"rtol": -0.1}, "`rtol` must be a finite number >= 0"),
        ({"atol": 0.0}, "`atol` or `rtol` must be positive"),
        ({"basis": " "}, "`basis` must say"),
        ({"estimate": "abc"}, "`estimate` must be a real number"),
        ({"estimate": [1.0, 2.0, 3.0], "expected": [1.0, 2.0]}, "do not broadcast"),
    ],
)
def test_numeric_bad_input(ledger, kwargs, match):
    args = {"estimate": 1.0, "expected": 1.0, "atol": 0.1, "basis": "b", **kwargs}
    with pytest.raises(ValueError, match=match):
        ledger.numeric("c", "s", **args)
    assert len(ledger) == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "`lower` or `upper` must be given"),
        ({"lower": 2.0, "upper": 1.0}, "`lower` must be <= `upper`"),
        ({"lower": float("nan")}, "`lower` must not be NaN"),
        ({"upper": 1.0, "basis": ""}, "`basis` must say"),
    ],
)
def test_bound_bad_input(ledger, kwargs, match):
    args = {"basis": "b", **kwargs}
    with pytest.raises(ValueError, match=match):
        ledger.bound("c", "s", 1.0, **args)


@pytest.mark.parametrize(
    ("claim_id", "statement", "match"),
    [
        ("dup", "s", "already in the test-chapter ledger"),
        ("Bad Id", "s", "`claim_id` must be lower-case kebab-case"),
        ("ok", "", "`statement` of claim 'ok' must be a non-empty string"),
        ("ok", "  ", "must be a non-empty string"),
        ("ok", r"$|x|$", "without '\\|'"),
        ("ok", "two\nlines", "one line"),
    ],
)
def test_malformed_claims_rejected(ledger, claim_id, statement, match):
    ledger.numeric("dup", "first", 1.0, 1.0, atol=1e-9, basis="b")
    with pytest.raises(ValueError, match=match):
        ledger.numeric(claim_id, statement, 1.0, 1.0, atol=1e-9, basis="b")


def test_chapter_name_validated():
    with pytest.raises(ValueError, match="`chapter` must be the notebook's file stem"):
        Ledger("Entropy Normalization")


def test_metadata_matches_contract(ledger):
    ledger.symbolic("s", "sym", x, x)
    ledger.numeric("n", "num", 1.0, 1.0, atol=0.1, basis="b")
    meta = ledger.metadata()
    assert set(meta) == {"kexue_nb"} and set(meta["kexue_nb"]) == {"ledger"}
    body = meta["kexue_nb"]["ledger"]
    assert body["chapter"] == "test-chapter"
    assert [c["id"] for c in body["claims"]] == ["s", "n"]
    for c in body["claims"]:
        assert set(c) == {"id", "statement", "kind", "passed", "evidence"}
        assert c["kind"] in {"symbolic", "numeric"} and c["passed"] is True
    json.dumps(meta)  # JSON-serialisable as the contract requires


def test_table_displays_markdown_plain_and_metadata(ledger, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: shown.append((a, k)))
    with pytest.raises(ValueError, match="ledger is empty"):
        ledger.table()
    ledger.numeric("n", "num $x$", 1.0, 1.0, atol=0.1, basis="b")
    ledger.table()
    (data,), kwargs = shown[0]
    assert kwargs["raw"] is True and kwargs["metadata"] == ledger.metadata()
    assert "| 1 | `n` | num $x$ | numeric |" in data["text/markdown"]
    assert data["text/plain"].endswith("1/1 claims passed")


def test_format_number_is_robust():
    assert format_number(0.123456) == "0.1235"
    assert format_number(2e-9) == "2e-09"
    assert format_number(3e-17) == "≈0"
    assert format_number(0.0) == "≈0"
    assert format_number(float("inf")) == "inf"
    assert format_number(12345.678, 3) == "1.23e+04"


def test_evidence_summary_forms():
    assert evidence_summary({"kind": "symbolic", "passed": True}) == "difference simplifies to 0"
    numeric = {
        "kind": "numeric",
        "evidence": {"estimate": 0.5, "expected": 0.5, "error": 1e-17, "atol": 1e-10, "rtol": 0.0},
    }
    assert evidence_summary(numeric) == "0.5 vs 0.5; error ≈0 ≤ 1e-10"
    bound = {"kind": "numeric", "evidence": {"estimate": 6.0, "lower": 5.0}}
    assert evidence_summary(bound) == "6 ≥ 5"


def test_render_plain_and_markdown_rows():
    claims = [{"id": "a", "statement": "s", "kind": "symbolic", "passed": True, "evidence": {}}]
    assert ledger_markdown(claims).splitlines()[2].startswith("| 1 | `a` | s | symbolic |")
    assert ledger_plain(claims).splitlines()[-1] == "1/1 claims passed"


def _notebook(outputs_metadata):
    outputs = [
        {"output_type": "display_data", "data": {"text/plain": "t"}, "metadata": m}
        for m in outputs_metadata
    ]
    return {
        "cells": [{"cell_type": "code", "source": "x", "outputs": outputs}],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def test_read_and_collect_ledgers(tmp_path, ledger):
    ledger.numeric("n", "num", 1.0, 1.0, atol=0.1, basis="b")
    (tmp_path / "part").mkdir()
    (tmp_path / "part" / "test-chapter.ipynb").write_text(
        json.dumps(_notebook([{}, ledger.metadata()]))
    )
    (tmp_path / "plain.ipynb").write_text(json.dumps(_notebook([{}])))
    (tmp_path / "_build").mkdir()
    (tmp_path / "_build" / "copy.ipynb").write_text(json.dumps(_notebook([ledger.metadata()])))
    assert read_ledger(tmp_path / "plain.ipynb") is None
    assert read_ledger(tmp_path / "part" / "test-chapter.ipynb")["chapter"] == "test-chapter"
    found = collect_ledgers(tmp_path)
    assert [f["notebook"] for f in found] == ["part/test-chapter.ipynb"]


def test_claim_repr_is_one_robust_line(ledger):
    claim = ledger.numeric("mc", "mean", 0.5 + 1e-13, 0.5, atol=0.004, basis="b")
    assert repr(claim) == "✓ numeric 'mc': 0.5 vs 0.5; error ≈0 ≤ 0.004"
    assert repr(ledger.symbolic("s", "s", x, x)) == "✓ symbolic 's': difference simplifies to 0"


def test_counts_stay_exact_integers(ledger):
    claim = ledger.numeric("misses", "rows that miss", 0, 0, atol=0.5, basis="exact count")
    assert claim.evidence["estimate"] == 0 and isinstance(claim.evidence["estimate"], int)
    assert repr(claim) == "✓ numeric 'misses': 0 vs 0; error 0 ≤ 0.5"
    bound = ledger.bound("few", "few misses", np.int64(2), upper=3, basis="count")
    assert repr(bound) == "✓ numeric 'few': 2 ≤ 3"
    assert format_number(0) == "0" and format_number(0.0) == "≈0"


def test_stated_constants_print_as_typed(ledger):
    from kexue_nb.checks import format_constant

    assert format_constant(1e-12) == "1e-12" and format_constant(0.0) == "0"
    claim = ledger.numeric("tiny", "tiny", 1.0, 1.0, atol=1e-12, basis="round-off")
    assert repr(claim) == "✓ numeric 'tiny': 1 vs 1; error ≈0 ≤ 1e-12"
    assert repr(ledger.bound("pos", "p", 0.5, lower=0.0, basis="b")) == "✓ numeric 'pos': 0.5 ≥ 0"
