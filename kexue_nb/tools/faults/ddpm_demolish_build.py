"""Faults for ``ddpm-demolish-build`` (kexue.fm/archives/9119): plausible bugs in the schedule,
the sampler and the trainer that the chapter relies on, each of which one of its claims catches.

- ``ddpm1-final-noise-at-t1``: ``ddpm_sample`` adds noise at t = 1 on its default path (the DDPM
  paper's Algorithm 2 returns the mean there).
- ``ddpm1-beta-sigma-is-posterior``: ``Schedule.sigma("beta")`` returns the posterior
  σ_t = β̄_{t−1}β_t/β̄_t instead of σ_t = β_t.
- ``ddpm1-alpha-bar-off-by-one``: the cumulative tables are shifted by one timestep
  (an exclusive cumulative product: ᾱ_t holds ᾱ_{t−1}, and β̄_t likewise).
- ``ddpm1-step-article-eps``: ``ddpm_step`` uses the article's coefficient β_t with the paper's
  ε-prediction, (x_t − β_t ε_θ)/α_t, instead of (x_t − (β_t²/β̄_t) ε_θ)/α_t.
- ``ddpm1-noisy-sign``: the trainer builds x_t = ᾱ_t x_0 − β̄_t ε (sign of the noise flipped).
- ``ddpm1-su-beta-not-squared``: ``Schedule.su`` takes the grid 0.02 t/T as Su's β_t instead of
  β_t² (the notation trap between the article and the DDPM paper).
- ``ddpm1-su-grid-t-plus-one``: ``Schedule.su`` spreads its grid over T + 1 points,
  β_t² = 0.02 t/(T + 1) (an off-by-one in the denominator).
- ``ddpm1-time-embedding-constant``: the networks' timestep embedding ignores t (every t is
  embedded as T/2), so one network cannot tell the noise levels apart.
"""

from __future__ import annotations

import functools

import torch

from . import Fault

CHAPTER = "ddpm-demolish-build"


def _final_noise_always(original):
    @functools.wraps(original)
    def ddpm_sample(*args, **kwargs):
        kwargs["final_noise"] = True
        return original(*args, **kwargs)

    return ddpm_sample


def _beta_is_posterior(original):
    @functools.wraps(original)
    def sigma(self, t, variance):
        return original(self, t, "posterior" if variance == "beta" else variance)

    return sigma


def _shift_cumulative(original):
    @functools.wraps(original)
    def __init__(self, betas):
        original(self, betas)
        one, zero = torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
        self.alpha_bar = torch.cat([one, self.alpha_bar[:-1]])
        self.beta_bar = torch.cat([zero, self.beta_bar[:-1]])

    return __init__


def _article_coefficient(original):
    from kexue_nb.diffusion.schedule import per_sample

    @functools.wraps(original)
    def ddpm_step(eps, x_t, t, schedule, *, variance, noise):
        g = schedule.gather
        mean = (x_t - g(schedule.beta, t, x_t) * eps) / g(schedule.alpha, t, x_t)
        if noise is None:
            return mean
        return mean + per_sample(schedule.sigma(t, variance), x_t, "sigma") * noise

    return ddpm_step


def _noise_sign_flipped(original):
    @functools.wraps(original)
    def noisy(self, x0, t, noise):
        return original(self, x0, t, -noise)

    return noisy


def _su_grid(beta_sq):
    def su(cls, T=1000):
        t = torch.arange(1, T + 1, dtype=torch.float64)
        return cls.from_betas(beta_sq(t, T))

    return lambda original: classmethod(su)


def _time_ignored(original):
    @functools.wraps(original)
    def timestep_embedding(t, dim, T):
        return original(torch.full_like(t, T // 2), dim, T)

    return timestep_embedding


FAULTS = [
    Fault(
        name="ddpm1-final-noise-at-t1",
        chapter=CHAPTER,
        target="kexue_nb.diffusion.samplers:ddpm_sample",
        description="ddpm_sample adds σ_1 z at t = 1 on its default path (final_noise ignored)",
        patch=_final_noise_always,
    ),
    Fault(
        name="ddpm1-beta-sigma-is-posterior",
        chapter=CHAPTER,
        target="kexue_nb.diffusion.schedule:Schedule.sigma",
        description="variance='beta' returns the posterior σ_t = β̄_{t−1}β_t/β̄_t instead of β_t",
        patch=_beta_is_posterior,
    ),
    Fault(
        name="ddpm1-alpha-bar-off-by-one",
        chapter=CHAPTER,
        target="kexue_nb.diffusion.schedule:Schedule.__init__",
        description="ᾱ_t and β̄_t tables shifted by one timestep (exclusive cumulative product)",
        patch=_shift_cumulative,
    ),
    Fault(
        name="ddpm1-step-article-eps",
        chapter=CHAPTER,
        target="kexue_nb.diffusion.samplers:ddpm_step",
        description="reverse mean (x_t − β_t ε_θ)/α_t: the article's coefficient, the paper's ε",
        patch=_article_coefficient,
    ),
    Fault(
        name="ddpm1-noisy-sign",
        chapter=CHAPTER,
        target="kexue_nb.diffusion.trainer:Trainer.noisy",
        description="the trainer's x_t = ᾱ_t x_0 − β̄_t ε: the noise enters with the wrong sign",
        patch=_noise_sign_flipped,
    ),
    Fault(
        name="ddpm1-su-beta-not-squared",
        chapter=CHAPTER,
        target="kexue_nb.diffusion.schedule:Schedule.su",
        description="Schedule.su takes 0.02 t/T as Su's β_t, not β_t² (α_t = √(1 − (0.02 t/T)²))",
        patch=_su_grid(lambda t, T: (0.02 * t / T) ** 2),
    ),
    Fault(
        name="ddpm1-su-grid-t-plus-one",
        chapter=CHAPTER,
        target="kexue_nb.diffusion.schedule:Schedule.su",
        description="Schedule.su's grid over T + 1 points: β_t² = 0.02 t/(T + 1)",
        patch=_su_grid(lambda t, T: 0.02 * t / (T + 1)),
    ),
    Fault(
        name="ddpm1-time-embedding-constant",
        chapter=CHAPTER,
        target="kexue_nb.diffusion.models:timestep_embedding",
        description="the timestep embedding ignores t (every t embedded as T/2)",
        patch=_time_ignored,
    ),
]
