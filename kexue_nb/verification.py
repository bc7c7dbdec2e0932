"""The book-wide verification tables, built from the chapters' stored ledgers.

``book/verification.ipynb`` calls :func:`show_verification`; the numbers come from the ledger
tables stored in each chapter's outputs (see :func:`kexue_nb.checks.collect_ledgers`), so the
page grows by itself as chapters land and is never typed by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kexue_nb.checks import collect_ledgers, ledger_markdown

__all__ = ["claims_markdown", "show_verification", "summary_markdown", "summary_plain"]


KINDS = ("symbolic", "numeric", "bound")


def _counts(ledger: dict[str, Any]) -> tuple[int, ...]:
    """claims, symbolic, numeric, bound, naming alternatives, alternatives, passing."""
    claims = ledger["claims"]
    kinds = [sum(c["kind"] == kind for c in claims) for kind in KINDS]
    ruled = [c.get("evidence", {}).get("rules_out", []) for c in claims]
    naming = sum(bool(r) for r in ruled)
    passed = sum(bool(c.get("passed")) for c in claims)
    return (len(claims), *kinds, naming, sum(map(len, ruled)), passed)


def _sentence(counts: tuple[int, ...]) -> str:
    claims, symbolic, numeric, bound, naming, alternatives, passed = counts
    return (f"{claims} claims ({symbolic} symbolic, {numeric} numeric, {bound} bound); "
            f"{naming} name {alternatives} alternatives they rule out; {passed} pass")


def summary_markdown(ledgers: list[dict[str, Any]]) -> str:
    """One line per chapter (claims by kind, how many name alternatives and how many
    alternatives they exclude, how many pass) and the total, as a list that reads at any
    width."""
    rows = []
    totals = [0] * 7
    for ledger in ledgers:
        counts = _counts(ledger)
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
        rows.append(f"- **{ledger['chapter']}**: {_sentence(counts)}.")
    rows.append(f"- **total**: {_sentence(tuple(totals))}.")
    return "\n".join(rows)


def summary_plain(ledgers: list[dict[str, Any]]) -> str:
    width = max((len(ledger["chapter"]) for ledger in ledgers), default=7)
    short = ("claims", "symbolic", "numeric", "bound", "naming", "alts", "passing")
    lines = [f"{'chapter':<{width}}  " + "  ".join(f"{h:>8}" for h in short)]
    for ledger in ledgers:
        lines.append(f"{ledger['chapter']:<{width}}  "
                     + "  ".join(f"{n:>8}" for n in _counts(ledger)))
    return "\n".join(lines)


def claims_markdown(ledgers: list[dict[str, Any]]) -> str:
    """Every claim of the book, one block per claim under a heading per chapter, so the page
    reads without sideways scrolling at any width."""
    parts = []
    for ledger in ledgers:
        parts.append(f"**{ledger['chapter']}** (`{ledger['notebook']}`)")
        parts.append(ledger_markdown(ledger["claims"]))
    return "\n\n".join(parts)


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
