"""The book-wide verification tables, built from the chapters' stored ledgers.

``book/verification.ipynb`` calls :func:`show_verification`; the numbers come from the ledger
tables stored in each chapter's outputs (see :func:`kexue_nb.checks.collect_ledgers`), so the
page grows by itself as chapters land and is never typed by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kexue_nb.checks import collect_ledgers, evidence_summary

__all__ = ["claims_markdown", "show_verification", "summary_markdown", "summary_plain"]


def _counts(ledger: dict[str, Any]) -> tuple[int, int, int, int]:
    claims = ledger["claims"]
    symbolic = sum(c["kind"] == "symbolic" for c in claims)
    passed = sum(bool(c.get("passed")) for c in claims)
    return len(claims), symbolic, len(claims) - symbolic, passed


def summary_markdown(ledgers: list[dict[str, Any]]) -> str:
    """One row per chapter (claims, symbolic, numeric, passing) and a total row."""
    rows = [
        "| chapter | notebook | claims | symbolic | numeric | passing |",
        "|---|---|---|---|---|---|",
    ]
    totals = [0, 0, 0, 0]
    for ledger in ledgers:
        counts = _counts(ledger)
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
        rows.append(
            f"| {ledger['chapter']} | `{ledger['notebook']}` | "
            + " | ".join(map(str, counts))
            + " |"
        )
    rows.append("| **total** | | " + " | ".join(f"**{n}**" for n in totals) + " |")
    return "\n".join(rows)


def summary_plain(ledgers: list[dict[str, Any]]) -> str:
    width = max((len(ledger["chapter"]) for ledger in ledgers), default=7)
    lines = [f"{'chapter':<{width}}  claims  symbolic  numeric  passing"]
    for ledger in ledgers:
        n, s, m, p = _counts(ledger)
        lines.append(f"{ledger['chapter']:<{width}}  {n:>6}  {s:>8}  {m:>7}  {p:>7}")
    return "\n".join(lines)


def claims_markdown(ledgers: list[dict[str, Any]]) -> str:
    """Every claim of the book: chapter, id, statement, kind, evidence in short."""
    rows = ["| chapter | claim | statement | kind | evidence | ok |", "|---|---|---|---|---|---|"]
    for ledger in ledgers:
        for c in ledger["claims"]:
            mark = "✓" if c.get("passed") else "✗"
            rows.append(
                f"| {ledger['chapter']} | `{c['id']}` | {c['statement']} | {c['kind']} | "
                f"{evidence_summary(c)} | {mark} |"
            )
    return "\n".join(rows)


def show_verification(root: str | Path = ".") -> list[dict[str, Any]]:
    """Display the summary and the full claim table for the notebooks under ``root``."""
    from IPython.display import display

    ledgers = collect_ledgers(root)
    if not ledgers:
        raise ValueError(f"`root` must hold chapters with stored ledgers; none under {root!s}")
    display(
        {"text/markdown": summary_markdown(ledgers), "text/plain": summary_plain(ledgers)}, raw=True
    )
    display(
        {
            "text/markdown": claims_markdown(ledgers),
            "text/plain": f"{sum(len(x['claims']) for x in ledgers)} claims listed",
        },
        raw=True,
    )
    return ledgers
