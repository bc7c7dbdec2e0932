"""Command line: train a diffusion model, then sample from its checkpoint.

    python -m kexue_nb.diffusion train --data moons --steps 3000 --out runs/moons
    python -m kexue_nb.diffusion sample --checkpoint runs/moons --n 2000 --sampler ddim --steps 50

Classifier guidance: train a noisy classifier on a labelled set with the same ``--T`` as the
(unconditional) model, then sample towards a class with scale γ:

    python -m kexue_nb.diffusion train --data mixture --out runs/mixture
    python -m kexue_nb.diffusion train --data mixture --model classifier --out runs/clf
    python -m kexue_nb.diffusion sample --checkpoint runs/mixture --classifier runs/clf \
        --gamma 2 --label 3

``train`` writes ``OUT/checkpoint.safetensors`` (resumable with ``--resume``) and
``OUT/loss.npz``. Launched by ``torchrun`` it trains data parallel, ``--batch-size`` being the
global batch (see :mod:`kexue_nb.diffusion.distributed`):

    torchrun --standalone --nproc_per_node=4 -m kexue_nb.diffusion train --data digits --out run
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 \
        --rdzv_id=run1 -m kexue_nb.diffusion train --data digits --out /shared/run

``sample`` writes ``samples.npz`` (``x``, and ``y`` for labelled sampling) and
``samples.png`` (a scatter for 2-D data, an image grid for digits, also from an MLP) next to the
checkpoint or into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint
from .classifier import ClassifierTrainer
from .distributed import DEFAULT_TIMEOUT, PeerLost, RendezvousTimeout, distributed_session
from .models import MLPDenoiser, NoisyClassifier, UNet8
from .schedule import Schedule
from .trainer import OVERRIDABLE_SETTINGS, TrainConfig, Trainer, resolve_device

__all__ = ["build_parser", "build_trainer", "main"]

#: The options a resumed run must share with its checkpoint (stored as its run settings).
RUN_SETTINGS = ("data", "n", "model", "width", "depth", "conditional", "schedule", "T", "seed")

DATASETS = ("moons", "eight-gaussians", "swiss-roll", "mixture", "digits")
SCHEDULES = ("su", "linear", "cosine")


#: What ``train`` and ``sample`` write into a run's folder.
SAMPLE_FILES = ("samples.npz", "samples.png")
RUN_FILES = (CHECKPOINT_NAME, "loss.npz", "run.json", *SAMPLE_FILES)


def _mixture():
    from .data import LabelledMixture

    return LabelledMixture.ring(8)  # eight components on a circle, component k is class k


def load_data(name: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Training data of the CLI: ``n`` seeded points of a 2-D set, or the 8×8 digits (all)."""
    from . import data

    g = torch.Generator().manual_seed(seed)
    if name == "moons":
        return data.moons(n, g), None
    if name == "eight-gaussians":
        return data.eight_gaussians(n, g), None
    if name == "swiss-roll":
        return data.swiss_roll(n, g), None
    if name == "mixture":
        return _mixture().sample(n, g)
    if name == "digits":
        return data.load_digits()
    raise ValueError(f"`data` must be one of {DATASETS}, got {name!r}")


def make_schedule(name: str, T: int) -> Schedule:
    """The schedule named on the command line."""
    if name == "su":
        return Schedule.su(T)
    if name == "linear":
        return Schedule.linear(T)
    if name == "cosine":
        return Schedule.cosine(T)
    raise ValueError(f"`schedule` must be one of {SCHEDULES}, got {name!r}")


class _DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows an option's default unless it has none to show (``None``, a flag's
    ``False``): those options say in words what happens without them."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False:
            return action.help or ""
        return super()._get_help_string(action)


def _clip(text: str) -> float | None:
    """``--grad-clip``: a number, or ``none`` for no clipping."""
    if text.lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number or 'none', got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m kexue_nb.diffusion``."""
    parser = argparse.ArgumentParser(
        prog="python -m kexue_nb.diffusion",
        description="Train ε-prediction diffusion models on 2-D toy sets or 8×8 digits, and "
                    "sample from their checkpoints (DDPM or DDIM, optional classifier or "
                    "classifier-free guidance).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,sample}")
    parser.commands = sub.choices  # each command's own parser, for the option names

    tr = sub.add_parser("train", help="train a model and write OUT/checkpoint.safetensors",
                        formatter_class=_DefaultsHelp,
                        description="Train with the ε-prediction loss (a noisy classifier: "
                                    "the cross-entropy); checkpoints are atomic and --resume "
                                    "continues a killed run exactly.")
    tr.add_argument("--data", choices=DATASETS, default="moons", help="training set")
    tr.add_argument("--n", "--num-points", dest="n", type=int, default=20000,
                    help="number of training points for the 2-D sets (digits: all 1,797); "
                         "spell it --num-points under torchrun, whose own options make --n "
                         "ambiguous")
    tr.add_argument("--model", choices=("mlp", "unet8", "classifier"), default=None,
                    help="network (default: mlp for 2-D sets, unet8 for digits); classifier: "
                         "the noisy classifier of classifier guidance (mixture, digits)")
    tr.add_argument("--width", type=int, default=None,
                    help="mlp hidden width (default 256; classifier on 2-D sets: 128) or "
                         "unet8 / digits classifier base channels (default 32)")
    tr.add_argument("--depth", type=int, default=4, help="mlp (and 2-D classifier) residual "
                                                         "blocks")
    tr.add_argument("--conditional", action="store_true",
                    help="train on the labels (mixture, digits) with label dropout, for CFG "
                         "(not with --model classifier, which always uses them)")
    tr.add_argument("--schedule", choices=SCHEDULES, default="linear",
                    help="noise schedule (su: α_t = √(1 − 0.02 t/T))")
    tr.add_argument("--T", type=int, default=1000, help="diffusion steps")
    # The defaults are TrainConfig's: one source for the command line and the Python API.
    tr.add_argument("--steps", type=int, default=TrainConfig.steps, help="optimiser steps")
    tr.add_argument("--batch-size", type=int, default=TrainConfig.batch_size,
                    help="batch size (under torchrun: the global batch, split over the ranks)")
    tr.add_argument("--lr", type=float, default=TrainConfig.lr,
                    help="peak learning rate (AdamW)")
    tr.add_argument("--weight-decay", type=float, default=TrainConfig.weight_decay,
                    help="AdamW's decoupled weight decay")
    tr.add_argument("--warmup", type=int, default=TrainConfig.warmup_steps,
                    help="linear warmup steps")
    tr.add_argument("--grad-clip", type=_clip, default=TrainConfig.grad_clip,
                    help="largest global gradient norm ('none': no clipping)")
    tr.add_argument("--ema-decay", type=float, default=TrainConfig.ema_decay,
                    help="EMA decay per step, reached after a warm-up: min(decay, "
                         "(1+n)/(10+n)) at update n")
    tr.add_argument("--label-dropout", type=float, default=TrainConfig.label_dropout,
                    help="probability of the null label (with --conditional; a classifier "
                         "drops none)")
    tr.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, …")
    tr.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                    help="auto: bf16 autocast on CUDA, fp32 on CPU")
    tr.add_argument("--compile", action="store_true", help="torch.compile the model")
    tr.add_argument("--seed", type=int, default=0, help="seed of data, init and training")
    tr.add_argument("--log-every", type=int, default=TrainConfig.log_every,
                    help="steps between loss readouts (with --no-progress, one line each)")
    tr.add_argument("--checkpoint-every", type=int, default=500,
                    help="steps between checkpoints (0: only at the end)")
    tr.add_argument("--out", required=True, help="output folder")
    tr.add_argument("--resume", action="store_true",
                    help="continue from OUT/checkpoint.safetensors if it exists; it is "
                         "refused (naming the option and both values) when --data, --n, "
                         "--model, --width, --depth, --conditional, --schedule, --T, --seed "
                         "or an option of --allow-change differ from the checkpoint's; "
                         "--steps, --log-every, --checkpoint-every, --device, --compile and "
                         "--no-progress may change; a checkpoint written with another "
                         "math-thread count (torch.get_num_threads, OMP_NUM_THREADS) resumes "
                         "with a warning, as "
                         "the result is then not bit-identical to an uninterrupted run")
    tr.add_argument("--overwrite", action="store_true",
                    help="start a new run in OUT although it holds one: the files of that run "
                         f"({', '.join(RUN_FILES)}) are deleted first; without it (or "
                         "--resume) such an OUT is refused")
    tr.add_argument("--allow-change", action="append", default=[],
                    choices=OVERRIDABLE_SETTINGS, metavar="SETTING",
                    help="with --resume: continue although SETTING differs from the "
                         "checkpoint's, with the new value from now on (repeatable; one of "
                         f"{', '.join(OVERRIDABLE_SETTINGS)}: lr is --lr, warmup_steps "
                         "--warmup, batch_size --batch-size, ema_decay --ema-decay, "
                         "label_dropout --label-dropout)")
    tr.add_argument("--no-progress", action="store_true",
                    help="no progress bar: print the loss every --log-every steps instead")
    tr.add_argument("--dist-timeout", type=float, default=DEFAULT_TIMEOUT,
                    help="under torchrun: seconds a rank waits for the others at the "
                         "rendezvous and in collectives")

    sa = sub.add_parser("sample", help="sample from a checkpoint",
                        formatter_class=_DefaultsHelp,
                        description="Sample with the EMA weights (unless --raw) and write "
                                    "samples.npz and samples.png.")
    sa.add_argument("--checkpoint", required=True,
                    help="checkpoint file, or a training folder holding checkpoint.safetensors")
    sa.add_argument("--n", type=int, default=1000, help="number of samples")
    sa.add_argument("--sampler", choices=("ddpm", "ddim"), default="ddim", help="sampler")
    sa.add_argument("--steps", type=int, default=50, help="DDIM steps (DDPM uses all T)")
    sa.add_argument("--eta", type=float, default=0.0, help="DDIM noise level η")
    sa.add_argument("--variance", choices=("beta", "posterior", "zero"), default="beta",
                    help="DDPM σ_t: β_t, the posterior β̄_{t−1}β_t/β̄_t, or 0 (the mean alone)")
    sa.add_argument("--w", type=float, default=0.0,
                    help="classifier-free guidance weight w (needs --label)")
    sa.add_argument("--classifier", default=None,
                    help="checkpoint (file or folder) of a noisy classifier trained with "
                         "--model classifier and the model's T: classifier guidance of the "
                         "unconditional (or null-label) model (needs --label; not with --w)")
    sa.add_argument("--gamma", type=float, default=None,
                    help="classifier guidance scale γ (with --classifier; default 1, which "
                         "targets p(x|y))")
    sa.add_argument("--label", type=int, default=None,
                    help="class to sample (conditional models); default unconditional")
    sa.add_argument("--seed", type=int, default=0, help="seed of the sampler")
    sa.add_argument("--device", default="auto", help="auto, cpu, cuda, …")
    sa.add_argument("--raw", action="store_true", help="use the raw weights instead of EMA")
    sa.add_argument("--out", default=None, help="output folder (default: the checkpoint's)")
    sa.add_argument("--overwrite", action="store_true",
                    help="replace samples.npz and samples.png if the output folder holds them "
                         "(without it they are refused)")
    sa.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _train(args: argparse.Namespace) -> int:
    if not args.dist_timeout > 0:
        raise ValueError(f"`--dist-timeout` must be a positive number of seconds, "
                         f"got {args.dist_timeout}")
    with distributed_session(args.device, timeout=args.dist_timeout) as env:
        return _train_in(args, env.is_main)


def build_trainer(args: argparse.Namespace) -> Trainer:
    """The trainer ``train`` builds from parsed arguments (before any resume), its run settings
    (the options in :data:`RUN_SETTINGS`) set for the checks of a resume."""
    x, y = load_data(args.data, args.n, args.seed)
    kind = args.model or ("unet8" if args.data == "digits" else "mlp")
    if kind == "classifier":
        if args.conditional:
            raise ValueError("`--conditional` does not apply to `--model classifier` "
                             "(a classifier always trains on the labels)")
        if y is None:
            raise ValueError(f"`--model classifier` needs a labelled set (mixture, digits), "
                             f"got {args.data!r}")
    elif args.conditional and y is None:
        raise ValueError(f"`--conditional` needs a labelled set (mixture, digits), "
                         f"got {args.data!r}")
    elif not args.conditional:
        y = None
    num_classes = int(y.max()) + 1 if y is not None else 0
    schedule = make_schedule(args.schedule, args.T)
    init = torch.Generator().manual_seed(args.seed)
    if kind == "classifier":
        if x.ndim == 4:
            net = dict(kind="image", channels=x.shape[1], base=args.width or 32)
        else:
            net = dict(kind="mlp", dim=int(np.prod(x.shape[1:])), hidden=args.width or 128,
                       depth=args.depth)
        model = NoisyClassifier(num_classes, T=args.T, generator=init, **net)
    elif kind == "unet8":
        if x.ndim != 4:
            raise ValueError(f"`--model unet8` needs image data (digits), got {args.data!r}")
        model = UNet8(channels=x.shape[1], base=args.width or 32, T=args.T,
                      num_classes=num_classes, generator=init)
    else:
        model = MLPDenoiser(dim=int(np.prod(x.shape[1:])), hidden=args.width or 256,
                            depth=args.depth, T=args.T, num_classes=num_classes, generator=init)
        x = x.reshape(x.shape[0], -1)
    config = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, warmup_steps=args.warmup, grad_clip=args.grad_clip,
        ema_decay=args.ema_decay,
        label_dropout=args.label_dropout if y is not None and kind != "classifier" else 0.0,
        precision=args.precision, compile=args.compile, device=args.device, seed=args.seed,
        log_every=args.log_every, checkpoint_every=args.checkpoint_every, out_dir=args.out,
        progress=not args.no_progress,
    )
    trainer = (ClassifierTrainer if kind == "classifier" else Trainer)(model, schedule, x, y,
                                                                        config)
    trainer.run_settings = {
        "data": args.data, "n": None if args.data == "digits" else args.n, "model": kind,
        "width": args.width, "depth": None if kind == "unet8" else args.depth,
        "conditional": bool(args.conditional), "schedule": args.schedule, "T": args.T,
        "seed": args.seed}
    return trainer


def previous_run(out: Path) -> list[Path]:
    """The files of an earlier run in ``out`` (those of :data:`RUN_FILES` that exist)."""
    return [out / name for name in RUN_FILES if (out / name).exists()]


def _claim_out(args: argparse.Namespace) -> list[Path]:
    """Check ``--out`` against ``--resume``/``--overwrite`` before anything is written, and
    return the earlier run's files that ``--overwrite`` is to delete."""
    if args.allow_change and not args.resume:
        raise ValueError("`--allow-change` applies only with `--resume`")
    if args.resume and args.overwrite:
        raise ValueError("`--resume` and `--overwrite` exclude each other: continue the run in "
                         "--out, or replace it")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"`--out` must be a folder, got the file {str(out)!r}")
    found = previous_run(out)
    if found and not (args.resume or args.overwrite):
        names = ", ".join(p.name for p in found)
        raise ValueError(f"`--out` {str(out)!r} holds an earlier run ({names}); pass --resume "
                         "to continue it or --overwrite to replace it")
    return found if args.overwrite else []


def _train_in(args: argparse.Namespace, main_rank: bool) -> int:
    stale = _claim_out(args)
    out = Path(args.out)
    trainer = build_trainer(args)   # all input checked before a file is touched
    if main_rank:
        for path in stale:
            path.unlink()
        out.mkdir(parents=True, exist_ok=True)
        if args.resume and not trainer.checkpoint_path.exists():
            print(f"--resume: no checkpoint in {str(out)!r}, so this run starts at step 0")
    model = trainer.model
    log = None
    if args.no_progress and main_rank:
        def log(step: int, loss: float, lr: float) -> None:
            print(f"step {step}/{args.steps}: loss {loss:.4f}, lr {lr:.3g}", flush=True)
    result = trainer.train(resume=args.resume, allow_changes=args.allow_change, on_log=log)
    if not main_rank:   # rank 0 alone reports and writes
        return 0
    ranks = f" × {trainer.world.world_size} ranks" if trainer.world.world_size > 1 else ""
    np.savez(out / "loss.npz", steps=np.asarray(result.steps), loss=np.asarray(result.losses),
             lr=np.asarray(result.lrs))
    (out / "run.json").write_text(json.dumps(
        {"data": args.data, "n": int(trainer.x.shape[0]), "schedule": args.schedule, "T": args.T,
         "model": type(model).__name__, "config": model.config}, indent=1) + "\n")
    last = f"{result.losses[-1]:.4f}" if result.losses else "n/a"
    done = result.final_step - result.start_step
    span = (f"{done} steps (resumed at step {result.start_step}, now at {result.final_step})"
            if result.start_step else f"{done} steps")
    print(f"trained {span} on {trainer.device.type}{ranks} "
          f"({result.steps_per_second:.1f} steps/s); last loss {last}; "
          f"checkpoint {trainer.checkpoint_path}")
    return 0


def _scatter_png(x: np.ndarray) -> bytes:
    from matplotlib.figure import Figure

    from ..plotting import book_style, png_bytes

    with book_style():
        fig = Figure(figsize=(4.5, 4.5))
        ax = fig.add_subplot()
        ax.scatter(x[:, 0], x[:, 1], s=3, alpha=0.5)
        ax.set_aspect("equal")
        ax.set_title(f"{len(x)} samples")
        return png_bytes(fig)


def _grid_png(x: np.ndarray) -> bytes:
    from matplotlib.figure import Figure

    from ..plotting import book_style, image_tiles, png_bytes

    k = min(10, int(np.ceil(np.sqrt(len(x)))))
    with book_style():
        fig = Figure(figsize=(4, 4))
        ax = fig.add_subplot()
        ax.imshow(image_tiles(np.clip(x[: k * k], -1, 1), k, k), cmap="gray_r", vmin=-1, vmax=1)
        ax.axis("off")
        return png_bytes(fig)


def _checkpoint_file(name: str) -> Path:
    path = Path(name)
    return path / CHECKPOINT_NAME if path.is_dir() else path


def _load_classifier(name: str, schedule: Schedule, event_shape: tuple[int, ...],
                     ema: bool) -> nn.Module:
    """The noisy classifier of ``--classifier``, checked against the model it guides."""
    ckpt = load_checkpoint(_checkpoint_file(name))
    if ckpt.model_name != "NoisyClassifier":
        raise ValueError(f"`--classifier` must be a NoisyClassifier checkpoint (train --model "
                         f"classifier), got a {ckpt.model_name} in {str(ckpt.path)!r}")
    classifier = ckpt.build_model(ema=ema)
    T = schedule.T
    if classifier.T != T:
        raise ValueError(f"`--classifier` was trained with T = {classifier.T}, but the model's "
                         f"schedule has T = {T}; train the classifier with --T {T}")
    model_betas = schedule.ddpm_paper().betas
    if ckpt.schedule_betas is not None and not torch.allclose(
            ckpt.schedule_betas.to(model_betas.dtype), model_betas, rtol=1e-6, atol=0):
        raise ValueError("`--classifier` was trained with another noise schedule than the "
                         "model's; train it with the model's --schedule")
    if tuple(classifier.event_shape) != event_shape:
        raise ValueError(f"`--classifier` takes inputs of shape {tuple(classifier.event_shape)}, "
                         f"but the model samples shape {event_shape}")
    return classifier


def _sample(args: argparse.Namespace) -> int:
    from .guidance import ClassifierFreeGuidance, ClassifierGuidance
    from .samplers import ddim_sample, ddpm_sample

    path = _checkpoint_file(args.checkpoint)
    if args.n < 1:
        raise ValueError(f"`--n` must be >= 1, got {args.n}")
    if args.gamma is not None and args.classifier is None:
        raise ValueError("`--gamma` needs `--classifier` (the classifier it scales)")
    if args.classifier is not None and args.w != 0:
        raise ValueError("`--gamma`/`--classifier` and `--w` exclude each other: choose "
                         "classifier guidance or classifier-free guidance")
    if args.classifier is not None and args.label is None:
        raise ValueError("`--classifier` needs `--label` (guidance steers towards a class)")
    folder = Path(args.out) if args.out else path.parent
    taken = [name for name in SAMPLE_FILES if (folder / name).exists()]
    if taken and not args.overwrite:
        raise ValueError(f"{str(folder)!r} holds {' and '.join(taken)} already; pass "
                         "--overwrite to replace them or --out to write elsewhere")
    gamma = 1.0 if args.gamma is None else args.gamma
    if not 0 <= gamma < float("inf"):
        raise ValueError(f"`--gamma` must be a finite number >= 0, got {args.gamma}")
    ckpt = load_checkpoint(path)
    if ckpt.model_name == "NoisyClassifier":
        raise ValueError(f"`--checkpoint` must be a diffusion model, got a NoisyClassifier in "
                         f"{str(path)!r} (pass it as `--classifier`)")
    device = resolve_device(args.device)
    model = ckpt.build_model(ema=not args.raw).to(device)
    if ckpt.schedule_betas is None:
        raise ValueError(f"checkpoint {str(path)!r} stores no schedule")
    schedule = Schedule.from_betas(ckpt.schedule_betas)
    data_shape = ckpt.extra.get("data_shape")
    if not isinstance(data_shape, list):
        raise CheckpointError(f"checkpoint {str(path)!r} stores no data_shape (the shape of a "
                              f"sample); it was not written by the trainer")
    shape = (args.n, *data_shape[1:])
    num_classes, owner = int(getattr(model, "num_classes", 0)), "model"
    guidance = None
    if args.classifier is not None:
        classifier = _load_classifier(args.classifier, schedule, shape[1:],
                                      ema=not args.raw).to(device)
        num_classes, owner = classifier.num_classes, "classifier"
        guidance = ClassifierGuidance(classifier, gamma)
    elif args.w > 0:
        guidance = ClassifierFreeGuidance(args.w)
    y = None
    if args.label is not None:
        if num_classes == 0:
            raise ValueError(f"`--label` needs a conditional model (trained with "
                             f"--conditional) or --classifier; {str(path)!r} is "
                             f"unconditional")
        if not 0 <= args.label < num_classes:
            raise ValueError(f"`--label` must lie in 0..{num_classes - 1} for this {owner} "
                             f"(num_classes = {num_classes}), got {args.label}")
        y = torch.full((args.n,), args.label, dtype=torch.long, device=device)
    elif args.w != 0:
        raise ValueError("`--w` needs `--label` (guidance steers towards a class)")
    g = torch.Generator(device=device).manual_seed(args.seed)
    common = dict(y=y, guidance=guidance, generator=g, device=device,
                  progress=not args.no_progress)
    if args.sampler == "ddpm":
        out = ddpm_sample(model, schedule, shape, variance=args.variance, **common)
    else:
        out = ddim_sample(model, schedule, shape, steps=args.steps, eta=args.eta, **common)
    x = out.x.float().cpu().numpy()
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"x": x} if y is None else {"x": x, "y": y.cpu().numpy()}
    np.savez(folder / "samples.npz", **arrays)
    # An MLP trained on digits samples flat 64-vectors: draw them as 8×8 images too, when
    # run.json beside the checkpoint names digits or, lacking run.json, whenever d = 64.
    run = path.parent / "run.json"
    digits = json.loads(run.read_text()).get("data") == "digits" if run.is_file() else True
    if x.ndim == 2 and x.shape[1] == 64 and digits:
        x = x.reshape(len(x), 1, 8, 8)
    png = _grid_png(x) if x.ndim == 4 else _scatter_png(x.reshape(len(x), -1))
    (folder / "samples.png").write_bytes(png)
    print(f"wrote {len(x)} samples to {folder / 'samples.npz'} and {folder / 'samples.png'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (errors in arguments print a message, status 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    prog, flags = f"{parser.prog} {args.command}", _flags(parser, args.command)
    # Under torchrun every process fails alike: rank 0 alone says why.
    speaks = os.environ.get("RANK", "0") == "0"

    def one_line(kind: str, text: str) -> str:
        return f"{prog}: {kind}: {_as_flags(' '.join(str(text).split()), flags)}\n"

    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *_: (  # one line, options named as typed
            sys.stderr.write(one_line("warning", message)) if speaks else None)
        try:
            return _train(args) if args.command == "train" else _sample(args)
        except (ValueError, RendezvousTimeout, PeerLost) as err:
            parser.exit(2, one_line("error", err) if speaks else None)


#: Python names in error messages that are not the option's dest (TrainConfig's fields).
_FLAG_ALIASES = {"warmup_steps": "--warmup", "out_dir": "--out", "progress": "--no-progress"}


def _flags(parser: argparse.ArgumentParser, command: str) -> dict[str, str]:
    """Each option of ``command`` by its Python name, e.g. ``batch_size`` -> ``--batch-size``."""
    names = dict(_FLAG_ALIASES)
    for action in parser.commands[command]._actions:
        if action.option_strings:
            names[action.dest] = next(o for o in action.option_strings if o.startswith("--"))
    return names


def _as_flags(message: str, flags: dict[str, str]) -> str:
    """``message`` with each quoted Python name (`` `batch_size` ``) written as its option."""
    return re.sub(r"`([A-Za-z_]+)`", lambda m: f"`{flags.get(m.group(1), m.group(1))}`", message)


if __name__ == "__main__":
    sys.exit(main())
