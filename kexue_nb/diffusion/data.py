"""Data for the diffusion chapters: seeded 2-D toy sets, an exact labelled Gaussian mixture, and
scikit-learn's bundled 8×8 digits (no download).

The toy sets are i.i.d. samples (float32, shape (n, 2)) drawn with an explicit torch.Generator.
:class:`LabelledMixture` knows its noisy marginals exactly: with x_t = ᾱ x_0 + β̄ ε
(kexue.fm/archives/9119) and components N(m_k, s_k² I), x_t | k ~ N(ᾱ m_k, (ᾱ² s_k² + β̄²) I), which
gives E[x_0|x_t], the score ∇log p_t, the exact ε*(x_t) = (x_t − ᾱ E[x_0|x_t])/β̄ = −β̄ ∇log p_t
(9164, 9257) and the noisy class posterior p_t(y|x_t), all in float64 and differentiable.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .._validation import _is_complex, floating_tensor, real_array
from .schedule import Schedule, _check_flag, _real_scalar

__all__ = [
    "ExactDenoiser",
    "LabelledMixture",
    "eight_gaussians",
    "load_digits",
    "moons",
    "swiss_roll",
]

Scalar = float | torch.Tensor
_T_NAMES = ("x_t", "alpha_bar_t", "beta_bar_t")

#: The most points one call draws; larger ``n`` are refused up front.
MAX_SAMPLES = 10**7
#: The most components :meth:`LabelledMixture.ring` builds.
MAX_COMPONENTS = 10**5


def _check_n(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 0 < n <= MAX_SAMPLES:
        raise ValueError(f"`n` must be a positive integer <= {MAX_SAMPLES}, got {n!r}")
    return int(n)


def _check_nonneg(value: float, name: str) -> float:
    v = _real_scalar(value, name)
    if not 0.0 <= v < math.inf:
        raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}")
    return v


def _check_generator(generator: object) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"`generator` must be a torch.Generator or None, "
                        f"got {type(generator).__name__}")


def _check_real(value: object, name: str) -> None:
    """Refuse complex, non-numeric and non-finite (NaN, ±inf) input naming ``name``."""
    if value is None or isinstance(value, bool | str | bytes):
        raise TypeError(f"`{name}` must be real numbers, got {value!r}")
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            raise ValueError(f"`{name}` must be real, got complex values")
        if value.dtype == torch.bool:
            raise TypeError(f"`{name}` must be real numbers, got {value.dtype}")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(f"`{name}` must be finite (no NaN or ±inf)")
        return
    try:
        kind = np.asarray(value).dtype.kind
    except (TypeError, ValueError) as exc:
        raise TypeError(f"`{name}` must be real numbers, got {value!r}") from exc
    if kind == "c":
        raise ValueError(f"`{name}` must be real, got complex values")
    if kind not in "iuf":
        raise TypeError(f"`{name}` must be real numbers, got {value!r}")
    real_array(value, name, finite=True)


def moons(n: int, generator: torch.Generator | None = None, noise: float = 0.1) -> torch.Tensor:
    """Two interleaved half circles (scikit-learn's ``make_moons`` layout), i.i.d. points.

    Each point picks a moon with probability ½ and an angle θ ~ U(0, π): the upper moon is
    (cos θ, sin θ), the lower (1 − cos θ, ½ − sin θ); the set is centred by subtracting
    (½, ¼) and blurred by N(0, noise² I). Returns float32 (n, 2).
    """
    n = _check_n(n)
    noise = _check_nonneg(noise, "noise")
    _check_generator(generator)
    theta = math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
    lower = torch.rand(n, generator=generator, dtype=torch.float64) < 0.5
    x = torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)
    x = torch.where(lower[:, None], torch.stack([1 - x[:, 0], 0.5 - x[:, 1]], dim=1), x)
    x = x - torch.tensor([0.5, 0.25], dtype=torch.float64)
    x = x + noise * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return x.float()


def swiss_roll(
    n: int, generator: torch.Generator | None = None, noise: float = 0.05
) -> torch.Tensor:
    """A 2-D Swiss roll: θ = 1.5π(1 + 2u), u ~ U(0, 1), point (θ cos θ, θ sin θ)/5 plus
    N(0, noise² I). Returns float32 (n, 2) (coordinates roughly within ±3)."""
    n = _check_n(n)
    noise = _check_nonneg(noise, "noise")
    _check_generator(generator)
    theta = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator, dtype=torch.float64))
    x = torch.stack([theta * torch.cos(theta), theta * torch.sin(theta)], dim=1) / 5.0
    x = x + noise * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return x.float()


def eight_gaussians(
    n: int, generator: torch.Generator | None = None, radius: float = 2.0, std: float = 0.1
) -> torch.Tensor:
    """Eight equal Gaussians N(m_k, std² I) with m_k = radius·(cos kπ/4, sin kπ/4).
    Returns float32 (n, 2); :meth:`LabelledMixture.ring` gives the same law with labels."""
    x, _ = LabelledMixture.ring(8, radius=radius, std=std).sample(n, generator)
    return x


def load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled 8×8 digits (1,797 images, shipped with the library, no download).

    Returns x float32 (N, 1, 8, 8) with pixel values 0..16 mapped linearly to [−1, 1]
    (x = v/8 − 1), and the labels y long (N,) in 0..9.
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32)[:, None] / 8.0 - 1.0
    y = torch.as_tensor(bunch.target, dtype=torch.long)
    return x, y


class LabelledMixture:
    """A labelled isotropic Gaussian mixture p(x_0) = Σ_k π_k N(m_k, s_k² I) with exact noisy laws.

    Parameters
    ----------
    means : (K, d) array-like
        Component means m_k.
    stds : (K,) array-like or float
        Component standard deviations s_k > 0.
    weights : (K,) array-like, optional
        Mixture weights π_k > 0 summing to 1 (default: equal).
    labels : (K,) array-like of int, optional
        Class of each component, 0..C−1, every class used (default: component k is class k).

    The noisy quantities take (ᾱ, β̄) — floats, or tensors of shape (n,) for per-sample times —
    with x_t = ᾱ x_0 + β̄ ε; at (1, 0) they describe the clean data. Results are float64.
    """

    def __init__(self, means, stds, weights=None, labels=None) -> None:
        _check_real(means, "means")
        _check_real(stds, "stds")
        if weights is not None:
            _check_real(weights, "weights")
        if labels is not None:
            _check_real(labels, "labels")
        m = torch.as_tensor(means, dtype=torch.float64)
        if m.ndim != 2 or m.shape[0] == 0 or m.shape[1] == 0:
            raise ValueError(f"`means` must have shape (K, d) with K, d >= 1, got {tuple(m.shape)}")
        K = m.shape[0]
        s = torch.as_tensor(stds, dtype=torch.float64)
        s = s.expand(K).clone() if s.ndim == 0 else s
        if s.shape != (K,) or not bool(torch.all(s > 0)):
            raise ValueError(f"`stds` must be positive, one per component ({K}), got {stds!r}")
        w = torch.full((K,), 1.0 / K, dtype=torch.float64) if weights is None else torch.as_tensor(
            weights, dtype=torch.float64)
        if w.shape != (K,) or not bool(torch.all(w > 0)) or abs(float(w.sum()) - 1.0) > 1e-9:
            raise ValueError(
                f"`weights` must be {K} positive numbers summing to 1, got {weights!r}")
        try:
            lab = torch.arange(K) if labels is None else torch.as_tensor(labels)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(f"`labels` must be {K} integers >= 0, got {labels!r}") from exc
        if (lab.shape != (K,) or lab.is_floating_point() or lab.dtype == torch.bool
                or int(lab.min()) < 0):
            raise ValueError(f"`labels` must be {K} integers >= 0, got {labels!r}")
        lab = lab.long()
        C = int(lab.max()) + 1
        if set(lab.tolist()) != set(range(C)):
            raise ValueError(f"`labels` must use every class 0..{C - 1}, got {lab.tolist()}")
        self.means, self.stds, self.weights, self.labels = m, s, w / w.sum(), lab
        self.dim, self.num_components, self.num_classes = m.shape[1], K, C
        #: (K, C) one-hot membership of components in classes
        self._member = torch.nn.functional.one_hot(lab, C).to(torch.float64)

    @classmethod
    def ring(cls, k: int, radius: float = 2.0, std: float = 0.1, labels=None) -> LabelledMixture:
        """k equal components on a circle: m_j = radius·(cos 2πj/k, sin 2πj/k), std s."""
        if isinstance(k, bool) or not isinstance(k, int) or not 0 < k <= MAX_COMPONENTS:
            raise ValueError(f"`k` must be a positive integer <= {MAX_COMPONENTS}, got {k!r}")
        if not _real_scalar(radius, "radius") > 0:
            raise ValueError(f"`radius` must be positive and finite, got {radius!r}")
        _check_real(std, "std")
        s = torch.as_tensor(std, dtype=torch.float64)
        if s.shape not in ((), (k,)) or not bool(torch.all(s > 0)):
            raise ValueError(f"`std` must be positive and finite: one number or {k}, "
                             f"got {std!r}")
        ang = 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
        means = radius * torch.stack([torch.cos(ang), torch.sin(ang)], dim=1)
        return cls(means, std, labels=labels)

    def __repr__(self) -> str:
        return (f"LabelledMixture(K={self.num_components}, d={self.dim}, "
                f"classes={self.num_classes})")

    # ---------------------------------------------------------------------------------
    def sample(
        self, n: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """n i.i.d. draws: (x of ``dtype`` (n, d), class labels y long (n,))."""
        n = _check_n(n)
        _check_generator(generator)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"`dtype` must be a floating torch dtype, got {dtype!r}")
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        x = self.means[k] + self.stds[k, None] * z
        return x.to(dtype), self.labels[k]

    def noisy_sample(
        self, n: int, t: int | torch.Tensor, schedule: Schedule,
        generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """n draws of (x_0, x_t, y): x_0 and its label from :meth:`sample`, then ε ~ N(0, I) and
        x_t = ᾱ_t x_0 + β̄_t ε (kexue.fm/archives/9119), all drawn in float64 from ``generator``
        in that order and returned as ``dtype``; ``t`` an int or a (n,) tensor of steps."""
        _check_schedule(schedule)
        schedule._check_t(t)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"`dtype` must be a floating torch dtype, got {dtype!r}")
        x0, y = self.sample(n, generator, dtype=torch.float64)
        noise = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
        return x0.to(dtype), schedule.q_sample(x0, t, noise).to(dtype), y

    def _prep(self, x: torch.Tensor, alpha_bar: Scalar, beta_bar: Scalar,
              names: tuple[str, str, str] = ("x", "alpha_bar", "beta_bar")):
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"`{names[0]}` must be a tensor of shape (n, {self.dim}), got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else x!r}")
        _check_real(x, names[0])
        x = x.to(torch.float64)
        coefs = []
        for name, v in zip(names[1:], (alpha_bar, beta_bar), strict=True):
            _check_real(v, name)
            c = torch.as_tensor(v, dtype=torch.float64, device=x.device)
            if c.ndim == 1 and c.shape[0] == x.shape[0]:
                c = c[:, None]
            elif c.ndim != 0:
                raise ValueError(f"`{name}` must be a number or a tensor of shape ({x.shape[0]},), "
                                 f"got shape {tuple(c.shape)}")
            if not bool(torch.all(c >= 0)):
                raise ValueError(f"`{name}` must be >= 0, got {v!r}")
            coefs.append(c)
        a, b = coefs
        means, var0 = self.means.to(x.device), (self.stds**2).to(x.device)
        var = a[..., None] ** 2 * var0 + b[..., None] ** 2  # (1|n, 1, K) or (K,)
        var = var.reshape(-1, self.num_components)  # (1|n, K)
        if not bool(torch.all(var > 0)):
            raise ValueError(f"`{names[1]}` and `{names[2]}` must not both be 0")
        diff = x[:, None, :] - a[..., None] * means[None]  # (n, K, d)
        return x, a, b, means, var0, var, diff

    def _log_joint(self, var, diff, y=None) -> torch.Tensor:
        """log π_k + log N(x_t; ᾱ m_k, v_k I), (n, K); masked to class y when given."""
        d = self.dim
        lj = (torch.log(self.weights.to(diff.device))
              - 0.5 * (diff**2).sum(-1) / var - 0.5 * d * torch.log(2 * math.pi * var))
        if y is not None:
            if isinstance(y, str | bytes) or _is_complex(y):
                raise TypeError(f"`y` must be a class id or a long tensor of them, got {y!r}")
            try:
                yy = torch.as_tensor(y, device=diff.device)
            except (TypeError, ValueError, RuntimeError) as exc:
                raise TypeError(f"`y` must be a class id or a long tensor of them, "
                                f"got {y!r}") from exc
            if yy.is_floating_point() or yy.is_complex() or yy.dtype == torch.bool:
                raise TypeError(f"`y` must be a class id or a long tensor of them, got {y!r}")
            yy = yy.long()
            if yy.ndim == 0:
                yy = yy.expand(diff.shape[0])
            C = self.num_classes
            if yy.shape != (diff.shape[0],) or int(yy.min()) < 0 or int(yy.max()) >= C:
                raise ValueError(f"`y` must be a class id in 0..{C - 1} or a tensor of "
                                 f"{diff.shape[0]} of them, got {y!r}")
            mask = self.labels.to(diff.device)[None, :] == yy[:, None]
            lj = lj.masked_fill(~mask, -math.inf)
            # condition on the class: subtract log p(y)
            class_w = self._member.to(diff.device).T @ self.weights.to(diff.device)
            lj = lj - torch.log(class_w[yy])[:, None]
        return lj

    def log_prob(self, x: torch.Tensor, alpha_bar: Scalar = 1.0, beta_bar: Scalar = 0.0,
                 y=None) -> torch.Tensor:
        """log p_t(x) (or log p_t(x|y)) of x_t = ᾱ x_0 + β̄ ε; the clean density by default. (n,)"""
        x, a, b, means, var0, var, diff = self._prep(x, alpha_bar, beta_bar)
        return torch.logsumexp(self._log_joint(var, diff, y), dim=1)

    def posterior_mean(self, x_t: torch.Tensor, alpha_bar_t: Scalar, beta_bar_t: Scalar,
                       y=None) -> torch.Tensor:
        """E[x_0|x_t] (or E[x_0|x_t, y]): Σ_k r_k(x_t) [m_k + (ᾱ s_k²/v_k)(x_t − ᾱ m_k)],
        v_k = ᾱ² s_k² + β̄², r_k the component responsibilities. (n, d) float64."""
        x, a, b, means, var0, var, diff = self._prep(x_t, alpha_bar_t, beta_bar_t, _T_NAMES)
        r = torch.softmax(self._log_joint(var, diff, y), dim=1)  # (n, K)
        gain = (a * var0 / var)[..., None]  # (1|n, K, 1)
        comp = means[None] + gain * diff  # (n, K, d)
        return (r[..., None] * comp).sum(1)

    def score(self, x_t: torch.Tensor, alpha_bar_t: Scalar, beta_bar_t: Scalar,
              y=None) -> torch.Tensor:
        """∇_x log p_t(x_t) (or of log p_t(x_t|y)) = −Σ_k r_k (x_t − ᾱ m_k)/v_k. (n, d)"""
        x, a, b, means, var0, var, diff = self._prep(x_t, alpha_bar_t, beta_bar_t, _T_NAMES)
        r = torch.softmax(self._log_joint(var, diff, y), dim=1)
        return -(r[..., None] * diff / var[..., None]).sum(1)

    def eps(self, x_t: torch.Tensor, alpha_bar_t: Scalar, beta_bar_t: Scalar,
            y=None) -> torch.Tensor:
        """The exact ε-prediction ε*(x_t) = E[ε|x_t] = (x_t − ᾱ E[x_0|x_t])/β̄ = −β̄ ∇log p_t
        (β̄ > 0)."""
        _check_real(beta_bar_t, "beta_bar_t")
        if not bool(torch.all(torch.as_tensor(beta_bar_t) > 0)):
            raise ValueError(f"`beta_bar_t` must be > 0 for ε, got {beta_bar_t!r}")
        x, a, b, *_ = self._prep(x_t, alpha_bar_t, beta_bar_t, _T_NAMES)
        return (x - a * self.posterior_mean(x_t, alpha_bar_t, beta_bar_t, y)) / b

    def class_posterior(self, x_t: torch.Tensor, alpha_bar_t: Scalar = 1.0,
                        beta_bar_t: Scalar = 0.0, log: bool = False) -> torch.Tensor:
        """p_t(y|x_t) for every class, (n, C) float64 (its logarithm with ``log=True``)."""
        _check_flag(log, "log")
        x, a, b, means, var0, var, diff = self._prep(x_t, alpha_bar_t, beta_bar_t, _T_NAMES)
        lj = self._log_joint(var, diff)  # (n, K)
        per_class = torch.stack(
            [torch.logsumexp(lj[:, self.labels == c], dim=1) for c in range(self.num_classes)],
            dim=1,
        )
        logp = per_class - torch.logsumexp(lj, dim=1, keepdim=True)
        return logp if log else logp.exp()

    def denoiser(self, schedule: Schedule) -> ExactDenoiser:
        """The exact ε-model of this mixture under ``schedule`` (see :class:`ExactDenoiser`)."""
        _check_schedule(schedule)
        return ExactDenoiser(self, schedule)

    def classifier(self, schedule: Schedule):
        """The exact noisy classifier (x_t, t) -> log p_t(y|x_t), (B, C), for classifier
        guidance."""
        _check_schedule(schedule)

        def logits(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            floating_tensor(x_t, "x_t")
            tt = schedule._check_t(t)
            ab = schedule.alpha_bar[tt].to(x_t.device)
            bb = schedule.beta_bar[tt].to(x_t.device)
            return self.class_posterior(x_t, ab, bb, log=True).to(x_t.dtype)

        return logits


def _check_schedule(schedule: object) -> None:
    if not isinstance(schedule, Schedule):
        raise TypeError(f"`schedule` must be a Schedule, got {type(schedule).__name__}")


class ExactDenoiser(nn.Module):
    """The Bayes-optimal ε-model of a :class:`LabelledMixture`: ``model(x_t, t, y=None)`` returns
    ε*(x_t) (unconditional for y None or y = num_classes, the null label; else ε*(x_t|y)), in
    x_t's dtype. It has no parameters; ``num_classes`` and ``T`` follow the model convention."""

    def __init__(self, mixture: LabelledMixture, schedule: Schedule) -> None:
        if not isinstance(mixture, LabelledMixture):
            raise TypeError(f"`mixture` must be a LabelledMixture, got {type(mixture).__name__}")
        _check_schedule(schedule)
        super().__init__()
        self.mixture, self.schedule = mixture, schedule
        self.num_classes, self.T = mixture.num_classes, schedule.T
        self.config: dict = {}

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
                ) -> torch.Tensor:
        floating_tensor(x_t, "x_t")
        tt = self.schedule._check_t(t, minimum=1)
        ab = self.schedule.alpha_bar[tt].to(x_t.device)
        bb = self.schedule.beta_bar[tt].to(x_t.device)
        mix = self.mixture
        if y is None:
            return mix.eps(x_t, ab, bb).to(x_t.dtype)
        if not isinstance(y, torch.Tensor | int | np.integer) or isinstance(y, bool) or (
                isinstance(y, torch.Tensor) and (y.is_floating_point() or y.is_complex()
                                                 or y.dtype == torch.bool)):
            raise TypeError(f"`y` must be None, a class id or a long tensor of them, got {y!r}")
        try:
            y = torch.as_tensor(y, device=x_t.device).long()
        except (RuntimeError, ValueError, OverflowError) as exc:
            raise ValueError(f"`y` must be a class id in 0..{mix.num_classes}, got {y!r}") from exc
        if y.ndim == 0:
            y = y.expand(x_t.shape[0] if x_t.ndim else 1)
        if y.ndim != 1 or (x_t.ndim and y.shape[0] != x_t.shape[0]):
            raise ValueError(f"`y` must have shape ({x_t.shape[0] if x_t.ndim else 1},), "
                             f"got {tuple(y.shape)}")
        null = y == mix.num_classes
        out = mix.eps(x_t, ab, bb)
        if bool((~null).any()):
            cond = mix.eps(x_t, ab, bb, y=torch.where(null, 0, y))
            out = torch.where(null[:, None], out, cond)
        return out.to(x_t.dtype)
