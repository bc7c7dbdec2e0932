"""Command line for :mod:`kexue_nb.tools.faults`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from kexue_nb.tools.faults import TABLE_HEADER, all_faults, outcome_row, run_fault


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kexue_nb.tools.faults",
        description="Inject each catalogued bug into kexue_nb, re-execute its chapter, and "
                    "report which ledger claim caught it.")
    parser.add_argument("--chapter", action="append", default=[],
                        help="run only this chapter's faults (repeatable)")
    parser.add_argument("--fault", action="append", default=[],
                        help="run only this fault (repeatable)")
    parser.add_argument("--book", type=Path, default=Path("book"), help="the book's folder")
    parser.add_argument("--list", action="store_true", help="list the faults and stop")
    args = parser.parse_args(argv)
    catalogue = all_faults()
    for option, asked, known in (("--chapter", args.chapter, {f.chapter for f in catalogue}),
                                 ("--fault", args.fault, {f.name for f in catalogue})):
        unknown = [name for name in asked if name not in known]
        if unknown:
            parser.error(f"{option} {', '.join(unknown)}: not in the catalogue; choose from "
                         f"{', '.join(sorted(known))}")
    if not args.list and not args.book.is_dir():
        parser.error(f"--book must be the book's folder, got {str(args.book)!r}")
    faults = [f for f in catalogue
              if (not args.chapter or f.chapter in args.chapter)
              and (not args.fault or f.name in args.fault)]
    if not faults:
        parser.error("no fault matches")
    if args.list:
        for fault in faults:
            print(f"{fault.name:<40} {fault.chapter:<32} {fault.description}")
        return 0
    rows, missed = [], 0
    for fault in faults:
        begin = time.perf_counter()
        outcome = run_fault(fault, args.book)
        missed += not outcome.caught
        print(f"{fault.name}: {outcome_row(outcome).rsplit('|', 2)[-2].strip()} "
              f"({time.perf_counter() - begin:.0f} s)", flush=True)
        rows.append(outcome_row(outcome))
    print("\n" + TABLE_HEADER + "\n" + "\n".join(rows))
    print(f"\n{len(faults) - missed}/{len(faults)} faults caught by a claim")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
