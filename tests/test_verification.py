"""The verification page's tables, built from stored ledgers."""

import pytest

from kexue_nb.verification import (
    claims_markdown,
    show_verification,
    summary_markdown,
    summary_plain,
)

LEDGERS = [
    {
        "notebook": "p/a.ipynb",
        "chapter": "a",
        "claims": [
            {"id": "x", "statement": "$x=x$", "kind": "symbolic", "passed": True, "evidence": {}},
            {
                "id": "y",
                "statement": "mean",
                "kind": "numeric",
                "passed": True,
                "evidence": {
                    "estimate": 1.0,
                    "expected": 1.0,
                    "error": 0.0,
                    "atol": 0.1,
                    "rtol": 0.0,
                },
            },
        ],
    },
    {
        "notebook": "q/b.ipynb",
        "chapter": "b",
        "claims": [
            {
                "id": "z",
                "statement": "fast",
                "kind": "numeric",
                "passed": True,
                "evidence": {"estimate": 6.0, "lower": 5.0},
            }
        ],
    },
]


def test_summary_counts_and_totals():
    md = summary_markdown(LEDGERS).splitlines()
    assert md[2] == "| a | `p/a.ipynb` | 2 | 1 | 1 | 2 |"
    assert md[3] == "| b | `q/b.ipynb` | 1 | 0 | 1 | 1 |"
    assert md[4] == "| **total** | | **3** | **1** | **2** | **3** |"
    assert summary_plain(LEDGERS).splitlines()[1].split() == ["a", "2", "1", "1", "2"]


def test_claims_table_lists_every_claim():
    rows = claims_markdown(LEDGERS).splitlines()[2:]
    assert len(rows) == 3
    assert rows[2] == "| b | `z` | fast | numeric | 6 ≥ 5 | ✓ |"


def test_show_verification_needs_ledgers(tmp_path):
    with pytest.raises(ValueError, match="`root` must hold chapters with stored ledgers"):
        show_verification(tmp_path)
