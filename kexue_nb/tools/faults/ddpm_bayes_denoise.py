"""Faults for ``ddpm-bayes-denoise``: plausible bugs in the ``kexue_nb.diffusion`` code the
chapter relies on, each of which its ledger must catch.

- ``ddpm3-posterior-std-beta``: ``Schedule.posterior`` returns β_t as the standard deviation of
  p(x_{t−1}|x_t, x_0) instead of β̄_{t−1}β_t/β̄_t (the two classic variances confused);
- ``ddpm3-sigma-posterior-is-beta``: ``Schedule.sigma(t, "posterior")`` returns β_t, so every
  sampler asked for the posterior variance silently uses σ_t = β_t;
- ``ddpm3-responsibility-normaliser``: the mixture's component log-likelihoods drop the
  per-component normaliser −(d/2) log(2π v_k), as if it were a constant, so the responsibilities
  (hence E[x_0|x_t], ε* and the class posterior) favour the wide components;
- ``ddpm3-predict-x0-prev``: ``Schedule.predict_x0`` reads ᾱ_{t−1}, β̄_{t−1} instead of ᾱ_t, β̄_t
  (t off by one), which DDIM's step uses;
- ``ddpm3-ddpm-step-chapter1-eps``: ``ddpm_step``'s mean uses the ε convention of chapter 1,
  (x_t − β_t ε)/α_t, with this chapter's (the DDPM paper's) ε;
- ``ddpm3-sigma-beta-is-posterior``: ``Schedule.sigma(t, "beta")`` returns the posterior σ̃_t, so
  a sampler asked for σ_t = β_t silently uses σ̃_t;
- ``ddpm3-responsibility-no-log-weights``: the responsibilities forget log π_k, which makes ε* the
  exact denoiser of the equal-weight mixture;
- ``ddpm3-posterior-mean-hard``: E[x_0|x_t] takes only the most likely component (a hard
  assignment), so the spread between the components' means is lost;
- ``ddpm3-step-noise-doubled``: ``ddpm_step`` adds its noise twice, σ_t√2 z, which widens every
  component of the samples.
"""

from __future__ import annotations

import functools
import math

import torch

from kexue_nb.tools.faults import Fault

__all__ = ["FAULTS"]

_CHAPTER = "ddpm-bayes-denoise"


def _posterior_std_beta(original):
    @functools.wraps(original)
    def posterior(self, x_t, x0, t):
        mean, _ = original(self, x_t, x0, t)
        tt = self._check_t(t, minimum=1)
        return mean, self.gather(self.beta, tt, x_t)

    return posterior


def _sigma_posterior_is_beta(original):
    @functools.wraps(original)
    def sigma(self, t, variance):
        return original(self, t, "beta" if variance == "posterior" else variance)

    return sigma


def _no_normaliser(original):
    @functools.wraps(original)
    def _log_joint(self, var, diff, y=None):
        # add back what the original subtracts: the per-component −(d/2) log(2π v_k)
        return original(self, var, diff, y) + 0.5 * self.dim * torch.log(2 * math.pi * var)

    return _log_joint


def _predict_x0_prev(original):
    @functools.wraps(original)
    def predict_x0(self, x_t, t, eps):
        prev = self._check_t(t, minimum=1) - 1
        g = self.gather
        return (x_t - g(self.beta_bar, prev, x_t) * eps) / g(self.alpha_bar, prev, x_t)

    return predict_x0


def _chapter1_eps(original):
    @functools.wraps(original)
    def ddpm_step(eps, x_t, t, schedule, *, variance, noise):
        # β_t² ε/β̄_t with ε → (β̄_t/β_t) ε gives β_t ε: the chapter-1 formula fed this ε
        g = schedule.gather
        scaled = eps * g(schedule.beta_bar, t, x_t) / g(schedule.beta, t, x_t)
        return original(scaled, x_t, t, schedule, variance=variance, noise=noise)

    return ddpm_step


def _sigma_beta_is_posterior(original):
    @functools.wraps(original)
    def sigma(self, t, variance):
        return original(self, t, "posterior" if variance == "beta" else variance)

    return sigma


def _no_log_weights(original):
    @functools.wraps(original)
    def _log_joint(self, var, diff, y=None):
        return original(self, var, diff, y) - torch.log(self.weights.to(diff.device))

    return _log_joint


def _hard_posterior_mean(original):
    @functools.wraps(original)
    def posterior_mean(self, x_t, alpha_bar_t, beta_bar_t, y=None):
        x, a, b, means, var0, var, diff = self._prep(x_t, alpha_bar_t, beta_bar_t)
        log_joint = self._log_joint(var, diff, y)
        r = torch.nn.functional.one_hot(log_joint.argmax(1), log_joint.shape[1]).to(log_joint.dtype)
        comp = means[None] + (a * var0 / var)[..., None] * diff
        return (r[..., None] * comp).sum(1)

    return posterior_mean


def _noise_doubled(original):
    @functools.wraps(original)
    def ddpm_step(eps, x_t, t, schedule, *, variance, noise):
        return original(eps, x_t, t, schedule, variance=variance,
                        noise=None if noise is None else math.sqrt(2) * noise)

    return ddpm_step


FAULTS = [
    Fault(
        name="ddpm3-posterior-std-beta",
        chapter=_CHAPTER,
        target="kexue_nb.diffusion.schedule:Schedule.posterior",
        description="Schedule.posterior returns β_t as the std instead of β̄_{t−1}β_t/β̄_t",
        patch=_posterior_std_beta,
    ),
    Fault(
        name="ddpm3-sigma-posterior-is-beta",
        chapter=_CHAPTER,
        target="kexue_nb.diffusion.schedule:Schedule.sigma",
        description='Schedule.sigma(t, "posterior") returns β_t (σ_t = β_t used for both choices)',
        patch=_sigma_posterior_is_beta,
    ),
    Fault(
        name="ddpm3-responsibility-normaliser",
        chapter=_CHAPTER,
        target="kexue_nb.diffusion.data:LabelledMixture._log_joint",
        description="mixture responsibilities drop the per-component normaliser −(d/2)log(2πv_k)",
        patch=_no_normaliser,
    ),
    Fault(
        name="ddpm3-predict-x0-prev",
        chapter=_CHAPTER,
        target="kexue_nb.diffusion.schedule:Schedule.predict_x0",
        description="predict_x0 uses ᾱ_{t−1}, β̄_{t−1} instead of ᾱ_t, β̄_t (t off by one)",
        patch=_predict_x0_prev,
    ),
    Fault(
        name="ddpm3-ddpm-step-chapter1-eps",
        chapter=_CHAPTER,
        target="kexue_nb.diffusion.samplers:ddpm_step",
        description="ddpm_step's mean is (x_t − β_t ε)/α_t, chapter 1's ε convention",
        patch=_chapter1_eps,
    ),
    Fault(
        name="ddpm3-sigma-beta-is-posterior",
        chapter=_CHAPTER,
        target="kexue_nb.diffusion.schedule:Schedule.sigma",
        description='Schedule.sigma(t, "beta") returns σ̃_t (σ̃_t used for both choices)',
        patch=_sigma_beta_is_posterior,
    ),
    Fault(
        name="ddpm3-responsibility-no-log-weights",
        chapter=_CHAPTER,
        target="kexue_nb.diffusion.data:LabelledMixture._log_joint",
        description="mixture responsibilities forget log π_k (the equal-weight mixture's ε*)",
        patch=_no_log_weights,
    ),
    Fault(
        name="ddpm3-posterior-mean-hard",
        chapter=_CHAPTER,
        target="kexue_nb.diffusion.data:LabelledMixture.posterior_mean",
        description="E[x_0|x_t] from the most likely component only (hard assignment)",
        patch=_hard_posterior_mean,
    ),
    Fault(
        name="ddpm3-step-noise-doubled",
        chapter=_CHAPTER,
        target="kexue_nb.diffusion.samplers:ddpm_step",
        description="ddpm_step adds its noise twice (σ_t√2 z): samples too wide",
        patch=_noise_doubled,
    ),
]
