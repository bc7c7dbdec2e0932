"""Training an ε-prediction diffusion model (kexue.fm/archives/9119, the final loss).

The loss is the DDPM paper's simplified objective in Su's notation,

    L = E_{x_0, t, ε} ‖ε − ε_θ(ᾱ_t x_0 + β̄_t ε, t, y)‖²,   t ~ U{1..T},  ε ~ N(0, I),

the weight β_t²/β̄_t² of the variance-reduced loss of 9119 dropped. The loop reads top to bottom in
:meth:`Trainer.train`: draw a batch by index, noise it, one AdamW step with warmup + cosine LR
and gradient clipping, one EMA update (torch's ``AveragedModel``), and every ``log_every`` steps a
loss readout (the only host–device sync). Device and precision are chosen in one place
(:func:`resolve_device`, :func:`resolve_precision`): bf16 autocast on CUDA, fp32 on CPU.

On CPU a run that is interrupted and resumed from its checkpoint ends with bit-identical weights to
the uninterrupted run: every random draw comes from one ``torch.Generator`` whose state is saved.

Under ``torchrun`` (a process group initialised by :mod:`.distributed`) the same trainer runs data
parallel: the model is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`, every rank
draws the same *global* batch of ``batch_size`` indices, times and noises from its identically
seeded generator and trains on its contiguous share of ``batch_size / world_size``; DDP averages
the gradients, so a step equals the single-process step on the global batch up to the order of
float sums, and weights, EMA, optimiser and generator stay identical on every rank. Rank 0 alone
shows progress and writes checkpoints (after a barrier); resuming reads the file on rank 0 and
broadcasts its bytes, so a run may resume on another world size.

Resuming is checked before anything changes (:meth:`Trainer.restore`): a checkpoint of another
model, data, schedule or seed is refused, and one of other :data:`OVERRIDABLE_SETTINGS` (learning
rate, batch size, …) unless they are named in ``allow_changes``; a refused restore leaves the
trainer untouched. CPU results depend on the math-thread count in the last bits: the checkpoint
records it and a resume on another count warns.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from .._validation import described
from . import distributed as _dist
from .checkpoint import (
    CHECKPOINT_NAME,
    Checkpoint,
    CheckpointError,
    checkpoint_from_bytes,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from .schedule import Schedule

__all__ = [
    "TrainConfig",
    "FIXED_SETTINGS",
    "FREE_SETTINGS",
    "OVERRIDABLE_SETTINGS",
    "TrainResult",
    "Trainer",
    "lr_factor",
    "resolve_device",
    "resolve_precision",
]

_PRECISIONS = ("auto", "fp32", "bf16")

#: Settings a resumed run must share with its checkpoint, always (besides the model, its
#: config, the data and the schedule, which are compared too).
FIXED_SETTINGS = ("seed",)
#: Settings a resume refuses to change unless named in ``allow_changes``: continuing with a new
#: value is sound (the run goes on from the stored state with the new value from now on).
OVERRIDABLE_SETTINGS = ("lr", "weight_decay", "warmup_steps", "grad_clip", "ema_decay",
                        "label_dropout", "batch_size", "precision")
#: Settings a resume may change freely (length of the run, logging, placement).
FREE_SETTINGS = ("steps", "log_every", "checkpoint_every", "out_dir", "progress", "device",
                 "compile")


@dataclass
class TrainConfig:
    """Hyper-parameters of :class:`Trainer` (validated on creation)."""

    steps: int = 2000                   # optimiser steps of the whole run (resume continues to it)
    batch_size: int = 256               # samples per step (all ranks together), with replacement
    lr: float = 1e-3                    # peak learning rate of AdamW
    weight_decay: float = 0.0           # AdamW's decoupled weight decay
    warmup_steps: int = 100             # linear warmup to `lr`, then cosine decay to 0 at `steps`
    grad_clip: float | None = 1.0       # max global gradient norm; None switches clipping off
    ema_decay: float = 0.999            # EMA weight of the old average per step, in [0, 1)
    label_dropout: float = 0.1          # probability a label becomes the null label (CFG), [0, 1)
    precision: str = "auto"             # "auto" (bf16 on CUDA, else fp32), "fp32" or "bf16"
    compile: bool = False               # torch.compile the forward pass (pays off on GPUs)
    device: str = "auto"                # "auto" (CUDA if available, else CPU), "cpu", "cuda", …
    seed: int = 0                       # seeds the one generator behind batches, t, ε, dropout
    log_every: int = 50                 # steps between loss readouts (history and progress bar)
    checkpoint_every: int = 0           # steps between checkpoints (0: only at the end)
    out_dir: str | None = None          # folder for checkpoint.safetensors (None: no checkpoints)
    progress: bool = True               # show a tqdm bar

    def __post_init__(self) -> None:
        def integer(name: str, minimum: int) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                raise ValueError(f"`{name}` must be an integer >= {minimum}, got {v!r}")

        integer("steps", 1)
        integer("batch_size", 1)
        integer("warmup_steps", 0)
        integer("seed", 0)
        integer("log_every", 1)
        integer("checkpoint_every", 0)
        if not (isinstance(self.lr, int | float) and 0 < self.lr < math.inf):
            raise ValueError(f"`lr` must be a positive number, got {self.lr!r}")
        if not (isinstance(self.weight_decay, int | float) and 0 <= self.weight_decay < math.inf):
            raise ValueError(f"`weight_decay` must be a number >= 0, got {self.weight_decay!r}")
        if self.grad_clip is not None and not (
            isinstance(self.grad_clip, int | float) and 0 < self.grad_clip < math.inf
        ):
            raise ValueError(f"`grad_clip` must be a positive number or None, "
                             f"got {self.grad_clip!r}")
        for name in ("ema_decay", "label_dropout"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and 0 <= v < 1):
                raise ValueError(f"`{name}` must lie in [0, 1), got {v!r}")
        if self.precision not in _PRECISIONS:
            raise ValueError(f"`precision` must be one of {_PRECISIONS}, got {self.precision!r}")
        if not isinstance(self.compile, bool):
            raise ValueError(f"`compile` must be a bool, got {self.compile!r}")
        if not isinstance(self.progress, bool):
            raise ValueError(f"`progress` must be a bool, got {self.progress!r}")
        if not isinstance(self.device, str):
            raise ValueError(f"`device` must be a string such as 'auto', 'cpu' or 'cuda', "
                             f"got {self.device!r}")
        if self.device != "auto":
            try:
                torch.device(self.device)
            except RuntimeError:
                raise ValueError(f"`device` must be 'auto' or a torch device such as 'cpu' or "
                                 f"'cuda:0', got {self.device!r}") from None
        if self.out_dir is not None:
            if not isinstance(self.out_dir, str | os.PathLike):
                raise ValueError(f"`out_dir` must be a path or None, got {self.out_dir!r}")
            self.out_dir = os.fspath(self.out_dir)
        if self.checkpoint_every > 0 and self.out_dir is None:
            raise ValueError("`out_dir` must be set when `checkpoint_every` > 0")


def ema_decay_at(decay: float, updates: int) -> float:
    """The EMA decay of the update that follows ``updates`` earlier ones:
    ``min(decay, (1 + n) / (10 + n))``, the warm-up of diffusers' ``EMAModel`` (and of
    TensorFlow's ``ExponentialMovingAverage`` given ``num_updates``). With a fixed 0.999 the
    average of a 200-step run would still weigh the first step's (nearly initial) weights by
    0.999¹⁹⁹ ≈ 0.82; warmed up, that weight is ∏ₖ₌₁ⁿ⁻¹ (1+k)/(10+k) = 10!·n!/(n+9)! (10⁻⁶ at
    n = 20), and the decay reaches ``decay`` after (10·decay − 1)/(1 − decay) updates (8 990
    for 0.999)."""
    return min(decay, (1 + updates) / (10 + updates))


def _warm_ema(decay: float):
    """``AveragedModel``'s ``multi_avg_fn`` for an EMA warmed up by :func:`ema_decay_at`."""
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged) -> None:
        d = ema_decay_at(decay, int(n_averaged))
        if torch.is_floating_point(averaged[0]) or torch.is_complex(averaged[0]):
            torch._foreach_lerp_(averaged, current, 1 - d)
        else:  # integer buffers: as torch's get_ema_multi_avg_fn treats them
            for a, c in zip(averaged, current, strict=True):
                a.copy_(a * d + c * (1 - d))
    return update


@dataclass
class TrainResult:
    """Loss history of a run: ``losses[i]`` is the mean loss over the steps up to ``steps[i]``
    since the previous readout, ``lrs[i]`` the learning rate used at step ``steps[i]``."""

    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    final_step: int = 0
    start_step: int = 0                 # the step this call began at (> 0 after a resume)
    seconds: float = 0.0                # wall-clock time of this call of `train`
    steps_per_second: float = 0.0       # steps of this call / seconds


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The training device: ``"auto"`` is CUDA when available, else CPU; any other value must
    name a torch device type that is available here."""
    if isinstance(device, torch.device):
        spec = str(device)
    elif isinstance(device, str):
        spec = device
    else:
        raise ValueError(f"`device` must be a string such as 'auto', 'cpu' or 'cuda', "
                         f"got {device!r}")
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise ValueError(f"`device` must be 'auto' or a torch device such as 'cpu' or "
                         f"'cuda:0', got {spec!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"`device` is {spec!r} but CUDA is not available here")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"`device` is {spec!r} but MPS is not available here")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"`device` must be a CPU, CUDA or MPS device, got {spec!r}")
    return dev


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: ``None`` (plain fp32) or ``torch.bfloat16``.

    ``"auto"`` is bf16 on CUDA devices that support it and fp32 elsewhere (bf16 autocast on CPU
    is slower than fp32 there); ``"bf16"`` forces bf16 autocast, ``"fp32"`` switches it off.
    """
    if precision not in _PRECISIONS:
        raise ValueError(f"`precision` must be one of {_PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Multiplier of the peak LR for the optimiser step after ``step`` completed steps:
    linear warmup (step + 1)/warmup, then half a cosine from 1 to 0 at ``total_steps``."""
    for name, v, lo in (("step", step, 0), ("warmup_steps", warmup_steps, 0),
                        ("total_steps", total_steps, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"`{name}` must be an integer >= {lo}, got {v!r}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class Trainer:
    """Train ``model`` (an ε-model called as ``model(x_t, t, y)``) on data ``x`` (N, …) with
    optional labels ``y`` (N,), under ``schedule``.

    Attributes after construction: ``model`` (on the training device), ``ema_model`` (the EMA'd
    copy for sampling), ``optimizer``, ``scheduler``, ``generator``, ``device``, ``step``, and
    ``world`` (the :class:`~kexue_nb.diffusion.distributed.DistEnv` of this process).

    Inside an initialised process group of several processes the trainer is data parallel (see
    the module docstring); ``config.batch_size`` is then the global batch and must be divisible
    by the world size, and every rank must be given the same ``x``, ``y``, model and config.
    Training, :meth:`save_checkpoint` and resuming are collective there: call them on every rank.

    Subclasses train other objectives on the same noisy batches by overriding :meth:`loss`
    (:class:`~kexue_nb.diffusion.classifier.ClassifierTrainer`); ``drops_labels = False`` turns
    classifier-free label dropout off for them.
    """

    #: Whether ``config.label_dropout`` replaces labels by the null label (the CFG recipe).
    drops_labels = True
    #: Smallest timestep drawn: t ~ U{t_min..T} (an ε-model needs t >= 1).
    t_min = 1

    def __init__(
        self,
        model: nn.Module,
        schedule: Schedule,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        config: TrainConfig | None = None,
    ) -> None:
        config = TrainConfig() if config is None else config
        if not isinstance(config, TrainConfig):
            raise ValueError(f"`config` must be a TrainConfig, got {type(config).__name__}")
        if not isinstance(model, nn.Module):
            raise ValueError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(schedule, Schedule):
            raise ValueError(f"`schedule` must be a Schedule, got {type(schedule).__name__}")
        model_T = getattr(model, "T", schedule.T)
        if model_T != schedule.T:
            raise ValueError(f"`schedule` has T = {schedule.T} but the model was built for "
                             f"T = {model_T}")
        if not isinstance(x, torch.Tensor) or x.ndim < 2 or x.shape[0] == 0:
            raise ValueError(f"`x` must be a tensor of shape (N, ...) with N >= 1, got "
                             f"{described(x)}")
        num_classes = int(getattr(model, "num_classes", 0))
        if y is not None:
            if not isinstance(y, torch.Tensor) or y.shape != (x.shape[0],):
                raise ValueError(f"`y` must be a tensor of shape ({x.shape[0]},), got "
                                 f"{described(y)}")
            if num_classes == 0:
                raise ValueError("`y` must be None for an unconditional model (num_classes = 0)")
            if int(y.min()) < 0 or int(y.max()) >= num_classes:
                raise ValueError(f"`y` must hold class ids in 0..{num_classes - 1}, got values "
                                 f"in {int(y.min())}..{int(y.max())}")
        self.config = config
        self.schedule = schedule
        self.world = _dist.world()
        distributed = self.world.world_size > 1
        # The global batch split evenly over the ranks (None for a single process).
        self._shard = _dist.shard(config.batch_size, self.world) if distributed else None
        # The one place where device and precision are decided.
        self.device = resolve_device(config.device)
        if distributed and self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        if distributed and self.world.backend == "nccl" and self.device.type != "cuda":
            raise ValueError(f"`device` must be a CUDA device in an NCCL process group, "
                             f"got {config.device!r}")
        self.autocast_dtype = resolve_precision(config.precision, self.device)
        on_cuda = self.device.type == "cuda"

        self.model = model.to(self.device).train()
        self.x = x.detach().to(self.device, torch.float32).contiguous()
        self.y = None if y is None else y.detach().to(self.device, torch.long)
        self.num_classes = num_classes
        self._alpha_bar = schedule.alpha_bar.to(self.device, torch.float32)
        self._beta_bar = schedule.beta_bar.to(self.device, torch.float32)
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
            fused=True if on_cuda else None,
        )
        warmup, total = config.warmup_steps, config.steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, warmup, total))
        self._ema = AveragedModel(self.model, multi_avg_fn=_warm_ema(config.ema_decay),
                                  use_buffers=True)
        # AveragedModel compares its counter with 0 on every update: keep it on the CPU so that
        # the comparison never waits for the GPU.
        self._ema.n_averaged = self._ema.n_averaged.cpu()
        # Data parallel: DDP broadcasts rank 0's weights now and averages gradients in backward;
        # `self.model` stays the plain module (optimiser, EMA and checkpoints use it).
        self._ddp = None if not distributed else DistributedDataParallel(
            self.model, device_ids=[self.device.index] if on_cuda else None)
        net = self.model if self._ddp is None else self._ddp
        self._forward = torch.compile(net) if config.compile else net
        self.step = 0
        self.history = TrainResult()
        self._loss_sum = torch.zeros((), device=self.device)
        self._loss_count = 0
        self._data_sha256: str | None = None
        #: Settings of the caller (the CLI: data set, schedule name, model kind, …) stored in
        #: checkpoints and compared on resume, so that a refusal can name the option.
        self.run_settings: dict[str, Any] = {}

    # ----------------------------------------------------------------------------------
    @property
    def ema_model(self) -> nn.Module:
        """The EMA'd network (same class and config as ``model``), for sampling."""
        return self._ema.module

    @property
    def checkpoint_path(self) -> Path | None:
        """``out_dir/checkpoint.safetensors``, or None without an ``out_dir``."""
        return None if self.config.out_dir is None else Path(self.config.out_dir) / CHECKPOINT_NAME

    def noisy(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = ᾱ_t x_0 + β̄_t ε for a batch (9119, the unrolled forward chain)."""
        shape = (-1,) + (1,) * (x0.ndim - 1)
        return self._alpha_bar[t].view(shape) * x0 + self._beta_bar[t].view(shape) * noise

    def autocast(self):
        """The context of every forward pass: autocast to the trainer's precision, or nothing."""
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def loss(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
             y: torch.Tensor | None = None) -> torch.Tensor:
        """The ε-prediction loss mean ‖ε − ε_θ(ᾱ_t x_0 + β̄_t ε, t, y)‖² over a batch (per
        coordinate), in the trainer's precision."""
        with self.autocast():
            eps = self._forward(self.noisy(x0, t, noise), t, y)
        return F.mse_loss(eps.float(), noise)

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Draw (x_0, t, ε, y) with the trainer's generator, all on the device.

        The draws are those of the global batch on every rank (the generators agree); a rank of
        a data-parallel run keeps its contiguous share of them."""
        g, dev, B = self.generator, self.device, self.config.batch_size
        idx = torch.randint(self.x.shape[0], (B,), generator=g, device=dev)
        t = torch.randint(self.t_min, self.schedule.T + 1, (B,), generator=g, device=dev)
        noise = torch.randn((B, *self.x.shape[1:]), generator=g, device=dev)
        drop = None
        if self.y is not None and self.drops_labels and self.config.label_dropout > 0:
            drop = torch.rand(B, generator=g, device=dev) < self.config.label_dropout
        if self._shard is not None:
            idx, t, noise = idx[self._shard], t[self._shard], noise[self._shard]
            drop = None if drop is None else drop[self._shard]
        x0 = self.x[idx]
        y = None
        if self.y is not None:
            y = self.y[idx]
            if drop is not None:
                y = torch.where(drop, torch.full_like(y, self.num_classes), y)
        return x0, t, noise, y

    def train(self, resume: bool | str | os.PathLike[str] = False, *,
              stop_at: int | None = None, allow_changes=(),
              on_log: Callable[[int, float, float], None] | None = None) -> TrainResult:
        """Train up to ``config.steps`` optimiser steps and return the loss history.

        ``resume=True`` first restores ``out_dir/checkpoint.safetensors`` when it exists (a path
        names another checkpoint); the run then continues exactly where that one stopped.
        ``stop_at`` ends this call after that many steps in total (the LR schedule still spans
        ``config.steps``), as if the run were interrupted there. A resume refuses a checkpoint
        of other settings (see :meth:`restore`; ``allow_changes`` names the
        :data:`OVERRIDABLE_SETTINGS` that may differ). ``on_log(step, loss, lr)`` is called at
        each loss readout (every ``log_every`` steps, on every rank). Stale temporary files of
        killed checkpoint writes in ``out_dir`` are removed first.
        """
        cfg = self.config
        allow_changes = _allowed(allow_changes)
        if cfg.out_dir is not None and self.world.is_main:
            remove_stale_temporaries(cfg.out_dir)
        if stop_at is not None and (isinstance(stop_at, bool) or not isinstance(stop_at, int)
                                    or not 1 <= stop_at <= cfg.steps):
            raise ValueError(f"`stop_at` must be an integer in 1..steps = {cfg.steps}, "
                             f"got {stop_at!r}")
        if resume is not False:
            path = self.checkpoint_path if resume is True else Path(resume)
            if path is None:
                raise ValueError("`resume` must be a checkpoint path when `out_dir` is None")
            if self._ddp is None:
                if path.exists() or resume is not True:
                    self.restore(load_checkpoint(path), allow_changes=allow_changes)
            else:
                ckpt = _read_on_rank0(path, required=resume is not True)
                if ckpt is not None:
                    self.restore(ckpt, allow_changes=allow_changes)
        end = cfg.steps if stop_at is None else stop_at
        start = self.step
        self.model.train()
        t0 = time.perf_counter()
        bar = tqdm(total=end, initial=start, disable=not (cfg.progress and self.world.is_main),
                   unit="step", desc="train", dynamic_ncols=True)
        params = [p for p in self.model.parameters() if p.requires_grad]
        while self.step < end:
            x0, t, noise, y = self._batch()
            loss = self.loss(x0, t, noise, y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip, foreach=True)
            lr = self.scheduler.get_last_lr()[0]
            self.optimizer.step()
            self.scheduler.step()
            self._ema.update_parameters(self.model)
            self._loss_sum += loss.detach()
            self._loss_count += 1
            self.step += 1
            bar.update(1)
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                if self._ddp is None:
                    mean = self._loss_sum.item() / self._loss_count  # the one sync
                else:  # the mean over all ranks' samples, equal on every rank
                    total = _dist.mean_over_ranks_(self._loss_sum.clone())
                    mean = total.item() / self._loss_count
                if not math.isfinite(mean):
                    bar.close()
                    raise FloatingPointError(f"the loss became {mean} at step {self.step}")
                self.history.steps.append(self.step)
                self.history.losses.append(mean)
                self.history.lrs.append(lr)
                self._loss_sum.zero_()
                self._loss_count = 0
                bar.set_postfix(loss=f"{mean:.4f}", refresh=False)
                if on_log is not None:
                    on_log(self.step, mean, lr)
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                self.save_checkpoint()
        bar.close()
        if self.config.out_dir is not None and self.step > start:
            self.save_checkpoint()
        seconds = time.perf_counter() - t0
        done = self.step - start
        return TrainResult(steps=list(self.history.steps), losses=list(self.history.losses),
                           lrs=list(self.history.lrs), final_step=self.step, start_step=start,
                           seconds=seconds,
                           steps_per_second=done / seconds if seconds > 0 else 0.0)

    # ----------------------------------------------------------------------------------
    def _state_extra(self) -> dict[str, Any]:
        return {
            "train_config": asdict(self.config),
            "scheduler": self.scheduler.state_dict(),
            "history": {"steps": self.history.steps, "losses": self.history.losses,
                        "lrs": self.history.lrs},
            "loss_count": self._loss_count,
            "data_shape": list(self.x.shape),
            "data_sha256": self.data_sha256,
        } | ({"run": dict(self.run_settings)} if self.run_settings else {})

    @property
    def data_sha256(self) -> str:
        """sha256 of the training data (x as float32, and y as int64 when given), cached."""
        if self._data_sha256 is None:
            h = hashlib.sha256(repr(tuple(self.x.shape)).encode())
            h.update(self.x.detach().cpu().contiguous().numpy().tobytes())
            if self.y is not None:
                h.update(b"y")
                h.update(self.y.detach().cpu().contiguous().numpy().tobytes())
            self._data_sha256 = h.hexdigest()
        return self._data_sha256

    def save_checkpoint(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write model, EMA, optimiser, LR scheduler, generator state, step and history to
        ``path`` (default ``out_dir/checkpoint.safetensors``), atomically.

        Data parallel, every rank must call it: the ranks meet at a barrier, rank 0 alone writes
        (the state is the same on every rank; the pending loss sum is averaged over the ranks),
        and all meet again once the file is in place."""
        if path is None:
            path = self.checkpoint_path
            if path is None:
                raise ValueError("`path` must be given when the config has no `out_dir`")
            if self.world.is_main:
                path.parent.mkdir(parents=True, exist_ok=True)
        if self._ddp is None:
            return save_checkpoint(
                path, self.model, ema=self._ema, optimizer=self.optimizer,
                generator=self.generator, schedule_betas=self.schedule.ddpm_paper().betas,
                step=self.step, extra=self._state_extra(),
                extra_tensors={"loss_sum": self._loss_sum},
            )
        loss_sum = _dist.mean_over_ranks_(self._loss_sum.clone())  # also the barrier before
        error: BaseException | None = None
        if self.world.is_main:
            try:
                save_checkpoint(
                    path, self.model, ema=self._ema, optimizer=self.optimizer,
                    generator=self.generator, schedule_betas=self.schedule.ddpm_paper().betas,
                    step=self.step, extra=self._state_extra(),
                    extra_tensors={"loss_sum": loss_sum},
                )
            except BaseException as err:  # let the other ranks through the barrier first
                error = err
        _dist.barrier()
        if error is not None:
            raise error
        return Path(path)

    def restore(self, checkpoint: Any, allow_changes=()) -> None:
        """Load a :class:`~kexue_nb.diffusion.checkpoint.Checkpoint` (or a path to one) into
        this trainer: weights, EMA, optimiser, LR scheduler, generator, step and history.

        Everything is checked before anything changes, and a failure leaves the trainer as it
        was: a :class:`CheckpointError` names the file and the reason. The checkpoint must come
        from the same run: the same model and config, data (shape and sha256), schedule (β_t)
        and :data:`FIXED_SETTINGS`; the :data:`OVERRIDABLE_SETTINGS` must match too unless named
        in ``allow_changes``, and the :data:`FREE_SETTINGS` may differ. A checkpoint written with
        another math-thread count resumes with a ``RuntimeWarning`` (CPU results then differ in
        the last bits from an uninterrupted run)."""
        allow = _allowed(allow_changes)
        ckpt = checkpoint if not isinstance(checkpoint, str | os.PathLike) else \
            load_checkpoint(checkpoint)
        if not isinstance(ckpt, Checkpoint):
            raise ValueError(f"`checkpoint` must be a Checkpoint or a path, "
                             f"got {type(checkpoint).__name__}")
        path = ckpt.path

        def fail(what: str) -> CheckpointError:
            return CheckpointError(f"checkpoint {str(path)!r} {what}")

        try:
            plan = self._check_restore(ckpt, allow, fail)
        except CheckpointError:
            raise
        except Exception as err:  # a malformed Checkpoint object built by hand
            raise fail(f"cannot be restored ({type(err).__name__}: {err})") from None
        if ckpt.torch_threads is not None and ckpt.torch_threads != torch.get_num_threads():
            warnings.warn(f"checkpoint {str(path)!r} was written with {ckpt.torch_threads} math "
                          f"threads, this process uses {torch.get_num_threads()}: the resumed "
                          f"run is not bit-identical to an uninterrupted one (start it with "
                          f"OMP_NUM_THREADS={ckpt.torch_threads}, or call "
                          f"torch.set_num_threads({ckpt.torch_threads}) first, to make it so)",
                          RuntimeWarning, stacklevel=2)
        saved = self._snapshot()
        try:
            self._apply_restore(ckpt, plan)
        except BaseException as err:
            self._rollback(saved)
            if isinstance(err, Exception):
                raise fail(f"cannot be restored ({type(err).__name__}: {err})") from None
            raise

    def _check_restore(self, ckpt: Checkpoint, allow: frozenset[str], fail) -> dict[str, Any]:
        extra = ckpt.extra if isinstance(ckpt.extra, dict) else {}
        run, mine = extra.get("run"), self.run_settings
        if isinstance(run, dict) and mine:
            for key in sorted(set(run) | set(mine)):
                if run.get(key) != mine.get(key):
                    raise fail(f"was written with setting `{key}` = {run.get(key)!r}, this run "
                               f"has {mine.get(key)!r}; resume with the same value, or start a "
                               f"new run in another folder")
        name, config = type(self.model).__name__, getattr(self.model, "config", None)
        if ckpt.model_name != name or ckpt.model_config != config:
            raise fail(f"holds a {ckpt.model_name} with config {ckpt.model_config}, not this "
                       f"trainer's {name} with config {config}")
        if ckpt.optimizer_state is None or ckpt.ema_state is None or ckpt.rng_state is None:
            raise fail("has no trainer state (optimiser, EMA and generator are needed to "
                       "resume)")
        for key in ("train_config", "scheduler", "history", "loss_count", "data_shape"):
            if key not in extra:
                raise fail(f"has no trainer state ({key!r} is missing)")
        if extra.get("data_shape") != list(self.x.shape):
            raise fail(f"was trained on data of shape {extra.get('data_shape')}, not "
                       f"{list(self.x.shape)}")
        if "data_sha256" in extra and extra["data_sha256"] != self.data_sha256:
            raise fail(f"was trained on other data (sha256 {str(extra['data_sha256'])[:12]}…, "
                       f"this run's {self.data_sha256[:12]}…) of the same shape")
        betas = self.schedule.ddpm_paper().betas
        stored = ckpt.schedule_betas
        if stored is not None and (stored.shape != betas.shape
                                   or not torch.equal(stored.to(betas.dtype), betas)):
            raise fail(f"was trained with another schedule (T = {stored.numel()}, β_1 = "
                       f"{float(stored[0]):.6g}, β_T = {float(stored[-1]):.6g}) than this run's "
                       f"(T = {betas.numel()}, β_1 = {float(betas[0]):.6g}, β_T = "
                       f"{float(betas[-1]):.6g})")
        cfg, old = asdict(self.config), extra["train_config"]
        if not isinstance(old, dict):
            raise fail("has a malformed train_config")
        for key in FIXED_SETTINGS + OVERRIDABLE_SETTINGS:
            if old.get(key) != cfg[key] and key not in allow:
                hint = (f"pass allow_changes=({key!r},) (CLI: --allow-change {key}) to continue "
                        f"with the new value" if key in OVERRIDABLE_SETTINGS else
                        "it cannot change within a run; start a new run in another folder")
                raise fail(f"was trained with `{key}` = {old.get(key)!r}, this run has "
                           f"{cfg[key]!r}; {hint}")
        if ckpt.step > self.config.steps:
            raise fail(f"is at step {ckpt.step}, beyond `steps` = {self.config.steps}")
        # the state's structure against this trainer's objects
        own = self.model.state_dict()
        _same_tensors(fail, "model", ckpt.model_state, own)
        ema_own = self._ema.state_dict()
        _same_tensors(fail, "EMA", ckpt.ema_state, ema_own)
        opt = ckpt.optimizer_state
        mine_opt = self.optimizer.state_dict()
        if not isinstance(opt, dict) or set(opt) != {"state", "param_groups"}:
            raise fail("has a malformed optimiser state")
        groups = opt["param_groups"]
        if not isinstance(groups, list) or len(groups) != len(mine_opt["param_groups"]):
            raise fail("has an optimiser with another number of parameter groups")
        for g, m in zip(groups, mine_opt["param_groups"], strict=True):
            if not isinstance(g, dict) or set(g) != set(m) or g["params"] != m["params"]:
                raise fail("has optimiser parameter groups that do not fit this trainer's "
                           "AdamW")
        params = list(self.model.parameters())
        state = opt["state"]
        if not isinstance(state, dict) or set(state) - set(range(len(params))):
            raise fail("has optimiser state for parameters this model does not have")
        for pid, entries in state.items():
            p = params[pid]
            if not isinstance(entries, dict) or set(entries) != {"step", "exp_avg",
                                                                 "exp_avg_sq"}:
                raise fail(f"has a malformed AdamW state for parameter {pid}")
            for key in ("exp_avg", "exp_avg_sq"):
                t = entries[key]
                if not isinstance(t, torch.Tensor) or t.shape != p.shape or t.dtype != p.dtype:
                    raise fail(f"has AdamW {key} of parameter {pid} that does not fit it")
            st = entries["step"]
            if not isinstance(st, torch.Tensor) or st.shape != () or not st.is_floating_point():
                raise fail(f"has a malformed AdamW step of parameter {pid}")
        rng = ckpt.rng_state
        own_rng = self.generator.get_state()
        if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8 \
                or rng.shape != own_rng.shape:
            raise fail(f"has a generator state of {getattr(rng, 'dtype', None)} "
                       f"{list(getattr(rng, 'shape', []))}; this trainer's generator needs "
                       f"uint8 {list(own_rng.shape)} (was it written on another device type?)")
        sched, own_sched = extra["scheduler"], self.scheduler.state_dict()
        if not isinstance(sched, dict) or set(sched) != set(own_sched) \
                or len(sched.get("base_lrs", ())) != len(own_sched["base_lrs"]):
            raise fail("has an LR scheduler state that does not fit this trainer's")
        hist = extra["history"]
        if not isinstance(hist, dict) or not all(isinstance(hist.get(k), list)
                                                 for k in ("steps", "losses", "lrs")):
            raise fail("has a malformed loss history")
        loss_sum = ckpt.extra_tensors.get("loss_sum")
        if not isinstance(loss_sum, torch.Tensor) or loss_sum.shape != () \
                or loss_sum.dtype != torch.float32:
            raise fail("lacks the pending loss sum ('extra.loss_sum', a float32 scalar)")
        count = extra["loss_count"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise fail("has a malformed loss_count")
        return {"lr": cfg["lr"] if "lr" in allow and old.get("lr") != cfg["lr"] else None,
                "weight_decay": cfg["weight_decay"]
                if "weight_decay" in allow and old.get("weight_decay") != cfg["weight_decay"]
                else None,
                "relr": any(old.get(k) != cfg[k] for k in ("lr", "warmup_steps", "steps"))}

    def _snapshot(self) -> dict[str, Any]:
        return {"model": {k: v.clone() for k, v in self.model.state_dict().items()},
                "ema": {k: v.clone() for k, v in self._ema.state_dict().items()},
                "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                "scheduler": copy.deepcopy(self.scheduler.state_dict()),
                "generator": self.generator.get_state().clone(),
                "step": self.step, "history": copy.deepcopy(self.history),
                "loss_sum": self._loss_sum.clone(), "loss_count": self._loss_count}

    def _rollback(self, saved: dict[str, Any]) -> None:
        self.model.load_state_dict(saved["model"])
        self._ema.load_state_dict(saved["ema"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.generator.set_state(saved["generator"])
        self.step, self.history = saved["step"], saved["history"]
        self._loss_sum, self._loss_count = saved["loss_sum"], saved["loss_count"]

    def _apply_restore(self, ckpt: Checkpoint, plan: dict[str, Any]) -> None:
        extra = ckpt.extra
        self.model.load_state_dict(ckpt.model_state)
        ema_state = dict(ckpt.ema_state)
        n_averaged = ema_state.pop("n_averaged")
        self._ema.module.load_state_dict(
            {k[len("module."):]: v for k, v in ema_state.items() if k.startswith("module.")})
        self._ema.n_averaged.copy_(n_averaged)
        # the implementation flags (fused, foreach, …) stay this trainer's: they fit its device
        mine = self.optimizer.state_dict()["param_groups"]
        groups = [dict(g, **{k: m[k] for k in ("fused", "foreach", "capturable",
                                               "differentiable") if k in m})
                  for g, m in zip(ckpt.optimizer_state["param_groups"], mine, strict=True)]
        self.optimizer.load_state_dict({"state": ckpt.optimizer_state["state"],
                                        "param_groups": groups})
        self.scheduler.load_state_dict(dict(extra["scheduler"]))
        if plan["lr"] is not None:
            self.scheduler.base_lrs = [plan["lr"]] * len(self.scheduler.base_lrs)
            for g in self.optimizer.param_groups:
                g["initial_lr"] = plan["lr"]
        if plan["weight_decay"] is not None:
            for g in self.optimizer.param_groups:
                g["weight_decay"] = plan["weight_decay"]
        if plan["relr"]:   # the LR of the next step under this run's schedule
            factor = lr_factor(ckpt.step, self.config.warmup_steps, self.config.steps)
            for g, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs,
                               strict=True):
                g["lr"] = base * factor
            self.scheduler._last_lr = [g["lr"] for g in self.optimizer.param_groups]
        self.generator.set_state(ckpt.rng_state.to(self.generator.get_state().device))
        self.step = ckpt.step
        hist = extra["history"]
        self.history = TrainResult(steps=list(hist["steps"]), losses=list(hist["losses"]),
                                   lrs=list(hist["lrs"]))
        self._loss_sum = ckpt.extra_tensors["loss_sum"].to(self.device)
        self._loss_count = int(extra["loss_count"])

    @classmethod
    def load_checkpoint(
        cls,
        path: str | os.PathLike[str],
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        *,
        schedule: Schedule | None = None,
        config: TrainConfig | None = None,
    ) -> Trainer:
        """A trainer rebuilt from a checkpoint: the model from its name and config, the schedule
        from the stored β_t (unless given), the config as stored (unless given), and the whole
        training state restored, ready to :meth:`train` on to ``config.steps``."""
        ckpt = load_checkpoint(path) if not _dist.is_distributed() else \
            _read_on_rank0(Path(path), required=True)
        model = ckpt.build_model(ema=False)
        if schedule is None:
            if ckpt.schedule_betas is None:
                raise CheckpointError(f"checkpoint {str(path)!r} stores no schedule; "
                                      f"pass `schedule`")
            schedule = Schedule.from_betas(ckpt.schedule_betas)
        if config is None:
            config = TrainConfig(**ckpt.extra["train_config"])
        trainer = cls(model, schedule, x, y, config)
        trainer.restore(ckpt)
        return trainer


def _allowed(allow_changes: Any) -> frozenset[str]:
    """``allow_changes`` as a set of :data:`OVERRIDABLE_SETTINGS`."""
    if isinstance(allow_changes, str):
        allow_changes = (allow_changes,)
    try:
        names = frozenset(allow_changes)
    except TypeError:
        raise ValueError(f"`allow_changes` must be a collection of setting names, "
                         f"got {allow_changes!r}") from None
    bad = sorted(str(n) for n in names - set(OVERRIDABLE_SETTINGS))
    if bad:
        raise ValueError(f"`allow_changes` may name only {OVERRIDABLE_SETTINGS}, got {bad}")
    return names


def _same_tensors(fail, what: str, got: Any, own: dict[str, torch.Tensor]) -> None:
    """A CheckpointError unless ``got`` has exactly ``own``'s keys, dtypes and shapes."""
    if not isinstance(got, dict) or set(got) != set(own):
        missing = sorted(set(own) - set(got)) if isinstance(got, dict) else []
        raise fail(f"has {what} weights that do not fit this trainer's model"
                   + (f" (missing {missing[0]!r})" if missing else ""))
    for key, t in own.items():
        v = got[key]
        if not isinstance(v, torch.Tensor) or v.dtype != t.dtype or v.shape != t.shape:
            raise fail(f"has {what} tensor {key!r} of {getattr(v, 'dtype', type(v).__name__)} "
                       f"{list(getattr(v, 'shape', []))}; this model needs {t.dtype} "
                       f"{list(t.shape)}")
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise fail(f"has non-finite values in {what} tensor {key!r}")


def _read_on_rank0(path: Path, required: bool) -> Checkpoint | None:
    """The checkpoint at ``path`` as read by rank 0 and broadcast to every rank (the others need
    not see the file); ``None`` when it is absent and not ``required``. Collective."""
    blob = None
    if _dist.is_main_process() and (required or path.is_file()):
        try:
            blob = path.read_bytes()
        except OSError:
            blob = None
    blob = _dist.broadcast_bytes(blob)
    if blob is None:
        if required:
            raise CheckpointError(f"checkpoint {str(path)!r} does not exist (or cannot be read) "
                                  f"on rank 0")
        return None
    return checkpoint_from_bytes(blob, path)
