"""Faults for the chapter fokker-planck-test-functions (kexue.fm/archives/9461).

Plausible slips in ``kexue_nb.sde``, the code the chapter's numerical checks rely on: the
Euler–Maruyama noise scaled by Δt instead of √Δt, the Ornstein–Uhlenbeck variance without the
factor 2 in g²/(2θ), the Fokker–Planck solver's diffusion term halved (g²/4 instead of g²/2),
the stationary density with exp(−U/g²) instead of exp(−2U/g²), the linear-drift covariance
driven by GᵀG instead of GGᵀ, and the solver's second-order MPRK22 stepping replaced by its
first stage alone (implicit Euler). Each must be caught by a claim of the chapter.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from kexue_nb.tools.faults import Fault

CHAPTER = "fokker-planck-test-functions"


def _noise_times_dt(original: Any) -> Any:
    @functools.wraps(original)
    def euler_maruyama(f: Any, g: Any, x0: Any, dt: float, steps: int, **kwargs: Any) -> Any:
        # bug: the shock g ε multiplied by Δt instead of √Δt (g is rescaled by √Δt before the
        # original multiplies it by √Δt)
        root = math.sqrt(dt)
        return original(f, lambda x, t: g(x, t) * root, x0, dt, steps, **kwargs)

    return euler_maruyama


def _ou_variance_without_half(original: Any) -> Any:
    @functools.wraps(original)
    def ou_mean_var(t: Any, theta: float, g: float, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        # bug: stationary variance g²/θ instead of g²/(2θ) (same as running the original with √2 g)
        return original(t, theta, math.sqrt(2) * g, **kwargs)

    return ou_mean_var


def _solver_diffusion_halved(original: Any) -> Any:
    @functools.wraps(original)
    def solve_fokker_planck(f: Any, g: Any, *args: Any, **kwargs: Any) -> Any:
        # bug: diffusion coefficient g²/4 instead of g²/2 in the operator
        return original(f, lambda x, t: g(x, t) / math.sqrt(2), *args, **kwargs)

    return solve_fokker_planck


def _stationary_without_two(original: Any) -> Any:
    @functools.wraps(original)
    def stationary_density(U: Any, g: float, **kwargs: Any) -> Any:
        # bug: exp(-U/g²) instead of exp(-2U/g²) (the ½ of the diffusion term forgotten)
        return original(U, math.sqrt(2) * g, **kwargs)

    return stationary_density


def _linear_gaussian_transposed(original: Any) -> Any:
    @functools.wraps(original)
    def linear_gaussian(A: Any, G: Any, t: float, m0: Any, S0: Any, b: Any = None) -> Any:
        # bug: the noise covariance GᵀG instead of GGᵀ
        gm = np.asarray(G, dtype=float)
        return original(A, gm.T if gm.ndim == 2 else gm, t, m0, S0, b)

    return linear_gaussian


def _solver_first_stage_only(original: Any) -> Any:
    @functools.wraps(original)
    def solve_fokker_planck(*args: Any, **kwargs: Any) -> Any:
        # bug: the MPRK22 corrector skipped, so every step is the implicit Euler stage
        # (first order in time)
        kwargs["method"] = "euler"
        return original(*args, **kwargs)

    return solve_fokker_planck


FAULTS = [
    Fault("fp-em-dt-for-sqrt-dt", CHAPTER, "kexue_nb.sde:euler_maruyama",
          "Euler–Maruyama shock g ε Δt instead of g ε √Δt", _noise_times_dt),
    Fault("fp-ou-variance-no-half", CHAPTER, "kexue_nb.sde:ou_mean_var",
          "OU variance with g²/θ instead of g²/(2θ)", _ou_variance_without_half),
    Fault("fp-solver-diffusion-halved", CHAPTER, "kexue_nb.sde:solve_fokker_planck",
          "Fokker–Planck solver with diffusion g²/4 instead of g²/2", _solver_diffusion_halved),
    Fault("fp-stationary-exponent", CHAPTER, "kexue_nb.sde:stationary_density",
          "stationary density exp(−U/g²) instead of exp(−2U/g²)", _stationary_without_two),
    Fault("fp-linear-gaussian-transposed", CHAPTER, "kexue_nb.sde:linear_gaussian",
          "linear-drift covariance driven by GᵀG instead of GGᵀ", _linear_gaussian_transposed),
    Fault("fp-solver-first-stage-only", CHAPTER, "kexue_nb.sde:solve_fokker_planck",
          "Fokker–Planck solver with the implicit Euler stage only (MPRK22 corrector skipped)",
          _solver_first_stage_only),
]
