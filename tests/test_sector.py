"""Tests of kexue_nb.sector: exact sector probabilities, geometry helpers and Monte Carlo."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import sympy
from scipy import integrate, optimize

from kexue_nb.sector import (
    Estimate,
    covering_sector,
    expected_longest_piece,
    hemisphere_probability_mc,
    in_common_hemisphere,
    longest_piece_tail,
    sample_ball,
    sector_breakpoints,
    sector_probability,
    sector_probability_mc,
    wendel_probability,
)

PI = sympy.pi


# -- sector_probability: known values ------------------------------------------------------------
def test_four_ducks_in_a_semicircle() -> None:
    assert sector_probability(4, PI) == sympy.Rational(1, 2)
    assert sector_probability(4, math.pi) == 0.5


def test_six_fifths_pi_gives_102_over_125() -> None:
    exact = sector_probability(4, PI * 6 / 5)
    assert exact == sympy.Rational(102, 125)
    assert isinstance(exact, sympy.Rational)
    assert sector_probability(4, 6 * math.pi / 5) == pytest.approx(102 / 125, rel=1e-15)


@pytest.mark.parametrize("theta", [0.0, 1.0, math.pi, 2 * math.pi, sympy.Integer(0), PI / 3])
def test_one_point_always_fits(theta) -> None:
    assert sector_probability(1, theta) == 1


@pytest.mark.parametrize("n", [1, 2, 3, 7, 20, 50])
def test_full_circle_and_zero_angle(n: int) -> None:
    assert sector_probability(n, 2 * math.pi) == 1.0
    assert sector_probability(n, 2 * PI) == 1
    expected_at_zero = 1 if n == 1 else 0
    assert sector_probability(n, 0.0) == expected_at_zero
    assert sector_probability(n, sympy.Integer(0)) == expected_at_zero


def test_types_follow_the_input() -> None:
    assert type(sector_probability(5, 4.0)) is float
    assert type(sector_probability(np.int64(5), np.float64(4.0))) is float
    assert isinstance(sector_probability(5, PI * 3 / 2), sympy.Rational)
    # theta = 2 radians is not a rational multiple of pi: the answer is exact in 1/pi
    value = sector_probability(4, sympy.Integer(2))
    assert sympy.simplify(value - 4 / PI**3) == 0


@pytest.mark.parametrize("n", [2, 3, 5, 10, 20])
def test_closed_form_for_theta_at_most_pi(n: int) -> None:
    thetas = np.linspace(0.0, math.pi, 41)
    got = np.array([sector_probability(n, th) for th in thetas])
    want = n * (thetas / (2 * math.pi)) ** (n - 1)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)
    for t in (sympy.Rational(1, 7), sympy.Rational(1, 3), sympy.Rational(1, 2)):
        assert sector_probability(n, 2 * PI * t) == n * t ** (n - 1)


def test_tiny_angles_keep_relative_accuracy() -> None:
    theta = 1e-12
    assert sector_probability(3, theta) == pytest.approx(
        3 * (theta / (2 * math.pi)) ** 2, rel=1e-14
    )


def test_exact_and_float_paths_agree_beyond_pi() -> None:
    for n in (3, 4, 6, 9):
        for t in (sympy.Rational(11, 20), sympy.Rational(2, 3), sympy.Rational(4, 5)):
            exact = sector_probability(n, 2 * PI * t)
            assert sector_probability(n, 2 * math.pi * float(t)) == pytest.approx(
                float(exact), rel=1e-14
            )


def test_longest_piece_tail_matches_the_hand_sum() -> None:
    n, x = 5, sympy.Rational(3, 10)  # 1 - kx > 0 for k = 1, 2, 3
    hand = sum((-1) ** (k - 1) * sympy.binomial(n, k) * (1 - k * x) ** (n - 1) for k in (1, 2, 3))
    assert longest_piece_tail(n, x) == hand
    assert longest_piece_tail(n, 0.3) == pytest.approx(float(hand), rel=1e-14)
    assert longest_piece_tail(n, 0.0) == 1.0
    assert longest_piece_tail(n, 1.0) == 0.0
    assert sector_probability(n, 2 * PI * (1 - x)) == hand


# -- sector_probability: structure ---------------------------------------------------------------
@pytest.mark.parametrize("n", [3, 5, 8])
def test_continuous_at_the_breakpoints(n: int) -> None:
    breaks = sector_breakpoints(n)
    assert breaks == tuple(2 * PI * (1 - sympy.Rational(1, k)) for k in range(2, n + 1))
    h = 1e-7
    for theta_k in breaks:
        at = float(theta_k)
        left, right = sector_probability(n, at - h), sector_probability(n, min(at + h, 2 * math.pi))
        # |P'| <= n (n-1) / (2 pi) < n^2, so a jump would show above this
        assert abs(right - left) <= 2 * h * n**2
        assert min(left, right) <= sector_probability(n, at) <= max(left, right)


@pytest.mark.parametrize("n", [2, 3, 4, 7, 12, 30, 50])
def test_monotone_in_theta(n: int) -> None:
    thetas = np.linspace(0.0, 2 * math.pi, 301)
    values = np.array([sector_probability(n, th) for th in thetas])
    assert np.all(np.diff(values) >= 0)
    assert values[0] == 0 and values[-1] == 1


def test_equals_one_from_the_last_breakpoint_on() -> None:
    for n in range(2, 13):
        last = 2 * PI * (1 - sympy.Rational(1, n))
        assert sector_probability(n, last) == 1
        assert sector_probability(n, last - sympy.Rational(1, 10**6)) < 1


def test_float_path_is_accurate_at_n_50() -> None:
    n = 50
    for t in (
        sympy.Rational(11, 20),
        sympy.Rational(3, 4),
        sympy.Rational(97, 100),
        sympy.Rational(39, 40),
    ):
        exact = sector_probability(n, 2 * PI * t)
        got = sector_probability(n, 2 * math.pi * float(t))
        # theta/2pi is rounded twice on input; P amplifies it at most (n - 1)-fold
        assert got == pytest.approx(float(exact), rel=(2 * n + 1) * 2.0**-53)
    # the naive float64 alternating sum is off by ~1e-12 here (terms of size 1e5 cancel)
    x = 1 / 40
    naive = sum((-1) ** (k - 1) * math.comb(n, k) * (1 - k * x) ** (n - 1) for k in range(1, 40))
    assert abs(naive - sector_probability(n, 2 * math.pi * (1 - x))) > 1e-13


@pytest.mark.parametrize("n", [2, 3, 7, 50, 200])
@pytest.mark.parametrize("t", [Fraction(1, 3), Fraction(997, 1000), Fraction(6, 7),
                               Fraction(2**52 + 1, 2**53)])
def test_common_denominator_sum_is_the_fraction_sum(n: int, t: Fraction) -> None:
    """The integer-numerator sum equals adding one Fraction per term (the definition)."""
    from kexue_nb.sector import _tail_fraction

    expected = Fraction(1)
    if t < 1 - Fraction(1, n):
        expected = sum(
            ((-1) ** (k - 1) * math.comb(n, k) * (1 - k + k * t) ** (n - 1)
             for k in range(1, n + 1) if 1 - k + k * t > 0),
            Fraction(0),
        )
    assert _tail_fraction(n, t) == expected


# -- extensions ----------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 3, 6, 10])
def test_expected_longest_piece_integrates_the_tail(n: int) -> None:
    points = [1 / k for k in range(2, n + 1)]
    value, _ = integrate.quad(lambda x: longest_piece_tail(n, x), 0, 1, points=points or None)
    assert value == pytest.approx(float(expected_longest_piece(n)), abs=1e-10)
    assert expected_longest_piece(2) == sympy.Rational(3, 4)


def test_wendel_known_values() -> None:
    for n in range(1, 15):
        assert wendel_probability(n, 2) == sympy.Rational(n, 2 ** (n - 1))
        assert wendel_probability(n, 2) == sector_probability(n, PI)
        assert wendel_probability(n, 1) == sympy.Rational(1, 2 ** (n - 1))
    assert wendel_probability(4, 3) == sympy.Rational(7, 8)
    assert wendel_probability(3, 3) == 1 and wendel_probability(2, 5) == 1


# -- geometry ------------------------------------------------------------------------------------
def test_sample_ball_is_uniform_in_the_ball() -> None:
    rng = np.random.default_rng(1)
    for d in (1, 2, 3):
        pts = sample_ball(3, d, 20_000, rng)
        assert pts.shape == (20_000, 3, d)
        sq = np.einsum("...i,...i->...", pts, pts).ravel()
        assert sq.max() <= 1.0
        # |X|^2 has mean d/(d+2) for X uniform in the unit ball
        assert abs(sq.mean() - d / (d + 2)) <= 4 * sq.std() / math.sqrt(sq.size)


def test_covering_sector_known_configuration() -> None:
    pts = np.array([[2.0, 0.0], [0.0, 0.5], [-1.0, 0.0]])  # angles 0, pi/2, pi
    start, width = covering_sector(pts)
    assert start == pytest.approx(0.0) and width == pytest.approx(math.pi)
    start, width = covering_sector(np.array([[1.0, -0.1], [-1.0, -0.1]]))
    assert width == pytest.approx(math.pi - 2 * math.atan(0.1), rel=1e-12)
    assert start == pytest.approx(math.pi + math.atan(0.1), rel=1e-12)
    assert covering_sector(pts[:1])[1] == 0.0


def test_covering_sector_is_the_smallest_sector() -> None:
    rng = np.random.default_rng(2)
    pts = sample_ball(5, 2, 300, rng)
    start, width = covering_sector(pts)
    angles = np.mod(np.arctan2(pts[..., 1], pts[..., 0]), 2 * math.pi)
    # brute force: a smallest sector starts at one of the points
    spans = np.mod(angles[:, None, :] - angles[:, :, None], 2 * math.pi).max(axis=-1)
    np.testing.assert_allclose(width, spans.min(axis=-1), atol=1e-12)
    offset = np.mod(angles - start[:, None], 2 * math.pi)
    offset[offset > 2 * math.pi - 1e-12] = 0.0  # the point at the start, after round-off
    assert np.all(offset <= width[:, None] + 1e-12)


def _hemisphere_lp(points: np.ndarray) -> bool:
    """Peer test: max t subject to u·x_i >= t, -1 <= u <= 1; the points fit iff t > 0."""
    n, d = points.shape
    cost = np.zeros(d + 1)
    cost[-1] = -1.0
    a_ub = np.hstack([-points, np.ones((n, 1))])
    res = optimize.linprog(
        cost, A_ub=a_ub, b_ub=np.zeros(n), bounds=[(-1, 1)] * d + [(None, 1)], method="highs"
    )
    return bool(res.status == 0 and -res.fun > 1e-9)


@pytest.mark.parametrize(("n", "d"), [(5, 3), (7, 3), (6, 4)])
def test_in_common_hemisphere_agrees_with_linear_programming(n: int, d: int) -> None:
    rng = np.random.default_rng(3)
    pts = sample_ball(n, d, 150, rng)
    got = in_common_hemisphere(pts)
    want = np.array([_hemisphere_lp(p) for p in pts])
    np.testing.assert_array_equal(got, want)
    assert 0 < got.sum() < len(got)  # both outcomes occur, so the comparison means something


def test_in_common_hemisphere_in_the_plane_is_a_half_disk() -> None:
    rng = np.random.default_rng(4)
    pts = sample_ball(4, 2, 2_000, rng)
    _, width = covering_sector(pts)
    np.testing.assert_array_equal(in_common_hemisphere(pts), width < math.pi)
    assert in_common_hemisphere(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))  # n < d
    assert not in_common_hemisphere(np.array([[1.0], [-2.0]]))
    assert in_common_hemisphere(np.array([[1.0], [2.0]]))


# -- Monte Carlo ---------------------------------------------------------------------------------
def test_sector_monte_carlo_within_four_standard_errors() -> None:
    rng = np.random.default_rng(5)
    thetas = np.array([0.7, 1.0, 1.3, 1.6]) * math.pi
    est = sector_probability_mc(5, thetas, 40_000, rng, batch=15_000, progress=False)
    assert isinstance(est, Estimate) and est.value.shape == thetas.shape
    exact = np.array([sector_probability(5, th) for th in thetas])
    assert np.all(np.abs(est.value - exact) <= 4 * est.stderr)
    single = sector_probability_mc(4, math.pi, 40_000, rng, progress=False)
    assert isinstance(single.value, float)
    assert abs(single.value - 0.5) <= 4 * single.stderr
    assert single.stderr == pytest.approx(math.sqrt(0.25 / 40_000), rel=0.01)


def test_sector_monte_carlo_is_reproducible() -> None:
    a = sector_probability_mc(4, 3.0, 5_000, np.random.default_rng(9), progress=False)
    b = sector_probability_mc(4, 3.0, 5_000, np.random.default_rng(9), progress=False)
    assert a == b


@pytest.mark.parametrize(("n", "d"), [(5, 2), (6, 3)])
def test_hemisphere_monte_carlo_within_four_standard_errors(n: int, d: int) -> None:
    rng = np.random.default_rng(6)
    est = hemisphere_probability_mc(n, d, 20_000, rng, batch=7_000, progress=False)
    assert abs(est.value - float(wendel_probability(n, d))) <= 4 * est.stderr


# -- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, -3, 2.5, 4.0, True, "4", sympy.Rational(5, 2)])
def test_bad_n(n) -> None:
    with pytest.raises(ValueError, match=r"`n` must be an integer >= 1"):
        sector_probability(n, 1.0)
    with pytest.raises(ValueError, match=r"`n` must be an integer >= 1"):
        longest_piece_tail(n, 0.5)
    with pytest.raises(ValueError, match=r"`n` must be an integer >= 1"):
        sector_breakpoints(n)
    with pytest.raises(ValueError, match=r"`n` must be an integer >= 1"):
        expected_longest_piece(n)
    with pytest.raises(ValueError, match=r"`n` must be an integer >= 1"):
        wendel_probability(n, 2)


@pytest.mark.parametrize(
    "theta",
    [-0.1, 2 * math.pi + 1e-9, math.inf, math.nan, -PI / 4, 2 * PI + sympy.Rational(1, 10**9)],
)
def test_bad_theta(theta) -> None:
    with pytest.raises(ValueError, match=r"`theta` must be a real number in \[0, 2\*pi\]"):
        sector_probability(4, theta)


@pytest.mark.parametrize("theta", ["1.0", sympy.Symbol("t"), sympy.I, None])
def test_theta_of_the_wrong_kind(theta) -> None:
    with pytest.raises(ValueError, match=r"`theta` must be a real number"):
        sector_probability(4, theta)


@pytest.mark.parametrize("x", [-0.5, 1.5, sympy.Rational(3, 2), math.nan])
def test_bad_x(x) -> None:
    with pytest.raises(ValueError, match=r"`x` must be a real number in \[0, 1\]"):
        longest_piece_tail(4, x)


def test_bad_dimension_and_samples() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"`d` must be an integer >= 1"):
        wendel_probability(3, 0)
    with pytest.raises(ValueError, match=r"`d` must be an integer in \[1, 8\]"):
        sample_ball(3, 9, 10, rng)
    with pytest.raises(ValueError, match=r"`d` must be an integer in \[1, 8\]"):
        hemisphere_probability_mc(3, 9, 10, rng, progress=False)
    with pytest.raises(ValueError, match=r"`samples` must be an integer >= 1"):
        sample_ball(3, 2, 0, rng)
    with pytest.raises(ValueError, match=r"`samples` must be an integer >= 1"):
        sector_probability_mc(3, 1.0, 0, rng, progress=False)
    with pytest.raises(ValueError, match=r"`batch` must be an integer >= 1"):
        hemisphere_probability_mc(3, 2, 10, rng, batch=0, progress=False)


def test_bad_generator_and_mc_theta() -> None:
    with pytest.raises(ValueError, match=r"`rng` must be a numpy.random.Generator"):
        sample_ball(3, 2, 10, 0)
    with pytest.raises(ValueError, match=r"`rng` must be a numpy.random.Generator"):
        sector_probability_mc(3, 1.0, 10, np.random.RandomState(0), progress=False)
    with pytest.raises(ValueError, match=r"`rng` must be a numpy.random.Generator"):
        hemisphere_probability_mc(3, 2, 10, None, progress=False)
    with pytest.raises(ValueError, match=r"`theta` must hold real numbers in \[0, 2\*pi\]"):
        sector_probability_mc(3, [1.0, 7.0], 10, np.random.default_rng(0), progress=False)


def test_bad_points() -> None:
    with pytest.raises(ValueError, match=r"`points` must have shape \(\.\.\., n, 2\)"):
        covering_sector(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"`points` must (be finite|not contain NaN)"):
        covering_sector(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match=r"`points` must have shape \(\.\.\., n, d\)"):
        in_common_hemisphere(np.zeros(3))
    with pytest.raises(ValueError, match=r"`points` must be finite"):
        in_common_hemisphere(np.array([[np.inf, 1.0]]))
