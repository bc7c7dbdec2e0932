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

from .schedule import Schedule, per_sample

__all__ = [
    "ClassifierFreeGuidance",
    "ClassifierGuidance",
    "Guidance",
    "cfg_combine",
]

Classifier = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_labels(y: torch.Tensor | None, x_t: torch.Tensor) -> torch.Tensor:
    if y is None:
        raise ValueError("`y` must be given (one class id per sample) when guidance is used")
    if not isinstance(y, torch.Tensor) or y.shape != (x_t.shape[0],):
        raise ValueError(f"`y` must be a long tensor of shape ({x_t.shape[0]},), got "
                         f"{tuple(y.shape) if isinstance(y, torch.Tensor) else y!r}")
    return y


def _check_scale(value: float, name: str) -> float:
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
        with torch.inference_mode(False), torch.enable_grad():
            x = x_t.detach().clone().requires_grad_(True)
            logits = self.classifier(x, t)
            if logits.ndim != 2 or logits.shape[0] != x.shape[0]:
                raise ValueError(f"`classifier` must return logits of shape (B, C), got "
                                 f"{tuple(logits.shape)}")
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
        eps = self._eps_uncond(model, x_t, t)
        if self.scale == 0.0:
            return eps, 0.0
        grad = self.grad_log_prob(x_t, t, y)
        return eps, per_sample(sigma, grad, "sigma") ** 2 * self.scale * grad
