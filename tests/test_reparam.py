"""Tests for kexue_nb.reparam: p_i = P[argmax_j(μ_j + ε_j) = i] for several noise laws."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, special, stats

from kexue_nb.reparam import (
    NOISE_LAWS,
    argmax_probabilities,
    argmax_probabilities_mc,
    noise_std,
    quantile_rule_probabilities,
)

SCIPY_LAWS = {
    "gumbel": stats.gumbel_r,
    "normal": stats.norm,
    "logistic": stats.logistic,
    "uniform": stats.uniform,
    "exponential": stats.expon,
}


def quad_probability(mu: np.ndarray, i: int, noise: str) -> float:
    """Eq. (pi) by adaptive quadrature, split at the kinks of the bounded laws."""
    law = SCIPY_LAWS[noise]
    d = mu[i] - np.delete(mu, i)
    lo, hi = max(law.support()[0], -45.0), min(law.support()[1], 45.0)
    kinks = {float(x) for x in np.concatenate([-d, 1.0 - d]) if lo < x < hi}
    value, _ = integrate.quad(
        lambda e: law.pdf(e) * np.prod(law.cdf(d + e)),
        lo,
        hi,
        points=sorted(kinks) or None,
        epsabs=1e-14,
        epsrel=1e-13,
        limit=500,
    )
    return value


@pytest.mark.parametrize("noise", NOISE_LAWS)
@pytest.mark.parametrize("scale", [0.3, 1.0, 4.0])
def test_matches_scipy_quad(noise: str, scale: float) -> None:
    rng = np.random.default_rng(int(10 * scale))
    mu = scale * rng.normal(size=5)
    p = argmax_probabilities(mu, noise)
    expected = np.array([quad_probability(mu, i, noise) for i in range(5)])
    np.testing.assert_allclose(p, expected, rtol=0, atol=1e-10)


def test_gumbel_is_softmax() -> None:
    mu = np.random.default_rng(0).normal(size=(7, 6)) * 3
    np.testing.assert_allclose(
        argmax_probabilities(mu, "gumbel"), special.softmax(mu, axis=-1), rtol=1e-14, atol=0
    )
    assert argmax_probabilities(mu).shape == mu.shape  # default law is Gumbel


@pytest.mark.parametrize("noise", NOISE_LAWS)
def test_sums_to_one_batched(noise: str) -> None:
    mu = np.random.default_rng(1).normal(size=(3, 4, 6)) * 2.5
    p = argmax_probabilities(mu, noise)
    assert p.shape == mu.shape
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=0, atol=1e-10)


@pytest.mark.parametrize("noise", NOISE_LAWS)
def test_order_and_shift_invariance(noise: str) -> None:
    rng = np.random.default_rng(2)
    mu = rng.uniform(-0.45, 0.45, size=(50, 5))  # gaps below 1: every p_i > 0, even uniform
    p = argmax_probabilities(mu, noise)
    shifted = argmax_probabilities(mu + rng.normal(size=(50, 1)) * 10, noise)
    np.testing.assert_allclose(shifted, p, rtol=0, atol=1e-12)
    gaps_mu = mu[:, :, None] - mu[:, None, :]
    gaps_p = p[:, :, None] - p[:, None, :]
    off = ~np.eye(5, dtype=bool)
    assert np.all(np.sign(gaps_p[:, off]) == np.sign(gaps_mu[:, off]))


def test_uniform_bounded_support_gives_exact_zeros() -> None:
    # Noise in [0, 1]: a class more than 1 below the top one can never win.
    p = argmax_probabilities(np.array([0.0, 1.5, 3.0]), "uniform")
    np.testing.assert_array_equal(p, [0.0, 0.0, 1.0])
    # Two classes: P(ε_2 − ε_1 < Δ), the triangular distribution function.
    delta = 0.4
    p = argmax_probabilities(np.array([delta, 0.0]), "uniform")
    assert p[0] == pytest.approx(1 - (1 - delta) ** 2 / 2, abs=1e-15)


def test_exponential_two_classes_closed_form() -> None:
    # ε_2 − ε_1 is Laplace(0, 1) for two Exp(1) draws: p_1 = 1 − e^{−Δ}/2 for Δ > 0.
    delta = 0.7
    p = argmax_probabilities(np.array([delta, 0.0]), "exponential")
    assert p[0] == pytest.approx(1 - math.exp(-delta) / 2, abs=1e-15)


@pytest.mark.parametrize("noise", NOISE_LAWS)
def test_against_monte_carlo(noise: str) -> None:
    mu = np.array([[0.0, 0.3, -0.4, 0.8], [0.2, 0.2, 0.9, -0.1]])
    estimate, stderr = argmax_probabilities_mc(
        mu, noise, 200_000, np.random.default_rng(3), progress=False
    )
    p = argmax_probabilities(mu, noise)
    se = np.sqrt(p * (1 - p) / 200_000)
    assert np.all(np.abs(estimate - p) <= 4 * se)
    np.testing.assert_allclose(estimate.sum(axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(stderr, np.sqrt(estimate * (1 - estimate) / 200_000))


def test_monte_carlo_is_reproducible_and_accepts_tensors() -> None:
    mu = torch.tensor([0.0, 1.0, 2.0])
    a, _ = argmax_probabilities_mc(mu, "normal", 1000, np.random.default_rng(5), progress=False)
    b, _ = argmax_probabilities_mc(
        mu.numpy(), "normal", 1000, np.random.default_rng(5), progress=False
    )
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("noise", NOISE_LAWS)
def test_torch_gradcheck(noise: str) -> None:
    mu = torch.tensor(
        np.random.default_rng(4).normal(size=(2, 4)) * 0.8, dtype=torch.float64, requires_grad=True
    )
    assert torch.autograd.gradcheck(lambda m: argmax_probabilities(m, noise), (mu,))


@pytest.mark.parametrize("noise", NOISE_LAWS)
def test_torch_follows_dtype_and_matches_numpy(noise: str) -> None:
    mu = np.random.default_rng(6).normal(size=(3, 4))
    p64 = argmax_probabilities(torch.tensor(mu), noise)
    assert isinstance(p64, torch.Tensor) and p64.dtype == torch.float64
    np.testing.assert_allclose(p64.numpy(), argmax_probabilities(mu, noise), atol=1e-15)
    p32 = argmax_probabilities(torch.tensor(mu, dtype=torch.float32), noise)
    assert p32.dtype == torch.float32 and p32.shape == (3, 4)
    np.testing.assert_allclose(p32.numpy(), p64.numpy(), atol=1e-5)


@pytest.mark.parametrize("noise", NOISE_LAWS)
def test_two_class_slope_at_tie_is_integral_of_density_squared(noise: str) -> None:
    # d p_1 / d μ_1 at μ = 0 equals ∫ p(ε)² dε (chapter extension).
    law = SCIPY_LAWS[noise]
    lo, hi = max(law.support()[0], -40.0), min(law.support()[1], 40.0)
    expected = integrate.quad(lambda e: law.pdf(e) ** 2, lo, hi, epsabs=1e-13)[0]
    mu = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    argmax_probabilities(mu, noise)[0].backward()
    assert mu.grad[0].item() == pytest.approx(expected, abs=1e-10)


def test_quantile_rule() -> None:
    mu = np.array([0.0, 0.5, 1.2])
    exact = argmax_probabilities(mu, "normal")
    errors = [np.abs(quantile_rule_probabilities(mu, K) - exact).max() for K in (100, 1000)]
    assert 5 < errors[0] / errors[1] < 20  # first order in 1/K
    # Euler–Maclaurin: Σ_i p_i − 1 ≈ −(n − 2)/(2K); exactly 0 for two classes.
    K = 10_000
    assert K * (quantile_rule_probabilities(mu, K).sum() - 1) == pytest.approx(-0.5, abs=0.01)
    assert abs(quantile_rule_probabilities(np.array([0.3, -1.0]), 7).sum() - 1) < 1e-14
    # K = 1: a single node at the median, Φ^{-1}(1/2) = 0.
    np.testing.assert_allclose(
        quantile_rule_probabilities(np.array([0.5, 0.0]), 1), special.ndtr([0.5, -0.5])
    )
    t = quantile_rule_probabilities(torch.tensor(mu, dtype=torch.float32), 50)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32


def test_noise_std_matches_scipy() -> None:
    for noise in NOISE_LAWS:
        assert noise_std(noise) == pytest.approx(SCIPY_LAWS[noise].std(), rel=1e-14)


def test_one_class_is_certain() -> None:
    for noise in NOISE_LAWS:
        np.testing.assert_allclose(argmax_probabilities(np.array([[2.0], [-1.0]]), noise), 1.0)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="`noise` must be one of gumbel, normal, logistic"):
        argmax_probabilities([0.0, 1.0], "cauchy")
    with pytest.raises(ValueError, match="`noise` must be one of"):
        noise_std("laplace")
    with pytest.raises(ValueError, match="`noise` must be one of"):
        argmax_probabilities_mc([0.0, 1.0], "t", 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="`mu` must be at least 1-D"):
        argmax_probabilities(1.0, "normal")
    with pytest.raises(ValueError, match="`mu` must have at least one class"):
        argmax_probabilities(np.zeros((3, 0)), "normal")
    with pytest.raises(ValueError, match="`mu` must be finite"):
        argmax_probabilities([0.0, np.nan], "logistic")
    with pytest.raises(ValueError, match="`mu` must be finite"):
        argmax_probabilities(torch.tensor([0.0, math.inf]), "gumbel")
    with pytest.raises(ValueError, match="`mu` must be a real array"):
        argmax_probabilities(["a", "b"], "normal")
    with pytest.raises(ValueError, match="`mu` must be real"):
        argmax_probabilities(torch.tensor([1j, 0j]), "normal")
    with pytest.raises(ValueError, match="`K` must be a positive integer"):
        quantile_rule_probabilities([0.0, 1.0], 0)
    with pytest.raises(ValueError, match="`K` must be a positive integer"):
        quantile_rule_probabilities([0.0, 1.0], 2.5)
    with pytest.raises(ValueError, match="`n_samples` must be a positive integer"):
        argmax_probabilities_mc([0.0, 1.0], "normal", 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="`generator` must be a numpy.random.Generator"):
        argmax_probabilities_mc([0.0, 1.0], "normal", 10, torch.Generator())
