"""Training the noisy-input classifier of classifier guidance (kexue.fm/archives/9257).

Classifier guidance shifts each reverse step by σ_t² γ ∇_{x_t} log p_t(y | x_t), so it needs the
class posterior of the *noisy* input at every t. A classifier p_θ(y | x_t, t) learns it from the
cross-entropy on the forward process's noisy batches,

    L = E_{(x_0, y), t, ε} [ −log p_θ(y | ᾱ_t x_0 + β̄_t ε, t) ],   t ~ U{0..T},  ε ~ N(0, I),

whose minimiser over all functions of (x_t, t) is p_t(y | x_t) itself (the cross-entropy is
minimised by the true conditional law), so L − L* is the expected KL divergence from p_t(y | x_t)
to p_θ. t = 0 (a clean input, ᾱ_0 = 1, β̄_0 = 0) is included so that the same network is also a
clean classifier.

:class:`ClassifierTrainer` is :class:`~kexue_nb.diffusion.trainer.Trainer` with this loss: the
same batches, AdamW with warmup and cosine decay, clipping, EMA, device/precision choice, tqdm,
atomic resumable checkpoints and data parallelism; labels are never dropped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .schedule import Schedule
from .trainer import TrainConfig, Trainer

__all__ = ["ClassifierTrainer", "noisy_log_likelihood"]


class ClassifierTrainer(Trainer):
    """Train ``classifier`` (called as ``classifier(x_t, t) -> logits (B, C)``, e.g. a
    :class:`~kexue_nb.diffusion.models.NoisyClassifier`) on data ``x`` (N, …) with labels ``y``
    (N,) in 0..C−1, by the cross-entropy of noisy inputs at t ~ U{0..T} (module docstring).

    ``config.label_dropout`` is ignored (a classifier needs every label). Everything else is
    :class:`~kexue_nb.diffusion.trainer.Trainer`: ``ema_model`` is the classifier to guide with.
    """

    drops_labels = False
    t_min = 0

    def __init__(
        self,
        classifier: nn.Module,
        schedule: Schedule,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        config: TrainConfig | None = None,
    ) -> None:
        if y is None:
            raise ValueError("`y` must hold the class labels: a classifier is trained on them")
        num_classes = getattr(classifier, "num_classes", None)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"`classifier` must have an integer attribute `num_classes` >= 2, "
                             f"got {num_classes!r}")
        super().__init__(classifier, schedule, x, y, config)

    def loss(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
             y: torch.Tensor | None = None) -> torch.Tensor:
        """Mean cross-entropy −log p_θ(y | ᾱ_t x_0 + β̄_t ε, t) over a batch."""
        with self.autocast():
            logits = self._forward(self.noisy(x0, t, noise), t)
        if logits.shape != (x0.shape[0], self.num_classes):
            raise ValueError(f"`classifier` must return logits of shape (B, {self.num_classes}), "
                             f"got {tuple(logits.shape)}")
        return F.cross_entropy(logits.float(), y)


@torch.no_grad()
def noisy_log_likelihood(
    classifier: nn.Module,
    x_t: torch.Tensor,
    t: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 4096,
) -> torch.Tensor:
    """log p_θ(y_i | x_t,i, t_i) for each sample, float64 (N,), evaluated in batches without
    gradients on the classifier's device; its negative mean is the held-out loss L above."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be an integer >= 1, got {batch_size!r}")
    n = x_t.shape[0] if x_t.ndim else 0
    if t.shape != (n,) or y.shape != (n,):
        raise ValueError(f"`t` and `y` must have shape ({n},) like x_t's batch, got "
                         f"{tuple(t.shape)} and {tuple(y.shape)}")
    device = next(classifier.parameters()).device
    out = []
    for i in range(0, n, batch_size):
        logits = classifier(x_t[i:i + batch_size].to(device, torch.float32),
                            t[i:i + batch_size].to(device))
        log_p = torch.log_softmax(logits.double(), dim=1)
        out.append(log_p.gather(1, y[i:i + batch_size].to(device)[:, None])[:, 0].cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)
