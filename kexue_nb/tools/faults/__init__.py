"""Fault injection: does a chapter's ledger catch a plausible bug in the code it relies on?

    python -m kexue_nb.tools.faults                         # every fault of every chapter
    python -m kexue_nb.tools.faults --chapter ducks-in-a-sector
    python -m kexue_nb.tools.faults --fault sector-theta-halved --markdown

A :class:`Fault` replaces one ``kexue_nb`` function or method (``target``, e.g.
``"kexue_nb.diffusion.schedule:Schedule.posterior"``) with a small, plausible bug made by its
``patch`` (a function of the original). The runner executes a temporary copy of the chapter in a
fresh kernel whose first cell applies the fault (:func:`inject`), and reports which claim failed.
A fault that no claim catches is a missing claim. Nothing is written back to the chapter.

Each chapter's faults live in their own module here (``ducks_in_a_sector.py`` for
``ducks-in-a-sector``), as a list named ``FAULTS``.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["Fault", "Outcome", "all_faults", "find_fault", "inject", "run_fault"]

_FAILED_CLAIM = re.compile(r"\[([a-z0-9-]+)\] claim '([a-z0-9-]+)' failed")


@dataclass(frozen=True)
class Fault:
    """One plausible bug: ``name`` (kebab-case, unique in the book), the ``chapter`` stem whose
    ledger should catch it, the ``target`` it replaces (``"module:attribute[.attribute]"``),
    a one-line ``description`` of the bug, and ``patch(original) -> replacement``."""

    name: str
    chapter: str
    target: str
    description: str
    patch: Callable[[Any], Any]


class Outcome(NamedTuple):
    """How a faulty run of a chapter ended: ``caught_by`` is the failing claim's id, or
    ``None``; ``error`` names an exception that stopped the chapter outside the ledger."""

    fault: Fault
    caught_by: str | None
    error: str | None

    @property
    def caught(self) -> bool:
        return self.caught_by is not None


def all_faults() -> list[Fault]:
    """Every fault of every chapter module in this package, in module order."""
    found: list[Fault] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        found += importlib.import_module(f"{__name__}.{info.name}").FAULTS
    names = [f.name for f in found]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"fault names must be unique, repeated: {duplicated}")
    return found


def find_fault(name: str, catalog: str = __name__) -> Fault:
    """The fault called ``name``, from this package's chapter modules or from the module
    ``catalog`` (whose ``FAULTS`` list holds it)."""
    faults = all_faults() if catalog == __name__ else importlib.import_module(catalog).FAULTS
    for fault in faults:
        if fault.name == name:
            return fault
    raise ValueError(f"`name` must name a fault of {catalog}, got {name!r}")


def _resolve(target: str) -> tuple[Any, str, Any]:
    """The object holding ``target``'s last attribute, that attribute's name, and its value."""
    module_name, _, path = target.partition(":")
    if not module_name or not path:
        raise ValueError(f"`target` must look like 'package.module:attribute', got {target!r}")
    owner: Any = importlib.import_module(module_name)
    *parents, attribute = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    return owner, attribute, getattr(owner, attribute)


def inject(name: str, catalog: str = __name__) -> None:
    """Apply fault ``name`` (from ``catalog``, see :func:`find_fault`) in this process: the target
    is replaced on its owner and on every loaded ``kexue_nb`` module that re-exports the same
    object (``from .x import f``)."""
    fault = find_fault(name, catalog)
    import kexue_nb.diffusion  # noqa: F401  (load the packages that re-export names)

    owner, attribute, original = _resolve(fault.target)
    replacement = fault.patch(original)
    setattr(owner, attribute, replacement)
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith("kexue_nb") and getattr(module, attribute, None) is original:
            setattr(module, attribute, replacement)


def run_fault(fault: Fault, book: Path = Path("book"), timeout: int = 900) -> Outcome:
    """Execute a copy of ``fault.chapter`` with the fault injected; nothing is written."""
    import nbformat
    from nbclient.exceptions import CellExecutionError

    from kexue_nb.tools.execute import run_notebook

    paths = [p for p in book.rglob(f"{fault.chapter}.ipynb") if "_build" not in p.parts]
    if len(paths) != 1:
        raise ValueError(f"fault {fault.name!r}: chapter {fault.chapter!r} not found under {book}")
    notebook = nbformat.read(paths[0], as_version=4)
    # A fault defined outside this package (a test's) is found through its patch's module.
    catalog = __name__ if any(f is fault for f in all_faults()) else fault.patch.__module__
    notebook.cells.insert(0, nbformat.v4.new_code_cell(
        f"from kexue_nb.tools.faults import inject\ninject({fault.name!r}, {catalog!r})"))
    try:
        run_notebook(notebook, paths[0].parent, timeout)
    except CellExecutionError as exc:
        match = _FAILED_CLAIM.search(str(exc))
        if match and match.group(1) == fault.chapter:
            return Outcome(fault, match.group(2), None)
        return Outcome(fault, None, f"{exc.ename}: {str(exc.evalue)[:120]}")
    return Outcome(fault, None, None)


def outcome_row(outcome: Outcome) -> str:
    """One Markdown table row: fault, chapter, bug, target, and what caught it."""
    fault = outcome.fault
    if outcome.caught:
        verdict = f"caught by `{outcome.caught_by}`"
    elif outcome.error:
        verdict = f"MISSED by the ledger (chapter crashed: {outcome.error.splitlines()[0]})"
    else:
        verdict = "MISSED"
    return (f"| `{fault.name}` | {fault.chapter} | {fault.description} | "
            f"`{fault.target}` | {verdict} |")


TABLE_HEADER = "| fault | chapter | bug injected | target | result |\n|---|---|---|---|---|"
