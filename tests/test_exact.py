"""Tests for kexue_nb.exact: EXACT's expected accuracy and the article's toy objectives."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from scipy import integrate, special, stats

from kexue_nb.exact import (
    binary_expected_accuracy,
    expected_accuracy,
    gauss_hermite_normal,
    toy_accuracy,
    toy_cross_entropy,
    toy_cross_entropy_optimum,
    toy_expected_accuracy,
    toy_hinge,
)

HAS_REPARAM = importlib.util.find_spec("kexue_nb.reparam") is not None


def quad_expected_accuracy(mu: np.ndarray, y: int, sigma: float) -> float:
    """p_y = ∫ φ(ε) Π_{j≠y} Φ((μ_y − μ_j)/σ + ε) dε by SciPy's adaptive quadrature."""
    d = np.delete((mu[y] - mu) / sigma, y)
    value, _ = integrate.quad(
        lambda e: stats.norm.pdf(e) * np.prod(special.ndtr(d + e)),
        -np.inf, np.inf, epsabs=1e-14, epsrel=1e-12,
    )
    return value


@pytest.fixture
def batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.normal(scale=2.0, size=(6, 5)), rng.integers(0, 5, size=6)


# -- gauss_hermite_normal ------------------------------------------------------------------------
def test_gauss_hermite_normal_moments():
    eps, w = gauss_hermite_normal(10)
    # E ε^{2m} = (2m − 1)!! is integrated exactly for degree < 20.
    for m, moment in [(0, 1.0), (1, 1.0), (2, 3.0), (3, 15.0), (4, 105.0)]:
        assert np.sum(w * eps ** (2 * m)) == pytest.approx(moment, rel=1e-12)
    assert abs(np.sum(w * eps**5)) < 1e-12


@pytest.mark.parametrize("nodes", [1, 2.5, True, "8"])
def test_gauss_hermite_normal_bad_nodes(nodes):
    with pytest.raises(ValueError, match="`nodes` must be an integer >= 2"):
        gauss_hermite_normal(nodes)


# -- binary_expected_accuracy --------------------------------------------------------------------
def test_binary_closed_form_matches_two_class_integral():
    f = np.linspace(-6.0, 6.0, 25)
    sigma = 1.7
    binary = binary_expected_accuracy(f, sigma)
    # ε_1 − ε_2 ~ N(0, 2): scores (f/√2, −f/√2) give the same law as sign(f/σ + ε).
    two_class = expected_accuracy(np.stack([f, -f], -1) / np.sqrt(2), np.zeros(25, int), sigma)
    np.testing.assert_allclose(two_class, binary, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(binary, stats.norm.cdf(f / sigma), rtol=1e-14)


def test_binary_torch_matches_numpy_and_gradient():
    f = torch.linspace(-3.0, 3.0, 7, dtype=torch.float64, requires_grad=True)
    sigma = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    p = binary_expected_accuracy(f, sigma)
    np.testing.assert_allclose(p.detach().numpy(), stats.norm.cdf(f.detach().numpy() / 0.8))
    p.sum().backward()
    # d Φ(f/σ)/df = φ(f/σ)/σ
    np.testing.assert_allclose(f.grad.numpy(), stats.norm.pdf(f.detach().numpy() / 0.8) / 0.8)
    assert torch.autograd.gradcheck(binary_expected_accuracy, (f, sigma))


def test_binary_bad_input():
    with pytest.raises(ValueError, match="`sigma` must be finite and > 0"):
        binary_expected_accuracy(1.0, 0.0)
    with pytest.raises(ValueError, match="`sigma` must be finite and > 0"):
        binary_expected_accuracy(torch.ones(2), torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match="`margin` must not contain NaN"):
        binary_expected_accuracy([0.0, np.nan])
    with pytest.raises(ValueError, match="`margin` must be a real number"):
        binary_expected_accuracy("wide")


# -- expected_accuracy ---------------------------------------------------------------------------
def test_gauss_hermite_matches_adaptive_quadrature(batch):
    mu, y = batch
    for sigma in (0.5, 1.0, 3.0):
        reference = [quad_expected_accuracy(m, int(c), sigma) for m, c in zip(mu, y, strict=True)]
        np.testing.assert_allclose(expected_accuracy(mu, y, sigma), reference, rtol=1e-9,
                                   atol=1e-14)


def test_gauss_hermite_matches_monte_carlo(batch):
    mu, y = batch
    sigma = 1.3
    rng = np.random.default_rng(7)
    draws = 200_000
    eps = rng.standard_normal((draws, *mu.shape))
    hits = (np.argmax(mu / sigma + eps, -1) == y).mean(0)
    se = np.sqrt(hits * (1 - hits) / draws) + 1 / draws
    assert np.all(np.abs(expected_accuracy(mu, y, sigma) - hits) <= 4 * se)


def test_probabilities_sum_to_one_over_labels(batch):
    mu, _ = batch
    total = sum(expected_accuracy(mu, np.full(6, c), 0.9) for c in range(5))
    np.testing.assert_allclose(total, 1.0, atol=1e-10)


def test_shift_invariance_and_scale(batch):
    mu, y = batch
    p = expected_accuracy(mu, y, 2.0)
    np.testing.assert_allclose(expected_accuracy(mu + 5.0, y, 2.0), p, rtol=1e-12)
    np.testing.assert_allclose(expected_accuracy(mu / 2.0, y, 1.0), p, rtol=1e-12)


def test_per_sample_sigma_and_log(batch):
    mu, y = batch
    sigma = np.linspace(0.5, 2.0, 6)
    p = expected_accuracy(mu, y, sigma)
    each = [expected_accuracy(mu[i], y[i], sigma[i]) for i in range(6)]
    np.testing.assert_allclose(p, each, rtol=1e-13)
    np.testing.assert_allclose(expected_accuracy(mu, y, sigma, log=True), np.log(p), rtol=1e-12)


def test_torch_matches_numpy_and_follows_dtype(batch):
    mu, y = batch
    p = expected_accuracy(mu, y, 1.5)
    p64 = expected_accuracy(torch.tensor(mu), torch.tensor(y), 1.5)
    assert p64.dtype == torch.float64 and p64.device == torch.device("cpu")
    np.testing.assert_allclose(p64.numpy(), p, rtol=1e-12)
    p32 = expected_accuracy(torch.tensor(mu, dtype=torch.float32), y, 1.5)
    assert p32.dtype == torch.float32
    np.testing.assert_allclose(p32.numpy(), p, rtol=1e-4, atol=1e-7)


def test_gradcheck_in_logits_and_sigma(batch):
    mu, y = batch
    logits = torch.tensor(mu, requires_grad=True)
    sigma = torch.tensor([0.7, 1.0, 1.3, 0.9, 2.0, 1.1], dtype=torch.float64, requires_grad=True)
    labels = torch.tensor(y)
    assert torch.autograd.gradcheck(lambda m, s: expected_accuracy(m, labels, s), (logits, sigma))


def test_gradient_matches_finite_differences(batch):
    mu, y = batch
    logits = torch.tensor(mu, requires_grad=True)
    expected_accuracy(logits, y, 1.2).sum().backward()
    h = 1e-6
    fd = np.zeros_like(mu)
    for idx in np.ndindex(mu.shape):
        step = np.zeros_like(mu)
        step[idx] = h
        plus, minus = expected_accuracy(mu + step, y, 1.2), expected_accuracy(mu - step, y, 1.2)
        fd[idx] = (plus - minus).sum()
    np.testing.assert_allclose(logits.grad.numpy(), fd / (2 * h), atol=1e-8)


@pytest.mark.skipif(not HAS_REPARAM, reason="kexue_nb.reparam is not written yet")
def test_matches_reparam_argmax_probabilities(batch):
    from kexue_nb.reparam import argmax_probabilities

    mu, y = batch
    sigma = 0.8
    all_classes = np.asarray(argmax_probabilities(mu / sigma, "normal"))
    np.testing.assert_allclose(expected_accuracy(mu, y, sigma),
                               np.take_along_axis(all_classes, y[:, None], -1)[:, 0], atol=1e-8)


def test_expected_accuracy_bad_input(batch):
    mu, y = batch
    with pytest.raises(ValueError, match="`sigma` must be finite and > 0"):
        expected_accuracy(mu, y, -1.0)
    with pytest.raises(ValueError, match="`sigma` must be finite and > 0"):
        expected_accuracy(torch.tensor(mu), y, torch.zeros(6))
    with pytest.raises(ValueError, match=r"`labels` must lie in \[0, 5\)"):
        expected_accuracy(mu, np.full(6, 5), 1.0)
    with pytest.raises(ValueError, match=r"`labels` must lie in \[0, 5\)"):
        expected_accuracy(torch.tensor(mu), torch.full((6,), -1), 1.0)
    with pytest.raises(ValueError, match=r"`labels` must have shape \(6,\)"):
        expected_accuracy(mu, y[:4], 1.0)
    with pytest.raises(ValueError, match="`labels` must be integers"):
        expected_accuracy(mu, y.astype(float), 1.0)
    with pytest.raises(ValueError, match="`logits` must have shape"):
        expected_accuracy(np.ones((3, 1)), np.zeros(3, int), 1.0)
    with pytest.raises(ValueError, match="`logits` must not contain NaN"):
        expected_accuracy(np.full((2, 3), np.nan), np.zeros(2, int), 1.0)
    with pytest.raises(ValueError, match="`logits` must be a floating-point tensor"):
        expected_accuracy(torch.ones(2, 3, dtype=torch.long), [0, 1], 1.0)
    with pytest.raises(ValueError, match="`sigma` shape"):
        expected_accuracy(mu, y, np.ones(4))
    with pytest.raises(ValueError, match="`sigma` shape"):
        expected_accuracy(torch.tensor(mu), y, torch.ones(4))


# -- the toy problem -----------------------------------------------------------------------------
def test_toy_cross_entropy_optimum_is_0700():
    b_star = toy_cross_entropy_optimum(1.0)
    assert b_star == pytest.approx(0.70009, abs=1e-5)
    grid = np.linspace(0.6, 0.8, 20001)
    assert grid[np.argmin(toy_cross_entropy(grid))] == pytest.approx(b_star, abs=2e-5)
    # the stationarity condition of the article
    lhs = special.expit(b_star - 0.25)
    assert lhs == pytest.approx(special.expit(-0.25 - b_star) + special.expit(-b_star), abs=1e-14)
    assert toy_accuracy(b_star) == pytest.approx(2 / 3)
    # the point (0.25, 1) is the one misclassified
    np.testing.assert_array_equal(toy_accuracy(b_star, per_point=True), [1.0, 1.0, 0.0])


def test_toy_accuracy_per_point():
    b = np.array([-0.1, 0.1, 0.5])
    right = toy_accuracy(b, per_point=True)
    assert right.shape == (3, 3)
    np.testing.assert_array_equal(right, [[1, 0, 1], [1, 1, 1], [1, 1, 0]])
    np.testing.assert_allclose(right.mean(-1), toy_accuracy(b))
    np.testing.assert_array_equal(toy_accuracy(0.0, per_point=True), [1, 0, 1])  # boundary: wrong
    with pytest.raises(ValueError, match="`per_point` must be a bool"):
        toy_accuracy(0.1, per_point="yes")


def test_toy_optimum_with_temperature_tends_to_max_margin():
    b = np.array([toy_cross_entropy_optimum(k) for k in (4.0, 10.0, 30.0, 60.0)])
    assert np.all((b > 0) & (b < 0.25)) and np.all(np.diff(b) < 0)
    k = np.array([30.0, 60.0])
    asymptote = 0.125 + (np.exp(-k / 4) / 2 + np.exp(-3 * k / 8)) / k
    # the next term is O(e^{−k/2}/k); brentq resolves b to about 2e-15
    assert np.all(np.abs(b[2:] - asymptote) <= 2 * np.exp(-k / 2) / k + 2e-15)
    assert np.all(np.abs(b[2:] - 0.125 - np.exp(-k / 4) / (2 * k)) > 2 * np.exp(-k / 2) / k)


def test_toy_hinge_and_accuracy_values():
    b = np.array([0.0, 0.1, 0.5, 0.75, 0.9, 1.0, 1.2])
    np.testing.assert_allclose(toy_hinge(b), [2.5, 2.4, 2.0, 1.75, 1.75, 1.75, 1.95])
    np.testing.assert_allclose(toy_accuracy(b), [2 / 3, 1, 2 / 3, 2 / 3, 2 / 3, 2 / 3, 2 / 3])
    k = 10.0
    np.testing.assert_allclose(toy_hinge(np.linspace(1 / k, 0.25 - 1 / k, 5), k), 0.0)
    assert toy_hinge(1 / k - 1e-3, k) > 0
    np.testing.assert_allclose(toy_cross_entropy(0.0), 2 * np.log1p(np.exp(-0.25)) + np.log(2))


def test_toy_expected_accuracy_tends_to_accuracy():
    b = np.array([-0.1, 0.1, 0.5])
    np.testing.assert_allclose(toy_expected_accuracy(b, 1e-3), toy_accuracy(b), atol=1e-12)
    assert toy_expected_accuracy(0.1, 1.0) == pytest.approx(
        np.mean(stats.norm.cdf([0.35, 0.1, 0.15])), rel=1e-14)


def test_toy_bad_input():
    with pytest.raises(ValueError, match="`k` must be a positive finite number"):
        toy_cross_entropy(0.1, k=0.0)
    with pytest.raises(ValueError, match="`k` must be a positive finite number"):
        toy_cross_entropy_optimum(-2.0)
    with pytest.raises(ValueError, match="`k` must be a positive finite number"):
        toy_hinge(0.1, k="hot")
    with pytest.raises(ValueError, match="`b` must not contain NaN"):
        toy_accuracy(np.nan)
    with pytest.raises(ValueError, match="`sigma` must be finite and > 0"):
        toy_expected_accuracy(0.1, 0.0)
