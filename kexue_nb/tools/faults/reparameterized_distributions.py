"""Faults for ``reparameterized-distributions`` (kexue.fm/archives/9085).

Plausible bugs in :mod:`kexue_nb.reparam`, the code the chapter relies on, each of which one of
the chapter's claims must catch:

- ``reparam-hermite-unscaled``: the Gauss–Hermite nodes used as noise values without the factor
  √2 (the weight e^{−x²} is a normal law of variance 1/2): still normalised, shift-invariant and
  order-preserving, only the values are wrong;
- ``reparam-exponential-no-prefactor``: the exponential law's rule drops the factor e^{μ_i − M}
  in front of the integral, so p is not normalised;
- ``reparam-logistic-survival``: the logistic law's rule uses the survival function 1 − F in
  place of the distribution function F (the slip of writing e^{−e^{x}} for the Gumbel CDF);
- ``reparam-logistic-as-softmax``: the logistic law evaluated as softmax, the Gumbel answer (a
  difference of two Gumbel noises is logistic, which invites the mix-up);
- ``reparam-quantile-levels-off``: the article's quantile rule sampled at the levels k/K instead
  of k/(K + 1);
- ``reparam-uniform-std-one``: ``noise_std`` returns 1 for U[0, 1] (its width) instead of 1/√12, so
  the "unit-variance" uniform law is the standard one;
- ``reparam-mc-noise-subtracted``: the Monte Carlo estimate adds the noise with the wrong sign,
  argmax(μ − ε), which changes p for the asymmetric laws (Gumbel, exponential).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from numpy.polynomial.hermite import hermgauss
from scipy.special import ndtri

from kexue_nb import reparam
from kexue_nb.tools.faults import Fault

CHAPTER = "reparameterized-distributions"


def _normal_unscaled(mu: torch.Tensor) -> torch.Tensor:
    x, w = hermgauss(reparam._HERMITE_NODES)
    nodes = torch.as_tensor(x, dtype=mu.dtype, device=mu.device)  # bug: ε = x, not √2 x
    weights = torch.as_tensor(w / math.sqrt(math.pi), dtype=mu.dtype, device=mu.device)
    return reparam._product_rule(mu, nodes, weights, torch.special.ndtr)


def _exponential_no_prefactor(mu: torch.Tensor) -> torch.Tensor:
    n = mu.shape[-1]
    x, w = np.polynomial.legendre.leggauss(n // 2 + 1)
    s = torch.as_tensor((x + 1.0) / 2.0, dtype=mu.dtype, device=mu.device)
    ws = torch.as_tensor(w / 2.0, dtype=mu.dtype, device=mu.device)
    c = torch.exp(mu - mu.max(dim=-1, keepdim=True).values)
    factors = (1.0 - c[..., None, :, None] * s).expand(*mu.shape, n, s.shape[0])
    keep = (~torch.eye(n, dtype=torch.bool, device=mu.device))[..., None]
    factors = torch.where(keep, factors, torch.ones_like(factors))
    return (factors.prod(dim=-2) * ws).sum(dim=-1)  # bug: the factor c = e^{μ_i − M} is gone


def _logistic_survival(mu: torch.Tensor) -> torch.Tensor:
    h, half = reparam._LOGISTIC_STEP, reparam._LOGISTIC_HALF_WIDTH
    eps = np.linspace(-half, half, int(round(2 * half / h)) + 1)
    density = np.exp(-np.abs(eps)) / (1.0 + np.exp(-np.abs(eps))) ** 2
    nodes = torch.as_tensor(eps, dtype=mu.dtype, device=mu.device)
    weights = torch.as_tensor(h * density, dtype=mu.dtype, device=mu.device)
    return reparam._product_rule(mu, nodes, weights, lambda v: torch.sigmoid(-v))  # bug: 1 − F


def _with_rule(law: str, rule: Callable[[torch.Tensor], torch.Tensor]) -> Callable:
    """A patch of ``argmax_probabilities`` that evaluates ``law`` with the faulty ``rule``."""

    def patch(original: Callable) -> Callable:
        @functools.wraps(original)
        def faulty(mu: Any, noise: str = "gumbel") -> Any:
            if noise != law:
                return original(mu, noise)
            tensor, is_tensor = reparam._as_tensor(mu)
            return reparam._output(rule(tensor), is_tensor)

        return faulty

    return patch


def _levels_off(original: Callable) -> Callable:
    @functools.wraps(original)
    def faulty(mu: Any, K: int) -> Any:
        tensor, is_tensor = reparam._as_tensor(mu)
        levels = np.arange(1, int(K) + 1) / float(K)  # bug: k/K, not k/(K + 1)
        nodes = torch.as_tensor(ndtri(levels), dtype=tensor.dtype, device=tensor.device)
        weights = torch.full_like(nodes, 1.0 / int(K))
        p = reparam._product_rule(tensor, nodes, weights, torch.special.ndtr)
        return reparam._output(p, is_tensor)

    return faulty


def _uniform_std_one(original: Callable) -> Callable:
    @functools.wraps(original)
    def faulty(noise: str) -> float:
        return 1.0 if noise == "uniform" else original(noise)  # bug: the width 1, not 1/√12

    return faulty


def _noise_subtracted(original: Callable) -> Callable:
    @functools.wraps(original)
    def faulty(noise: str, shape: tuple[int, ...], generator: np.random.Generator) -> np.ndarray:
        return -original(noise, shape, generator)  # bug: argmax(μ − ε)

    return faulty


FAULTS = [
    Fault(
        name="reparam-hermite-unscaled",
        chapter=CHAPTER,
        target="kexue_nb.reparam:argmax_probabilities",
        description="normal law: Gauss–Hermite nodes without the factor √2 (noise variance 1/2)",
        patch=_with_rule("normal", _normal_unscaled),
    ),
    Fault(
        name="reparam-exponential-no-prefactor",
        chapter=CHAPTER,
        target="kexue_nb.reparam:argmax_probabilities",
        description="exponential law: the factor e^{μ_i − M} in front of the integral dropped",
        patch=_with_rule("exponential", _exponential_no_prefactor),
    ),
    Fault(
        name="reparam-logistic-survival",
        chapter=CHAPTER,
        target="kexue_nb.reparam:argmax_probabilities",
        description="logistic law: survival function 1 − F used in place of the CDF F",
        patch=_with_rule("logistic", _logistic_survival),
    ),
    Fault(
        name="reparam-logistic-as-softmax",
        chapter=CHAPTER,
        target="kexue_nb.reparam:argmax_probabilities",
        description="logistic law: softmax (the Gumbel answer) returned in place of Eq. (pi)",
        patch=_with_rule("logistic", lambda mu: torch.softmax(mu, dim=-1)),
    ),
    Fault(
        name="reparam-quantile-levels-off",
        chapter=CHAPTER,
        target="kexue_nb.reparam:quantile_rule_probabilities",
        description="quantile rule sampled at the levels k/K instead of k/(K + 1)",
        patch=_levels_off,
    ),
    Fault(
        name="reparam-uniform-std-one",
        chapter=CHAPTER,
        target="kexue_nb.reparam:noise_std",
        description="noise_std gives 1 (the width of U[0, 1]) instead of 1/√12",
        patch=_uniform_std_one,
    ),
    Fault(
        name="reparam-mc-noise-subtracted",
        chapter=CHAPTER,
        target="kexue_nb.reparam:_sample",
        description="Monte Carlo adds the noise with the wrong sign, argmax(μ − ε)",
        patch=_noise_subtracted,
    ),
]
