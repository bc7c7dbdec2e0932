"""The claim ledger (contract version 3): what passes, what fails, what each claim rules out,
and what is refused as malformed, loopholes included."""

import json
import math

import numpy as np
import pytest
import sympy as sp
import torch

from kexue_nb.checks import (
    DIGEST_PREFIX,
    LEDGER_VERSION,
    ClaimFailed,
    Ledger,
    collect_ledgers,
    evidence_summary,
    format_constant,
    format_number,
    ledger_digest,
    ledger_markdown,
    ledger_outputs,
    ledger_plain,
    read_ledger,
    rules_out_summary,
)

x, y = sp.symbols("x y", real=True)
#: A stand-in alternative for tests about something else: far from every expected value used.
FAR = {"a value far away": 1e6}


@pytest.fixture
def ledger():
    return Ledger("test-chapter")


# -- symbolic ------------------------------------------------------------------------------------
def test_symbolic_identity_passes_and_records_latex(ledger):
    claim = ledger.symbolic(
        "pythagoras", r"$\sin^2 x+\cos^2 x=1$", sp.sin(x) ** 2 + sp.cos(x) ** 2, 1
    )
    assert claim.passed and claim.kind == "symbolic"
    assert claim.evidence["residual"] == "0" and claim.evidence["basis"] == "exact"
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


def test_symbolic_rules_out_rival_forms(ledger):
    t = sp.symbols("t", positive=True)
    derived = sp.integrate(sp.exp(-t * x), (x, 0, sp.oo))
    claim = ledger.symbolic("laplace", "Laplace transform of 1", derived, 1 / t,
                            rules_out={"sign slip": -1 / t, "missing 1/t": 1})
    assert [r["excluded"] for r in claim.evidence["rules_out"]] == [True, True]
    assert claim.evidence["rules_out"][0]["value"] == sp.latex(-1 / t)
    with pytest.raises(ClaimFailed, match="does not rule out 'same form'"):
        ledger.symbolic("laplace-2", "same", derived, 1 / t, rules_out={"same form": 1 / t})


def test_symbolic_sound_rules_need_declared_assumptions(ledger):
    p, q = sp.symbols("p q", positive=True)
    assert ledger.symbolic("log-pos", "log rule", sp.log(p * q), sp.log(p) + sp.log(q)).passed
    z, w = sp.symbols("z w")  # unrestricted: log(zw) = log z + log w is false for z = w = -1
    with pytest.raises(ClaimFailed):
        ledger.symbolic("log-any", "log rule", sp.log(z * w), sp.log(z) + sp.log(w))


def test_symbolic_custom_simplifier_is_gone(ledger):
    with pytest.raises(TypeError):
        ledger.symbolic("any", "anything", x, x + 1, simplify=lambda e: 0)


def test_symbolic_refuses_floats(ledger):
    with pytest.raises(ValueError, match="`lhs` contains a floating-point number"):
        ledger.symbolic("float", "1 + 1e-20 = 1", 1 + sp.Float(1e-20), 1)
    with pytest.raises(ValueError, match="`rhs` contains a floating-point number"):
        ledger.symbolic("float", "x = 0.5 x", x, sp.Float(0.5) * 2 * x)
    assert len(ledger) == 0


def test_symbolic_erf_rewrite_is_tried(ledger):
    phi = (1 + sp.erf(x / sp.sqrt(2))) / 2
    assert ledger.symbolic("phi", "Phi", 1 - sp.erfc(x / sp.sqrt(2)) / 2, phi).passed


# -- numeric -------------------------------------------------------------------------------------
def test_numeric_within_tolerance_excludes_alternatives(ledger):
    claim = ledger.numeric("mc", "mean", 0.503, 0.5, atol=0.004, basis="4 standard errors",
                           rules_out={"σ_t = β_t": 0.52})
    assert claim.passed
    assert claim.evidence == {
        "estimate": 0.503,
        "expected": 0.5,
        "error": 0.003,
        "atol": 0.004,
        "rtol": 0.0,
        "basis": "4 standard errors",
        "rules_out": [{"label": "σ_t = β_t", "value": 0.52, "excluded": True}],
    }


def test_numeric_alternative_within_tolerance_fails_the_claim(ledger):
    with pytest.raises(ClaimFailed, match="does not rule out 'off by one in t'"):
        ledger.numeric("weak", "mean", 0.503, 0.5, atol=0.004, basis="b",
                       rules_out={"other": 0.6, "off by one in t": 0.505})
    claim = ledger.claims[-1]
    assert not claim.passed
    assert [r["excluded"] for r in claim.evidence["rules_out"]] == [True, False]
    assert "NOT EXCLUDED" in rules_out_summary(claim.to_json())


def test_numeric_alternative_uses_the_claims_relative_test(ledger):
    # 1 % of the alternative 103 is 1.03 > |100.5 - 103|? no: 2.5 > 1.03, so it is excluded
    claim = ledger.numeric("rel", "rel", 100.5, 100.0, rtol=0.01, basis="1 %",
                           rules_out={"bug": 103.0})
    assert claim.evidence["rules_out"][0]["excluded"]
    with pytest.raises(ClaimFailed):
        ledger.numeric("rel-2", "rel", 100.5, 100.0, rtol=0.01, basis="1 %",
                       rules_out={"bug": 101.0})


def test_numeric_array_alternative_rejected_if_any_entry_fails(ledger):
    est = np.array([1.0, 2.0, 3.0])
    claim = ledger.numeric("arr", "a", est, est, atol=1e-9, basis="b",
                           rules_out={"last entry wrong": [1.0, 2.0, 3.5]})
    assert claim.passed and claim.evidence["rules_out"][0]["value"] == [1.0, 2.0, 3.5]


def test_numeric_relative_tolerance_and_arrays(ledger):
    est = np.array([100.0, 201.0])
    assert ledger.numeric("rel", "rel", est, [100.0, 200.0], rtol=0.01, basis="1%",
                          rules_out=FAR).passed
    with pytest.raises(ClaimFailed, match="error 2 exceeds"):
        ledger.numeric("rel-bad", "rel", [100.0, 202.0], [100.0, 200.0], rtol=0.005,
                       basis="0.5%", rules_out=FAR)


def test_numeric_accepts_torch_tensors(ledger):
    assert ledger.numeric("torch", "t", torch.tensor(1.0), 1.0, atol=1e-9, basis="exact",
                          rules_out=FAR).passed
    half = torch.tensor([1.0, 2.0], dtype=torch.bfloat16)
    assert ledger.numeric("bf16", "t", half, [1.0, 2.0], atol=1e-9, basis="exact",
                          rules_out=FAR).passed


def test_numeric_failure_message_has_all_three(ledger):
    with pytest.raises(ClaimFailed, match=r"estimate 1\.5 vs expected 1\.0: error 0\.5.*atol=0\.1"):
        ledger.numeric("far", "far", 1.5, 1.0, atol=0.1, basis="b", rules_out=FAR)


def test_numeric_infinite_estimate_fails(ledger):
    with pytest.raises(ClaimFailed):
        ledger.numeric("inf", "inf", np.inf, 1.0, atol=1.0, basis="b", rules_out=FAR)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"estimate": float("nan")}, "`estimate` must not be NaN"),
        ({"expected": float("nan")}, "`expected` must not be NaN"),
        ({"atol": -1.0}, "`atol` and `rtol` must be >= 0"),
        ({"rtol": -0.1}, "`atol` and `rtol` must be >= 0"),
        ({"atol": float("inf")}, "`atol` must be a finite real number"),
        ({"atol": 0.0}, "`atol` or `rtol` must be positive"),
        ({"basis": " "}, "`basis` of claim 'c' must be a non-empty string"),
        ({"estimate": "abc"}, "`estimate` must be a real number or array"),
        ({"estimate": None}, "`estimate` must be a real number or array"),
        ({"estimate": [1.0, 2.0, 3.0], "expected": [1.0, 2.0]}, "must broadcast together"),
        ({"rules_out": {"bad shape": [1.0, 2.0]}, "estimate": [1.0, 2.0, 3.0],
          "expected": 1.0}, "must broadcast together"),
        ({"rules_out": {}}, "`rules_out` of claim 'c' must name at least one alternative"),
        ({"rules_out": None}, "`rules_out` of claim 'c' must name at least one alternative"),
        ({"rules_out": [2.0]}, "`rules_out` of claim 'c' must map each alternative's label"),
        ({"rules_out": {"": 2.0}}, "`rules_out label` of claim 'c' must be a non-empty"),
        ({"rules_out": {"a|b": 2.0}}, "must be one line without"),
        ({"rules_out": {"nan": float("nan")}}, r"`rules_out\['nan'\]` must not be NaN"),
        # loopholes: complex input, empty estimates, integers beyond float64's exact range
        ({"estimate": np.array([1.0 + 0.5j])}, "`estimate` must be real, got complex"),
        ({"expected": 1 + 0j}, "`expected` must be real, got complex"),
        ({"estimate": torch.tensor([1.0 + 0j])}, "`estimate` must be real, got a complex tensor"),
        ({"estimate": []}, "`estimate` must not be empty"),
        ({"estimate": np.zeros((0, 3))}, "`estimate` must not be empty"),
        ({"estimate": 2**53 + 1, "expected": 2**53 + 1}, "integer beyond 2\\*\\*53"),
        ({"estimate": 2**70}, "integer beyond 2\\*\\*53"),
        ({"estimate": sp.Integer(1)}, "not a SymPy expression"),
    ],
)
def test_numeric_bad_input(ledger, kwargs, match):
    args = {"estimate": 1.0, "expected": 1.0, "atol": 0.1, "basis": "b", "rules_out": FAR,
            **kwargs}
    with pytest.raises(ValueError, match=match):
        ledger.numeric("c", "s", **args)
    assert len(ledger) == 0


def test_integers_within_float_range_stay_exact(ledger):
    claim = ledger.numeric("big", "big count", 2**53, 2**53, atol=0.5, basis="exact count",
                           rules_out={"off by one": 2**53 - 2})
    assert claim.evidence["estimate"] == 2**53 and isinstance(claim.evidence["estimate"], int)


# -- bound ---------------------------------------------------------------------------------------
def test_bound_sides_and_kind(ledger):
    claim = ledger.bound("speed", "fast", 6.0, lower=5.0, basis="target",
                         rules_out={"the peer": 1.7})
    assert claim.passed and claim.kind == "bound"
    assert claim.evidence["rules_out"] == [{"label": "the peer", "value": 1.7, "excluded": True}]
    assert ledger.bound("inside", "in", 0.5, lower=0.0, upper=1.0, basis="range",
                        rules_out={"below": -0.5, "above": 2.0}).passed
    with pytest.raises(ClaimFailed, match=r"outside \[None, 1\.0\]"):
        ledger.bound("above", "a", 1.5, upper=1.0, basis="b", rules_out={"x": 2.0})


def test_bound_alternative_inside_fails_the_claim(ledger):
    with pytest.raises(ClaimFailed, match="does not rule out 'untrained network'"):
        ledger.bound("quality", "q", 0.1, upper=1.0, basis="95 % quantile",
                     rules_out={"untrained network": 0.9})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "`lower` or `upper` must be given"),
        ({"lower": 2.0, "upper": 1.0}, "`lower` must be <= `upper`"),
        ({"lower": float("nan")}, "`lower` must be a finite real number"),
        ({"upper": float("inf")}, "`upper` must be a finite real number"),
        ({"lower": -float("inf")}, "`lower` must be a finite real number"),
        ({"upper": 1j}, "`upper` must be a finite real number"),
        ({"upper": 1.0, "basis": ""}, "`basis` of claim 'c' must be a non-empty string"),
        ({"upper": 1.0, "rules_out": {}}, "must name at least one alternative"),
    ],
)
def test_bound_bad_input(ledger, kwargs, match):
    args = {"basis": "b", "rules_out": {"x": 5.0}, **kwargs}
    with pytest.raises(ValueError, match=match):
        ledger.bound("c", "s", 1.0, **args)
    assert len(ledger) == 0


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
    ledger.numeric("dup", "first", 1.0, 1.0, atol=1e-9, basis="b", rules_out=FAR)
    with pytest.raises(ValueError, match=match):
        ledger.numeric(claim_id, statement, 1.0, 1.0, atol=1e-9, basis="b", rules_out=FAR)


def test_chapter_name_validated():
    with pytest.raises(ValueError, match="`chapter` must be the notebook's file stem"):
        Ledger("Entropy Normalization")


# -- storage and display -------------------------------------------------------------------------
def test_metadata_matches_contract(ledger):
    ledger.symbolic("s", "sym", x, x)
    ledger.numeric("n", "num", 1.0, 1.0, atol=0.1, basis="b", rules_out={"double": 2.0})
    ledger.bound("b", "bnd", 1.0, upper=1.5, basis="b", rules_out={"double": 2.0})
    meta = ledger.metadata()
    assert set(meta) == {"kexue_nb"} and set(meta["kexue_nb"]) == {"ledger"}
    body = meta["kexue_nb"]["ledger"]
    assert body["chapter"] == "test-chapter" and body["version"] == LEDGER_VERSION == 3
    assert [c["kind"] for c in body["claims"]] == ["symbolic", "numeric", "bound"]
    for c in body["claims"]:
        assert set(c) == {"id", "statement", "kind", "passed", "evidence"}
        assert c["passed"] is True and "basis" in c["evidence"]
    for c in body["claims"][1:]:
        assert c["evidence"]["rules_out"] == [{"label": "double", "value": 2.0, "excluded": True}]
    json.dumps(meta)  # JSON-serialisable as the contract requires


def test_stored_floats_are_rounded_and_round_off_is_zero(ledger):
    claim = ledger.numeric("r", "r", 0.1 + 0.2, 0.3, atol=1e-12, basis="round-off",
                           rules_out={"0.1 + 0.2 in float32": float(np.float32(0.1) +
                                                                   np.float32(0.2)) + 1e-6})
    assert claim.evidence["estimate"] == 0.3 and claim.evidence["error"] == 0.0
    claim = ledger.numeric("r2", "r", 1 / 3, 1 / 3, atol=1e-12, basis="b", rules_out=FAR)
    assert claim.evidence["estimate"] == 0.333333


def _stored(claim):
    return json.dumps(claim.to_json(), sort_keys=True)


def test_numeric_values_are_stored_to_a_tenth_of_the_tolerance(ledger):
    claim = ledger.numeric("t", "t", 0.0811466, 0.0812, atol=1e-3, basis="b",
                           rules_out={"rival": 0.0851234})
    ev = claim.evidence
    assert (ev["estimate"], ev["expected"], ev["error"]) == (0.0811, 0.0812, 0.0001)
    assert ev["rules_out"][0]["value"] == 0.0851
    # rtol: per entry, a tenth of atol + rtol·|expected|
    claim = ledger.numeric("r", "r", [1.23456, 123.456], [1.23, 123.4], rtol=1e-2, basis="b",
                           rules_out={"x": [2.0, 200.0]})
    assert claim.evidence["estimate"] == [1.235, 123.5]


def test_round_off_drift_leaves_the_stored_claim_unchanged():
    """Another CPU's round-off (float32-sized, 1e-7 relative) does not reach the stored digits,
    for arrays too (summary, digest and worst entry); a change at the tolerance's scale does."""
    rng = np.random.default_rng(0)
    est = rng.normal(size=200)
    exact = est + 1e-17  # every error is round-off: the worst entry must not follow the noise

    def record(drift):
        book = Ledger("drift")
        noisy = est * (1 + drift * rng.normal(size=est.shape))
        book.numeric("n", "n", noisy, exact, atol=1e-4, basis="b", rules_out={"x": exact + 1})
        book.numeric("s", "s", float(noisy[0]) * 1e-3, 0.0, atol=1e-3, basis="b",
                     rules_out={"x": 1.0})
        book.bound("b", "b", np.abs(noisy) + 16.3, lower=16.30023085682751 * (1 + drift),
                   basis="b", rules_out={"x": np.full(200, 1.0)})
        return [_stored(c) for c in book.claims]

    assert record(0.0) == record(1e-7) == record(-1e-7)
    assert record(0.0)[0] != record(2e-5)[0]  # a fifth of the tolerance: seen


def test_bound_values_are_stored_to_a_hundredth_of_the_threshold(ledger):
    claim = ledger.bound("u", "u", 9.7582e-05, upper=1e-3, basis="b", rules_out={"x": 0.0123})
    assert claim.evidence["estimate"] == 0.0001 and claim.evidence["upper"] == 0.001
    claim = ledger.bound("l", "l", 16.987, lower=16.30023085682751, basis="b",
                         rules_out={"x": 12.345})
    ev = claim.evidence
    assert (ev["estimate"], ev["lower"], ev["rules_out"][0]["value"]) == (17.0, 16.3, 12.3)
    claim = ledger.bound("z", "z", -0.806317, upper=0, basis="b", rules_out={"x": 0.5})
    assert claim.evidence["estimate"] == -0.806  # all sides 0: the estimate's own scale
    claim = ledger.bound("i", "i", 0.95312, lower=0.9531, basis="b", rules_out={"x": 0.5})
    assert claim.evidence["estimate"] >= claim.evidence["lower"]  # rounding keeps the order


def test_table_displays_blocks_plain_and_metadata(ledger, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: shown.append((a, k)))
    with pytest.raises(ValueError, match="ledger is empty"):
        ledger.table()
    ledger.numeric("n", "num $x$", 1.0, 1.0, atol=0.1, basis="b", rules_out={"double": 2.0})
    ledger.table()
    (data,), kwargs = shown[0]
    assert kwargs["raw"] is True and kwargs["metadata"] == ledger.metadata()
    assert data["text/markdown"] == (
        "**Ledger:** 1/1 claims passed; 1 name what they rule out.\n\n"
        "**1.** `n` · numeric · ✓\\\nnum $x$\\\n*Evidence:* 1 vs 1; error ≈0 ≤ 0.1 (b)\\\n"
        "*Rules out:* double (2)"
    )
    assert data["text/plain"].splitlines()[-2] == "1/1 claims passed; 1 name what they rule out"
    assert "|" not in data["text/markdown"]  # blocks, not a table: readable at any width


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
    bound = {"kind": "bound", "evidence": {"estimate": 6.0, "lower": 5.0}}
    assert evidence_summary(bound) == "6 ≥ 5"


def test_render_plain_and_markdown():
    claims = [{"id": "a", "statement": "s", "kind": "symbolic", "passed": True, "evidence": {}}]
    assert ledger_markdown(claims).splitlines()[2] == "**1.** `a` · symbolic · ✓\\"
    assert ledger_plain(claims).splitlines()[-1] == "1/1 claims passed; 0 name what they rule out"


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
    ledger.numeric("n", "num", 1.0, 1.0, atol=0.1, basis="b", rules_out=FAR)
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
    claim = ledger.numeric("mc", "mean", 0.5 + 1e-13, 0.5, atol=0.004, basis="b",
                           rules_out={"σ_t = β_t": 0.52})
    assert repr(claim) == (
        "✓ numeric 'mc': 0.5 vs 0.5; error ≈0 ≤ 0.004; rules out: σ_t = β_t (0.52)"
    )
    assert repr(ledger.symbolic("s", "s", x, x)) == "✓ symbolic 's': difference simplifies to 0"


def test_counts_stay_exact_integers(ledger):
    claim = ledger.numeric("misses", "rows that miss", 0, 0, atol=0.5, basis="exact count",
                           rules_out={"one row lost": 1})
    assert claim.evidence["estimate"] == 0 and isinstance(claim.evidence["estimate"], int)
    assert repr(claim) == "✓ numeric 'misses': 0 vs 0; error 0 ≤ 0.5; rules out: one row lost (1)"
    bound = ledger.bound("few", "few misses", np.int64(2), upper=3, basis="count",
                         rules_out={"all missed": 10})
    assert repr(bound) == "✓ bound 'few': 2 ≤ 3; rules out: all missed (10)"
    assert format_number(0) == "0" and format_number(0.0) == "≈0"


def test_stated_constants_print_as_typed(ledger):
    assert format_constant(1e-12) == "1e-12" and format_constant(0.0) == "0"
    claim = ledger.numeric("tiny", "tiny", 1.0, 1.0, atol=1e-12, basis="round-off",
                           rules_out=FAR)
    assert repr(claim).startswith("✓ numeric 'tiny': 1 vs 1; error ≈0 ≤ 1e-12")
    assert repr(ledger.bound("pos", "p", 0.5, lower=0.0, basis="b",
                             rules_out={"negative": -1.0})).startswith("✓ bound 'pos': 0.5 ≥ 0")


# -- contract version 3: bounded, digested, unchanged by a JupyterLab save -------------------
def test_large_numeric_array_is_stored_as_a_summary(ledger):
    est = np.linspace(0.0, 1.0, 1000)
    exp = est.copy()
    exp[617] += 0.003  # the worst entry
    claim = ledger.numeric("big", "array", est, exp, atol=0.005, basis="b",
                           rules_out={"shifted": est + 0.01, "scalar rival": 2.0})
    ev = claim.evidence
    assert "shape" in ev and ev["shape"] == [1000] and ev["worst_index"] == [617]
    # stored to a tenth of the tolerance (5e-4): 4 decimal places
    assert ev["estimate"] == 0.6176 and ev["expected"] == 0.6206 and ev["error"] == 0.003
    shifted, scalar = ev["rules_out"]
    assert shifted["excess"] == pytest.approx(0.005, rel=1e-4) and shifted["size"] == 1000
    assert "value" not in shifted and scalar["value"] == 2.0
    assert len(json.dumps(ev)) < 600  # not one number per entry
    assert evidence_summary(claim.to_json()).startswith("1000 values; error 0.003")


def test_summary_digest_changes_with_where_the_claim_holds(ledger):
    est = np.linspace(0.0, 1.0, 100)
    rival = est + 2e-3 * (np.arange(100) % 2)  # rejected at the odd entries only

    def digest(claim_id, estimate, alternative):
        return ledger.numeric(claim_id, "s", estimate, est, atol=1e-3, basis="b",
                              rules_out={"x": alternative}).evidence["verdicts_sha256"]

    first = digest("a", est, rival)
    assert first == digest("b", est * (1 + 1e-7), rival)  # round-off: the same
    moved = rival.copy()
    moved[2] += 2e-3  # now rejected at entry 2 too, invisible in the worst entry
    assert first != digest("c", est, moved)


def test_small_arrays_stay_whole(ledger):
    claim = ledger.numeric("s", "s", np.arange(16.0), np.arange(16.0), atol=0.1, basis="b",
                           rules_out={"x": np.arange(16.0) + 1})
    assert claim.evidence["estimate"] == list(range(16)) and "shape" not in claim.evidence


def test_large_bound_summary_names_the_entry_nearest_the_edge(ledger):
    est = np.full(50, 0.5)
    est[20] = 0.99
    claim = ledger.bound("b", "s", est, upper=1.0, basis="b",
                         rules_out={"twice": 2 * est, "diverges": np.r_[est[:-1], np.inf]})
    ev = claim.evidence
    assert ev["worst_index"] == [20] and ev["estimate"] == 0.99 and ev["upper"] == 1
    assert ev["rules_out"][0]["excess"] == pytest.approx(0.98)
    assert ev["rules_out"][1]["excess"] == math.inf
    stored = ledger.metadata()["kexue_nb"]["ledger"]["claims"][0]["evidence"]
    assert stored["rules_out"][1]["excess"] == "inf"  # JSON has no inf: stored as a string
    assert evidence_summary(claim.to_json()) == "50 values ≤ 1"


def test_large_claim_failure_names_the_worst_entry(ledger):
    est = np.zeros((5, 5))
    est[2, 3] = 1.0
    with pytest.raises(ClaimFailed, match=r"at index \(2, 3\) of shape \(5, 5\)"):
        ledger.numeric("f", "s", est, 0.0, atol=0.1, basis="b", rules_out={"x": 5.0})


def test_metadata_survives_a_javascript_round_trip(ledger):
    from test_json_numbers import lab_round_trip

    ledger.numeric("n", "s", 4.0, 4.0, atol=1.0, basis="b", rules_out={"x": 10.0})
    ledger.numeric("z", "s", np.zeros(40), np.zeros(40), atol=1e-5, basis="b",
                   rules_out={"x": np.ones(40)})
    ledger.bound("b", "s", 3.0, upper=1e6, basis="b", rules_out={"x": math.inf})
    stored = json.dumps(ledger.metadata())
    assert json.dumps(lab_round_trip(json.loads(stored))) == stored


def test_rendering_is_the_same_before_and_after_a_save(ledger):
    """JavaScript cannot tell 0 from 0.0: the stored ``integers`` list keeps counts exact and
    round-off shown as ≈0."""
    ledger.numeric("f", "s", 0.0, 0.0, atol=1e-9, basis="b", rules_out={"x": 1.0})
    ledger.numeric("c", "s", 1000000, 1000000, atol=1, basis="b", rules_out={"x": 7})
    ledger.bound("k", "s", 12000, lower=10000, basis="b", rules_out={"x": 3})
    claims = ledger.metadata()["kexue_nb"]["ledger"]["claims"]
    assert [evidence_summary(c) for c in claims] == [
        "≈0 vs ≈0; error ≈0 ≤ 1e-09", "1000000 vs 1000000; error 0 ≤ 1", "12000 ≥ 10000"]


def test_ledger_digest_covers_every_field(ledger):
    ledger.numeric("n", "s", 1.0, 1.0, atol=0.1, basis="b", rules_out={"x": 2.0})
    stored = ledger.metadata()["kexue_nb"]["ledger"]
    outputs = ledger_outputs(stored)
    assert outputs["text/plain"].endswith(DIGEST_PREFIX + ledger_digest(stored))
    for path in (("chapter",), ("claims", 0, "statement"), ("claims", 0, "passed"),
                 ("claims", 0, "evidence", "estimate")):
        edited = json.loads(json.dumps(stored))
        target = edited
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = "edited"
        assert ledger_digest(edited) != ledger_digest(stored), path


def test_ledger_markdown_writes_minus_signs_that_do_not_break():
    from kexue_nb.checks import _unbroken_numbers
    assert _unbroken_numbers("error 9.8e-05 ≤ 1e-12+1e-06·rel; -0.806") == (
        "error 9.8e\u221205 ≤ 1e\u221212+1e\u221206·rel; \u22120.806")
    # math, words and ranges keep their hyphens
    kept = "x-1, seeds 0-19, $e^{-1}$, k-means"
    assert _unbroken_numbers(kept) == kept
    ledger = Ledger("minus")
    ledger.numeric("m", "m", -0.5, -0.5, atol=1e-12, basis="round-off 1e-12",
                   rules_out={"x": -2.0})
    text = ledger_markdown([c.to_json() for c in ledger.claims])
    assert "\u22120.5 vs \u22120.5" in text and "1e\u221212" in text and "(\u22122)" in text
    assert "-0.5 vs -0.5" in ledger_plain([c.to_json() for c in ledger.claims])  # plain: ASCII
