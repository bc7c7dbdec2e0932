"""The claim ledger: every key result of a chapter, machine-checked.

A chapter creates one :class:`Ledger`, records each result it verifies as a claim and ends with
:meth:`Ledger.table`. A claim is checked when it is recorded; a claim that fails raises
:class:`ClaimFailed` at once, so a stale or wrong derivation stops the notebook (and nbval, and
the book build).

Two kinds of claim:

``symbolic``
    SymPy simplifies ``lhs - rhs`` to exactly 0 (element-wise for matrices).
``numeric``
    an estimate lies within a stated tolerance of an expected value (:meth:`Ledger.numeric`), or
    on the right side of a threshold (:meth:`Ledger.bound`). Every tolerance comes with its
    ``basis``: the sentence that says where it comes from (``"4 Monte Carlo standard errors"``).

The table is displayed with this metadata, which the verification page and outside tools read::

    {"kexue_nb": {"ledger": {"chapter": STEM, "claims": [
        {"id": str, "statement": str, "kind": "symbolic" | "numeric", "passed": bool,
         "evidence": {...}}, ...]}}}
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sympy

__all__ = [
    "Claim",
    "collect_ledgers",
    "ClaimFailed",
    "Ledger",
    "format_constant",
    "format_number",
    "ledger_markdown",
    "ledger_plain",
    "read_ledger",
]

_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
#: Magnitudes below this are printed as ``≈0``: their digits depend on the CPU.
PRINT_FLOOR = 1e-10


class ClaimFailed(AssertionError):
    """A recorded claim did not hold; the message carries the evidence."""


@dataclass(frozen=True)
class Claim:
    """One verified result: ``id`` unique in its chapter, a one-line ``statement`` (LaTeX in
    ``$…$`` allowed), its ``kind`` and the JSON ``evidence`` that decided it."""

    id: str
    statement: str
    kind: str
    passed: bool
    evidence: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        """One robust line, e.g. ``✓ numeric 'mc': 0.503 vs 0.5; error 0.003 ≤ 0.004``."""
        mark = "✓" if self.passed else "✗"
        return f"{mark} {self.kind} {self.id!r}: {evidence_summary(self.to_json())}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "statement": self.statement,
            "kind": self.kind,
            "passed": self.passed,
            "evidence": self.evidence,
        }


def format_number(x: float, digits: int = 4) -> str:
    """Print ``x`` with ``digits`` significant figures, robustly across CPUs.

    Float magnitudes below :data:`PRINT_FLOOR`, zero included, print as ``≈0`` (round-off
    differs between machines), so stored notebook outputs do not change with the processor.
    Integers (counts) are exact and print as they are.
    """
    if isinstance(x, int | np.integer) and not isinstance(x, bool):
        return str(int(x))
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if abs(x) < PRINT_FLOOR:
        return "≈0"  # exact zero too: whether round-off lands on 0 depends on the CPU
    return f"{x:.{digits}g}"


def format_constant(x: float, digits: int = 4) -> str:
    """Print a stated constant (a tolerance or a threshold): typed by the author, not computed,
    so it is printed as it is, zero and tiny values included."""
    if isinstance(x, int | np.integer) and not isinstance(x, bool):
        return str(int(x))
    return "0" if float(x) == 0 else f"{float(x):.{digits}g}"


def _as_float_array(value: Any, name: str) -> np.ndarray:
    try:
        if hasattr(value, "detach"):  # a torch tensor, on any device
            value = value.detach().cpu().double().numpy()
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`{name}` must be a real number or array, got {value!r}") from exc
    if np.isnan(array).any():
        raise ValueError(f"`{name}` must not be NaN, got {value!r}")
    return array


def _json_number(array: np.ndarray, original: Any = None) -> float | int | list:
    """``array`` for the JSON evidence; integer input (a count) stays integer."""
    if original is not None and np.issubdtype(np.asarray(original).dtype, np.integer):
        array = array.astype(np.int64)
    return array.item() if array.ndim == 0 else array.tolist()


def _sympy_zero(difference: Any, simplify: Callable[[Any], Any]) -> tuple[bool, Any]:
    """Simplify ``difference``; return whether it is identically zero and the residual."""
    if isinstance(difference, sympy.MatrixBase):
        residual = difference.applyfunc(simplify)
        return residual.is_zero_matrix is True, residual
    residual = simplify(difference)
    return residual == 0, residual


class Ledger:
    """The claims one chapter verifies, in order.

    Parameters
    ----------
    chapter
        The notebook's file stem, e.g. ``"entropy-normalization"``.
    """

    def __init__(self, chapter: str) -> None:
        if not isinstance(chapter, str) or not _ID_PATTERN.match(chapter):
            raise ValueError(
                f"`chapter` must be the notebook's file stem in lower-case kebab-case, "
                f"got {chapter!r}"
            )
        self.chapter = chapter
        self._claims: list[Claim] = []

    @property
    def claims(self) -> tuple[Claim, ...]:
        return tuple(self._claims)

    def __len__(self) -> int:
        return len(self._claims)

    # -- recording ---------------------------------------------------------------------------
    def _check_new(self, claim_id: str, statement: str) -> None:
        if not isinstance(claim_id, str) or not _ID_PATTERN.match(claim_id):
            raise ValueError(
                f"`claim_id` must be lower-case kebab-case like 'posterior-mean', got {claim_id!r}"
            )
        if any(c.id == claim_id for c in self._claims):
            raise ValueError(f"`claim_id` {claim_id!r} is already in the {self.chapter} ledger")
        if not isinstance(statement, str) or not statement.strip():
            raise ValueError(f"`statement` of claim {claim_id!r} must be a non-empty string")
        if "|" in statement or "\n" in statement:
            raise ValueError(
                f"`statement` of claim {claim_id!r} must be one line without '|' (it would break "
                r"the ledger table); write \lvert, \rvert or \Vert instead"
            )

    def _record(self, claim: Claim, failure: str) -> Claim:
        self._claims.append(claim)
        if not claim.passed:
            raise ClaimFailed(f"[{self.chapter}] claim {claim.id!r} failed: {failure}")
        return claim

    def symbolic(
        self,
        claim_id: str,
        statement: str,
        lhs: Any,
        rhs: Any = 0,
        *,
        simplify: Callable[[Any], Any] = sympy.simplify,
    ) -> Claim:
        """Record that ``lhs == rhs`` identically: ``simplify(lhs - rhs)`` must be exactly 0.

        ``simplify`` may be a stronger or more targeted SymPy routine for hard cases
        (e.g. ``lambda e: sympy.simplify(sympy.expand_log(e, force=True))``).
        Raises :class:`ClaimFailed` with the residual if the difference does not vanish.
        """
        self._check_new(claim_id, statement)
        lhs, rhs = sympy.sympify(lhs), sympy.sympify(rhs)
        passed, residual = _sympy_zero(lhs - rhs, simplify)
        evidence = {
            "lhs": sympy.latex(lhs),
            "rhs": sympy.latex(rhs),
            "residual": sympy.latex(residual),
        }
        claim = Claim(claim_id, statement, "symbolic", bool(passed), evidence)
        return self._record(claim, f"lhs - rhs simplifies to {residual}, not 0")

    def numeric(
        self,
        claim_id: str,
        statement: str,
        estimate: Any,
        expected: Any,
        *,
        atol: float = 0.0,
        rtol: float = 0.0,
        basis: str,
    ) -> Claim:
        """Record that ``|estimate - expected| <= atol + rtol·|expected|`` (element-wise).

        ``basis`` says where the tolerance comes from ("4 Monte Carlo standard errors",
        "float64 round-off over 10³ terms"). Estimates may be arrays; the worst element decides.
        """
        self._check_new(claim_id, statement)
        est = _as_float_array(estimate, "estimate")
        exp = _as_float_array(expected, "expected")
        for name, tol in (("atol", atol), ("rtol", rtol)):
            if not (isinstance(tol, int | float) and math.isfinite(tol) and tol >= 0):
                raise ValueError(f"`{name}` must be a finite number >= 0, got {tol!r}")
        if atol == 0 and rtol == 0:
            raise ValueError("`atol` or `rtol` must be positive: a numeric claim needs a tolerance")
        if not isinstance(basis, str) or not basis.strip():
            raise ValueError("`basis` must say where the tolerance comes from")
        try:
            err = np.abs(est - exp)
            allowed = atol + rtol * np.abs(exp)
        except ValueError as exc:
            raise ValueError(
                f"`estimate` shape {est.shape} and `expected` shape {exp.shape} do not broadcast"
            ) from exc
        excess = err - allowed
        worst = int(np.argmax(excess)) if excess.ndim else 0
        worst_err = float(np.ravel(err)[worst]) if err.ndim else float(err)
        if all(np.issubdtype(np.asarray(v).dtype, np.integer) for v in (estimate, expected)):
            worst_err = int(worst_err)  # counts differ by an exact integer
        passed = bool(np.all(np.isfinite(est)) and np.all(excess <= 0))
        evidence = {
            "estimate": _json_number(est, estimate),
            "expected": _json_number(exp, expected),
            "error": worst_err,
            "atol": float(atol),
            "rtol": float(rtol),
            "basis": basis,
        }
        claim = Claim(claim_id, statement, "numeric", passed, evidence)
        return self._record(
            claim,
            f"estimate {_json_number(est)} vs expected {_json_number(exp)}: error {worst_err:.3g} "
            f"exceeds the tolerance atol={atol:.3g}, rtol={rtol:.3g} ({basis})",
        )

    def bound(
        self,
        claim_id: str,
        statement: str,
        estimate: Any,
        *,
        lower: float | None = None,
        upper: float | None = None,
        basis: str,
    ) -> Claim:
        """Record that ``lower <= estimate <= upper`` (either side may be omitted).

        For one-sided results: a distance below twice its noise floor, an error that shrinks, a
        speed-up above a target. ``basis`` says where the threshold comes from.
        """
        self._check_new(claim_id, statement)
        est = _as_float_array(estimate, "estimate")
        if lower is None and upper is None:
            raise ValueError("`lower` or `upper` must be given: a bound needs a side")
        for name, value in (("lower", lower), ("upper", upper)):
            if value is not None and math.isnan(float(value)):
                raise ValueError(f"`{name}` must not be NaN")
        if lower is not None and upper is not None and lower > upper:
            raise ValueError(f"`lower` must be <= `upper`, got {lower} > {upper}")
        if not isinstance(basis, str) or not basis.strip():
            raise ValueError("`basis` must say where the threshold comes from")
        ok = np.isfinite(est)
        if lower is not None:
            ok &= est >= lower
        if upper is not None:
            ok &= est <= upper
        evidence = {"estimate": _json_number(est, estimate), "basis": basis}
        for name, side in (("lower", lower), ("upper", upper)):
            if side is not None:
                evidence[name] = int(side) if isinstance(side, int | np.integer) else float(side)
        claim = Claim(claim_id, statement, "numeric", bool(np.all(ok)), evidence)
        return self._record(
            claim, f"estimate {_json_number(est)} outside [{lower}, {upper}] ({basis})"
        )

    # -- display -----------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """The contract's metadata: ``{"kexue_nb": {"ledger": {"chapter", "claims"}}}``."""
        claims = [c.to_json() for c in self._claims]
        return {"kexue_nb": {"ledger": {"chapter": self.chapter, "claims": claims}}}

    def table(self) -> None:
        """Display the ledger (Markdown with math, plain text) carrying the contract metadata."""
        from IPython.display import display

        if not self._claims:
            raise ValueError(f"the {self.chapter} ledger is empty: record claims before the table")
        claims = [c.to_json() for c in self._claims]
        data = {"text/markdown": ledger_markdown(claims), "text/plain": ledger_plain(claims)}
        display(data, raw=True, metadata=self.metadata())


# -- rendering, shared with the verification page -----------------------------------------------
def evidence_summary(claim: dict[str, Any]) -> str:
    """A short, CPU-independent summary of a claim's evidence."""
    ev = claim.get("evidence", {})
    if claim.get("kind") == "symbolic":
        return "difference simplifies to 0" if claim.get("passed") else "nonzero residual"
    if "expected" in ev:
        est = np.ravel(np.asarray(ev["estimate"]))
        exp = np.ravel(np.asarray(ev["expected"]))
        shown = (
            f"{format_number(est[0])} vs {format_number(exp[0])}"
            if est.size == 1 and exp.size == 1
            else f"{est.size} values"
        )
        tol = format_constant(ev["atol"], 2) if ev.get("atol") else ""
        if ev.get("rtol"):
            tol += ("+" if tol else "") + f"{format_constant(ev['rtol'], 2)}·rel"
        return f"{shown}; error {format_number(ev['error'], 2)} ≤ {tol}"
    est = np.ravel(np.asarray(ev.get("estimate", np.nan)))
    shown = format_number(est[0]) if est.size == 1 else f"{est.size} values"
    sides = []
    if "lower" in ev:
        sides.append(f"≥ {format_constant(ev['lower'])}")
    if "upper" in ev:
        sides.append(f"≤ {format_constant(ev['upper'])}")
    return f"{shown} {' and '.join(sides)}"


def ledger_markdown(claims: Iterable[dict[str, Any]]) -> str:
    """The ledger as a Markdown table (statements keep their ``$…$`` math)."""
    rows = [
        "| # | claim | statement | kind | evidence | basis | ok |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, c in enumerate(claims, 1):
        basis = c.get("evidence", {}).get("basis", "exact")
        mark = "✓" if c.get("passed") else "✗"
        rows.append(
            f"| {i} | `{c['id']}` | {c['statement']} | {c['kind']} | "
            f"{evidence_summary(c)} | {basis} | {mark} |"
        )
    return "\n".join(rows)


def ledger_plain(claims: Iterable[dict[str, Any]]) -> str:
    """The ledger as fixed-width text: one line per claim."""
    claims = list(claims)
    width = max((len(c["id"]) for c in claims), default=2)
    lines = [f"{'id':<{width}}  kind      ok  evidence"]
    for c in claims:
        mark = "yes" if c.get("passed") else "NO"
        lines.append(f"{c['id']:<{width}}  {c['kind']:<8}  {mark:<3} {evidence_summary(c)}")
    passed = sum(bool(c.get("passed")) for c in claims)
    lines.append(f"{passed}/{len(claims)} claims passed")
    return "\n".join(lines)


def read_ledger(notebook: str | Path) -> dict[str, Any] | None:
    """The ledger stored in a notebook's outputs (``{"chapter", "claims"}``), or ``None``.

    Reads the JSON directly: nothing is executed. If a notebook displays several ledger
    tables, the last one is the chapter's.
    """
    cells = json.loads(Path(notebook).read_text(encoding="utf-8")).get("cells", [])
    found = None
    for cell in cells:
        for output in cell.get("outputs", []):
            ledger = (output.get("metadata") or {}).get("kexue_nb", {}).get("ledger")
            if ledger is not None:
                found = ledger
    return found


def collect_ledgers(root: str | Path) -> list[dict[str, Any]]:
    """Every stored ledger under ``root``, as ``{"notebook", "chapter", "claims"}``, sorted by path.

    Notebooks without a ledger (the verification page itself) are left out; build copies and
    checkpoints are skipped.
    """
    root = Path(root)
    found = []
    for path in sorted(root.rglob("*.ipynb")):
        if "_build" in path.parts or ".ipynb_checkpoints" in path.parts:
            continue
        ledger = read_ledger(path)
        if ledger is not None:
            found.append({"notebook": path.relative_to(root).as_posix(), **ledger})
    return found
