"""Reverse-process samplers for ε-prediction models: DDPM (ancestral) and DDIM.

Notation of kexue.fm/archives/9119 and 9164 (see :mod:`kexue_nb.diffusion.schedule`): the model
predicts the DDPM paper's ε, so x_t = ᾱ_t x_0 + β̄_t ε and x̂_0 = (x_t − β̄_t ε_θ)/ᾱ_t.

* DDPM step (9164, the final reverse step): x_{t−1} = (x_t − (β_t²/β̄_t) ε_θ)/α_t + σ_t z with
  σ_t = β_t (``variance="beta"``), σ_t = β̄_{t−1}β_t/β̄_t (``variance="posterior"``) or σ_t = 0
  (``variance="zero"``, the mean alone; not DDIM, whose deterministic step has another mean).
* DDIM step (Song et al. 2021, eq. (12), in Su's notation):
  x_{s} = ᾱ_s x̂_0 + √(β̄_s² − σ²) ε_θ + σ z for a previous timestep s < t, with
  σ = η √((β̄_s²/β̄_t²)(1 − ᾱ_t²/ᾱ_s²)); η = 1 and s = t − 1 is the DDPM step with the posterior σ.

The model is called as ``model(x_t, t, y)`` with ``t`` a long tensor of shape (B,).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from .._validation import _is_complex, floating_tensor, nonnegative_float, same_shape
from .guidance import Guidance
from .schedule import MAX_T, Schedule, _check_flag, per_sample

__all__ = [
    "Samples",
    "ddim_sample",
    "ddim_sigma",
    "ddim_step",
    "ddim_timesteps",
    "ddpm_sample",
    "ddpm_step",
    "gaussian_chain_variance",
]

_VARIANCES = ("beta", "posterior", "zero")
#: The most values a sampler draws at once (prod(shape)); larger requests are refused up front.
MAX_ELEMENTS = 10**8


def _check_schedule(schedule: object) -> Schedule:
    if not isinstance(schedule, Schedule):
        raise TypeError(f"`schedule` must be a Schedule, got {type(schedule).__name__}")
    return schedule


def _check_variance(variance: object) -> str:
    if not isinstance(variance, str) or variance not in _VARIANCES:
        raise ValueError(f"`variance` must be 'beta', 'posterior' or 'zero', got {variance!r}")
    return variance


@dataclass
class Samples:
    """What a sampler returns.

    x : torch.Tensor
        The final samples x_0.
    trajectory : list[torch.Tensor] | None
        With ``record=True``: x at each visited timestep, from x_T to the final x_0 (on the CPU).
    x0_hat : list[torch.Tensor] | None
        With ``record=True``: the model's clean-data estimate x̂_0 at each visited timestep t
        (one fewer entry than ``trajectory``).
    timesteps : list[int]
        The timesteps t at which the model was evaluated, in sampling order (T first).
    """

    x: torch.Tensor
    trajectory: list[torch.Tensor] | None
    x0_hat: list[torch.Tensor] | None
    timesteps: list[int]


def ddpm_step(
    eps: torch.Tensor,
    x_t: torch.Tensor,
    t: int | torch.Tensor,
    schedule: Schedule,
    *,
    variance: str,
    noise: torch.Tensor | None,
) -> torch.Tensor:
    """One ancestral step x_{t−1} = (x_t − (β_t²/β̄_t) ε)/α_t + σ_t z (kexue.fm/archives/9164).

    ``variance`` picks σ_t = β_t ("beta"), β̄_{t−1}β_t/β̄_t ("posterior") or 0 ("zero");
    ``noise`` is z (x_t's shape) or None for the mean alone. t in 1..T (an int or a long tensor
    of shape (B,)).
    """
    _check_variance(variance)
    _check_schedule(schedule)
    floating_tensor(eps, "eps")
    floating_tensor(x_t, "x_t")
    same_shape(eps, "eps", x_t, "x_t")
    schedule._check_t(t, minimum=1)
    g = schedule.gather
    mean = (x_t - g(schedule.beta, t, x_t) ** 2 / g(schedule.beta_bar, t, x_t) * eps) / g(
        schedule.alpha, t, x_t
    )
    if noise is None:
        return mean
    floating_tensor(noise, "noise")
    same_shape(noise, "noise", x_t, "x_t")
    return mean + per_sample(schedule.sigma(t, variance), x_t, "sigma") * noise


def ddim_sigma(schedule: Schedule, t: int, t_prev: int, eta: float) -> float:
    """σ = η √((β̄_s²/β̄_t²)(1 − ᾱ_t²/ᾱ_s²)) for the DDIM step t → s = t_prev (float64).

    η ≤ 1 keeps σ ≤ β̄_s; a larger η is refused where σ would exceed β̄_s (the step's
    √(β̄_s² − σ²) would be imaginary)."""
    eta = _check_eta(eta)
    _check_schedule(schedule)
    _check_pair(schedule, t, t_prev)
    ab_t, ab_s = schedule.alpha_bar[t], schedule.alpha_bar[t_prev]
    bb_t, bb_s = schedule.beta_bar[t], schedule.beta_bar[t_prev]
    sigma = float(eta * torch.sqrt(bb_s**2 / bb_t**2 * (1.0 - ab_t**2 / ab_s**2)))
    if eta > 1.0 and sigma > float(bb_s) * (1.0 + 1e-9):
        raise ValueError(f"`eta` = {eta!r} makes σ = {sigma:.4g} exceed β̄_s = {float(bb_s):.4g} "
                         f"on the step t = {t} → t_prev = {t_prev}; use eta <= 1")
    return sigma


def _check_pair(schedule: Schedule, t: int, t_prev: int) -> None:
    for name, v in (("t", t), ("t_prev", t_prev)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise ValueError(f"`{name}` must be an integer, got {v!r}")
    if not 1 <= t <= schedule.T:
        raise ValueError(f"`t` must lie in 1..{schedule.T}, got {t}")
    if not 0 <= t_prev < t:
        raise ValueError(f"`t_prev` must lie in 0..{t - 1} (below t = {t}), got {t_prev}")


def _check_eta(eta: float) -> float:
    if isinstance(eta, bool | str | bytes) or eta is None or _is_complex(eta):
        raise ValueError(f"`eta` must be a finite number >= 0, got {eta!r}")
    try:
        e = float(eta)
    except (TypeError, ValueError):
        raise ValueError(f"`eta` must be a finite number >= 0, got {eta!r}") from None
    if not 0.0 <= e < float("inf"):
        raise ValueError(f"`eta` must be a finite number >= 0, got {eta!r}")
    return e


def ddim_step(
    eps: torch.Tensor,
    x_t: torch.Tensor,
    t: int,
    t_prev: int,
    schedule: Schedule,
    *,
    eta: float,
    noise: torch.Tensor | None,
) -> torch.Tensor:
    """One DDIM step t → s = ``t_prev`` (Song et al. 2021, eq. (12)), 0 <= s < t <= T:

    x_s = ᾱ_s x̂_0 + √(β̄_s² − σ²) ε + σ z, x̂_0 = (x_t − β̄_t ε)/ᾱ_t,
    σ = η √((β̄_s²/β̄_t²)(1 − ᾱ_t²/ᾱ_s²)). η = 0 is deterministic; ``noise`` None means z = 0.
    """
    eta = _check_eta(eta)
    floating_tensor(eps, "eps")
    floating_tensor(x_t, "x_t")
    same_shape(eps, "eps", x_t, "x_t")
    if noise is not None:
        floating_tensor(noise, "noise")
    sigma = ddim_sigma(schedule, t, t_prev, eta)
    ab_s, bb_s = schedule.alpha_bar[t_prev].item(), schedule.beta_bar[t_prev].item()
    x0_hat = schedule.predict_x0(x_t, t, eps)
    direction = max(bb_s**2 - sigma**2, 0.0) ** 0.5
    out = ab_s * x0_hat + direction * eps
    if noise is not None and sigma > 0.0:
        same_shape(noise, "noise", x_t, "x_t")
        out = out + sigma * noise
    return out


def ddim_timesteps(T: int, steps: int) -> list[int]:
    """The ``steps`` timesteps DDIM visits, in sampling order: t_i = round(i·T/steps) for
    i = steps, …, 1 (evenly spaced, starting at T; diffusers' "trailing" spacing). The last
    step goes from t_1 = round(T/steps) to 0."""
    if isinstance(T, bool) or not isinstance(T, int | np.integer) or not 0 < T <= MAX_T:
        raise ValueError(f"`T` must be a positive integer <= {MAX_T}, got {T!r}")
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or not 1 <= steps <= T:
        raise ValueError(f"`steps` must be an integer in 1..T = {T}, got {steps!r}")
    return [round(i * T / steps) for i in range(steps, 0, -1)]


# --------------------------------------------------------------------------------------
# samplers
def _setup(model, shape, y, guidance, generator, device, dtype, x_T):
    if not callable(model):
        raise ValueError(f"`model` must be callable (x_t, t, y) -> eps, got {model!r}")
    if isinstance(shape, torch.Size):
        shape = tuple(shape)
    if (not isinstance(shape, tuple) or not shape
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)):
        raise ValueError(f"`shape` must be a non-empty tuple of positive integers, got {shape!r}")
    if math.prod(shape) > MAX_ELEMENTS:
        raise ValueError(f"`shape` {shape} asks for {math.prod(shape)} values, more than the "
                         f"limit {MAX_ELEMENTS}; sample in batches")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"`generator` must be a torch.Generator or None, "
                        f"got {type(generator).__name__}")
    param = next(iter(model.parameters()), None) if isinstance(model, torch.nn.Module) else None
    if device is None:
        device = param.device if param is not None else torch.device("cpu")
    try:
        device = torch.device(device)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"`device` must name a torch device, got {device!r}") from exc
    if dtype is None:
        dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"`dtype` must be a floating torch dtype, got {dtype!r}")
    if y is not None:
        if not isinstance(y, torch.Tensor) or y.shape != (shape[0],):
            raise ValueError(f"`y` must be a long tensor of shape ({shape[0]},), got "
                             f"{tuple(y.shape) if isinstance(y, torch.Tensor) else y!r}")
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise TypeError(f"`y` must be an integer (long) tensor of class ids, got {y.dtype}")
        y = y.to(device=device, dtype=torch.long)
    if guidance is not None and y is None:
        raise ValueError("`y` must be given when `guidance` is used")
    if guidance is not None and not (hasattr(guidance, "eps") and hasattr(guidance, "ddpm")):
        raise ValueError(f"`guidance` must be a ClassifierGuidance or ClassifierFreeGuidance, "
                         f"got {guidance!r}")
    if x_T is None:
        x = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    else:
        floating_tensor(x_T, "x_T")
        if not bool(torch.isfinite(x_T).all()):
            raise ValueError("`x_T` must be finite (no NaN or ±inf)")
        if tuple(x_T.shape) != shape:
            raise ValueError(f"`x_T` must have shape {shape}, got {tuple(x_T.shape)}")
        x = x_T.to(device=device, dtype=dtype)
    grad_needed = guidance is not None and getattr(guidance, "needs_grad", False)
    ctx = torch.no_grad() if grad_needed else torch.inference_mode()
    return x, y, device, ctx


def _noise(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def ddpm_sample(
    model: torch.nn.Module,
    schedule: Schedule,
    shape: tuple[int, ...],
    *,
    variance: str = "beta",
    y: torch.Tensor | None = None,
    guidance: Guidance | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    x_T: torch.Tensor | None = None,
    final_noise: bool = False,
    record: bool = False,
    progress: bool = True,
) -> Samples:
    """Ancestral DDPM sampling from x_T ~ N(0, I) through t = T, …, 1 (kexue.fm/archives/9119).

    Each step is :func:`ddpm_step` with σ_t = β_t (``variance="beta"``), the posterior
    σ_t = β̄_{t−1}β_t/β̄_t or σ_t = 0 (``"zero"``: the mean alone, no noise is drawn after x_T).
    As in the DDPM paper's Algorithm 2 the last step (t = 1) adds no noise unless
    ``final_noise=True`` (with ``"posterior"`` σ_1 = 0 anyway). ``guidance`` (with ``y``) shifts
    the mean by σ_t² γ ∇log p(y|x_t) (classifier guidance; nothing when σ_t = 0) or replaces ε by
    the CFG ε̃.

    ``generator`` seeds x_T and every z (a torch.Generator on ``device``); ``device`` defaults to
    the model's parameters' device (CPU for a parameter-free model), ``dtype`` to their dtype;
    ``x_T`` replaces the initial noise. ``record`` keeps the trajectory and the x̂_0 estimates
    (from the ε the step used: under classifier guidance the unguided ε). Without classifier
    guidance the loop runs under ``torch.inference_mode()``, so the returned tensors are inference
    tensors: ``.clone()`` them before using them in autograd.
    """
    _check_variance(variance)
    _check_schedule(schedule)
    for name, flag in (("final_noise", final_noise), ("record", record), ("progress", progress)):
        _check_flag(flag, name)
    x, y, device, ctx = _setup(model, shape, y, guidance, generator, device, dtype, x_T)
    traj: list[torch.Tensor] | None = [x.cpu()] if record else None
    x0s: list[torch.Tensor] | None = [] if record else None
    timesteps = list(range(schedule.T, 0, -1))
    with ctx:
        for t in tqdm(timesteps, desc="DDPM", disable=not progress, leave=False):
            tb = torch.full((shape[0],), t, dtype=torch.long, device=device)
            if guidance is None:
                eps, shift = model(x, tb, y), 0.0
            else:
                sigma = schedule.sigma(t, variance).to(device=device, dtype=x.dtype)
                eps, shift = guidance.ddpm(model, x, tb, y, schedule, sigma)
            if x0s is not None:
                x0s.append(schedule.predict_x0(x, t, eps).cpu())
            noisy = variance != "zero" and (t > 1 or final_noise)
            z = _noise(x, generator) if noisy else None
            x = ddpm_step(eps, x, t, schedule, variance=variance, noise=z) + shift
            if traj is not None:
                traj.append(x.cpu())
    return Samples(x=x, trajectory=traj, x0_hat=x0s, timesteps=timesteps)


def ddim_sample(
    model: torch.nn.Module,
    schedule: Schedule,
    shape: tuple[int, ...],
    *,
    steps: int,
    eta: float = 0.0,
    y: torch.Tensor | None = None,
    guidance: Guidance | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    x_T: torch.Tensor | None = None,
    record: bool = False,
    progress: bool = True,
) -> Samples:
    """DDIM sampling (Song et al. 2021) with ``steps`` evenly spaced timesteps
    (:func:`ddim_timesteps`: t_i = round(i·T/steps), i = steps..1, then 0) and noise
    level ``eta`` (0: deterministic).

    ``guidance`` acts in ε-space: classifier guidance uses ε − γ β̄_t ∇log p(y|x_t)
    (kexue.fm/archives/9257), classifier-free guidance ε̃ = (1 + w) ε(x, y) − w ε(x). Other
    arguments as in :func:`ddpm_sample`.
    """
    eta = _check_eta(eta)
    _check_schedule(schedule)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= schedule.T:
        raise ValueError(f"`steps` must be an integer in 1..T = {schedule.T}, got {steps!r}")
    _check_flag(record, "record")
    _check_flag(progress, "progress")
    x, y, device, ctx = _setup(model, shape, y, guidance, generator, device, dtype, x_T)
    timesteps = ddim_timesteps(schedule.T, steps)
    if eta > 1.0:  # refuse up front an η whose σ exceeds β̄_s on some step
        for i, t in enumerate(timesteps):
            ddim_sigma(schedule, t, timesteps[i + 1] if i + 1 < len(timesteps) else 0, eta)
    traj: list[torch.Tensor] | None = [x.cpu()] if record else None
    x0s: list[torch.Tensor] | None = [] if record else None
    with ctx:
        for i, t in enumerate(tqdm(timesteps, desc="DDIM", disable=not progress, leave=False)):
            t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else 0
            tb = torch.full((shape[0],), t, dtype=torch.long, device=device)
            eps = model(x, tb, y) if guidance is None else guidance.eps(model, x, tb, y, schedule)
            if x0s is not None:
                x0s.append(schedule.predict_x0(x, t, eps).cpu())
            z = _noise(x, generator) if (eta > 0.0 and t_prev > 0) else None
            x = ddim_step(eps, x, t, t_prev, schedule, eta=eta, noise=z)
            if traj is not None:
                traj.append(x.cpu())
    return Samples(x=x, trajectory=traj, x0_hat=x0s, timesteps=timesteps)


def gaussian_chain_variance(
    schedule: Schedule,
    data_var: float,
    variance: str = "beta",
    *,
    final_noise: bool = False,
    t_stop: int = 0,
    t_start: int | None = None,
) -> float:
    """Exact variance of one coordinate of x_{t_stop} drawn by :func:`ddpm_sample` from
    x_T ~ N(0, I) when the model is the exact ε-predictor of N(0, s²) data, s² = ``data_var``.
    With ``t_start`` the chain starts instead at x_{t_start} drawn from its exact law, of
    variance ᾱ_{t_start}²s² + β̄_{t_start}².

    There ε*(x_t) = β̄_t x_t/(ᾱ_t²s² + β̄_t²), so each step is linear,
    x_{t−1} = m_t x_t + σ_t z with m_t = (1 − β_t²/(ᾱ_t²s² + β̄_t²))/α_t (kexue.fm/archives/9119),
    and v_{t−1} = m_t² v_t + σ_t² from v_T = 1; σ_1 enters only with ``final_noise``, as in
    :func:`ddpm_sample`. s² = 1 gives m_t = α_t, s² = 0 (a point) the posterior-mean
    coefficient α_tβ̄_{t−1}²/β̄_t². It also covers a coordinate in which every component of a
    mixture is N(0, s²) (the exact denoiser is then linear in that coordinate).
    """
    _check_schedule(schedule)
    s2 = nonnegative_float(data_var, "data_var")
    variance = _check_variance(variance)
    _check_flag(final_noise, "final_noise")
    if isinstance(t_stop, bool) or not isinstance(t_stop, int) or not 0 <= t_stop < schedule.T:
        raise ValueError(
            f"`t_stop` must be an integer in 0..T − 1 = {schedule.T - 1}, got {t_stop!r}")
    if t_start is not None and (isinstance(t_start, bool) or not isinstance(t_start, int)
                                or not t_stop < t_start <= schedule.T):
        raise ValueError(f"`t_start` must be an integer in t_stop + 1..T = "
                         f"{t_stop + 1}..{schedule.T}, got {t_start!r}")

    def marginal(t: int) -> float:
        """Var x_t of the data's exact law, ᾱ_t²s² + β̄_t²."""
        return schedule.alpha_bar[t].item() ** 2 * s2 + schedule.beta_bar[t].item() ** 2

    v = 1.0 if t_start is None else marginal(t_start)
    for t in range(schedule.T if t_start is None else t_start, t_stop, -1):
        m = (1.0 - schedule.beta[t].item() ** 2 / marginal(t)) / schedule.alpha[t].item()
        noise = schedule.sigma(t, variance).item() ** 2 if (t > 1 or final_noise) else 0.0
        v = m * m * v + noise
    return v
