"""Noise schedules of the diffusion chapters, in Su's notation (kexue.fm/archives/9119, 9164).

The forward chain is x_t = α_t x_{t−1} + β_t ε_t with α_t² + β_t² = 1 (9119, eq. (1)), so that
x_t = ᾱ_t x_0 + β̄_t ε with ᾱ_t = α_1⋯α_t and β̄_t = √(1 − ᾱ_t²) (9119, the unrolled chain).
Su's α_t, β_t, ᾱ_t are the square roots of the DDPM paper's α_t, β_t, ᾱ_t (Ho et al. 2020);
:meth:`Schedule.ddpm_paper` is the one place that converts between the two.

A :class:`Schedule` is a set of float64 CPU tables indexed by the integer timestep t = 0..T,
where t = 0 is clean data (α_0 = ᾱ_0 = 1, β_0 = β̄_0 = 0). Methods gather the entries they need
and cast them to the dtype and device of the tensor they act on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .._validation import _is_complex, floating_tensor, real_float, same_shape

__all__ = ["DDPMPaperSchedule", "MAX_T", "Schedule", "per_sample"]

#: The largest number of diffusion steps accepted (tables of 8 MB each); larger T are refused
#: up front rather than allocated.
MAX_T = 10**6


def _real_scalar(value: object, name: str) -> float:
    """``value`` as a finite float (``real_float``), refusing strings as well: a number must be
    given as a number."""
    if isinstance(value, str | bytes):
        raise TypeError(f"`{name}` must be a real number, got {value!r}")
    return real_float(value, name)


def _check_flag(value: object, name: str) -> bool:
    """A switch must be a bool (numpy's included): a tensor or a string would be read as a truth
    value, or fail with an ambiguous-truth-value error."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"`{name}` must be True or False, got {value!r}")
    return bool(value)


def _check_T(T: object) -> int:
    if isinstance(T, bool) or not isinstance(T, int | np.integer) or not 0 < T <= MAX_T:
        raise ValueError(f"`T` must be a positive integer <= {MAX_T}, got {T!r}")
    return int(T)


@dataclass(frozen=True)
class DDPMPaperSchedule:
    """The same schedule in the DDPM paper's notation (Ho et al. 2020, eq. (4)).

    Entry ``i`` of each length-T table belongs to timestep t = i + 1 (the layout of the
    diffusers schedulers): ``betas`` = β_t (Su's β_t²), ``alphas`` = 1 − β_t (Su's α_t²),
    ``alphas_cumprod`` = ᾱ_t (Su's ᾱ_t²).
    """

    betas: torch.Tensor
    alphas: torch.Tensor
    alphas_cumprod: torch.Tensor


class Schedule:
    """A discrete noise schedule x_t = α_t x_{t−1} + β_t ε_t, t = 1..T (kexue.fm/archives/9119).

    Attributes
    ----------
    T : int
        Number of diffusion steps.
    alpha, beta, alpha_bar, beta_bar : torch.Tensor
        float64 CPU tables of length T + 1 indexed by t = 0..T: α_t, β_t = √(1 − α_t²),
        ᾱ_t = α_1⋯α_t and β̄_t = √(1 − ᾱ_t²); α_0 = ᾱ_0 = 1 and β_0 = β̄_0 = 0.

    Build one with :meth:`su`, :meth:`from_betas`, :meth:`linear` or :meth:`cosine`.
    """

    def __init__(self, betas: torch.Tensor) -> None:
        """Use :meth:`from_betas`; ``betas`` are the DDPM paper's β_t (Su's β_t²), t = 1..T."""
        b = _as_betas(betas)
        if b.ndim != 1 or b.numel() == 0 or b.numel() > MAX_T:
            raise ValueError(f"`betas` must be a non-empty 1-D sequence of at most {MAX_T} "
                             f"values, got shape {tuple(b.shape)}")
        if not bool(torch.all((b > 0) & (b < 1))):
            bad = b[~((b > 0) & (b < 1))][0].item()
            raise ValueError(f"`betas` must lie in the open interval (0, 1), got {bad!r}")
        self.T: int = int(b.numel())
        zero = torch.zeros(1, dtype=torch.float64)
        b2 = torch.cat([zero, b])  # DDPM β_t with β_0 = 0
        log_abar2 = torch.cumsum(torch.log1p(-b2), 0)  # log of the DDPM paper's ᾱ_t
        self.alpha: torch.Tensor = torch.sqrt(1.0 - b2)
        self.beta: torch.Tensor = torch.sqrt(b2)
        self.alpha_bar: torch.Tensor = torch.exp(0.5 * log_abar2)
        # β̄_t² = 1 − ᾱ_t², computed with expm1 so that small β̄_t keep their relative precision
        self.beta_bar: torch.Tensor = torch.sqrt(-torch.expm1(log_abar2))

    # ----------------------------------------------------------------------------------
    # constructors
    @classmethod
    def from_betas(cls, betas: torch.Tensor | list[float]) -> Schedule:
        """The schedule with the DDPM paper's β_1..β_T (each in (0, 1)), i.e. Su's β_t².

        Su's α_t = √(1 − β_t^{DDPM}), β_t = √β_t^{DDPM} (kexue.fm/archives/9119).
        """
        _as_betas(betas)  # refuse complex, non-numeric and non-real input with a clear message
        return cls(torch.as_tensor(betas, dtype=torch.float64))

    @classmethod
    def su(cls, T: int = 1000) -> Schedule:
        """Su's schedule α_t = √(1 − 0.02 t/T) (kexue.fm/archives/9119): DDPM β_t = 0.02 t/T."""
        T = _check_T(T)
        t = torch.arange(1, T + 1, dtype=torch.float64)
        return cls.from_betas(0.02 * t / T)

    @classmethod
    def linear(cls, T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
        """The DDPM paper's linear schedule: β_t = linspace(beta_start, beta_end, T) in float64."""
        T = _check_T(T)
        for name, value in (("beta_start", beta_start), ("beta_end", beta_end)):
            if not 0.0 < _real_scalar(value, name) < 1.0:
                raise ValueError(f"`{name}` must lie in (0, 1), got {value!r}")
        return cls.from_betas(torch.linspace(beta_start, beta_end, T, dtype=torch.float64))

    @classmethod
    def cosine(cls, T: int, s: float = 0.008) -> Schedule:
        """Nichol & Dhariwal's cosine schedule (Improved DDPM 2021, eq. (17)).

        The DDPM paper's ᾱ_t = f(t)/f(0) with f(t) = cos²((t/T + s)/(1 + s)·π/2), and
        β_t = 1 − ᾱ_t/ᾱ_{t−1} clipped at 0.999.
        """
        T = _check_T(T)
        if not _real_scalar(s, "s") > 0.0:
            raise ValueError(f"`s` must be positive and finite, got {s!r}")
        t = torch.arange(T + 1, dtype=torch.float64)
        f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
        abar = f / f[0]
        betas = torch.clamp(1.0 - abar[1:] / abar[:-1], max=0.999)
        if not bool(torch.all(betas > 0)):  # s so large that ᾱ_t rounds to a constant
            raise ValueError(f"`s` = {s!r} is too large for T = {T}: some β_t round to 0 "
                             "(the usual value is 0.008)")
        return cls.from_betas(betas)

    # ----------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"Schedule(T={self.T}, alpha_bar_T={self.alpha_bar[-1].item():.4g})"

    def ddpm_paper(self) -> DDPMPaperSchedule:
        """The schedule in the DDPM paper's notation: squares of Su's α_t, β_t, ᾱ_t, t = 1..T."""
        return DDPMPaperSchedule(
            betas=self.beta[1:] ** 2,
            alphas=self.alpha[1:] ** 2,
            alphas_cumprod=self.alpha_bar[1:] ** 2,
        )

    def sigma(self, t: int | torch.Tensor, variance: str) -> torch.Tensor:
        """The reverse-step standard deviation σ_t, float64, for t = 1..T.

        ``variance="beta"``: σ_t = β_t (exact when the data are standard normal);
        ``variance="posterior"``: σ_t = β̄_{t−1}β_t/β̄_t, the standard deviation of
        p(x_{t−1}|x_t, x_0) (kexue.fm/archives/9164; exact when the data are one point);
        ``variance="zero"``: σ_t = 0, the mean-only step that 9119 also writes down.
        """
        t = self._check_t(t, minimum=1)
        if not isinstance(variance, str):
            raise ValueError(
                f"`variance` must be 'beta', 'posterior' or 'zero', got {variance!r}")
        if variance == "beta":
            return self.beta[t]
        if variance == "posterior":
            return self.beta_bar[t - 1] * self.beta[t] / self.beta_bar[t]
        if variance == "zero":
            return torch.zeros_like(self.beta[t])
        raise ValueError(f"`variance` must be 'beta', 'posterior' or 'zero', got {variance!r}")

    # ----------------------------------------------------------------------------------
    def _check_t(self, t: int | torch.Tensor, minimum: int = 0) -> torch.Tensor:
        """Validate integer timesteps in minimum..T; return them as a CPU long tensor."""
        if isinstance(t, bool):
            raise ValueError(f"`t` must be an integer or a long tensor, got {t!r}")
        if isinstance(t, int | np.integer):
            if not minimum <= t <= self.T:
                raise ValueError(f"`t` must lie in {minimum}..{self.T}, got values in {t}..{t}")
            tt = torch.tensor(int(t), dtype=torch.long)
        elif isinstance(t, torch.Tensor):
            if t.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
                raise ValueError(f"`t` must be an integer tensor, got dtype {t.dtype}")
            if t.ndim > 1:
                raise ValueError(f"`t` must be an integer or a tensor of shape (B,), "
                                 f"got shape {tuple(t.shape)}")
            tt = t.detach().to("cpu", torch.long)
        else:
            raise ValueError(f"`t` must be an integer or a long tensor, got {type(t).__name__}")
        if tt.numel() and (int(tt.min()) < minimum or int(tt.max()) > self.T):
            raise ValueError(f"`t` must lie in {minimum}..{self.T}, got values in "
                             f"{int(tt.min())}..{int(tt.max())}")
        return tt

    def gather(
        self, values: torch.Tensor, t: int | torch.Tensor, like: torch.Tensor
    ) -> torch.Tensor:
        """``values[t]`` cast to ``like``'s dtype and device, shaped to broadcast against ``like``.

        ``t`` an int gives a 0-d tensor; ``t`` a tensor of shape (B,) (B = ``like.shape[0]``)
        gives shape (B, 1, …, 1), one coefficient per sample.
        """
        if not isinstance(values, torch.Tensor) or values.ndim != 1 or values.numel() != self.T + 1:
            got = tuple(values.shape) if isinstance(values, torch.Tensor) else values
            raise ValueError(f"`values` must be a 1-D tensor of length T + 1 = {self.T + 1}, "
                             f"got {got!r}")
        floating_tensor(like, "like")
        tt = self._check_t(t)
        out = values[tt]
        return _Gathered(tt, like)(out)

    def q_sample(
        self, x0: torch.Tensor, t: int | torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor:
        """x_t = ᾱ_t x_0 + β̄_t ε, the unrolled forward chain (kexue.fm/archives/9119).

        ``x0`` and ``noise`` must be floating tensors of one shape (integer tensors would cast
        the coefficients to integers)."""
        floating_tensor(x0, "x0")
        floating_tensor(noise, "noise")
        same_shape(noise, "noise", x0, "x0")
        return self.gather(self.alpha_bar, t, x0) * x0 + self.gather(self.beta_bar, t, x0) * noise

    def posterior(
        self, x_t: torch.Tensor, x0: torch.Tensor, t: int | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of p(x_{t−1}|x_t, x_0), t = 1..T (kexue.fm/archives/9164).

        mean = (α_t β̄_{t−1}²/β̄_t²) x_t + (ᾱ_{t−1} β_t²/β̄_t²) x_0,
        std = β̄_{t−1} β_t/β̄_t (broadcastable against ``x_t``; 0 at t = 1).
        ``x_t`` and ``x0`` must be floating tensors of one shape.
        """
        floating_tensor(x_t, "x_t")
        floating_tensor(x0, "x0")
        same_shape(x0, "x0", x_t, "x_t")
        tt = self._check_t(t, minimum=1)
        prev = tt - 1
        coef_xt = self.alpha[tt] * self.beta_bar[prev] ** 2 / self.beta_bar[tt] ** 2
        coef_x0 = self.alpha_bar[prev] * self.beta[tt] ** 2 / self.beta_bar[tt] ** 2
        std = self.beta_bar[prev] * self.beta[tt] / self.beta_bar[tt]
        g = _Gathered(tt, x_t)
        return g(coef_xt) * x_t + g(coef_x0) * x0, g(std)

    def predict_x0(
        self, x_t: torch.Tensor, t: int | torch.Tensor, eps: torch.Tensor
    ) -> torch.Tensor:
        """x̂_0 = (x_t − β̄_t ε̂)/ᾱ_t, the clean-data estimate behind an ε-prediction (9164);
        ``x_t`` and ``eps`` floating tensors of one shape."""
        floating_tensor(x_t, "x_t")
        floating_tensor(eps, "eps")
        same_shape(eps, "eps", x_t, "x_t")
        g = self.gather
        return (x_t - g(self.beta_bar, t, x_t) * eps) / g(self.alpha_bar, t, x_t)


def per_sample(values: torch.Tensor | float, like: torch.Tensor, name: str) -> torch.Tensor:
    """``values`` (a scalar, or one per sample: shape (B,)) shaped (B, 1, …, 1) to broadcast
    against ``like`` (B, …), on ``like``'s device and dtype (a floating tensor)."""
    floating_tensor(like, "like")
    if isinstance(values, bool | str | bytes) or values is None or _is_complex(values):
        raise TypeError(f"`{name}` must be a real number or tensor, got {values!r}")
    try:
        values = torch.as_tensor(values)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(f"`{name}` must be a real number or tensor, got {values!r}") from exc
    if values.ndim > 1:
        raise ValueError(f"`{name}` must be a scalar or have shape (B,), "
                         f"got {tuple(values.shape)}")
    if values.is_floating_point() and not bool(torch.isfinite(values).all()):
        raise ValueError(f"`{name}` must be finite (no NaN or ±inf), got {values}")
    if values.ndim == 1:
        if like.ndim == 0 or values.shape[0] != like.shape[0]:
            n = like.shape[0] if like.ndim else 0
            raise ValueError(f"`{name}` must be a scalar or have shape ({n},), "
                             f"got {tuple(values.shape)}")
        values = values.reshape(-1, *([1] * (like.ndim - 1)))
    return values.to(device=like.device, dtype=like.dtype)


def _as_betas(betas: object) -> torch.Tensor:
    """``betas`` as a float64 CPU tensor; complex, None and non-numeric input refused."""
    if betas is None or isinstance(betas, bool | str) or _is_complex(betas):
        raise TypeError(f"`betas` must be a real 1-D sequence, got {betas!r}")
    try:
        return torch.as_tensor(betas).detach().to("cpu", torch.float64)
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise TypeError(f"`betas` must be a real 1-D sequence, got {betas!r}") from exc


class _Gathered:
    """Broadcast per-timestep values (already indexed by a validated ``t``) against ``like``."""

    def __init__(self, tt: torch.Tensor, like: torch.Tensor) -> None:
        if tt.ndim == 1 and (like.ndim == 0 or like.shape[0] != tt.shape[0]):
            n = like.shape[0] if like.ndim else 0
            raise ValueError(f"`t` must have one entry per sample ({n}), "
                             f"got shape {tuple(tt.shape)}")
        self.shape = (-1, *([1] * (like.ndim - 1))) if tt.ndim == 1 else ()
        self.like = like

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        return v.reshape(self.shape).to(device=self.like.device, dtype=self.like.dtype)
