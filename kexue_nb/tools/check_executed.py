"""Fail unless every notebook has been executed top to bottom without error.

    python -m kexue_nb.tools.check_executed book/

nbval passes on a notebook that was never executed (it compares nothing), so the test command
runs this too. A notebook passes when every non-empty code cell has an execution count, the
counts run 1, 2, 3, … in order (one clean top-to-bottom run), no output is an error, and, for a
chapter, its stored ledger exists, follows contract version 3 (every numeric and bound claim names
the alternatives it rules out, each of them excluded) and every claim passed.

The stored ledger cannot be edited unseen: its ``text/plain`` ends with the sha256 of the
metadata, which nbval compares with a re-execution, and here the metadata must match that digest
and both the Markdown and the plain text must be exactly what the metadata renders to.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kexue_nb.checks import DIGEST_PREFIX, LEDGER_VERSION, ledger_digest, ledger_outputs
from kexue_nb.tools.execute import RUN_LAST, find_notebooks


def problems_in(path: Path) -> list[str]:
    """Everything wrong with the stored state of the notebook at ``path``."""
    cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    code = [
        c for c in cells if c.get("cell_type") == "code" and "".join(c.get("source", "")).strip()
    ]
    problems = []
    counts = [c.get("execution_count") for c in code]
    if any(n is None for n in counts):
        problems.append(
            f"{sum(n is None for n in counts)} of {len(code)} code cells never executed"
        )
    elif counts != list(range(1, len(code) + 1)):
        problems.append(f"execution counts {counts} are not one top-to-bottom run")
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        problems.append(f"{len(errors)} error output(s): {errors[0].get('ename')}")
    if path.name not in RUN_LAST:
        tables = [o for c in code for o in c.get("outputs", [])
                  if "ledger" in (o.get("metadata") or {}).get("kexue_nb", {})]
        if not tables:
            problems.append("no ledger table in the stored outputs")
        else:
            ledger = tables[-1]["metadata"]["kexue_nb"]["ledger"]
            problems += ledger_problems(ledger) + tamper_problems(tables[-1])
            if ledger.get("chapter") != path.stem:
                problems.append(
                    f"ledger chapter {ledger.get('chapter')!r} is not the stem {path.stem!r}"
                )
    return problems


def _text(value: str | list[str]) -> str:
    return "".join(value) if isinstance(value, list) else value


def tamper_problems(output: dict) -> list[str]:
    """Where the stored ledger table's metadata, digest, Markdown and plain text disagree."""
    ledger = output["metadata"]["kexue_nb"]["ledger"]
    data = {key: _text(value) for key, value in output.get("data", {}).items()}
    stored = data.get("text/plain", "").rsplit("\n", 1)[-1]
    if not stored.startswith(DIGEST_PREFIX):
        return ["the ledger's text/plain does not end with its digest"]
    if stored != DIGEST_PREFIX + ledger_digest(ledger):
        return ["the stored ledger metadata does not match the digest in its text/plain "
                "(edited after execution?)"]
    return [f"the ledger's {kind} is not what its metadata renders to (edited after execution?)"
            for kind, text in ledger_outputs(ledger).items() if data.get(kind) != text]


def ledger_problems(ledger: dict) -> list[str]:
    """What a stored ledger lacks under contract version 3."""
    problems = []
    if ledger.get("version") != LEDGER_VERSION:
        problems.append(f"ledger version {ledger.get('version')!r}, not {LEDGER_VERSION}")
    claims = ledger.get("claims", [])
    failing = [c["id"] for c in claims if not c.get("passed")]
    if failing:
        problems.append(f"failing claims {failing}")
    unnamed = [c["id"] for c in claims if c.get("kind") in ("numeric", "bound")
               and not c.get("evidence", {}).get("rules_out")]
    if unnamed:
        problems.append(f"claims that name no alternative they rule out: {unnamed}")
    kept = [c["id"] for c in claims
            if any(not r.get("excluded") for r in c.get("evidence", {}).get("rules_out", []))]
    if kept:
        problems.append(f"claims whose alternatives are not all excluded: {kept}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kexue_nb.tools.check_executed",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="notebooks or folders of notebooks")
    args = parser.parse_args(argv)
    try:
        notebooks = find_notebooks(args.paths)
    except ValueError as err:
        parser.error(str(err))
    bad = 0
    for path in notebooks:
        for problem in problems_in(path):
            print(f"{path}: {problem}")
            bad += 1
    print(
        f"checked {len(notebooks)} notebooks: "
        + ("all executed and clean" if not bad else f"{bad} problems")
    )
    return 1 if bad or not notebooks else 0


if __name__ == "__main__":
    sys.exit(main())
