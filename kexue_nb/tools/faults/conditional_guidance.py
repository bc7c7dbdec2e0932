"""Faults for the chapter conditional-guidance (kexue.fm/archives/9257).

Plausible slips in ``kexue_nb.diffusion.guidance``, the code the chapter's guided samplers rely on:
the classifier-free combination with its weights confused, the DDPM mean shift without its
σ_t², the classifier's gradient with the wrong sign, the null label taken as the last real
class, and the DDPM shift scaled by γ − 1 (γ read as the classifier-free w); the DDPM shift
without its scale γ; and, in the trained models, a label embedding that ignores the label and a
noisy classifier trained on clean inputs.
Each must be caught by a claim of the chapter.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from kexue_nb.tools.faults import Fault

CHAPTER = "conditional-guidance"


def _swapped_combine(original: Any) -> Any:
    @functools.wraps(original)
    def cfg_combine(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, w: float) -> torch.Tensor:
        # bug: (1 − w) ε(x, y) + w ε(x) instead of (1 + w) ε(x, y) − w ε(x)
        original(eps_cond, eps_uncond, w)   # keeps the argument checks
        return (1.0 - w) * eps_cond + w * eps_uncond

    return cfg_combine


def _wrong_ddpm_shift(rewrite: Any) -> Any:
    """A patch of ``ClassifierGuidance.ddpm`` whose mean shift is
    ``rewrite(self, shift, x_t, t, y)`` instead of the correct σ_t² γ ∇log p(y|x_t)
    (γ = 0, a float shift, stays exact)."""

    def patch(original: Any) -> Any:
        @functools.wraps(original)
        def ddpm(self: Any, model: Any, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor,
                 schedule: Any, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | float]:
            eps, shift = original(self, model, x_t, t, y, schedule, sigma)
            if isinstance(shift, float):
                return eps, shift
            return eps, rewrite(self, shift, x_t, t, y)

        return ddpm

    return patch


# bug: the mean shift γ ∇log p(y|x_t), σ_t² forgotten
_shift_without_sigma2 = _wrong_ddpm_shift(
    lambda self, shift, x_t, t, y: self.scale * self.grad_log_prob(x_t, t, y))
# bug: the shift scaled by w = γ − 1 instead of γ
_shift_scaled_by_w = _wrong_ddpm_shift(
    lambda self, shift, x_t, t, y: shift * (self.scale - 1.0) / self.scale)
# bug: the scale γ never applied, the shift σ_t² ∇log p(y|x_t) at every γ ≠ 0
_shift_without_scale = _wrong_ddpm_shift(lambda self, shift, x_t, t, y: shift / self.scale)


def _gradient_sign(original: Any) -> Any:
    @functools.wraps(original)
    def grad_log_prob(self: Any, x_t: torch.Tensor, t: torch.Tensor,
                      y: torch.Tensor) -> torch.Tensor:
        # bug: the gradient of −log p(y|x_t) (a loss's sign) instead of log p(y|x_t)
        return -original(self, x_t, t, y)

    return grad_log_prob


def _null_is_last_class(original: Any) -> Any:
    from kexue_nb.diffusion.guidance import _check_labels, cfg_combine

    @functools.wraps(original)
    def eps(self: Any, model: Any, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor,
            schedule: Any) -> torch.Tensor:
        y = _check_labels(y, x_t)
        if self.w == 0.0:
            return model(x_t, t, y)
        # bug: the null label taken as num_classes − 1, the last real class
        null = torch.full_like(y, int(model.num_classes) - 1)
        both = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, null]))
        eps_c, eps_u = both.chunk(2)
        return cfg_combine(eps_c, eps_u, self.w)

    return eps


def _label_ignored(original: Any) -> Any:
    @functools.wraps(original)
    def forward(self: Any, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        # bug: the label embedding looks up the null row whatever the label
        return original(self, t, None)

    return forward


def _classifier_on_clean_inputs(original: Any) -> Any:
    import torch.nn.functional as F

    @functools.wraps(original)
    def loss(self: Any, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
             y: torch.Tensor | None = None) -> torch.Tensor:
        original(self, x0, t, noise, y)   # keeps the checks
        # bug: the classifier is shown the clean x_0 (with the noise level t) instead of x_t
        with self.autocast():
            logits = self._forward(x0, t)
        return F.cross_entropy(logits.float(), y)

    return loss


FAULTS = [
    Fault(
        name="guide-cfg-weights-swapped",
        chapter=CHAPTER,
        target="kexue_nb.diffusion.guidance:cfg_combine",
        description="classifier-free guidance combined as (1 − w) ε(x, y) + w ε(x)",
        patch=_swapped_combine,
    ),
    Fault(
        name="guide-shift-without-sigma2",
        chapter=CHAPTER,
        target="kexue_nb.diffusion.guidance:ClassifierGuidance.ddpm",
        description="classifier-guidance DDPM mean shift γ ∇log p(y ∣ x_t), without σ_t²",
        patch=_shift_without_sigma2,
    ),
    Fault(
        name="guide-gradient-sign",
        chapter=CHAPTER,
        target="kexue_nb.diffusion.guidance:ClassifierGuidance.grad_log_prob",
        description="classifier gradient with the wrong sign (∇ of −log p(y ∣ x_t))",
        patch=_gradient_sign,
    ),
    Fault(
        name="guide-null-label-last-class",
        chapter=CHAPTER,
        target="kexue_nb.diffusion.guidance:ClassifierFreeGuidance.eps",
        description="classifier-free guidance's null label taken as num_classes − 1, a real class",
        patch=_null_is_last_class,
    ),
    Fault(
        name="guide-shift-scaled-by-w",
        chapter=CHAPTER,
        target="kexue_nb.diffusion.guidance:ClassifierGuidance.ddpm",
        description="classifier-guidance DDPM mean shift scaled by w = γ − 1 instead of γ",
        patch=_shift_scaled_by_w,
    ),
    Fault(
        name="guide-shift-without-scale",
        chapter=CHAPTER,
        target="kexue_nb.diffusion.guidance:ClassifierGuidance.ddpm",
        description="classifier-guidance DDPM mean shift σ_t² ∇log p(y ∣ x_t), without its scale γ",
        patch=_shift_without_scale,
    ),
    Fault(
        name="model-label-ignored",
        chapter=CHAPTER,
        target="kexue_nb.diffusion.models:_Conditioning.forward",
        description="conditional networks' label embedding reads the null label whatever y is",
        patch=_label_ignored,
    ),
    Fault(
        name="classifier-clean-inputs",
        chapter=CHAPTER,
        target="kexue_nb.diffusion.classifier:ClassifierTrainer.loss",
        description="the noisy classifier trained on the clean x_0 instead of x_t",
        patch=_classifier_on_clean_inputs,
    ),
]
