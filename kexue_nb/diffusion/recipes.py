"""The book's digits recipe: a :class:`UNet8` trained on the 8×8 digits with the shipped
:class:`Trainer`, its EMA weights returned. ddpm-demolish-build trains it unconditionally (kexue.fm/
archives/9119); conditional-guidance trains it with labels and label dropout for classifier-free
guidance (9257)."""

from __future__ import annotations

import torch
from torch import nn

from .models import UNet8
from .schedule import Schedule
from .trainer import TrainConfig, Trainer

__all__ = ["train_digit_unet"]


def _check_seed(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"`{name}` must be an integer >= 0, got {value!r}")
    return value


def train_digit_unet(
    schedule: Schedule,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    init_seed: int,
    train_seed: int,
    base: int = 16,
    steps: int = 1500,
    batch_size: int = 128,
    lr: float = 2e-3,
    warmup_steps: int = 100,
    ema_decay: float = 0.995,
    label_dropout: float = 0.1,
    device: str = "cpu",
) -> nn.Module:
    """Train ``UNet8(base, mult=2)`` on ``images`` (N, C, 8, 8) in [−1, 1] for ``steps`` AdamW
    steps of the ε-loss and return its EMA copy in eval mode.

    With ``labels`` (N,) in 0..K−1 the network is conditional on K classes plus the null label,
    and ``label_dropout`` replaces a label by the null label during training (the CFG recipe);
    without, the network is unconditional. ``init_seed`` seeds the initial weights and
    ``train_seed`` the batches, steps t, noise and dropout, so one call is reproducible.
    """
    if not isinstance(schedule, Schedule):
        raise TypeError(f"`schedule` must be a Schedule, got {type(schedule).__name__}")
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[2:] != (8, 8):
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"`images` must be a tensor of shape (N, C, 8, 8), got {got}")
    num_classes = 0
    if labels is not None:
        if (not isinstance(labels, torch.Tensor) or labels.dtype != torch.long
                or labels.shape != (len(images),) or bool((labels < 0).any())):
            raise ValueError("`labels` must be a long tensor of shape (N,) with values >= 0, one "
                             "per image")
        num_classes = int(labels.max()) + 1
    init_seed = _check_seed(init_seed, "init_seed")
    config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=warmup_steps,
                         ema_decay=ema_decay, label_dropout=label_dropout, device=device,
                         seed=_check_seed(train_seed, "train_seed"), log_every=100,
                         progress=False)
    unet = UNet8(channels=images.shape[1], base=base, mult=2, T=schedule.T,
                 num_classes=num_classes, generator=torch.Generator().manual_seed(init_seed))
    trainer = Trainer(unet, schedule, images, labels, config)
    trainer.train()
    return trainer.ema_model.eval()
