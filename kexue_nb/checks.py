"""The claim ledger: every key result of a chapter, machine-checked, each check shown to bite.

A chapter creates one :class:`Ledger`, records each result it verifies as a claim and ends with
:meth:`Ledger.table`. A claim is checked when it is recorded; a claim that fails raises
:class:`ClaimFailed` at once, so a stale or wrong derivation stops the notebook (and nbval, and
the book build).

Three kinds of claim (contract version 3):

``symbolic`` (:meth:`Ledger.symbolic`)
    A result SymPy derived (an integral, a solved equation, a completed square, a simplified
    composite) equals the article's form: ``lhs - rhs`` simplifies to exactly 0 (element-wise
    for matrices) under a fixed chain of *sound* SymPy simplifications (no ``force=True``,
    nothing the caller can swap in). Floats are refused: ``Float(1e-20)`` would vanish against 1.
``numeric`` (:meth:`Ledger.numeric`)
    ``|estimate - expected| <= atol + rtol·|expected|`` element-wise, with the tolerance's
    ``basis`` (the stated error it follows from).
``bound`` (:meth:`Ledger.bound`)
    ``lower <= estimate <= upper`` element-wise, with the threshold's ``basis``.

**What it rules out.** Every numeric and bound claim names at least one alternative in
``rules_out``: the plausible wrong answer the check exists to exclude (the other variance choice,
the undiscretised value, a rival formula, the value under a typical bug, a baseline model's
metric), with its value computed. At record time the ledger runs the claim's own test on each
alternative, and the claim fails unless every one is rejected:

- numeric: the alternative, put in place of ``expected``, fails the test
  (``|estimate - alternative| > atol + rtol·|alternative|`` somewhere);
- bound: the alternative violates the bound (somewhere);
- symbolic (optional there): ``lhs - alternative`` does not simplify to 0.

The table is displayed with this metadata, which the verification page and outside tools read::

    {"kexue_nb": {"ledger": {"chapter": STEM, "version": 3, "claims": [
        {"id": str, "statement": str, "kind": "symbolic" | "numeric" | "bound",
         "passed": bool,
         "evidence": {..., "basis": str,
                      "rules_out": [{"label": str, "value": number | list | str,
                                     "excluded": true}]}}, ...]}}}

Numeric evidence keeps ``estimate``, ``expected``, ``error``, ``atol``, ``rtol``; bound evidence
keeps ``estimate`` and ``lower`` and/or ``upper``; symbolic evidence keeps the LaTeX of ``lhs``,
``rhs`` and the ``residual``, and ``basis`` is ``"exact"``.

**Stored digits follow the claim's own resolution**, so that re-execution on another CPU, whose
round-off differs, writes the same bytes. A numeric claim's values (estimate, expected, error,
alternatives, excesses) are stored to a tenth of the tolerance ``atol + rtol·|expected|`` of
their entry (:data:`TOLERANCE_FIGURES`): the test cannot tell finer digits apart. A bound's are
stored to a hundredth of its smallest nonzero threshold (:data:`THRESHOLD_FIGURES`; of the
estimate, if every side is 0), the thresholds included. Rounding one grid is monotone, so a
stored estimate keeps its order with a stored threshold. No float keeps more than
:data:`STORED_DIGITS` significant figures, and computed magnitudes below :data:`PRINT_FLOOR`
are stored as 0 (round-off). The worst entry of an array is chosen on the stored values, the
first of equals, so entries that differ only by round-off cannot swap.

Version 3 adds three rules:

- **Bounded evidence.** A claim over more than :data:`SUMMARY_LIMIT` values stores a summary
  instead of its arrays: ``shape``, ``worst_index`` (the entry furthest beyond, or nearest to,
  the tolerance or bound), ``estimate`` and ``expected`` of that entry, ``error``, and
  ``verdicts_sha256`` over every entry's verdict (the estimate passes there, each alternative is
  rejected there), so that a change in where the claim holds shows in a diff. Each alternative
  then stores ``excess`` (how far its worst entry lies beyond the tolerance or outside the
  bound: positive means excluded) and ``size``, and ``value`` only if it has at most
  :data:`SUMMARY_LIMIT` values.
- **Numbers that a JupyterLab save leaves alone** (:func:`kexue_nb.json_numbers.js_stable`):
  an integer-valued float is written as an integer (JavaScript writes ``4.0`` as ``4``), and a
  non-finite one as the string ``"inf"``, ``"-inf"`` or ``"nan"``. Which fields are exact counts
  is listed in ``integers`` (and ``"integer": true`` on an alternative), since JSON alone cannot
  tell ``4`` from ``4.0`` and the two print differently (a count exactly, round-off as ``≈0``).
- **Tamper evidence.** The table's ``text/plain`` ends with ``ledger sha256 <hex>``, the digest
  of the canonical JSON of the stored ledger (:func:`ledger_digest`). nbval compares that line
  with a re-execution; ``kexue_nb.tools.check_executed`` requires the stored metadata to match it
  and the Markdown and plain text to be exactly what :func:`ledger_outputs` renders from it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sympy

from kexue_nb.json_numbers import js_stable

__all__ = [
    "Claim",
    "collect_ledgers",
    "ClaimFailed",
    "Ledger",
    "LEDGER_VERSION",
    "format_constant",
    "format_number",
    "ledger_digest",
    "ledger_outputs",
    "ledger_markdown",
    "ledger_plain",
    "read_ledger",
    "rules_out_summary",
]

_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
#: Magnitudes below this are printed as ``≈0``: their digits depend on the CPU.
PRINT_FLOOR = 1e-10
#: Significant figures kept for floats stored in the evidence metadata.
STORED_DIGITS = 6
#: Decimal places kept where a claim gives no scale (only :data:`STORED_DIGITS` then applies).
NO_PLACES = 400
#: A numeric claim stores its values to a tenth of its tolerance (one digit below the
#: tolerance's leading digit), a bound to a hundredth of its threshold.
TOLERANCE_FIGURES = 1
THRESHOLD_FIGURES = 2
#: The version of the metadata contract written by :meth:`Ledger.metadata`.
LEDGER_VERSION = 3
#: Arrays with more values than this are stored as a summary (contract version 3).
SUMMARY_LIMIT = 16
#: The last line of the ledger's ``text/plain``: the digest of its canonical metadata.
DIGEST_PREFIX = "ledger sha256 "
#: Integers whose magnitude exceeds this are not exactly representable as float64.
_EXACT_INT_LIMIT = 2**53
#: Sound simplifications tried in turn on ``lhs - rhs``; none assumes more than the symbols
#: declare (no ``force=True``), so none can prove a false identity.
_SIMPLIFIERS = (
    sympy.expand,
    sympy.cancel,
    sympy.simplify,
    lambda e: sympy.simplify(e.rewrite(sympy.erf)),
)


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
        """One robust line, e.g. ``✓ numeric 'mc': 0.503 vs 0.5; error 0.003 ≤ 0.004; rules out:
        σ_t = β_t (0.52)``."""
        mark = "✓" if self.passed else "✗"
        ruled = rules_out_summary(self.to_json())
        tail = f"; rules out: {ruled}" if ruled else ""
        return f"{mark} {self.kind} {self.id!r}: {evidence_summary(self.to_json())}{tail}"

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


# -- input ---------------------------------------------------------------------------------------
def _real_array(value: Any, name: str) -> tuple[np.ndarray, bool]:
    """``value`` as a float64 array, and whether it was integer (a count, kept exact).

    Refused with a ``ValueError`` naming ``name``: anything not real (complex numpy or torch
    input, strings, ``None``), an empty array, NaN, and integers beyond float64's exact range
    (``2**53 + 1`` would silently become ``2**53``).
    """
    if hasattr(value, "detach"):  # a torch tensor, on any device
        if value.is_complex():
            raise ValueError(f"`{name}` must be real, got a complex tensor")
        value = value.detach().cpu()
        value = (value.double() if value.is_floating_point() else value).numpy()
    if isinstance(value, sympy.Basic):
        raise ValueError(f"`{name}` must be a number or array, not a SymPy expression {value!r}")
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`{name}` must be a real number or array, got {value!r}") from exc
    if raw.dtype == object and raw.size and all(
        isinstance(v, int) and not isinstance(v, bool) for v in raw.ravel()
    ):
        integer = True  # Python ints beyond int64
    elif raw.dtype.kind in "iu":
        integer = True
    elif raw.dtype.kind in "fb":
        integer = False
    elif raw.dtype.kind == "c":
        raise ValueError(f"`{name}` must be real, got complex {value!r}")
    else:
        raise ValueError(f"`{name}` must be a real number or array, got {value!r}")
    if raw.size == 0:
        raise ValueError(f"`{name}` must not be empty")
    if integer and any(abs(int(v)) > _EXACT_INT_LIMIT for v in raw.ravel()):
        raise ValueError(
            f"`{name}` holds an integer beyond 2**53, which float64 cannot hold exactly; "
            "compare it exactly (e.g. as a symbolic claim) instead"
        )
    array = raw.astype(float)
    if np.isnan(array).any():
        raise ValueError(f"`{name}` must not be NaN, got {value!r}")
    return array, integer


def _finite_constant(value: Any, name: str) -> float:
    """A stated tolerance or threshold: a finite real number."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"`{name}` must be a finite real number, got {value!r}")
    if isinstance(value, int | np.integer) and abs(int(value)) > _EXACT_INT_LIMIT:
        raise ValueError(f"`{name}` must be within float64's exact integer range, got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"`{name}` must be a finite real number, got {value!r}")
    return float(value)


def _check_text(value: Any, name: str, claim_id: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"`{name}` of claim {claim_id!r} must be a non-empty string")


def _check_rules_out(rules_out: Any, claim_id: str, required: bool) -> dict[str, Any]:
    if rules_out is None:
        rules_out = {}
    if not isinstance(rules_out, Mapping):
        raise ValueError(
            f"`rules_out` of claim {claim_id!r} must map each alternative's label to its value, "
            f"got {type(rules_out).__name__}"
        )
    if required and not rules_out:
        raise ValueError(
            f"`rules_out` of claim {claim_id!r} must name at least one alternative the check "
            "excludes (the other variance choice, a rival formula, a typical bug, a baseline)"
        )
    for label in rules_out:
        _check_text(label, "rules_out label", claim_id)
        if "|" in label or "\n" in label:
            raise ValueError(f"`rules_out` label {label!r} of claim {claim_id!r} must be one line "
                             "without '|'")
    return dict(rules_out)


# -- storage -------------------------------------------------------------------------------------
def _places(scale: Any, finer: int) -> np.ndarray:
    """Decimal places that resolve ``scale`` (a claim's tolerance or threshold, per entry) to
    ``finer`` digits below its leading one: digits finer than that are below what the claim's
    test can tell apart, and they are where round-off differs between CPUs. An entry whose scale
    is zero or not finite gets :data:`NO_PLACES` (only :data:`STORED_DIGITS` then applies)."""
    scale = np.abs(np.asarray(scale, dtype=float))
    usable = np.isfinite(scale) & (scale > 0)
    leading = np.floor(np.log10(np.where(usable, scale, 1.0)))
    return np.where(usable, finer - leading, NO_PLACES).astype(int)


def _stored_float(x: float, computed: bool = True, places: int = NO_PLACES) -> float:
    """``x`` rounded to ``places`` decimal places and to at most :data:`STORED_DIGITS`
    significant figures; a ``computed`` value below :data:`PRINT_FLOOR` (round-off) is stored
    as 0, a stated constant is kept."""
    if not math.isfinite(x):
        return x
    if computed and abs(x) < PRINT_FLOOR:
        return 0.0
    return float(f"{round(x, int(places)):.{STORED_DIGITS}g}") + 0.0  # + 0.0: no "-0.0"


def _stored_values(array: np.ndarray, places: Any) -> list[float]:
    """The entries of float ``array``, flat, each rounded as :func:`_stored_float` stores it
    with its own ``places`` (broadcast to the array)."""
    digits = np.broadcast_to(places, array.shape).ravel()
    return [_stored_float(float(v), places=p) for v, p in zip(array.ravel(), digits, strict=True)]


def _json_number(array: np.ndarray, integer: bool = False,
                 places: Any = NO_PLACES) -> float | int | list:
    """``array`` for the JSON evidence: integers (counts) exact, floats rounded to ``places``
    (per entry, broadcast) and :data:`STORED_DIGITS`."""
    if integer:
        values = [int(v) for v in array.ravel()]
    else:
        values = _stored_values(array, places)
    if array.ndim == 0:
        return values[0]
    return np.asarray(values, dtype=object).reshape(array.shape).tolist()


def _verdicts_digest(verdicts: Mapping[str, np.ndarray]) -> str:
    """sha256 of each entry's verdict (the estimate passes there; an alternative is rejected
    there): a change in which entries pass shows in a diff, round-off in passing values does
    not (a digest of the values themselves would change on another CPU whenever any one of
    hundreds of entries sits at a rounding boundary)."""
    bits = {name: np.asarray(v, dtype=bool).astype(int).ravel().tolist()
            for name, v in verdicts.items()}
    text = json.dumps(bits, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _places_of(array: np.ndarray, places: np.ndarray) -> Any:
    """``places`` for ``array``'s own shape: as they are where they broadcast to it, else the
    finest of them (a scalar compared with an array)."""
    if np.broadcast_shapes(array.shape, places.shape) == array.shape:
        return places
    return int(np.max(places))


def _worst(values: np.ndarray, places: Any) -> int:
    """The flat index of the largest of ``values`` as stored (rounded to ``places``), the
    first of equals: entries that differ only by round-off cannot swap between CPUs."""
    return int(np.argmax(_stored_values(values, places))) if values.ndim else 0


def _index(flat: int, shape: tuple[int, ...]) -> list[int]:
    return [int(i) for i in np.unravel_index(flat, shape)] if shape else []


def _is_large(*arrays: np.ndarray) -> bool:
    """Whether a claim over these arrays is stored as a summary: more than
    :data:`SUMMARY_LIMIT` values in their broadcast shape."""
    return math.prod(np.broadcast_shapes(*(a.shape for a in arrays))) > SUMMARY_LIMIT


# -- symbolic ------------------------------------------------------------------------------------
def _no_floats(expr: Any, name: str) -> Any:
    try:
        expr = sympy.sympify(expr, strict=True)
    except (sympy.SympifyError, TypeError) as exc:
        raise ValueError(f"`{name}` must be a SymPy expression or matrix, got {expr!r}") from exc
    if any(isinstance(a, sympy.Float) for a in _atoms(expr)):
        raise ValueError(
            f"`{name}` contains a floating-point number ({expr}); write it exactly "
            "(sympy.Rational, sympy.Integer): a Float lets 1 + 1e-20 equal 1"
        )
    if any(a.is_number and a.is_extended_real is False for a in _atoms(expr)
           if isinstance(a, sympy.Number)):
        raise ValueError(f"`{name}` must not hold a non-real number literal, got {expr}")
    return expr


def _atoms(expr: Any) -> set:
    if isinstance(expr, sympy.MatrixBase):
        return set().union(*(e.atoms() for e in expr)) if expr.shape[0] * expr.shape[1] else set()
    return expr.atoms()


def _vanishes(difference: Any) -> tuple[bool, Any]:
    """Whether ``difference`` simplifies to exactly 0 under :data:`_SIMPLIFIERS`, and the
    residual (the first simplifier's, if none reaches 0)."""
    if isinstance(difference, sympy.MatrixBase):
        results = [_vanishes(entry) for entry in difference]
        residual = sympy.Matrix(difference.shape[0], difference.shape[1],
                                [r for _, r in results])
        return all(ok for ok, _ in results), residual
    if difference == 0:
        return True, sympy.Integer(0)
    first = None
    for simplify in _SIMPLIFIERS:
        residual = simplify(difference)
        first = residual if first is None else first
        if residual == 0:
            return True, residual
    return False, first


def _sample_point(symbols: Iterable[sympy.Symbol]) -> dict:
    """Exact values for ``symbols`` inside their declared domains (distinct small rationals,
    integers for integer symbols, negative ones for negative symbols)."""
    point = {}
    for k, symbol in enumerate(sorted(symbols, key=str)):
        value = sympy.Integer(k + 2) if symbol.is_integer else sympy.Rational(2 * k + 3, 7 + k)
        point[symbol] = -value if symbol.is_negative or symbol.is_nonpositive else value
    return point


def _differs(difference: Any) -> bool:
    """Whether ``difference`` is not identically zero: clearly nonzero at one exact point of its
    domain (a proof, and cheap: the value must be the same at 40 and at 80 digits, so that
    round-off in a cancellation cannot pass for a difference), or else not reduced to 0 by
    :data:`_SIMPLIFIERS`."""
    entries = list(difference) if isinstance(difference, sympy.MatrixBase) else [difference]
    for entry in entries:
        try:
            exact = entry.subs(_sample_point(entry.free_symbols))
            coarse, fine = exact.evalf(40), exact.evalf(80)
        except (TypeError, ValueError, ZeroDivisionError):
            continue
        if not (fine.is_number and fine.is_finite and coarse.is_finite):
            continue
        if abs(fine) > sympy.Float(10) ** -20 and abs(coarse - fine) <= abs(fine) * 1e-12:
            return True
    return not _vanishes(difference)[0]


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
        _check_text(statement, "statement", claim_id)
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
        rules_out: Mapping[str, Any] | None = None,
    ) -> Claim:
        """Record that the derived ``lhs`` equals the article's ``rhs`` identically.

        ``lhs - rhs`` must simplify to exactly 0 under the ledger's fixed chain of sound SymPy
        simplifications (declare symbols ``positive=True`` or ``real=True`` where a rule such as
        ``log(xy) = log x + log y`` needs it). ``rules_out`` (optional here) maps labels to rival
        forms; each must *not* equal ``lhs``. Raises :class:`ClaimFailed` with the residual.
        """
        self._check_new(claim_id, statement)
        lhs, rhs = _no_floats(lhs, "lhs"), _no_floats(rhs, "rhs")
        alternatives = {
            label: _no_floats(value, f"rules_out[{label!r}]")
            for label, value in _check_rules_out(rules_out, claim_id, required=False).items()
        }
        try:
            passed, residual = _vanishes(lhs - rhs)
        except (TypeError, ValueError, sympy.ShapeError) as exc:
            raise ValueError(f"`lhs` and `rhs` of claim {claim_id!r} cannot be subtracted: "
                             f"{exc}") from exc
        ruled = [
            {"label": label, "value": sympy.latex(value), "excluded": _differs(lhs - value)}
            for label, value in alternatives.items()
        ]
        evidence: dict[str, Any] = {
            "lhs": sympy.latex(lhs),
            "rhs": sympy.latex(rhs),
            "residual": sympy.latex(residual),
            "basis": "exact",
        }
        if ruled:
            evidence["rules_out"] = ruled
        failure = f"lhs - rhs simplifies to {residual}, not 0"
        claim = Claim(claim_id, statement, "symbolic", bool(passed), evidence)
        return self._record(*_with_alternatives(claim, failure))

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
        rules_out: Mapping[str, Any],
    ) -> Claim:
        """Record that ``|estimate - expected| <= atol + rtol·|expected|`` (element-wise).

        ``basis`` says where the tolerance comes from ("4 Monte Carlo standard errors",
        "float64 round-off over 10³ terms"). ``rules_out`` maps each plausible wrong answer's
        label to its value; each must fail the same test. Estimates may be arrays; the worst
        element decides.
        """
        self._check_new(claim_id, statement)
        est, est_int = _real_array(estimate, "estimate")
        exp, exp_int = _real_array(expected, "expected")
        atol, rtol = _finite_constant(atol, "atol"), _finite_constant(rtol, "rtol")
        if atol < 0 or rtol < 0:
            raise ValueError(f"`atol` and `rtol` must be >= 0, got atol={atol}, rtol={rtol}")
        if atol == 0 and rtol == 0:
            raise ValueError("`atol` or `rtol` must be positive: a numeric claim needs a tolerance")
        _check_text(basis, "basis", claim_id)
        alternatives = {
            label: _real_array(value, f"rules_out[{label!r}]")
            for label, value in _check_rules_out(rules_out, claim_id, required=True).items()
        }
        def tolerance(reference: np.ndarray) -> np.ndarray:
            """The test's allowance around ``reference``: atol + rtol·|reference|."""
            return atol + rtol * np.abs(reference)

        try:
            err = np.abs(est - exp)
            allowed = tolerance(exp)
            for alt, _ in alternatives.values():
                np.broadcast_shapes(est.shape, alt.shape)
        except ValueError as exc:
            raise ValueError(
                f"`estimate` shape {est.shape}, `expected` shape {exp.shape} and the "
                "alternatives' shapes must broadcast together"
            ) from exc
        excess = err - allowed
        places = _places(allowed, TOLERANCE_FIGURES)  # a tenth of each entry's tolerance
        worst = _worst(excess, places)
        worst_err = float(np.ravel(err)[worst])
        counts = est_int and exp_int
        passed = bool(np.all(np.isfinite(est)) and np.all(excess <= 0))

        def alt_places(alt: np.ndarray) -> np.ndarray:
            """A tenth of the tolerance the test gives the alternative, per entry."""
            return _places(tolerance(alt), TOLERANCE_FIGURES)

        def beyond(alt: np.ndarray) -> np.ndarray:
            """How far the estimate lies from the alternative beyond the tolerance, per entry
            (> 0: the alternative is rejected there)."""
            return np.abs(est - alt) - tolerance(alt)

        def alt_excess(alt: np.ndarray) -> float:
            """How far the alternative's worst entry lies beyond the tolerance (> 0: excluded),
            as stored."""
            beyond_alt = beyond(alt)
            digits = np.broadcast_to(alt_places(alt), beyond_alt.shape)
            at = _worst(beyond_alt, digits)
            return _stored_float(float(beyond_alt.ravel()[at]), places=digits.ravel()[at])

        large = _is_large(est, exp, *(alt for alt, _ in alternatives.values()))
        ruled = []
        for label, (alt, alt_int) in alternatives.items():
            entry: dict[str, Any] = {"label": label}
            if large:
                entry["excess"] = alt_excess(alt)
                entry["size"] = int(alt.size)
            if alt.size <= SUMMARY_LIMIT:
                entry["value"] = _json_number(alt, alt_int, alt_places(alt))
                if alt_int:
                    entry["integer"] = True
            entry["excluded"] = bool(np.any(beyond(alt) > 0))
            ruled.append(entry)
        shape = np.broadcast_shapes(est.shape, exp.shape)
        places = np.broadcast_to(places, shape)
        if large:
            flat_est, flat_exp = (np.broadcast_to(a, shape).ravel() for a in (est, exp))
            evidence: dict[str, Any] = {
                "shape": list(shape),
                "worst_index": _index(worst, shape),
                "estimate": _json_number(flat_est[worst], est_int, places.ravel()[worst]),
                "expected": _json_number(flat_exp[worst], exp_int, places.ravel()[worst]),
                "verdicts_sha256": _verdicts_digest({
                    "estimate": np.isfinite(est) & (excess <= 0),
                    **{f"rules_out:{label}": beyond(alt) > 0
                       for label, (alt, _) in alternatives.items()}}),
            }
        else:
            evidence = {"estimate": _json_number(est, est_int, _places_of(est, places)),
                        "expected": _json_number(exp, exp_int, _places_of(exp, places))}
        integers = [name for name, flag in
                    (("estimate", est_int), ("expected", exp_int), ("error", counts)) if flag]
        if integers:  # exact counts, printed as integers (JSON alone cannot tell 4 from 4.0)
            evidence["integers"] = integers
        evidence.update({
            "error": (int(worst_err) if counts
                      else _stored_float(worst_err, places=places.ravel()[worst])),
            "atol": _stored_float(atol, computed=False),
            "rtol": _stored_float(rtol, computed=False),
            "basis": basis,
            "rules_out": ruled,
        })
        failure = (
            f"estimate {evidence['estimate']} vs expected {evidence['expected']}"
            f"{_where(evidence)}: error {worst_err:.3g} exceeds the tolerance atol={atol:.3g}, "
            f"rtol={rtol:.3g} ({basis})"
        )
        claim = Claim(claim_id, statement, "numeric", passed, evidence)
        return self._record(*_with_alternatives(claim, failure))

    def bound(
        self,
        claim_id: str,
        statement: str,
        estimate: Any,
        *,
        lower: float | None = None,
        upper: float | None = None,
        basis: str,
        rules_out: Mapping[str, Any],
    ) -> Claim:
        """Record that ``lower <= estimate <= upper`` (element-wise; either side may be omitted).

        For one-sided results: a distance below its two-sample critical value, an error that
        shrinks, a speed-up above a target. ``basis`` says where the threshold comes from;
        ``rules_out`` maps each plausible wrong answer's label to its value, and each must
        violate the bound.
        """
        self._check_new(claim_id, statement)
        est, est_int = _real_array(estimate, "estimate")
        if lower is None and upper is None:
            raise ValueError("`lower` or `upper` must be given: a bound needs a side")
        sides = {
            name: _finite_constant(value, name)
            for name, value in (("lower", lower), ("upper", upper))
            if value is not None
        }
        if "lower" in sides and "upper" in sides and sides["lower"] > sides["upper"]:
            raise ValueError(f"`lower` must be <= `upper`, got {lower} > {upper}")
        _check_text(basis, "basis", claim_id)
        alternatives = {
            label: _real_array(value, f"rules_out[{label!r}]")
            for label, value in _check_rules_out(rules_out, claim_id, required=True).items()
        }

        def inside(values: np.ndarray) -> np.ndarray:
            ok = np.isfinite(values)
            if "lower" in sides:
                ok &= values >= sides["lower"]
            if "upper" in sides:
                ok &= values <= sides["upper"]
            return ok

        def violation(values: np.ndarray) -> np.ndarray:
            """How far each entry lies outside the bound (<= 0 inside; non-finite: inf)."""
            out = np.full(values.shape, -np.inf)
            if "lower" in sides:
                out = np.maximum(out, sides["lower"] - values)
            if "upper" in sides:
                out = np.maximum(out, values - sides["upper"])
            return np.where(np.isfinite(values), out, np.inf)

        # A hundredth of the smallest nonzero threshold (of the estimate, if every side is 0).
        scale = min((abs(v) for v in sides.values() if v != 0),
                    default=float(np.max(np.abs(est), initial=0, where=np.isfinite(est))))
        places = int(_places(scale, THRESHOLD_FIGURES))
        large = _is_large(est, *(alt for alt, _ in alternatives.values()))
        ruled = []
        for label, (alt, alt_int) in alternatives.items():
            entry: dict[str, Any] = {"label": label}
            if large:
                beyond = violation(alt)
                entry["excess"] = _stored_float(float(beyond.ravel()[_worst(beyond, places)]),
                                                places=places)
                entry["size"] = int(alt.size)
            if alt.size <= SUMMARY_LIMIT:
                entry["value"] = _json_number(alt, alt_int, places)
                if alt_int:
                    entry["integer"] = True
            entry["excluded"] = bool(not np.all(inside(alt)))
            ruled.append(entry)
        if large:
            worst = _worst(violation(est), places)
            evidence: dict[str, Any] = {
                "shape": list(est.shape),
                "worst_index": _index(worst, est.shape),
                "estimate": _json_number(est.ravel()[worst], est_int, places),
                "verdicts_sha256": _verdicts_digest({
                    "estimate": inside(est),
                    **{f"rules_out:{label}": ~inside(alt)
                       for label, (alt, _) in alternatives.items()}}),
                "basis": basis,
            }
        else:
            evidence = {"estimate": _json_number(est, est_int, places), "basis": basis}
        integers = ["estimate"] if est_int else []
        for name in ("lower", "upper"):
            if name in sides:
                value = lower if name == "lower" else upper
                exact = isinstance(value, int | np.integer)
                evidence[name] = (int(value) if exact
                                  else _stored_float(sides[name], computed=False, places=places))
                integers += [name] if exact else []
        if integers:  # exact counts, printed as integers (JSON alone cannot tell 4 from 4.0)
            evidence["integers"] = integers
        evidence["rules_out"] = ruled
        failure = (
            f"estimate {evidence['estimate']}{_where(evidence)} outside [{lower}, {upper}] "
            f"({basis})"
        )
        claim = Claim(claim_id, statement, "bound", bool(np.all(inside(est))), evidence)
        return self._record(*_with_alternatives(claim, failure))

    # -- display -----------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """The contract's metadata: ``{"kexue_nb": {"ledger": {"chapter", "version",
        "claims"}}}``."""
        ledger = {"chapter": self.chapter, "version": LEDGER_VERSION,
                  "claims": [c.to_json() for c in self._claims]}
        return {"kexue_nb": {"ledger": js_stable(ledger)}}  # unchanged by a JupyterLab save

    def table(self) -> None:
        """Display the ledger (Markdown with math, plain text) carrying the contract metadata."""
        from IPython.display import display

        if not self._claims:
            raise ValueError(f"the {self.chapter} ledger is empty: record claims before the table")
        metadata = self.metadata()
        display(ledger_outputs(metadata["kexue_nb"]["ledger"]), raw=True, metadata=metadata)


def _where(evidence: Mapping[str, Any]) -> str:
    """`` at index … of shape …`` for a summarised array's worst entry, else ``""``."""
    if "shape" not in evidence:
        return ""
    return f" at index {tuple(evidence['worst_index'])} of shape {tuple(evidence['shape'])}"


def _with_alternatives(claim: Claim, failure: str) -> tuple[Claim, str]:
    """The claim, failed if it holds but an alternative it names also passes its test."""
    kept = [r["label"] for r in claim.evidence.get("rules_out", []) if not r["excluded"]]
    if claim.passed and kept:
        failure = (
            f"the check does not rule out {', '.join(map(repr, kept))}: that alternative passes "
            "the same test, so the claim cannot tell it from the truth"
        )
        claim = Claim(claim.id, claim.statement, claim.kind, False, claim.evidence)
    return claim, failure


# -- rendering, shared with the verification page -----------------------------------------------
def ledger_digest(ledger: Mapping[str, Any]) -> str:
    """sha256 of the stored ledger (``{"chapter", "version", "claims"}``) as canonical JSON."""
    text = json.dumps(ledger, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def ledger_outputs(ledger: Mapping[str, Any]) -> dict[str, str]:
    """The ledger table's display data, made from the stored ledger alone: Markdown, and plain
    text ending with the ledger's digest. nbval compares the plain text with a re-execution and
    ``check_executed`` remakes both from the stored metadata, so no field can be edited alone."""
    claims = ledger["claims"]
    return {"text/markdown": ledger_markdown(claims),
            "text/plain": f"{ledger_plain(claims)}\n{DIGEST_PREFIX}{ledger_digest(ledger)}"}


def _shown(value: Any, integer: bool = False) -> str:
    """One stored value (an exact count if ``integer``, else a float), or how many there are."""
    array = np.ravel(np.asarray(value, dtype=object))
    if array.size != 1:
        return f"{array.size} values"
    if isinstance(array[0], str):  # a non-finite value, stored as "inf", "-inf" or "nan"
        return array[0]
    return format_number(int(array[0]) if integer else float(array[0]))


def evidence_summary(claim: dict[str, Any]) -> str:
    """A short, CPU-independent summary of a claim's evidence (without what it rules out)."""
    ev = claim.get("evidence", {})
    if claim.get("kind") == "symbolic":
        return "difference simplifies to 0" if claim.get("passed") else "nonzero residual"
    if "shape" in ev:  # a summarised array, shown as the full array was in version 2
        ev = {**ev, "estimate": [0] * math.prod(ev["shape"])}
    if "expected" in ev:
        est, exp = ev["estimate"], ev["expected"]
        single = np.size(np.asarray(est, dtype=object)) == 1 == np.size(
            np.asarray(exp, dtype=object))
        exact = ev.get("integers", [])
        shown = (f"{_shown(est, 'estimate' in exact)} vs {_shown(exp, 'expected' in exact)}"
                 if single else _shown(est))
        error = int(ev["error"]) if "error" in exact else float(ev["error"])
        return f"{shown}; error {format_number(error, 2)} ≤ {_tolerance(ev)}"
    exact = ev.get("integers", [])
    sides = [f"{sign} {format_constant(_typed(ev[name], name in exact))}"
             for name, sign in (("lower", "≥"), ("upper", "≤")) if name in ev]
    estimate = _shown(ev.get("estimate", float("nan")), "estimate" in exact)
    return f"{estimate} {' and '.join(sides)}"


def _typed(value: Any, integer: bool) -> int | float:
    return int(value) if integer else float(value)


def _tolerance(ev: Mapping[str, Any]) -> str:
    tol = format_constant(float(ev["atol"]), 2) if ev.get("atol") else ""
    if ev.get("rtol"):
        tol += ("+" if tol else "") + f"{format_constant(float(ev['rtol']), 2)}·rel"
    return tol


def rules_out_summary(claim: dict[str, Any], values: bool = True) -> str:
    """The alternatives the claim's test rejects, ``label (value); …`` (``""`` if it names none);
    an alternative that passed the test too is marked ``NOT EXCLUDED``."""
    parts = []
    for alt in claim.get("evidence", {}).get("rules_out", []):
        mark = "" if alt.get("excluded") else " NOT EXCLUDED"
        if not values or isinstance(alt.get("value"), str):
            shown = ""
        elif "value" in alt:
            shown = f" ({_shown(alt['value'], alt.get('integer', False))})"
        else:  # a summarised array (its excess over the tolerance is in the metadata)
            shown = f" ({alt['size']} values)"
        parts.append(f"{alt['label']}{shown}{mark}")
    return "; ".join(parts)


def _summary_line(claims: list[dict[str, Any]]) -> str:
    passed = sum(bool(c.get("passed")) for c in claims)
    naming = sum(bool(c.get("evidence", {}).get("rules_out")) for c in claims)
    return f"{passed}/{len(claims)} claims passed; {naming} name what they rule out"


def ledger_markdown(claims: Iterable[dict[str, Any]]) -> str:
    """The ledger as one block per claim, readable at any width: a header line (number, id,
    kind, verdict), the statement at full width, then the evidence with its basis and what the
    check rules out. Statements keep their ``$…$`` math."""
    claims = list(claims)
    blocks = [f"**Ledger:** {_summary_line(claims)}."]
    for i, c in enumerate(claims, 1):
        mark = "✓" if c.get("passed") else "✗ failed"
        basis = c.get("evidence", {}).get("basis", "exact")
        lines = [
            f"**{i}.** `{c['id']}` · {c['kind']} · {mark}",
            c["statement"],
            f"*Evidence:* {_unbroken_numbers(f'{evidence_summary(c)} ({basis})')}",
        ]
        ruled = rules_out_summary(c)
        if ruled:
            lines.append(f"*Rules out:* {_unbroken_numbers(ruled)}")
        blocks.append("\\\n".join(lines))
    return "\n\n".join(blocks)


#: A hyphen-minus that is a number's sign or its exponent's (``-0.8``, ``1e-12``), outside words.
_NUMBER_MINUS = re.compile(r"(?<=\de)-(?=\d)|(?<![\w.\-])-(?=\d)")


def _unbroken_numbers(text: str) -> str:
    """``text`` with the minus of each number written as U+2212 MINUS SIGN outside ``$…$`` math:
    a browser may break a line after a hyphen (``1e-`` / ``12`` on a phone), never after the
    minus sign, which is also what a screen reader should read."""
    parts = text.split("$")
    parts[::2] = [_NUMBER_MINUS.sub("\u2212", part) for part in parts[::2]]
    return "$".join(parts)


def ledger_plain(claims: Iterable[dict[str, Any]]) -> str:
    """The ledger as fixed-width text: one line per claim, and what each rules out."""
    claims = list(claims)
    width = max((len(c["id"]) for c in claims), default=2)
    lines = [f"{'id':<{width}}  kind      ok  evidence"]
    for c in claims:
        mark = "yes" if c.get("passed") else "NO"
        line = f"{c['id']:<{width}}  {c['kind']:<8}  {mark:<3} {evidence_summary(c)}"
        ruled = rules_out_summary(c, values=False)
        lines.append(line + (f"; rules out: {ruled}" if ruled else ""))
    lines.append(_summary_line(claims))
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
