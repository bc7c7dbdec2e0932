"""Random points in a disk that fit in one sector: exact values and Monte Carlo.

Su Jianlin, "The probability that n random points in a disk lie in one sector of central angle
θ" (kexue.fm/archives/9324, 2022; the "four ducks in a semicircle" puzzle). The chapter
``book/probability/ducks-in-a-sector.ipynb`` derives the results; this module computes them.

The article reduces the question to n − 1 uniform cuts of [0, 1] into n pieces x_1, …, x_n and
finds, by inclusion–exclusion (its equation for P_n(max > x)),

    P_n(max_i x_i > x) = Σ_{k ≥ 1, 1 − kx > 0} (−1)^{k−1} C(n, k) (1 − kx)^{n−1},

whose value at x = 1 − θ/2π is the probability that some sector of angle θ holds all n points.

Exact values are computed in rational arithmetic: the alternating sum cancels catastrophically
in floating point once θ > π (terms of size C(n, k) add up to a number in [0, 1]), so even the
float path sums exactly and rounds once at the end.

Extensions (not in the article): the expected longest piece H_n / n, and Wendel's theorem
(1962) on n points in a common hemisphere of S^{d−1}, with an exact vectorised hemisphere test.
"""

from __future__ import annotations

import math
import numbers
from fractions import Fraction
from itertools import combinations
from typing import NamedTuple

import numpy as np
import sympy
from tqdm import tqdm

from ._validation import real_array

__all__ = [
    "Estimate",
    "covering_sector",
    "expected_longest_piece",
    "hemisphere_probability_mc",
    "in_common_hemisphere",
    "longest_piece_tail",
    "sample_ball",
    "sector_breakpoints",
    "sector_probability",
    "sector_probability_mc",
    "wendel_probability",
]

_TWO_PI = 2.0 * math.pi
#: Largest dimension :func:`sample_ball` accepts: it samples by rejection from the cube, whose
#: acceptance rate (the ball's share of the cube) is 1.6 % at d = 8 and falls fast after.
MAX_BALL_DIM = 8
#: Most work the exact tail sum may take: (number of terms) × (n − 1), about half a second.
#: Larger sizes are refused up front unless the result is decided without the sum (an
#: underflow to 0.0 for a float angle, or 1 once θ >= 2π(1 − 1/n)).
MAX_EXACT_WORK = 500_000
#: Largest n for an irrational SymPy angle (the exact polynomial in θ has n terms).
MAX_SYMPY_N = 500
#: Largest n for :func:`sector_breakpoints` and :func:`expected_longest_piece` (exact SymPy
#: results) and for :func:`wendel_probability` (an exact fraction with denominator 2^{n−1});
#: their exact results stay within Python's 4300-digit int-to-str limit.
MAX_BREAKPOINTS_N = 10_000
MAX_HARMONIC_N = 5_000
MAX_WENDEL_N = 10_000
#: Most float64 values :func:`sample_ball` may draw from the cube at once (128 MiB, ~0.5 s).
MAX_DRAW_ELEMENTS = 2**24
#: Most (d − 1)-subsets :func:`in_common_hemisphere` may try (C(n, d − 1)).
MAX_SUBSETS = 100_000
#: Most Monte Carlo sample sets one call may draw.
MAX_SAMPLES = 10**8
#: Below this natural log an exact probability rounds to 0.0 (the smallest subnormal is
#: e^{-744.4}); the margin covers the round-off of the estimate.
_LOG_UNDERFLOW = -800.0


class Estimate(NamedTuple):
    """A Monte Carlo estimate of a probability and its standard error √(p̂(1 − p̂)/N)."""

    value: float | np.ndarray
    stderr: float | np.ndarray


# -- validation ----------------------------------------------------------------------------------
def _check_count(value: object, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """An integer in [minimum, maximum] (Python, NumPy or SymPy integer; bools and floats
    refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral | sympy.Integer):
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be an integer in [{minimum}, {maximum}], got {value}")
    return value


def _check_rng(rng: object) -> None:
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"`rng` must be a numpy.random.Generator, got {type(rng).__name__}")


def _decided(n: int, t: float, name: str, value: object) -> float | None:
    """For P_n(max piece > 1 − t), t = θ/2π in [0, 1] as a float: 0.0 when the exact value
    is certain to round to 0.0 (it is at most its first term n t^{n−1}), else None after
    checking that the exact sum is small enough to compute (else a ValueError naming n)."""
    if n == 1 or t >= 1 - 1 / n or t <= 0.0:
        return None  # decided at once by the exact sum (1, or the single zero term)
    if math.log(n) + (n - 1) * math.log(t) < _LOG_UNDERFLOW:
        return 0.0
    terms = min(n, math.ceil(1 / (1 - t)) - 1) if t < 1 else n
    if terms * (n - 1) > MAX_EXACT_WORK:
        raise ValueError(
            f"`n` = {n} is too large for {name} = {value}: the exact sum needs {terms} terms of "
            f"degree {n - 1}; the limit is terms * (n - 1) <= {MAX_EXACT_WORK}"
        )
    return None


def _decide_positive(expr: sympy.Expr) -> bool:
    """Whether a real SymPy number is > 0 (an exact zero, proven or numerical, counts as not)."""
    positive = expr.is_positive
    if positive is not None:
        return bool(positive)
    value = sympy.N(expr, 60)
    return bool(value > sympy.Float(10) ** -50)


def _sympy_number(value: object, name: str) -> sympy.Expr:
    expr = sympy.sympify(value)
    if not (expr.is_number and expr.is_real and expr.is_finite):
        raise ValueError(f"`{name}` must be a real number, got {value!r}")
    return expr


def _check_sympy_size(n: int, t: sympy.Expr, name: str, value: object) -> None:
    """Refuse sizes whose exact SymPy result would take too long (a ValueError naming n)."""
    if t.is_Rational:
        tf = float(t)
        if n > 1 and 0 < tf < 1 - 1 / n:
            terms = min(n, math.ceil(1 / (1 - tf)) - 1)
            if terms * (n - 1) > MAX_EXACT_WORK:
                raise ValueError(
                    f"`n` = {n} is too large for {name} = {value}: the exact sum needs {terms} "
                    f"terms of degree {n - 1}; the limit is terms * (n - 1) <= {MAX_EXACT_WORK}"
                )
    elif n > MAX_SYMPY_N:
        raise ValueError(
            f"`n` must be at most {MAX_SYMPY_N} for an irrational exact {name}, got {n} "
            f"(pass a float, or a rational multiple of pi, for larger n)"
        )


def _real_float(value: object, name: str, range_text: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"`{name}` must be a real number in {range_text}, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be a real number in {range_text}, got {value}")
    return value


# -- exact probabilities -------------------------------------------------------------------------
def _tail_fraction(n: int, t: Fraction) -> Fraction:
    """P_n(max piece > 1 − t) for a rational t in [0, 1], summed exactly.

    With x = 1 − t the k-th term's base is 1 − kx = 1 − k + kt; writing it through t keeps full
    relative accuracy when t (that is, θ) is tiny. With t = a/b every term is an integer over
    the common denominator b^{n−1}, so the numerators are summed as integers and reduced once
    (adding Fractions would take a gcd per term).
    """
    if n == 1:
        return Fraction(1)
    if t >= 1 - Fraction(1, n):  # x <= 1/n: the longest piece always exceeds x
        return Fraction(1)
    a, b = t.numerator, t.denominator
    numerator = 0
    for k in range(1, n + 1):
        base = b * (1 - k) + k * a  # b (1 - k + k t)
        if base <= 0:
            break  # the bases decrease with k
        numerator += (-1) ** (k - 1) * math.comb(n, k) * base ** (n - 1)
    return Fraction(numerator, b ** (n - 1))


def _tail_sympy(n: int, t: sympy.Expr) -> sympy.Expr:
    """The same sum for an exact SymPy number t in [0, 1]."""
    if n == 1:
        return sympy.Integer(1)
    if t.is_Rational:
        value = _tail_fraction(n, Fraction(int(t.p), int(t.q)))
        return sympy.Rational(value.numerator, value.denominator)
    if not _decide_positive(1 - sympy.Rational(1, n) - t):  # t >= 1 - 1/n
        return sympy.Integer(1)
    # Collect the surviving terms as one polynomial in t with integer coefficients (exact and
    # fast), then substitute t: SymPy's expand of 50 powers of degree 49 would take seconds.
    # The term k survives iff 1 - k(1 - t) > 0, i.e. k < 1/(1 - t): decide once, numerically to
    # 60 digits (a term whose base is zero contributes nothing, so a tie is harmless).
    last = min(n, math.ceil(sympy.N(1 / (1 - t), 60)) - 1)
    coefficients = [0] * n  # coefficient of t**j, j = 0, ..., n - 1
    for k in range(1, last + 1):
        sign_binom = (-1) ** (k - 1) * math.comb(n, k)
        for j in range(n):  # (1 - k + k t)^(n-1) by the binomial theorem
            coefficients[j] += sign_binom * math.comb(n - 1, j) * (1 - k) ** (n - 1 - j) * k**j
    return sympy.Add(*(c * t**j for j, c in enumerate(coefficients) if c))


def longest_piece_tail(n: int, x: float | sympy.Expr) -> float | sympy.Expr:
    """P_n(max(x_1, …, x_n) > x): n − 1 uniform cuts of [0, 1], longest of the n pieces.

    The inclusion–exclusion sum of kexue.fm/archives/9324 (section "容斥原理"),
    Σ_{k ≥ 1, 1 − kx > 0} (−1)^{k−1} C(n, k) (1 − kx)^{n−1}, equal to 1 for x <= 1/n.

    Parameters
    ----------
    n
        Number of pieces, an integer >= 1.
    x
        Threshold in [0, 1]: a float (the result is a float, summed exactly and rounded once)
        or an exact SymPy number (the result is exact, e.g. ``Rational``).
    """
    n = _check_count(n, "n")
    if isinstance(x, sympy.Basic):
        x = _sympy_number(x, "x")
        if _decide_positive(-x) or _decide_positive(x - 1):
            raise ValueError(f"`x` must be a real number in [0, 1], got {x}")
        _check_sympy_size(n, 1 - x, "x", x)
        return _tail_sympy(n, 1 - x)
    value = _real_float(x, "x", "[0, 1]")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"`x` must be a real number in [0, 1], got {value}")
    shortcut = _decided(n, 1.0 - value, "x", value)
    if shortcut is not None:
        return shortcut
    return float(_tail_fraction(n, 1 - Fraction(value)))


def sector_probability(n: int, theta: float | sympy.Expr) -> float | sympy.Expr:
    """Probability that n uniform points in a disk lie in one sector of central angle θ.

    Equals P_n(max piece > 1 − θ/2π) (see :func:`longest_piece_tail`): n(θ/2π)^{n−1} for
    θ <= π, a longer alternating sum for θ > π, and 1 once θ >= 2π(1 − 1/n). One point always
    fits (the result is 1 for n = 1, even at θ = 0).

    Parameters
    ----------
    n
        Number of points, an integer >= 1.
    theta
        Central angle in radians, 0 <= θ <= 2π. A float gives a float (exact sum, rounded once,
        accurate to round-off for every n); a SymPy number such as ``sympy.pi * 6 / 5`` gives
        an exact SymPy number (``Rational(102, 125)`` for n = 4).

    Examples
    --------
    >>> sector_probability(4, sympy.pi)  # four ducks in a semicircle
    1/2
    """
    n = _check_count(n, "n")
    if isinstance(theta, sympy.Basic):
        theta = _sympy_number(theta, "theta")
        if _decide_positive(-theta) or _decide_positive(theta - 2 * sympy.pi):
            raise ValueError(f"`theta` must be a real number in [0, 2*pi], got {theta}")
        _check_sympy_size(n, theta / (2 * sympy.pi), "theta", theta)
        return _tail_sympy(n, theta / (2 * sympy.pi))
    value = _real_float(theta, "theta", "[0, 2*pi]")
    if not 0.0 <= value <= _TWO_PI:
        raise ValueError(f"`theta` must be a real number in [0, 2*pi], got {value}")
    shortcut = _decided(n, value / _TWO_PI, "theta", value)
    if shortcut is not None:
        return shortcut
    return float(_tail_fraction(n, Fraction(value) / Fraction(_TWO_PI)))


def sector_breakpoints(n: int) -> tuple[sympy.Expr, ...]:
    """The angles θ_k = 2π(1 − 1/k), k = 2, …, n, where P(n, θ) changes polynomial piece.

    For θ in (θ_k, θ_{k+1}] the sum has k terms; from θ_n = 2π(1 − 1/n) on, P = 1.
    ``n`` is at most :data:`MAX_BREAKPOINTS_N`.
    """
    n = _check_count(n, "n", maximum=MAX_BREAKPOINTS_N)
    return tuple(2 * sympy.pi * (1 - sympy.Rational(1, k)) for k in range(2, n + 1))


def expected_longest_piece(n: int) -> sympy.Rational:
    """E[max(x_1, …, x_n)] = (1/n) Σ_{k=1}^{n} 1/k for n − 1 uniform cuts of [0, 1].

    Extension (ours): the integral ∫_0^1 P_n(max > x) dx of the article's tail. ``n`` is at
    most :data:`MAX_HARMONIC_N`.
    """
    n = _check_count(n, "n", maximum=MAX_HARMONIC_N)
    return sympy.harmonic(n) / n


def wendel_probability(n: int, d: int) -> sympy.Rational:
    """Wendel (1962): n i.i.d. symmetric points in R^d lie in a common half-space through 0
    (a hemisphere of S^{d−1}) with probability 2^{−n+1} Σ_{k=0}^{d−1} C(n − 1, k).

    Extension (ours). For d = 2 this is n / 2^{n−1}, the semicircle case of the article.
    ``n`` is at most :data:`MAX_WENDEL_N`; any d >= n gives 1 (the sum of all C(n − 1, k)).
    """
    n = _check_count(n, "n", maximum=MAX_WENDEL_N)
    d = _check_count(d, "d")
    if d >= n:
        total = 2 ** (n - 1)  # Σ_k C(n − 1, k) over every k
    else:
        total, term = 0, 1  # term = C(n − 1, k), updated exactly
        for k in range(d):
            total += term
            term = term * (n - 1 - k) // (k + 1)
    return sympy.Rational(total, 2 ** (n - 1))


# -- geometry and Monte Carlo --------------------------------------------------------------------
def sample_ball(n: int, d: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """``samples`` independent sets of n points uniform in the unit ball of R^d.

    Rejection from the cube [−1, 1]^d: the sampler knows nothing about polar coordinates, so the
    uniformity of the angles is a result to check, not an assumption. Returns an array of shape
    ``(samples, n, d)``; d is at most :data:`MAX_BALL_DIM`.
    """
    n = _check_count(n, "n")
    d = _check_count(d, "d")
    if d > MAX_BALL_DIM:
        raise ValueError(f"`d` must be an integer in [1, {MAX_BALL_DIM}], got {d}")
    samples = _check_count(samples, "samples")
    _check_rng(rng)
    needed = samples * n
    acceptance = math.pi ** (d / 2) / math.gamma(d / 2 + 1) / 2**d
    if (needed / acceptance * 1.05 + 16) * d > MAX_DRAW_ELEMENTS:
        raise ValueError(
            f"`samples` * `n` = {samples} * {n} is too large for d = {d}: the cube draw would "
            f"hold {needed / acceptance * 1.05 * d:.3g} values; the limit is {MAX_DRAW_ELEMENTS} "
            f"(use the Monte Carlo functions' `batch` to split the work)"
        )
    chunks, have = [], 0
    while have < needed:
        draw = int((needed - have) / acceptance * 1.05) + 16
        cube = rng.uniform(-1.0, 1.0, size=(draw, d))
        inside = cube[np.einsum("ij,ij->i", cube, cube) <= 1.0]
        chunks.append(inside)
        have += len(inside)
    return np.concatenate(chunks)[:needed].reshape(samples, n, d)


def covering_sector(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The smallest sector with apex at the centre that holds all the points, per set.

    ``points`` has shape ``(..., n, 2)``. The polar angles cut the circle into n arcs; the
    sector is the complement of the largest arc. Returns ``(start, width)``, arrays of shape
    ``(...)``: the sector is the angles from ``start`` to ``start + width`` counter-clockwise,
    with ``start`` in [0, 2π) and ``width`` = 2π − (largest arc) in [0, 2π).
    """
    pts = real_array(points, "points")
    if pts.ndim < 2 or pts.shape[-1] != 2 or pts.shape[-2] < 1:
        raise ValueError(f"`points` must have shape (..., n, 2) with n >= 1, got {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError("`points` must be finite")
    angles = np.sort(np.mod(np.arctan2(pts[..., 1], pts[..., 0]), _TWO_PI), axis=-1)
    wrapped = np.concatenate([angles, angles[..., :1] + _TWO_PI], axis=-1)
    arcs = np.diff(wrapped, axis=-1)  # arc i runs from angle i to angle i + 1 (mod n)
    widest = np.argmax(arcs, axis=-1)[..., None]
    largest = np.take_along_axis(arcs, widest, axis=-1)[..., 0]
    start = np.mod(np.take_along_axis(wrapped, widest + 1, axis=-1)[..., 0], _TWO_PI)
    # A single point gives 2π − (a + 2π − a), which may round to −1e-16: the width is >= 0.
    return start, np.maximum(_TWO_PI - largest, 0.0)


def _check_draw(n: int, d: int, size: int) -> None:
    """Refuse a Monte Carlo batch whose cube draw in :func:`sample_ball` would be too large."""
    acceptance = math.pi ** (d / 2) / math.gamma(d / 2 + 1) / 2**d
    if (size * n / acceptance * 1.05 + 16) * d > MAX_DRAW_ELEMENTS:
        raise ValueError(
            f"`batch` * `n` = {size} * {n} is too large: one batch would draw "
            f"{size * n / acceptance * 1.05 * d:.3g} values; the limit is {MAX_DRAW_ELEMENTS}"
        )


def _batches(samples: int, batch: int, progress: bool, what: str) -> list[int]:
    sizes = [batch] * (samples // batch) + ([samples % batch] if samples % batch else [])
    return list(tqdm(sizes, desc=what, disable=not progress))


def _binomial_estimate(hits: np.ndarray, samples: int) -> Estimate:
    p = hits / samples
    se = np.sqrt(p * (1.0 - p) / samples)
    if p.ndim == 0:
        return Estimate(float(p), float(se))
    return Estimate(p, se)


def sector_probability_mc(
    n: int,
    theta: float | np.ndarray,
    samples: int,
    rng: np.random.Generator,
    *,
    batch: int = 50_000,
    progress: bool = True,
) -> Estimate:
    """Monte Carlo estimate of :func:`sector_probability` with points drawn in the disk itself.

    Each of ``samples`` sets of n points is drawn uniformly in the unit disk
    (:func:`sample_ball`); the set fits in a sector of angle θ iff its smallest covering sector
    (:func:`covering_sector`) has width <= θ. ``theta`` may be an array of angles, all judged on
    the same samples. Returns an :class:`Estimate` (value and binomial standard error) shaped
    like ``theta``.
    """
    n = _check_count(n, "n")
    if theta is None or isinstance(theta, bool | str | bytes):
        raise ValueError(f"`theta` must hold real numbers in [0, 2*pi], got {theta!r}")
    thetas = real_array(theta, "theta")
    if not np.isfinite(thetas).all() or (thetas < 0).any() or (thetas > _TWO_PI).any():
        raise ValueError(f"`theta` must hold real numbers in [0, 2*pi], got {theta!r}")
    samples = _check_count(samples, "samples", maximum=MAX_SAMPLES)
    batch = _check_count(batch, "batch")
    _check_rng(rng)
    _check_draw(n, 2, min(batch, samples))
    hits = np.zeros(thetas.shape, dtype=np.int64)
    for size in _batches(samples, batch, progress, "sector Monte Carlo"):
        _, width = covering_sector(sample_ball(n, 2, size, rng))
        hits += (width[:, None] <= thetas.reshape(1, -1)).sum(axis=0).reshape(thetas.shape)
    return _binomial_estimate(hits, samples)


def _det(matrices: np.ndarray) -> np.ndarray:
    """Determinants of a stack of m × m matrices; closed forms for m <= 2 (the common case)."""
    m = matrices.shape[-1]
    if m == 0:
        return np.ones(matrices.shape[:-2])
    if m == 1:
        return matrices[..., 0, 0]
    if m == 2:
        return matrices[..., 0, 0] * matrices[..., 1, 1] - matrices[..., 0, 1] * matrices[..., 1, 0]
    return np.linalg.det(matrices)


def in_common_hemisphere(points: np.ndarray) -> np.ndarray:
    """Whether each set of n points in R^d lies in an open half-space {y : u·y > 0}.

    ``points`` has shape ``(..., n, d)``; returns a boolean array of shape ``(...)``. The test is
    exact for points in general position (probability one for continuous laws): if n >= d and
    the points span R^d, the cone {u : u·x_i >= 0 for all i} is pointed, so it is nonzero iff it
    has an extreme ray, and each extreme ray is orthogonal to d − 1 of the points. The method
    therefore tries, for every (d − 1)-subset, the normal u of its span (cofactor vector, the
    cross product when d = 3) and accepts if all other points lie strictly on one side. Sets
    with n < d always fit. Cost: C(n, d − 1) determinants per set.
    """
    pts = real_array(points, "points")
    if pts.ndim < 2 or pts.shape[-2] < 1 or pts.shape[-1] < 1:
        raise ValueError(f"`points` must have shape (..., n, d) with n, d >= 1, got {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError("`points` must be finite")
    n, d = pts.shape[-2:]
    if n >= d and math.comb(n, d - 1) > MAX_SUBSETS:
        raise ValueError(
            f"`points` has n = {n} points in d = {d} dimensions: the test would try "
            f"C(n, d - 1) = {math.comb(n, d - 1)} subsets; the limit is {MAX_SUBSETS}"
        )
    result = np.zeros(pts.shape[:-2], dtype=bool)
    if n < d:
        return ~result
    columns = [[c for c in range(d) if c != j] for j in range(d)]
    for subset in combinations(range(n), d - 1):
        face = pts[..., list(subset), :]  # (..., d - 1, d)
        normal = np.stack(
            [(-1) ** j * _det(face[..., cols]) for j, cols in enumerate(columns)], axis=-1
        )
        others = [i for i in range(n) if i not in subset]
        dots = np.einsum("...id,...d->...i", pts[..., others, :], normal)
        result |= (dots > 0).all(axis=-1) | (dots < 0).all(axis=-1)
    return result


def hemisphere_probability_mc(
    n: int,
    d: int,
    samples: int,
    rng: np.random.Generator,
    *,
    batch: int = 50_000,
    progress: bool = True,
) -> Estimate:
    """Monte Carlo estimate of :func:`wendel_probability`: n uniform points in the unit ball of
    R^d (:func:`sample_ball`), tested with :func:`in_common_hemisphere`."""
    n = _check_count(n, "n")
    d = _check_count(d, "d")
    if d > MAX_BALL_DIM:
        raise ValueError(f"`d` must be an integer in [1, {MAX_BALL_DIM}], got {d}")
    samples = _check_count(samples, "samples", maximum=MAX_SAMPLES)
    batch = _check_count(batch, "batch")
    _check_rng(rng)
    _check_draw(n, d, min(batch, samples))
    if n >= d and math.comb(n, d - 1) > MAX_SUBSETS:
        raise ValueError(
            f"`n` = {n} is too large for d = {d}: the hemisphere test would try C(n, d - 1) = "
            f"{math.comb(n, d - 1)} subsets; the limit is {MAX_SUBSETS}"
        )
    hits = 0
    for size in _batches(samples, batch, progress, "hemisphere Monte Carlo"):
        hits += int(in_common_hemisphere(sample_ball(n, d, size, rng)).sum())
    return _binomial_estimate(np.asarray(hits), samples)
