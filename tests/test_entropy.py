"""Tests of kexue_nb.entropy: known values, identities, SciPy as a peer, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import optimize, stats

from kexue_nb.entropy import (
    SolveInfo,
    entropy,
    entropy_normalize,
    entropy_of_power,
    power_transform,
    reachable_range,
)


def random_simplex(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    p = rng.random(shape) + 1e-3
    return p / p.sum(axis=-1, keepdims=True)


def h_gamma_direct(p: np.ndarray, gamma: float) -> float:
    """Article eq. (4) written out literally, on the support of p."""
    p = p[p > 0]
    z = p**gamma
    return float(np.log(z.sum()) - gamma * (z * np.log(p)).sum() / z.sum())


# -- entropy ----------------------------------------------------------------------------------
def test_entropy_known_values_and_scipy() -> None:
    assert entropy(np.full(8, 1 / 8)) == pytest.approx(math.log(8), abs=1e-15)
    assert entropy(np.array([0.0, 1.0, 0.0])) == 0.0
    p = random_simplex(np.random.default_rng(0), (5, 7))
    np.testing.assert_allclose(entropy(p), stats.entropy(p, axis=-1), rtol=1e-13)
    np.testing.assert_allclose(entropy(p.T, dim=0), stats.entropy(p, axis=-1), rtol=1e-13)
    with_zero = np.array([0.5, 0.0, 0.5])
    assert entropy(with_zero) == pytest.approx(math.log(2), abs=1e-15)


def test_entropy_torch_follows_dtype() -> None:
    p = torch.tensor([[0.2, 0.3, 0.5]], dtype=torch.float32)
    h = entropy(p)
    assert h.dtype == torch.float32 and h.shape == (1,)
    assert float(h[0]) == pytest.approx(float(stats.entropy([0.2, 0.3, 0.5])), rel=1e-6)


@pytest.mark.parametrize(
    ("p", "kwargs", "match"),
    [
        (np.array([0.5, -0.1, 0.6]), {}, r"`p` must be non-negative, got an entry -0\.1"),
        (np.array([0.5, 0.6]), {}, r"`p` must sum to 1 along `dim` \(within 1e-06"),
        (np.array([0.5, np.nan]), {}, r"`p` must be finite"),
        (np.array([1.0]), {}, r"`p` must have at least 2 categories"),
        (np.float64(1.0), {}, r"`p` must have at least one dimension"),
        (np.full((2, 2), 0.5), {"dim": 2}, r"`dim` must lie in \[-2, 1\]"),
        (np.full(2, 0.5), {"dim": 0.5}, r"`dim` must be an integer"),
        (np.array(["a", "b"]), {}, r"`p` must be a real array"),
    ],
)
def test_entropy_bad_input(p: object, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        entropy(p, **kwargs)


def test_sum_error_names_batch_index() -> None:
    p = np.full((2, 3, 2), 0.5)
    p[1, 2] = [0.5, 0.6]
    with pytest.raises(ValueError, match=r"got a sum of 1\.1 at batch index \(1, 2\)"):
        entropy(p)


# -- power transform and H_gamma --------------------------------------------------------------
def test_power_transform_matches_definition_and_keeps_order() -> None:
    p = random_simplex(np.random.default_rng(1), (12,))
    for gamma in (0.3, 1.0, 2.5):
        q = power_transform(p, gamma)
        np.testing.assert_allclose(q, p**gamma / (p**gamma).sum(), rtol=1e-13)
        np.testing.assert_array_equal(np.argsort(q), np.argsort(p))
    np.testing.assert_allclose(power_transform(p, 0.0), np.full(12, 1 / 12), rtol=1e-15)


def test_power_transform_zeros_large_gamma_and_per_row() -> None:
    p = np.array([[0.0, 0.2, 0.8], [0.5, 0.25, 0.25]])
    q0 = power_transform(p, 0.0)
    np.testing.assert_allclose(q0[0], [0.0, 0.5, 0.5], rtol=1e-15)  # uniform on the support
    q = power_transform(p, np.array([1e4, 1.0]))
    np.testing.assert_allclose(q[0], [0.0, 0.0, 1.0], atol=1e-300)  # eq. (3): one-hot
    np.testing.assert_allclose(q[1], p[1], rtol=1e-15)


def test_entropy_of_power_is_entropy_of_power_transform() -> None:
    p = random_simplex(np.random.default_rng(2), (4, 9))
    gamma = np.array([0.1, 0.7, 1.3, 6.0])
    h = entropy_of_power(p, gamma)
    np.testing.assert_allclose(h, entropy(power_transform(p, gamma)), rtol=1e-12)
    np.testing.assert_allclose(h, [h_gamma_direct(r, g) for r, g in zip(p, gamma, strict=True)],
                               rtol=1e-12)


def test_entropy_of_power_derivative_is_minus_gamma_variance() -> None:
    p = torch.tensor(random_simplex(np.random.default_rng(3), (10,)))
    gamma = torch.tensor(1.7, dtype=torch.float64, requires_grad=True)
    entropy_of_power(p, gamma).backward()
    q = power_transform(p, 1.7)
    log_p = torch.log(p)
    var = (q * log_p**2).sum() - (q * log_p).sum() ** 2
    assert float(gamma.grad) == pytest.approx(-1.7 * float(var), rel=1e-12)


@pytest.mark.parametrize(
    ("gamma", "match"),
    [
        (-1.0, r"`gamma` must be finite and >= 0, got -1\.0"),
        (math.inf, r"`gamma` must be finite and >= 0"),
        (np.ones(3), r"`gamma` must be a scalar or broadcast to the batch shape \(2,\)"),
        ("x", r"`gamma` must be a real number or array"),
    ],
)
def test_power_transform_bad_gamma(gamma: object, match: str) -> None:
    p = np.full((2, 4), 0.25)
    with pytest.raises(ValueError, match=match):
        power_transform(p, gamma)
    with pytest.raises(ValueError, match=match):
        entropy_of_power(p, gamma)


def test_reachable_range() -> None:
    p = np.array([[0.4, 0.4, 0.2, 0.0], [0.25, 0.25, 0.25, 0.25], [0.7, 0.1, 0.1, 0.1]])
    low, high = reachable_range(p)
    np.testing.assert_allclose(low, np.log([2, 4, 1]), rtol=1e-15)
    np.testing.assert_allclose(high, np.log([3, 4, 4]), rtol=1e-15)
    with pytest.raises(ValueError, match="`p` must be non-negative"):
        reachable_range(-p)


# -- entropy_normalize ------------------------------------------------------------------------
def test_article_setup_hits_target_and_matches_brentq() -> None:
    p = random_simplex(np.random.default_rng(4), (100,))
    target = math.log(30)
    q, gamma, info = entropy_normalize(p, target, full_output=True)
    assert isinstance(info, SolveInfo) and info.iterations <= 6
    assert abs(entropy(q) - target) <= 1e-10
    root = optimize.brentq(lambda g: h_gamma_direct(p, g) - target, 1e-2, 1e2, xtol=1e-14)
    assert float(gamma) == pytest.approx(root, rel=1e-9)
    np.testing.assert_allclose(q, power_transform(p, gamma), rtol=1e-9)


def test_batched_torch_per_row_targets_and_dim() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(4, 50, 3, generator=gen, dtype=torch.float64)
    p = torch.softmax(logits, dim=1)  # categories along dim 1
    target = torch.rand(4, 3, generator=gen, dtype=torch.float64) * 0.9 * math.log(50) + 0.05
    q, gamma = entropy_normalize(p, target, dim=1)
    assert q.shape == p.shape and gamma.shape == (4, 3)
    assert float((entropy(q, dim=1) - target).abs().max()) <= 1e-10
    expected = power_transform(p, gamma, dim=1)
    assert torch.allclose(q, expected, rtol=1e-9, atol=1e-300)


def test_extreme_targets_zeros_and_ties_converge() -> None:
    rng = np.random.default_rng(5)
    p = random_simplex(rng, (6, 200))
    p[0, :50] = 0.0  # zeros: reachable range (0, log 150)
    p[1, :3] = p[1].max() * 1.5  # three tied maxima: range (log 3, log 200)
    p[2, 7] = 0.9  # a dominant entry
    p /= p.sum(axis=1, keepdims=True)
    low, high = reachable_range(p)
    for frac in (1e-6, 0.5, 1 - 1e-6):
        target = low + frac * (high - low)
        q, gamma, info = entropy_normalize(p, target, full_output=True)
        assert np.all(np.isfinite(gamma)) and np.all(gamma > 0)
        np.testing.assert_allclose(entropy(q), target, rtol=0, atol=1e-10)
        np.testing.assert_array_equal(q[0, :50], 0.0)
        assert info.max_error <= 1e-11


def test_float32_and_integer_like_inputs() -> None:
    p = torch.softmax(torch.linspace(-2, 2, 30), dim=0)
    q, gamma = entropy_normalize(p, 2.0)
    assert q.dtype == torch.float32 and gamma.dtype == torch.float32
    assert abs(float(entropy(q)) - 2.0) <= 1e-4


def test_gradients_against_finite_differences() -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0.5, 1.0, 1.5], dtype=torch.float64, requires_grad=True)

    def f(z: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return entropy_normalize(torch.softmax(z, dim=-1), t)

    assert torch.autograd.gradcheck(f, (logits, target), eps=1e-6, atol=1e-7, rtol=1e-6)


def test_gradient_of_gamma_in_target_is_inverse_slope() -> None:
    p = torch.softmax(torch.linspace(0, 3, 8, dtype=torch.float64), dim=0)
    target = torch.tensor(1.2, dtype=torch.float64, requires_grad=True)
    _, gamma = entropy_normalize(p, target)
    gamma.backward()
    q = power_transform(p, gamma.detach())
    log_p = torch.log(p)
    slope = -gamma.detach() * ((q * log_p**2).sum() - (q * log_p).sum() ** 2)
    assert float(target.grad) == pytest.approx(float(1 / slope), rel=1e-9)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_result_follows_input_device_and_matches_float64_cpu(device: str) -> None:
    gen = torch.Generator().manual_seed(3)
    p = torch.softmax(torch.randn(64, 100, dtype=torch.float64, generator=gen), dim=-1)
    target = torch.full((64,), 2.0, dtype=torch.float64)
    q_ref, g_ref = entropy_normalize(p, target)
    q, g = entropy_normalize(p.to(device), target.to(device))
    assert q.device.type == device and g.device.type == device
    assert torch.allclose(g.cpu(), g_ref, rtol=1e-9)
    assert torch.allclose(entropy(q).cpu(), target, atol=1e-10)


@pytest.mark.parametrize(
    ("p", "target", "kwargs", "match"),
    [
        (np.full(4, 0.25), 1.5, {}, r"`target` must lie in the open interval \(0, log n\) = "
         r"\(0, 1\.38629\) for n = 4 categories, got 1\.5"),
        (np.full(4, 0.25), 0.0, {}, r"`target` must lie in the open interval"),
        (np.full(4, 0.25), 1.0, {}, r"`p` is uniform on its 4 nonzero entries, so H_gamma = "
         r"log 4 = 1\.38629 for every gamma"),
        (np.array([0.5, 0.5, 0.0, 0.0]), 0.5, {}, r"uniform on its 2 nonzero entries"),
        (np.array([0.4, 0.4, 0.2, 0.0]), 0.5, {}, r"`target` = 0\.5 cannot be reached: `p` has 3 "
         r"nonzero entries, 2 of them tied at the maximum, so H_gamma ranges over the open "
         r"interval \(log 2, log 3\) = \(0\.693147, 1\.09861\)"),
        (np.array([0.4, 0.4, 0.2, 0.0]), 1.2, {}, r"cannot be reached"),
        (np.array([0.7, 0.2, 0.1]), 0.5, {"tol": 0.0}, r"`tol` must be a number in \(0, 1\)"),
        (np.array([0.7, 0.2, 0.1]), 0.5, {"max_iter": 0}, r"`max_iter` must be an integer >= 1"),
        (np.array([0.7, 0.2, 0.1]), [0.5, 0.6], {}, r"`target` must be a scalar or broadcast"),
        (np.array([0.7, 0.2, 0.1]), np.nan, {}, r"`target` must lie in the open interval"),
        (np.array([0.7, 0.3, 0.1]), 0.5, {}, r"`p` must sum to 1 along `dim` \(within 1e-06"),
        (np.array([0.7, 0.2, 0.1]), 0.5, {"dim": 1}, r"`dim` must lie in \[-1, 0\]"),
    ],
)
def test_entropy_normalize_bad_input(p: object, target: object, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        entropy_normalize(p, target, **kwargs)


def test_unreachable_row_is_named() -> None:
    p = np.array([[0.7, 0.2, 0.1], [0.5, 0.5, 0.0]])
    with pytest.raises(ValueError, match=r"at batch index \(1,\): `p` is uniform on its 2"):
        entropy_normalize(p, 0.5)


def test_too_few_iterations_raise() -> None:
    p = random_simplex(np.random.default_rng(6), (100,))
    with pytest.raises(RuntimeError, match=r"did not converge in `max_iter` = 1 steps"):
        entropy_normalize(p, 0.01, max_iter=1)
