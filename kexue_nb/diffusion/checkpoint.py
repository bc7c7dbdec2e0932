"""Checkpoints of the diffusion trainer: one safetensors file, atomic writes, no pickle on load.

Layout of ``checkpoint.safetensors`` (format version :data:`FORMAT_VERSION`):

* tensors ``model.<name>`` (the network's state dict), ``ema.<name>`` (the
  :class:`torch.optim.swa_utils.AveragedModel` state dict, ``n_averaged`` included),
  ``optim.<param id>.<key>`` (the optimiser's per-parameter state, e.g. AdamW's ``exp_avg``),
  ``rng.generator`` (the trainer's :class:`torch.Generator` state, uint8), ``schedule.betas``
  (the DDPM paper's β_t, float64) and any ``extra.<name>`` tensors;
* string metadata ``kexue_nb_format`` = :data:`FORMAT` and ``kexue_nb`` = JSON with the format
  version, the model's class name and constructor ``config`` (so :func:`load_model` rebuilds it),
  the step, the optimiser's param groups, free-form ``extra`` JSON (train config, LR-scheduler
  state, loss history) and ``sha256``, the digest of the tensor data section.

A checkpoint is written to a temporary file in the same folder, flushed and fsync'ed, then moved
over the old one with :func:`os.replace`, so a crash leaves either the old file or the new one,
never a mix. Loading checks the header, the length and the digest, and raises
:class:`CheckpointError` (a ``ValueError``) naming the file and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

from .models import build_model

__all__ = [
    "CHECKPOINT_NAME",
    "FORMAT",
    "FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "atomic_write_bytes",
    "checkpoint_from_bytes",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
]

#: Value of the ``kexue_nb_format`` metadata entry that marks our checkpoints.
FORMAT = "kexue_nb.diffusion.checkpoint"
#: Bumped whenever the layout changes; older versions are refused with a clear message.
FORMAT_VERSION = 1
#: File name the trainer writes inside its ``out_dir``.
CHECKPOINT_NAME = "checkpoint.safetensors"

_PREFIXES = ("model.", "ema.", "optim.", "rng.", "schedule.", "extra.")


class CheckpointError(ValueError):
    """A file is not a readable checkpoint of this format (truncated, corrupted or foreign)."""


@dataclass
class Checkpoint:
    """The contents of a checkpoint file, tensors on CPU."""

    path: Path
    model_name: str
    model_config: dict[str, Any]
    model_state: dict[str, torch.Tensor]
    ema_state: dict[str, torch.Tensor] | None
    optimizer_state: dict[str, Any] | None
    rng_state: torch.Tensor | None
    schedule_betas: torch.Tensor | None
    step: int
    extra: dict[str, Any] = field(default_factory=dict)
    extra_tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    def build_model(self, ema: bool = True) -> nn.Module:
        """The network rebuilt from its name and config, with the EMA weights (``ema=True``, when
        the checkpoint has them) or the raw ones; in eval mode."""
        model = build_model(self.model_name, self.model_config)
        state = self.model_state
        if ema and self.ema_state is not None:
            state = {k[len("module."):]: v for k, v in self.ema_state.items()
                     if k.startswith("module.")}
        model.load_state_dict(state)
        return model.eval()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: temporary file in the same folder, fsync, rename.

    On any failure the temporary file is removed and an existing ``path`` is left untouched.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValueError(f"`data` must be bytes, got {type(data).__name__}")
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"`path` must be in an existing folder, got {str(path)!r}")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable (POSIX); harmless where folders cannot be opened
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
    return path


def _cpu(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu").contiguous()


def _data_section(blob: bytes) -> tuple[dict[str, Any], bytes]:
    """Split a safetensors blob into its JSON header and its data section (no validation)."""
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    ema: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    generator: torch.Generator | None = None,
    schedule_betas: torch.Tensor | None = None,
    step: int = 0,
    extra: dict[str, Any] | None = None,
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write a checkpoint of ``model`` (which must carry a JSON-able ``config``) atomically.

    ``ema`` is the ``AveragedModel`` (its whole state dict is kept), ``optimizer`` any torch
    optimiser (tensors of its state go to safetensors, the rest to JSON), ``generator`` the
    training generator, ``schedule_betas`` the DDPM paper's β_t of the schedule trained on,
    ``extra`` JSON-able trainer state and ``extra_tensors`` more tensors.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        raise ValueError("`model` must have a `config` dict of constructor arguments")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"`step` must be an integer >= 0, got {step!r}")
    tensors: dict[str, torch.Tensor] = {f"model.{k}": _cpu(v)
                                        for k, v in model.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema.{k}": _cpu(v) for k, v in ema.state_dict().items()})
    optim_json: dict[str, Any] | None = None
    if optimizer is not None:
        state = optimizer.state_dict()
        plain: dict[str, dict[str, Any]] = {}
        for pid, entries in state["state"].items():
            for key, value in entries.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optim.{pid}.{key}"] = _cpu(value)
                else:
                    plain.setdefault(str(pid), {})[key] = value
        optim_json = {"param_groups": state["param_groups"], "plain_state": plain,
                      "ids": sorted(int(p) for p in state["state"])}
    if generator is not None:
        tensors["rng.generator"] = _cpu(generator.get_state())
    if schedule_betas is not None:
        tensors["schedule.betas"] = _cpu(schedule_betas).to(torch.float64)
    for k, v in (extra_tensors or {}).items():
        tensors[f"extra.{k}"] = _cpu(v)
    info = {
        "format_version": FORMAT_VERSION,
        "model": {"name": type(model).__name__, "config": config},
        "step": step,
        "has_ema": ema is not None,
        "optimizer": optim_json,
        "extra": extra or {},
    }
    try:
        info_json = json.dumps(info)
    except TypeError as err:
        raise ValueError(f"`extra` and the model config must be JSON-able: {err}") from None
    # The digest covers the data section, which does not depend on the metadata.
    meta = {"kexue_nb_format": FORMAT, "kexue_nb": info_json}
    _, data = _data_section(safetensors.torch.save(tensors, metadata=meta))
    meta["sha256"] = hashlib.sha256(data).hexdigest()
    blob = safetensors.torch.save(tensors, metadata=meta)
    return atomic_write_bytes(path, blob)


def _fail(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {str(path)!r} {what}")


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and verify a checkpoint written by :func:`save_checkpoint` (tensors on CPU).

    Raises :class:`CheckpointError` naming the file when it is missing, truncated, corrupted,
    not one of ours, or of another format version.
    """
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "does not exist")
    return checkpoint_from_bytes(path.read_bytes(), path)


def checkpoint_from_bytes(blob: bytes, path: str | os.PathLike[str] = "<bytes>") -> Checkpoint:
    """Verify and decode the bytes of a checkpoint file, as :func:`load_checkpoint` does; ``path``
    only names the source in messages and in :attr:`Checkpoint.path`. (Distributed runs read
    the file on rank 0 and hand its bytes to the other ranks, which may not see the file.)"""
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise ValueError(f"`blob` must be bytes, got {type(blob).__name__}")
    blob = bytes(blob)
    path = Path(path)
    if len(blob) < 8:
        raise _fail(path, f"is truncated ({len(blob)} bytes, not even a header)")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise _fail(path, f"is truncated or not a safetensors file (header of {n} bytes "
                          f"announced, {len(blob) - 8} present)")
    try:
        header, data = _data_section(blob)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _fail(path, "is not a safetensors file (unreadable header)") from None
    if not isinstance(header, dict):
        raise _fail(path, "is not a safetensors file (header is not a JSON object)")
    meta = header.get("__metadata__") or {}
    if meta.get("kexue_nb_format") != FORMAT:
        raise _fail(path, f"is not a kexue_nb diffusion checkpoint (metadata lacks "
                          f"kexue_nb_format={FORMAT!r})")
    try:
        ends = [int(entry["data_offsets"][1]) for key, entry in header.items()
                if key != "__metadata__"]
    except (KeyError, IndexError, TypeError, ValueError):
        raise _fail(path, "is not a safetensors file (malformed tensor entries)") from None
    if max(ends, default=0) != len(data):
        raise _fail(path, f"is truncated ({len(data)} bytes of tensor data, "
                          f"{max(ends, default=0)} expected)")
    if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        raise _fail(path, "is corrupted (sha256 of the tensor data does not match)")
    try:
        info = json.loads(meta["kexue_nb"])
    except (KeyError, json.JSONDecodeError):
        raise _fail(path, "has unreadable kexue_nb metadata") from None
    if info.get("format_version") != FORMAT_VERSION:
        raise _fail(path, f"has format version {info.get('format_version')!r}; this code "
                          f"reads version {FORMAT_VERSION}")
    try:
        tensors = safetensors.torch.load(blob)
    except Exception as err:  # safetensors raises its own error type
        raise _fail(path, f"could not be decoded: {err}") from None
    groups: dict[str, dict[str, torch.Tensor]] = {p: {} for p in _PREFIXES}
    for key, value in tensors.items():
        prefix = next((p for p in _PREFIXES if key.startswith(p)), None)
        if prefix is None:
            raise _fail(path, f"has an unexpected tensor {key!r}")
        groups[prefix][key[len(prefix):]] = value
    optimizer_state = None
    if info.get("optimizer") is not None:
        oj = info["optimizer"]
        state: dict[int, dict[str, Any]] = {pid: {} for pid in oj["ids"]}
        for key, value in groups["optim."].items():
            pid, name = key.split(".", 1)
            state[int(pid)][name] = value
        for pid, entries in oj["plain_state"].items():
            state[int(pid)].update(entries)
        groups_ = [dict(g, betas=tuple(g["betas"])) if "betas" in g else g
                   for g in oj["param_groups"]]
        optimizer_state = {"state": state, "param_groups": groups_}
    return Checkpoint(
        path=path,
        model_name=info["model"]["name"],
        model_config=info["model"]["config"],
        model_state=groups["model."],
        ema_state=groups["ema."] if info.get("has_ema") else None,
        optimizer_state=optimizer_state,
        rng_state=groups["rng."].get("generator"),
        schedule_betas=groups["schedule."].get("betas"),
        step=int(info["step"]),
        extra=info.get("extra", {}),
        extra_tensors=groups["extra."],
    )


def load_model(
    path: str | os.PathLike[str], *, ema: bool = True, device: str | torch.device = "cpu"
) -> nn.Module:
    """The model stored in a checkpoint, rebuilt from its name and config, in eval mode on
    ``device``; with the EMA weights when ``ema`` and present."""
    return load_checkpoint(path).build_model(ema=ema).to(device)
