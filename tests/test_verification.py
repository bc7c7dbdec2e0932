"""The verification page's summaries and claim blocks, built from stored ledgers."""

import pytest

from kexue_nb.verification import (
    claims_markdown,
    show_verification,
    summary_markdown,
    summary_plain,
)

RULED = [{"label": "σ_t = β_t", "value": 0.62, "excluded": True}]
LEDGERS = [
    {
        "notebook": "p/a.ipynb",
        "chapter": "a",
        "version": 2,
        "claims": [
            {"id": "x", "statement": "$x=x$", "kind": "symbolic", "passed": True,
             "evidence": {"basis": "exact"}},
            {
                "id": "y",
                "statement": "mean",
                "kind": "numeric",
                "passed": True,
                "evidence": {"estimate": 1.0, "expected": 1.0, "error": 0.0, "atol": 0.1,
                             "rtol": 0.0, "basis": "b", "rules_out": RULED},
            },
        ],
    },
    {
        "notebook": "q/b.ipynb",
        "chapter": "b",
        "version": 2,
        "claims": [
            {
                "id": "z",
                "statement": "fast",
                "kind": "bound",
                "passed": True,
                "evidence": {"estimate": 6.0, "lower": 5.0, "basis": "target",
                             "rules_out": RULED + [{"label": "peer", "value": 1.0,
                                                    "excluded": True}]},
            }
        ],
    },
]


def test_summary_counts_kinds_alternatives_and_totals():
    lines = summary_markdown(LEDGERS).splitlines()
    assert lines[0] == ("- **a**: 2 claims (1 symbolic, 1 numeric, 0 bound); "
                        "1 name 1 alternatives they rule out; 2 pass.")
    assert lines[2] == ("- **total**: 3 claims (1 symbolic, 1 numeric, 1 bound); "
                        "2 name 3 alternatives they rule out; 3 pass.")
    assert summary_plain(LEDGERS).splitlines()[2].split() == ["b", "1", "0", "0", "1", "1", "2",
                                                              "1"]


def test_claims_are_blocks_per_chapter_with_what_they_rule_out():
    md = claims_markdown(LEDGERS)
    assert "|" not in md  # no table: nothing to scroll sideways
    assert md.startswith("**a** (`p/a.ipynb`)")
    assert "**1.** `z` · bound · ✓\\\nfast\\\n*Evidence:* 6 ≥ 5 (target)\\\n" in md
    assert "*Rules out:* σ_t = β_t (0.62); peer (1)" in md


def test_show_verification_needs_ledgers(tmp_path):
    with pytest.raises(ValueError, match="`root` must hold chapters with stored ledgers"):
        show_verification(tmp_path)
