"""Conditional sampling: classifier guidance and classifier-free guidance (kexue.fm/archives/9257).

Both are passed to the samplers as ``guidance=`` together with the labels ``y``.

* :class:`ClassifierGuidance` (Dhariwal & Nichol 2021): a noisy classifier p(y|x_t) steers the
  reverse step. Bayes and a first-order Taylor expansion of log p(y|x_{t−1}) give
  p(x_{t−1}|x_t, y) ≈ N(μ(x_t) + σ_t² γ ∇log p(y|x_t), σ_t² I) (9257): the DDPM sampler shifts its
  mean by σ_t² γ ∇. In the continuous view ∇log p_t(x|y) = ∇log p_t(x) + ∇log p_t(y|x) with
  ∇log p_t(x) = −ε_θ/β̄_t, so the deterministic (DDIM) sampler replaces ε_θ by
  ε_θ − γ β̄_t ∇log p_t(y|x) (9257, the score form).
* :class:`ClassifierFreeGuidance` (Ho & Salimans 2022): one network conditioned on y or on a null
  label, ε̃ = (1 + w) ε_θ(x_t, y, t) − w ε_θ(x_t, null, t) (9257, with w = γ − 1).

With exact ε-models the two agree: (1 + w) ε(x, y) − w ε(x) = ε(x) − (1 + w) β̄_t ∇log p_t(y|x),
the ε-space form of classifier guidance with γ = 1 + w.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from .._validation import _is_complex, floating_tensor
from .schedule import Schedule, per_sample

__all__ = [
    "ClassifierFreeGuidance",
    "ClassifierGuidance",
    "Guidance",
    "cfg_combine",
]

Classifier = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_labels(y: torch.Tensor | None, x_t: torch.Tensor) -> torch.Tensor:
    floating_tensor(x_t, "x_t")
    if y is None:
        raise ValueError("`y` must be given (one class id per sample) when guidance is used")
    if not isinstance(y, torch.Tensor) or y.shape != (x_t.shape[0],):
        raise ValueError(f"`y` must be a long tensor of shape ({x_t.shape[0]},), got "
                         f"{tuple(y.shape) if isinstance(y, torch.Tensor) else y!r}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"`y` must be an integer (long) tensor of class ids, got {y.dtype}")
    return y


def _check_call(model: object, x_t: object, t: object, schedule: object) -> None:
    """The arguments every guidance method shares: a callable model, a floating x_t, timesteps
    a long tensor of shape (B,), and a Schedule."""
    if not callable(model):
        raise TypeError(f"`model` must be callable (x_t, t, y) -> eps, got {model!r}")
    floating_tensor(x_t, "x_t")
    _check_timesteps(t, x_t)
    if not isinstance(schedule, Schedule):
        raise TypeError(f"`schedule` must be a Schedule, got {type(schedule).__name__}")


def _check_timesteps(t: object, x_t: torch.Tensor) -> None:
    if (not isinstance(t, torch.Tensor) or t.is_floating_point() or t.is_complex()
            or t.dtype == torch.bool or x_t.ndim == 0 or t.shape != (x_t.shape[0],)):
        n = x_t.shape[0] if x_t.ndim else 0
        raise TypeError(f"`t` must be an integer (long) tensor of shape ({n},), got "
                        f"{t.dtype if isinstance(t, torch.Tensor) else type(t).__name__} "
                        f"{tuple(t.shape) if isinstance(t, torch.Tensor) else ''}".rstrip())


def _check_sigma(sigma: object) -> None:
    """σ_t: a finite number >= 0 or a tensor of them."""
    if isinstance(sigma, bool | str | bytes) or sigma is None or _is_complex(sigma):
        raise TypeError(f"`sigma` must be a real number or tensor, got {sigma!r}")
    try:
        s = torch.as_tensor(sigma)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(f"`sigma` must be a real number or tensor, got {sigma!r}") from exc
    if s.dtype == torch.bool or not bool(torch.isfinite(s).all()) or bool((s < 0).any()):
        raise ValueError(f"`sigma` must be finite and >= 0, got {sigma!r}")


def _check_scale(value: float, name: str) -> float:
    if isinstance(value, bool | str | bytes) or value is None or _is_complex(value):
        raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a non-negative number, got {value!r}") from None
    if not v >= 0.0 or v == float("inf"):
        raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}")
    return v


def cfg_combine(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, w: float) -> torch.Tensor:
    """ε̃ = (1 + w) ε_θ(x_t, y, t) − w ε_θ(x_t, t), classifier-free guidance (9257)."""
    w = _check_scale(w, "w")
    floating_tensor(eps_cond, "eps_cond")
    floating_tensor(eps_uncond, "eps_uncond")
    if eps_cond.shape != eps_uncond.shape:
        raise ValueError(f"`eps_uncond` must have eps_cond's shape {tuple(eps_cond.shape)}, "
                         f"got {tuple(eps_uncond.shape)}")
    return (1.0 + w) * eps_cond - w * eps_uncond


class Guidance(Protocol):
    """What the samplers call. ``ddpm`` returns (ε, mean shift) for the ancestral step; ``eps``
    returns the guided ε used in ε-space (DDIM, and x̂_0)."""

    needs_grad: bool

    def eps(self, model: torch.nn.Module, x_t: torch.Tensor, t: torch.Tensor,
            y: torch.Tensor, schedule: Schedule) -> torch.Tensor: ...

    def ddpm(self, model: torch.nn.Module, x_t: torch.Tensor, t: torch.Tensor,
             y: torch.Tensor, schedule: Schedule,
             sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | float]: ...


class ClassifierFreeGuidance:
    """Classifier-free guidance ε̃ = (1 + w) ε_θ(x_t, y, t) − w ε_θ(x_t, null, t) (9257).

    The model must be conditional (``model.num_classes > 0``); the null label is
    ``model.num_classes``. w = 0 is plain conditional sampling; w = γ − 1 relates it to
    classifier guidance with scale γ. Both passes run as one batch of 2B.
    """

    needs_grad = False

    def __init__(self, w: float) -> None:
        self.w = _check_scale(w, "w")

    def __repr__(self) -> str:
        return f"ClassifierFreeGuidance(w={self.w})"

    def eps(self, model: torch.nn.Module, x_t: torch.Tensor, t: torch.Tensor,
            y: torch.Tensor, schedule: Schedule) -> torch.Tensor:
        """The guided ε̃ at (x_t, t) for labels ``y``."""
        _check_call(model, x_t, t, schedule)
        y = _check_labels(y, x_t)
        num_classes = int(getattr(model, "num_classes", 0))
        if num_classes <= 0:
            raise ValueError("`model` must be conditional (num_classes > 0) for classifier-free "
                             "guidance")
        if self.w == 0.0:
            return model(x_t, t, y)
        null = torch.full_like(y, num_classes)
        both = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, null]))
        eps_c, eps_u = both.chunk(2)
        return cfg_combine(eps_c, eps_u, self.w)

    def ddpm(self, model: torch.nn.Module, x_t: torch.Tensor, t: torch.Tensor,
             y: torch.Tensor, schedule: Schedule,
             sigma: torch.Tensor) -> tuple[torch.Tensor, float]:
        """(ε̃, 0): classifier-free guidance acts on ε only."""
        _check_sigma(sigma)
        return self.eps(model, x_t, t, y, schedule), 0.0


class ClassifierGuidance:
    """Classifier guidance with scale γ: ``classifier(x_t, t) -> logits`` of p(y|x_t) (9257).

    DDPM: mean shift σ_t² γ ∇_x log p(y|x_t); DDIM and ε-space: ε − γ β̄_t ∇_x log p(y|x_t).
    The unconditional ε comes from ``model(x_t, t)`` (``y=None``) when ``model.num_classes`` is 0,
    else from the model at the null label. γ = 0 is unguided sampling; γ = 1 targets p(x|y).
    """

    needs_grad = True

    def __init__(self, classifier: Classifier, scale: float) -> None:
        if not callable(classifier):
            raise ValueError(
                f"`classifier` must be callable (x_t, t) -> logits, got {classifier!r}")
        self.classifier = classifier
        self.scale = _check_scale(scale, "scale")

    def __repr__(self) -> str:
        return f"ClassifierGuidance(scale={self.scale})"

    def grad_log_prob(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """∇_x log p(y|x_t) by autograd, one gradient per sample (the classifier must treat the
        samples of a batch independently, e.g. no batch norm in training mode)."""
        y = _check_labels(y, x_t)
        _check_timesteps(t, x_t)
        with torch.inference_mode(False), torch.enable_grad():
            x = x_t.detach().clone().requires_grad_(True)
            logits = self.classifier(x, t)
            if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
                raise ValueError(f"`classifier` must return a floating tensor of logits, got "
                                 f"{getattr(logits, 'dtype', type(logits).__name__)}")
            if logits.ndim != 2 or logits.shape[0] != x.shape[0]:
                raise ValueError(f"`classifier` must return logits of shape (B, C), got "
                                 f"{tuple(logits.shape)}")
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= logits.shape[1]):
                raise ValueError(f"`y` must hold class ids in 0..{logits.shape[1] - 1} (the "
                                 f"classifier's classes), got values in "
                                 f"{int(y.min())}..{int(y.max())}")
            log_p = torch.log_softmax(logits, dim=-1).gather(1, y.long()[:, None]).sum()
            (grad,) = torch.autograd.grad(log_p, x)
        return grad.detach()

    def _eps_uncond(
        self, model: torch.nn.Module, x_t: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        num_classes = int(getattr(model, "num_classes", 0))
        if num_classes > 0:
            return model(x_t, t, torch.full((x_t.shape[0],), num_classes, dtype=torch.long,
                                            device=x_t.device))
        return model(x_t, t, None)

    def eps(self, model: torch.nn.Module, x_t: torch.Tensor, t: torch.Tensor,
            y: torch.Tensor, schedule: Schedule) -> torch.Tensor:
        """ε − γ β̄_t ∇log p(y|x_t), the guided ε of the score form (9257)."""
        _check_call(model, x_t, t, schedule)
        _check_labels(y, x_t)
        eps = self._eps_uncond(model, x_t, t)
        if self.scale == 0.0:
            return eps
        grad = self.grad_log_prob(x_t, t, y)
        return eps - self.scale * schedule.gather(schedule.beta_bar, t, x_t) * grad

    def ddpm(self, model: torch.nn.Module, x_t: torch.Tensor, t: torch.Tensor,
             y: torch.Tensor, schedule: Schedule,
             sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | float]:
        """(ε, σ_t² γ ∇log p(y|x_t)): the unguided ε and the mean shift of the DDPM step.

        ``sigma`` is σ_t: a scalar, or one value per sample (shape (B,)) when ``t`` varies."""
        _check_call(model, x_t, t, schedule)
        _check_labels(y, x_t)
        _check_sigma(sigma)
        eps = self._eps_uncond(model, x_t, t)
        if self.scale == 0.0:
            return eps, 0.0
        grad = self.grad_log_prob(x_t, t, y)
        return eps, per_sample(sigma, grad, "sigma") ** 2 * self.scale * grad
