"""Faults for ``ducks-in-a-sector``: plausible bugs in ``kexue_nb.sector`` that the chapter's
ledger must catch.

- ``ducks-exponent-n``: the inclusion–exclusion terms raised to the power n instead of n − 1
  (in the exact rational sum that both the float and the SymPy paths use);
- ``ducks-all-terms``: the condition 1 − kx > 0 dropped, so all n terms are summed (negative
  bases included); by the alternating identity the sum is then 1 at every angle below
  saturation;
- ``ducks-single-term-past-pi``: the θ ≤ π closed form n(θ/2π)^{n−1}, clipped at 1, used for
  every θ, so the alternating terms that appear past π are missing;
- ``ducks-radius-uniform``: points sampled with a uniform radius r = U instead of U^{1/d} (√U in
  the disk), so they crowd towards the centre; the angles stay uniform, which is why only the
  chapter's claim on the radial law can see it;
- ``ducks-arc-no-wrap``: the smallest covering sector computed from the gaps between sorted
  angles without the arc that wraps from the last angle back to the first;
- ``ducks-breakpoints-swapped``: the breakpoints 2π/k instead of 2π(1 − 1/k) (x = 1/k taken
  for θ/2π);
- ``ducks-wendel-binomial-n``: Wendel's sum with C(n, k) in place of C(n − 1, k).
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np
import sympy

from kexue_nb.tools.faults import Fault

__all__ = ["FAULTS"]

_TWO_PI = 2.0 * math.pi


def _tail_fraction_exponent_n(n: int, t: Fraction) -> Fraction:
    """The exact tail sum with (1 − kx)^n instead of (1 − kx)^{n−1}."""
    if n == 1 or t >= 1 - Fraction(1, n):
        return Fraction(1)
    total = Fraction(0)
    for k in range(1, n + 1):
        base = 1 - k + k * t
        if base <= 0:
            break
        total += (-1) ** (k - 1) * math.comb(n, k) * base**n
    return total


def _tail_fraction_all_terms(n: int, t: Fraction) -> Fraction:
    """The exact tail sum over every k = 1, …, n, the bases 1 − kx <= 0 included."""
    if n == 1 or t >= 1 - Fraction(1, n):
        return Fraction(1)
    return sum(
        ((-1) ** (k - 1) * math.comb(n, k) * (1 - k + k * t) ** (n - 1) for k in range(1, n + 1)),
        Fraction(0),
    )


def _all_terms(original):
    return functools.wraps(original)(_tail_fraction_all_terms)


def _exponent_n(original):
    return functools.wraps(original)(_tail_fraction_exponent_n)


def _single_term(original):
    @functools.wraps(original)
    def sector_probability(n, theta):
        value = original(n, theta)  # keeps the validation
        if n == 1:
            return value
        if isinstance(theta, sympy.Basic):
            t = sympy.sympify(theta) / (2 * sympy.pi)
            return sympy.Min(1, n * t ** (n - 1))
        return min(1.0, n * (float(theta) / _TWO_PI) ** (n - 1))

    return sector_probability


def _radius_uniform(original):
    @functools.wraps(original)
    def sample_ball(n, d, samples, rng):
        points = original(n, d, samples, rng)  # uniform directions, validated input
        directions = points / np.linalg.norm(points, axis=-1, keepdims=True)
        return directions * rng.uniform(size=points.shape[:-1] + (1,))

    return sample_ball


def _no_wrap(original):
    @functools.wraps(original)
    def covering_sector(points):
        pts = np.asarray(points, dtype=float)
        if pts.ndim < 2 or pts.shape[-1] != 2 or pts.shape[-2] < 2:
            return original(points)
        angles = np.sort(np.mod(np.arctan2(pts[..., 1], pts[..., 0]), _TWO_PI), axis=-1)
        arcs = np.diff(angles, axis=-1)  # the arc from the last angle to the first is forgotten
        widest = np.argmax(arcs, axis=-1)[..., None]
        largest = np.take_along_axis(arcs, widest, axis=-1)[..., 0]
        start = np.take_along_axis(angles, widest + 1, axis=-1)[..., 0]
        return start, _TWO_PI - largest

    return covering_sector


def _breakpoints_swapped(original):
    @functools.wraps(original)
    def sector_breakpoints(n):
        original(n)  # keeps the validation
        return tuple(2 * sympy.pi / k for k in range(2, n + 1))

    return sector_breakpoints


def _wendel_binomial_n(original):
    @functools.wraps(original)
    def wendel_probability(n, d):
        original(n, d)  # keeps the validation
        return sympy.Rational(sum(math.comb(n, k) for k in range(d)), 2 ** (n - 1))

    return wendel_probability


_CHAPTER = "ducks-in-a-sector"
FAULTS = [
    Fault(
        name="ducks-exponent-n",
        chapter=_CHAPTER,
        target="kexue_nb.sector:_tail_fraction",
        description="inclusion–exclusion terms (1 − kx)^n instead of (1 − kx)^(n−1)",
        patch=_exponent_n,
    ),
    Fault(
        name="ducks-all-terms",
        chapter=_CHAPTER,
        target="kexue_nb.sector:_tail_fraction",
        description="condition 1 − kx > 0 dropped: all n terms summed, which gives 1 everywhere",
        patch=_all_terms,
    ),
    Fault(
        name="ducks-single-term-past-pi",
        chapter=_CHAPTER,
        target="kexue_nb.sector:sector_probability",
        description="the θ ≤ π form min(1, n(θ/2π)^(n−1)) used for every θ, also past π",
        patch=_single_term,
    ),
    Fault(
        name="ducks-radius-uniform",
        chapter=_CHAPTER,
        target="kexue_nb.sector:sample_ball",
        description="radius drawn uniform (r = U) instead of U^(1/d), e.g. √U in the disk",
        patch=_radius_uniform,
    ),
    Fault(
        name="ducks-arc-no-wrap",
        chapter=_CHAPTER,
        target="kexue_nb.sector:covering_sector",
        description="covering sector ignores the arc that wraps from the last angle to the first",
        patch=_no_wrap,
    ),
    Fault(
        name="ducks-breakpoints-swapped",
        chapter=_CHAPTER,
        target="kexue_nb.sector:sector_breakpoints",
        description="breakpoints 2π/k instead of 2π(1 − 1/k)",
        patch=_breakpoints_swapped,
    ),
    Fault(
        name="ducks-wendel-binomial-n",
        chapter=_CHAPTER,
        target="kexue_nb.sector:wendel_probability",
        description="Wendel's sum with C(n, k) in place of C(n − 1, k)",
        patch=_wendel_binomial_n,
    ),
]
