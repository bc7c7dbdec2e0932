"""Discrete distributions built by reparameterisation (kexue.fm/archives/9085).

Perturb a score vector μ = (μ_1, …, μ_n) with i.i.d. noise ε_j of a law with density p and
distribution function F, and read off which class wins. The article's Eq. (pi) gives

    p_i = P[argmax_j(μ_j + ε_j) = i] = ∫ p(ε) Π_{j≠i} F(μ_i − μ_j + ε) dε,

which depends on μ only through differences, so p(μ + c·1) = p(μ). Gumbel noise turns it into
softmax exactly; for the other laws this module evaluates the integral by quadrature rules that
reach float64 round-off (≈ 1e-15, tested against ``scipy.integrate.quad``):

``"gumbel"``       F(x) = exp(−e^{−x}): the closed form e^{μ_i} / Σ_j e^{μ_j} (softmax).
``"normal"``       F = Φ: 96-node Gauss–Hermite rule in ε (the integrand is entire).
``"logistic"``     F(x) = 1/(1 + e^{−x}): trapezoidal rule, step 1/4 on [−38, 38]. The
                   integrand is analytic in the strip ``|Im ε| < π`` and decays like e^{−|ε|},
                   so the rule converges geometrically (error ≈ e^{−2π²/h}).
``"uniform"``      ε ~ U[0, 1], F(x) = clip(x, 0, 1): the integrand is a piecewise polynomial
                   of degree ≤ n − 1 with kinks at ε = −(μ_i − μ_j) and 1 − (μ_i − μ_j); split
                   [0, 1] at the kinks and apply Gauss–Legendre with ⌊n/2⌋ + 1 nodes per piece
                   (exact for each piece). Cost O(n⁴) per row: meant for tens of classes.
``"exponential"``  ε ~ Exp(1): with u = e^{−ε} and M = max_j μ_j the integral becomes
                   p_i = e^{μ_i − M} ∫_0^1 Π_{j≠i} (1 − e^{μ_j − M} s) ds, a polynomial of
                   degree n − 1 in s, integrated exactly by Gauss–Legendre.

The article's own finite-K rule for normal noise (its last display, with the quantile function)
is :func:`quantile_rule_probabilities`; :func:`argmax_probabilities_mc` is the Monte Carlo check.

NumPy input gives NumPy output (computed in float64). A torch tensor gives a tensor of the same
shape, dtype and device, differentiable in ``mu``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from numpy.polynomial.hermite import hermgauss
from numpy.polynomial.legendre import leggauss
from scipy.special import ndtri
from tqdm import tqdm

__all__ = [
    "NOISE_LAWS",
    "argmax_probabilities",
    "argmax_probabilities_mc",
    "noise_std",
    "quantile_rule_probabilities",
]

#: The noise laws :func:`argmax_probabilities` knows, in the order the book shows them.
NOISE_LAWS: tuple[str, ...] = ("gumbel", "normal", "logistic", "uniform", "exponential")

#: Gauss–Hermite nodes for the normal law (96 reach round-off; see the module docstring).
_HERMITE_NODES = 96
#: Trapezoidal step and half-width for the logistic law.
_LOGISTIC_STEP = 0.25
_LOGISTIC_HALF_WIDTH = 38.0
#: Most values a quadrature rule's work array may hold (2**27 float64 values, 1 GiB); larger
#: ``mu`` (rows × classes) are refused up front with this limit in the message.
MAX_WORK_ELEMENTS = 2**27
#: Most quantile levels K, and most Monte Carlo draws (n_samples × mu.size) in one call.
MAX_K = 10**6
MAX_MC_DRAWS = 10**9

_STD = {
    "gumbel": math.pi / math.sqrt(6.0),
    "normal": 1.0,
    "logistic": math.pi / math.sqrt(3.0),
    "uniform": 1.0 / math.sqrt(12.0),
    "exponential": 1.0,
}


# -- validation ------------------------------------------------------------------------------
def _check_noise(noise: Any) -> str:
    if not isinstance(noise, str) or noise not in NOISE_LAWS:
        raise ValueError(f"`noise` must be one of {', '.join(NOISE_LAWS)}; got {noise!r}")
    return noise


def _as_tensor(mu: Any) -> tuple[torch.Tensor, bool]:
    """``mu`` as a floating tensor (float64 for non-tensor input); whether it was a tensor."""
    is_tensor = isinstance(mu, torch.Tensor)
    if is_tensor:
        if mu.is_complex():
            raise ValueError(f"`mu` must be real, got dtype {mu.dtype}")
        if mu.dtype == torch.bool:
            raise TypeError("`mu` must hold real scores, got dtype torch.bool")
        tensor = mu if mu.is_floating_point() else mu.to(torch.float64)
    else:
        if isinstance(mu, str | bytes) or np.asarray(mu).dtype.kind in "US":
            raise ValueError(f"`mu` must be a real array of scores, got {mu!r}")
        if mu is None or isinstance(mu, bool | np.bool_) or np.asarray(mu).dtype == bool:
            raise TypeError(f"`mu` must hold real scores, got {mu!r}")
        if np.iscomplexobj(mu) or isinstance(mu, complex):
            raise ValueError("`mu` must be real, got complex values")
        try:
            array = np.asarray(mu, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"`mu` must be a real array of scores, got {mu!r}") from exc
        tensor = torch.from_numpy(np.array(array, dtype=np.float64))
    if tensor.ndim < 1:
        raise ValueError(
            f"`mu` must be at least 1-D (last dimension = classes), got shape {tuple(tensor.shape)}"
        )
    if tensor.shape[-1] < 1:
        raise ValueError("`mu` must have at least one class in its last dimension, got 0")
    if not bool(torch.isfinite(tensor.detach()).all()):
        raise ValueError("`mu` must be finite (no NaN or infinity)")
    return tensor, is_tensor


def _check_work(tensor: torch.Tensor, per_row: int, what: str) -> None:
    """Refuse ``mu`` whose quadrature work array (rows × ``per_row`` values) is too large."""
    rows = tensor.numel() // max(tensor.shape[-1], 1)
    if rows * per_row > MAX_WORK_ELEMENTS:
        raise ValueError(
            f"`mu` of shape {tuple(tensor.shape)} is too large for {what}: the rule would hold "
            f"{rows * per_row:.3g} values; the limit is {MAX_WORK_ELEMENTS}"
        )


def _work_per_row(noise: str, n: int) -> int:
    if noise == "gumbel":
        return n
    if noise == "normal":
        return n * n * _HERMITE_NODES
    if noise == "logistic":
        return n * n * (int(round(2 * _LOGISTIC_HALF_WIDTH / _LOGISTIC_STEP)) + 1)
    if noise == "exponential":
        return n * n * (n // 2 + 1)
    return n * (2 * n - 1) * (n // 2 + 1) * n  # uniform: (i, piece, node, j)


def _output(p: torch.Tensor, is_tensor: bool) -> Any:
    return p if is_tensor else p.detach().cpu().numpy()


def _off_diagonal(n: int, device: torch.device) -> torch.Tensor:
    return ~torch.eye(n, dtype=torch.bool, device=device)


# -- the laws --------------------------------------------------------------------------------
def _product_rule(
    mu: torch.Tensor, nodes: torch.Tensor, weights: torch.Tensor, cdf: Callable
) -> torch.Tensor:
    """Σ_k w_k Π_{j≠i} F(μ_i − μ_j + ε_k) for nodes ε_k shared by all i (last dim of nodes)."""
    n = mu.shape[-1]
    d = mu[..., :, None] - mu[..., None, :]  # d[..., i, j] = μ_i − μ_j
    factors = cdf(d[..., None] + nodes)  # (..., i, j, k)
    keep = _off_diagonal(n, mu.device)[..., None]
    factors = torch.where(keep, factors, torch.ones_like(factors))
    return (factors.prod(dim=-2) * weights).sum(dim=-1)


def _normal(mu: torch.Tensor) -> torch.Tensor:
    x, w = hermgauss(_HERMITE_NODES)  # ∫ e^{−x²} g(x) dx; ε = √2 x
    nodes = torch.as_tensor(math.sqrt(2.0) * x, dtype=mu.dtype, device=mu.device)
    weights = torch.as_tensor(w / math.sqrt(math.pi), dtype=mu.dtype, device=mu.device)
    return _product_rule(mu, nodes, weights, torch.special.ndtr)


def _logistic(mu: torch.Tensor) -> torch.Tensor:
    h, half = _LOGISTIC_STEP, _LOGISTIC_HALF_WIDTH
    eps = np.linspace(-half, half, int(round(2 * half / h)) + 1)
    density = np.exp(-np.abs(eps)) / (1.0 + np.exp(-np.abs(eps))) ** 2
    nodes = torch.as_tensor(eps, dtype=mu.dtype, device=mu.device)
    weights = torch.as_tensor(h * density, dtype=mu.dtype, device=mu.device)
    return _product_rule(mu, nodes, weights, torch.sigmoid)


def _exponential(mu: torch.Tensor) -> torch.Tensor:
    n = mu.shape[-1]
    x, w = leggauss(n // 2 + 1)  # exact for degree ≤ n − 1 on [0, 1] after s = (x + 1)/2
    s = torch.as_tensor((x + 1.0) / 2.0, dtype=mu.dtype, device=mu.device)
    ws = torch.as_tensor(w / 2.0, dtype=mu.dtype, device=mu.device)
    top = mu.max(dim=-1, keepdim=True).values
    c = torch.exp(mu - top)  # e^{μ_j − M} ∈ (0, 1]; U_i = e^{μ_i − M} as well
    factors = 1.0 - c[..., None, :, None] * s  # (..., 1, j, k)
    factors = factors.expand(*mu.shape, n, s.shape[0])  # (..., i, j, k)
    keep = _off_diagonal(n, mu.device)[..., None]
    factors = torch.where(keep, factors, torch.ones_like(factors))
    return c * (factors.prod(dim=-2) * ws).sum(dim=-1)


def _uniform(mu: torch.Tensor) -> torch.Tensor:
    n = mu.shape[-1]
    x, w = leggauss(n // 2 + 1)
    x = torch.as_tensor(x, dtype=mu.dtype, device=mu.device)
    w = torch.as_tensor(w, dtype=mu.dtype, device=mu.device)
    d = mu[..., :, None] - mu[..., None, :]  # (..., i, j)
    # Kinks of clip(d_ij + ε, 0, 1) in ε ∈ [0, 1]; j = i contributes the ends 0 and 1. The
    # break points are constants of the rule (detached): the integrand is continuous, so where
    # the pieces meet does not change the integral, and its derivative in μ is the rule applied
    # to the integrand's derivative on each piece.
    kinks = torch.cat([-d, 1.0 - d], dim=-1).detach().clamp(0.0, 1.0).sort(dim=-1).values
    a, b = kinks[..., :-1], kinks[..., 1:]  # pieces (..., i, P)
    half = (b - a) / 2.0
    eps = (a + b)[..., None] / 2.0 + half[..., None] * x  # (..., i, P, k)
    factors = (d[..., :, None, None, :] + eps[..., None]).clamp(0.0, 1.0)  # (..., i, P, k, j)
    keep = _off_diagonal(n, mu.device)[:, None, None, :]
    factors = torch.where(keep, factors, torch.ones_like(factors))
    return (half[..., None] * w * factors.prod(dim=-1)).sum(dim=(-2, -1))


_RULES = {
    "normal": _normal,
    "logistic": _logistic,
    "uniform": _uniform,
    "exponential": _exponential,
}


def argmax_probabilities(mu: Any, noise: str = "gumbel") -> Any:
    """p_i = P[argmax_j(μ_j + ε_j) = i] for i.i.d. noise ε of a named law (9085, Eq. (pi)).

    Parameters
    ----------
    mu
        Scores, shape ``(..., n)``: leading dimensions are a batch, the last one the classes.
        NumPy array (or anything ``np.asarray`` takes) or torch tensor.
    noise
        One of :data:`NOISE_LAWS`: ``"gumbel"`` (standard Gumbel: softmax exactly), ``"normal"``
        (standard normal), ``"logistic"`` (standard logistic), ``"uniform"`` (U[0, 1]),
        ``"exponential"`` (Exp(1)).

    Returns
    -------
    Probabilities of the shape of ``mu``, summing to 1 over the last dimension (within 1e-13 in
    float64). A NumPy array for non-tensor input; for a tensor, a tensor of its dtype and device,
    differentiable in ``mu``.
    """
    noise = _check_noise(noise)
    tensor, is_tensor = _as_tensor(mu)
    _check_work(tensor, _work_per_row(noise, tensor.shape[-1]), f"noise = {noise!r}")
    if noise == "gumbel":
        return _output(torch.softmax(tensor, dim=-1), is_tensor)
    return _output(_RULES[noise](tensor), is_tensor)


def quantile_rule_probabilities(mu: Any, K: int) -> Any:
    """The article's finite-K rule for standard normal noise (9085, last display):

        p_i ≈ (1/K) Σ_{k=1}^{K} Π_{j≠i} Φ(μ_i − μ_j + Φ^{-1}(k/(K + 1))).

    It is the integral ``∫_0^1 Π_{j≠i} Φ(μ_i − μ_j + Φ^{-1}(t)) dt`` sampled at the quantile levels
    k/(K + 1); its error (and the defect of Σ_i p_i from 1) is of order 1/K.
    ``mu`` is handled as in :func:`argmax_probabilities`; ``K`` is a positive integer.
    """
    if isinstance(K, bool) or not isinstance(K, int | np.integer) or K < 1:
        raise ValueError(f"`K` must be a positive integer, got {K!r}")
    if K > MAX_K:
        raise ValueError(f"`K` must be an integer in [1, {MAX_K}], got {K!r}")
    tensor, is_tensor = _as_tensor(mu)
    n = tensor.shape[-1]
    _check_work(tensor, n * n * int(K), f"K = {int(K)}")
    levels = np.arange(1, int(K) + 1) / (int(K) + 1.0)
    nodes = torch.as_tensor(ndtri(levels), dtype=tensor.dtype, device=tensor.device)
    weights = torch.full_like(nodes, 1.0 / int(K))
    return _output(_product_rule(tensor, nodes, weights, torch.special.ndtr), is_tensor)


def noise_std(noise: str) -> float:
    """Standard deviation of the named standard noise law (π/√6 for Gumbel, 1 for the normal,
    π/√3 for the logistic, 1/√12 for U[0, 1], 1 for Exp(1)).

    Dividing the noise by it gives unit variance, and argmax(μ + ε/σ) = argmax(σμ + ε), so
    ``argmax_probabilities(noise_std(law) * mu, law)`` is p under the unit-variance law.
    """
    return _STD[_check_noise(noise)]


def _sample(noise: str, shape: tuple[int, ...], generator: np.random.Generator) -> np.ndarray:
    if noise == "gumbel":
        return generator.gumbel(size=shape)
    if noise == "normal":
        return generator.standard_normal(size=shape)
    if noise == "logistic":
        return generator.logistic(size=shape)
    if noise == "uniform":
        return generator.random(size=shape)
    return generator.standard_exponential(size=shape)


def argmax_probabilities_mc(
    mu: Any,
    noise: str,
    n_samples: int,
    generator: np.random.Generator,
    *,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo estimate of p_i = P[argmax_j(μ_j + ε_j) = i] (9085, the definition Eq.).

    Draws ``n_samples`` noise vectors for every row of ``mu`` (shape ``(..., n)``, NumPy or
    torch; the result is NumPy) and counts the winners. Returns ``(estimate, stderr)`` of the
    shape of ``mu``, with ``stderr = sqrt(p̂(1 − p̂)/n_samples)``.
    """
    noise = _check_noise(noise)
    tensor, _ = _as_tensor(mu)
    scores = tensor.detach().cpu().to(torch.float64).numpy()
    if isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer) or n_samples < 1:
        raise ValueError(f"`n_samples` must be a positive integer, got {n_samples!r}")
    if int(n_samples) * max(scores.size, 1) > MAX_MC_DRAWS:
        raise ValueError(
            f"`n_samples` = {n_samples} is too large for `mu` of size {scores.size}: the limit is "
            f"n_samples * mu.size <= {MAX_MC_DRAWS}"
        )
    if not isinstance(generator, np.random.Generator):
        raise ValueError(
            f"`generator` must be a numpy.random.Generator, got {type(generator).__name__}"
        )
    n = scores.shape[-1]
    chunk = max(1, 2**20 // max(scores.size, 1))
    counts = np.zeros(scores.shape, dtype=np.int64)
    classes = np.arange(n)
    starts = range(0, int(n_samples), chunk)
    for start in tqdm(starts, disable=not progress, desc=f"Monte Carlo ({noise})"):
        size = min(chunk, int(n_samples) - start)
        winners = np.argmax(scores + _sample(noise, (size, *scores.shape), generator), axis=-1)
        counts += (winners[..., None] == classes).sum(axis=0)
    estimate = counts / float(n_samples)
    stderr = np.sqrt(estimate * (1.0 - estimate) / float(n_samples))
    return estimate, stderr
