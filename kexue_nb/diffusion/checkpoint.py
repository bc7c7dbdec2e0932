"""Checkpoints of the diffusion trainer: one safetensors file, atomic writes, no pickle on load.

Layout of ``checkpoint.safetensors`` (format version :data:`FORMAT_VERSION`):

* tensors ``model.<name>`` (the network's state dict), ``ema.<name>`` (the
  :class:`torch.optim.swa_utils.AveragedModel` state dict, ``n_averaged`` included),
  ``optim.<param id>.<key>`` (the optimiser's per-parameter state, e.g. AdamW's ``exp_avg``),
  ``rng.generator`` (the trainer's :class:`torch.Generator` state, uint8), ``schedule.betas``
  (the DDPM paper's β_t, float64) and any ``extra.<name>`` tensors;
* string metadata ``kexue_nb_format`` = :data:`FORMAT`, ``kexue_nb`` = JSON with the format
  version, the model's class name and constructor ``config`` (so :func:`load_model` rebuilds it),
  the step, the optimiser's param groups, the math-thread count of the writer, free-form
  ``extra`` JSON (train config, LR-scheduler state, loss history, data shape and sha256) and
  ``sha256``: the digest of the whole header (tensor entries and metadata, as canonical JSON)
  and the data section, so that an edited step or dtype is caught like a flipped data byte.

The header is written as JSON with sorted keys: the same state gives the same bytes in every
process. A checkpoint is written to a temporary file in the same folder, flushed and fsync'ed,
then moved over the old one with :func:`os.replace`, so a crash leaves either the old file or
the new one, never a mix; :func:`remove_stale_temporaries` deletes what killed writers left.

Loading never unpickles and checks everything before building a tensor: the header's size and
structure (bounded, no recursion), the digest, the metadata against a strict schema (types,
ranges, bounded sizes), and each tensor's name, dtype and shape against the model rebuilt from its
config on the meta device (no memory). Any failure raises :class:`CheckpointError` (a
``ValueError``) with one line naming the file and what is wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
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
    "remove_stale_temporaries",
    "save_checkpoint",
]

#: Value of the ``kexue_nb_format`` metadata entry that marks our checkpoints.
FORMAT = "kexue_nb.diffusion.checkpoint"
#: Bumped whenever the layout changes; older versions are refused with a clear message.
FORMAT_VERSION = 2
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
    #: ``torch.get_num_threads()`` of the process that wrote the file (None if unknown).
    torch_threads: int | None = None

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


def _canonical(obj: Any) -> str:
    """JSON with sorted keys and no spaces: the same bytes in every process."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _digest(header: dict[str, Any], data: bytes) -> str:
    """sha256 over the canonical JSON of the whole header (tensor entries and metadata, the
    ``sha256`` entry itself left out) and the data section."""
    head = dict(header)
    meta = {k: v for k, v in head.get("__metadata__", {}).items() if k != "sha256"}
    head["__metadata__"] = meta
    h = hashlib.sha256(_canonical(head).encode())
    h.update(b"\n")
    h.update(data)
    return h.hexdigest()


def _assemble(header: dict[str, Any], data: bytes) -> bytes:
    """A safetensors file: the header as canonical JSON padded with spaces to 8 bytes, then the
    data. Sorting the keys makes the bytes independent of dict and hash-map orders."""
    head = _canonical(header).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + data


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
    ``extra`` JSON-able trainer state and ``extra_tensors`` more tensors. The math-thread count
    (``torch.get_num_threads()``) is recorded: results of CPU training depend on it in the last
    bits. The same state gives the same bytes in every process (sorted JSON keys).
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
        "torch_threads": torch.get_num_threads(),
    }
    try:
        info_json = _canonical(info)
    except (TypeError, ValueError) as err:
        raise ValueError(f"`extra` and the model config must be JSON-able: {err}") from None
    header, data = _data_section(safetensors.torch.save(tensors))
    header.pop("__metadata__", None)
    header["__metadata__"] = {"kexue_nb_format": FORMAT, "kexue_nb": info_json}
    header["__metadata__"]["sha256"] = _digest(header, data)
    return atomic_write_bytes(path, _assemble(header, data))


def remove_stale_temporaries(folder: str | os.PathLike[str],
                             name: str = CHECKPOINT_NAME) -> list[Path]:
    """Delete the ``.<name>.tmp-<pid>`` files that :func:`atomic_write_bytes` left in ``folder``
    when its process was killed mid-write, those whose process is no longer alive; returns them."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    prefix = f".{name}.tmp-"
    for tmp in folder.glob(f".{name}.tmp-*"):
        pid = tmp.name[len(prefix):]
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        try:
            tmp.unlink()
        except FileNotFoundError:
            continue
        removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    if pid <= 0:
        return True           # not a process id we could have written: leave the file alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def _fail(path: Path, what: str) -> CheckpointError:
    what = " ".join(str(what).split())    # one line
    if len(what) > 400:
        what = what[:400] + "…"
    return CheckpointError(f"checkpoint {str(path)!r} {what}")


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and verify a checkpoint written by :func:`save_checkpoint` (tensors on CPU).

    Raises :class:`CheckpointError` naming the file when it is missing, truncated, corrupted,
    not one of ours, of another format version, or not a valid checkpoint of its model.
    """
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "does not exist")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise _fail(path, f"is too large ({size} bytes; the limit is {MAX_FILE_BYTES})")
    try:
        blob = path.read_bytes()
    except OSError as err:
        raise _fail(path, f"cannot be read: {err.strerror or err}") from None
    return checkpoint_from_bytes(blob, path)


def checkpoint_from_bytes(blob: bytes, path: str | os.PathLike[str] = "<bytes>") -> Checkpoint:
    """Verify and decode the bytes of a checkpoint file, as :func:`load_checkpoint` does; ``path``
    only names the source in messages and in :attr:`Checkpoint.path`. (Distributed runs read
    the file on rank 0 and hand its bytes to the other ranks, which may not see the file.)

    Everything is checked before any tensor is built: the header's structure and size, the
    sha256 over header and data, the metadata against a strict schema, and every tensor's name,
    dtype and shape against the model rebuilt (without memory) from its stored config."""
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise ValueError(f"`blob` must be bytes, got {type(blob).__name__}")
    blob = bytes(blob)
    path = Path(path)
    try:
        return _decode(blob, path)
    except CheckpointError:
        raise
    except Exception as err:  # a check missed a case: still one clear line, never a traceback
        raise _fail(path, f"is not a valid checkpoint ({type(err).__name__}: {err})") from None


# --------------------------------------------------------------------------------------
# Validation
MAX_FILE_BYTES = 1 << 34          # 16 GiB
MAX_HEADER_BYTES = 100_000_000    # safetensors' own limit
_DTYPES = {"F64": (torch.float64, 8), "F32": (torch.float32, 4), "F16": (torch.float16, 2),
           "BF16": (torch.bfloat16, 2), "I64": (torch.int64, 8), "I32": (torch.int32, 4),
           "I16": (torch.int16, 2), "I8": (torch.int8, 1), "U8": (torch.uint8, 1),
           "BOOL": (torch.bool, 1)}
_CHECKED_INT = 2 ** 53


class _Bad(Exception):
    """Internal: a validation failure, turned into a CheckpointError naming the file."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise _Bad(what)


def _loads(text: bytes | str, what: str) -> Any:
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise _Bad(f"has an unreadable {what} (not valid JSON)") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _decode(blob: bytes, path: Path) -> Checkpoint:
    if len(blob) < 8:
        raise _fail(path, f"is truncated ({len(blob)} bytes, not even a header)")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > MAX_HEADER_BYTES:
        raise _fail(path, f"is not a safetensors file (header of {n} bytes announced; the "
                          f"limit is {MAX_HEADER_BYTES})")
    if 8 + n > len(blob):
        raise _fail(path, f"is truncated or not a safetensors file (header of {n} bytes "
                          f"announced, {len(blob) - 8} present)")
    raw, data = blob[8:8 + n], blob[8 + n:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(path, "is not a safetensors file (header is not UTF-8)") from None
    if text[:1] != "{":
        raise _fail(path, "is not a safetensors file (header is not a JSON object)")
    try:
        header = _loads(text, "header")
    except _Bad:
        raise _fail(path, "is not a safetensors file (unreadable header)") from None
    if not isinstance(header, dict):
        raise _fail(path, "is not a safetensors file (header is not a JSON object)")
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or meta.get("kexue_nb_format") != FORMAT:
        raise _fail(path, f"is not a kexue_nb diffusion checkpoint (metadata lacks "
                          f"kexue_nb_format={FORMAT!r})")
    try:
        entries = _check_entries(header, len(data))
    except _Bad as bad:
        raise _fail(path, str(bad)) from None
    if set(meta) != {"kexue_nb_format", "kexue_nb", "sha256"} or not all(
            isinstance(v, str) for v in meta.values()):
        raise _fail(path, "has malformed metadata (expected the string entries "
                          "kexue_nb_format, kexue_nb and sha256)")
    digest = meta["sha256"]
    if not hmac.compare_digest(_digest(header, data).encode(), digest.encode("utf-8", "replace")):
        raise _fail(path, "is corrupted (sha256 of the header and tensor data does not match)")
    try:
        info = _loads(meta["kexue_nb"], "kexue_nb metadata")
        version = info.get("format_version") if isinstance(info, dict) else None
        if version != FORMAT_VERSION:
            raise _Bad(f"has format version {version!r}; this code reads version "
                       f"{FORMAT_VERSION}")
        spec = _check_info(info)
        _check_tensors(entries, info, spec)
    except _Bad as bad:
        raise _fail(path, str(bad)) from None
    try:
        tensors = safetensors.torch.load(blob)
    except Exception as err:  # safetensors raises its own error type
        raise _fail(path, f"could not be decoded: {err}") from None
    try:
        _check_values(tensors, info)
    except _Bad as bad:
        raise _fail(path, str(bad)) from None
    return _build(path, info, tensors)


def _check_entries(header: dict[str, Any], n_data: int) -> dict[str, tuple[str, list[int]]]:
    """The tensor entries of a safetensors header: known dtypes, bounded shapes, offsets that
    tile the data section exactly."""
    entries: dict[str, tuple[str, list[int]]] = {}
    spans = []
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        _need(isinstance(entry, dict) and set(entry) == {"dtype", "shape", "data_offsets"},
              f"is not a safetensors file (malformed tensor entry {key[:80]!r})")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        _need(isinstance(dtype, str) and dtype in _DTYPES,
              f"has tensor {key[:80]!r} of unsupported dtype {str(dtype)[:20]!r}")
        _need(isinstance(shape, list) and len(shape) <= 8
              and all(_is_int(d) and 0 <= d < _CHECKED_INT for d in shape),
              f"has tensor {key[:80]!r} with a malformed shape")
        _need(isinstance(offsets, list) and len(offsets) == 2
              and all(_is_int(o) and 0 <= o <= n_data for o in offsets)
              and offsets[0] <= offsets[1],
              f"is truncated or malformed (tensor {key[:80]!r} has data offsets outside the "
              f"{n_data} bytes of tensor data)")
        numel = math.prod(shape)
        _need(numel * _DTYPES[dtype][1] == offsets[1] - offsets[0],
              f"has tensor {key[:80]!r} whose shape {shape} does not fit its "
              f"{offsets[1] - offsets[0]} bytes")
        spans.append(tuple(offsets))
        entries[key] = (dtype, shape)
    position = 0
    for begin, end in sorted(spans):
        _need(begin == position, "is not a safetensors file (tensor data overlaps or has gaps)")
        position = end
    _need(position == n_data, f"is truncated or has trailing bytes ({n_data} bytes of tensor "
                              f"data, {position} described)")
    return entries


def _json_scalar(v: Any) -> bool:
    return v is None or isinstance(v, bool | str) or _is_int(v) or _is_num(v)


def _meta_model(name: Any, config: Any) -> nn.Module:
    """The model of a checkpoint on the meta device (no memory), from a bounded config."""
    from .models import _REGISTRY, ALIASES

    _need(isinstance(name, str) and name in _REGISTRY and name not in ALIASES,
          f"names an unknown model {str(name)[:40]!r} (known: {sorted(_REGISTRY)})")
    _need(isinstance(config, dict) and all(isinstance(k, str) for k in config)
          and all(_json_scalar(v) for v in config.values()),
          "has a malformed model config (a JSON object of plain values is needed)")
    from .schedule import MAX_T

    for key, value in config.items():
        limit = MAX_T if key == "T" else 1 << 16
        _need(not _is_int(value) or -1 <= value <= limit,
              f"has model config {key} = {value}, out of range (limit {limit})")
    _need(not _is_int(config.get("depth")) or config["depth"] <= 1024,
          f"has model config depth = {config.get('depth')}, out of range (limit 1024)")
    try:
        with torch.device("meta"):
            model = build_model(name, config)
    except Exception as err:
        raise _Bad(f"has a model config that does not build a {name}: "
                   f"{type(err).__name__}: {err}") from None
    _need(model.config == config, f"has a model config that {name} does not reproduce")
    return model


def _event_shape(model: nn.Module) -> tuple[int, ...] | None:
    shape = getattr(model, "event_shape", None)
    if shape is not None:
        return tuple(shape)
    cfg = model.config
    if type(model).__name__ == "MLPDenoiser":
        return (cfg["dim"],)
    if type(model).__name__ == "UNet8":
        return (cfg["channels"], 8, 8)
    return None


def _check_info(info: Any) -> dict[str, Any]:
    """The ``kexue_nb`` metadata against its schema; returns what the tensors must look like."""
    _need(isinstance(info, dict), "has malformed kexue_nb metadata (not a JSON object)")
    keys = {"format_version", "model", "step", "has_ema", "optimizer", "extra", "torch_threads"}
    _need(set(info) == keys, f"has malformed kexue_nb metadata (keys {sorted(info)[:12]}, "
                             f"expected {sorted(keys)})")
    step = info["step"]
    _need(_is_int(step) and 0 <= step < _CHECKED_INT,
          f"has step {str(step)[:40]}; a non-negative integer is needed")
    threads = info["torch_threads"]
    _need(_is_int(threads) and 1 <= threads <= 1 << 16,
          f"has torch_threads {str(threads)[:40]}; a positive integer is needed")
    _need(isinstance(info["has_ema"], bool), "has a malformed has_ema (a bool is needed)")
    model_info = info["model"]
    _need(isinstance(model_info, dict) and set(model_info) == {"name", "config"},
          "has malformed model metadata (name and config are needed)")
    model = _meta_model(model_info["name"], model_info["config"])
    params = [tuple(p.shape) for p in model.parameters()]
    state = {k: (v.dtype, tuple(v.shape)) for k, v in model.state_dict().items()}
    optim = info["optimizer"]
    if optim is not None:
        _check_optimizer(optim, len(params))
    extra = info["extra"]
    _need(isinstance(extra, dict), "has malformed extra metadata (not a JSON object)")
    if _is_trainer_state(extra):
        _check_trainer_extra(extra, step, _event_shape(model))
    return {"model": model, "params": params, "state": state}


def _check_optimizer(optim: Any, n_params: int) -> None:
    _need(isinstance(optim, dict) and set(optim) == {"param_groups", "plain_state", "ids"},
          "has malformed optimizer metadata")
    ids = optim["ids"]
    _need(isinstance(ids, list) and all(_is_int(i) for i in ids)
          and ids == sorted(set(ids)) and all(0 <= i < n_params for i in ids),
          f"has malformed optimizer ids (distinct integers in 0..{n_params - 1} are needed)")
    groups = optim["param_groups"]
    _need(isinstance(groups, list) and 1 <= len(groups) <= n_params + 1,
          "has malformed optimizer param_groups")
    seen: list[int] = []
    for g in groups:
        _need(isinstance(g, dict) and all(isinstance(k, str) for k in g),
              "has a malformed optimizer param group")
        params = g.get("params")
        _need(isinstance(params, list) and all(_is_int(i) for i in params),
              "has an optimizer param group without integer params")
        seen += params
        for key, value in g.items():
            if key == "params":
                continue
            if key == "betas":
                _need(isinstance(value, list) and len(value) == 2
                      and all(_is_num(b) and 0 <= b < 1 for b in value),
                      "has optimizer betas outside [0, 1)")
            elif key in ("lr", "initial_lr", "eps", "weight_decay"):
                _need(_is_num(value) and value >= 0,
                      f"has optimizer {key} = {str(value)[:40]}; a finite number >= 0 is needed")
            else:
                _need(_json_scalar(value), f"has a malformed optimizer setting {key[:40]!r}")
    _need(sorted(seen) == list(range(n_params)),
          f"has optimizer param groups that do not cover the model's {n_params} parameters")
    plain = optim["plain_state"]
    _need(isinstance(plain, dict) and all(
        isinstance(k, str) and k.isdigit() and int(k) in ids and isinstance(v, dict)
        and all(isinstance(a, str) and _json_scalar(b) for a, b in v.items())
        for k, v in plain.items()), "has malformed optimizer plain_state")


_TRAINER_EXTRA = {"train_config", "scheduler", "history", "loss_count", "data_shape"}
_TRAINER_OPTIONAL = {"data_sha256", "run"}


def _is_trainer_state(extra: dict[str, Any]) -> bool:
    """Whether ``extra`` holds (or claims to hold) a trainer's state: any of its reserved keys."""
    return bool(set(extra) & (_TRAINER_EXTRA | _TRAINER_OPTIONAL))


def _check_trainer_extra(extra: dict[str, Any], step: int,
                         event_shape: tuple[int, ...] | None) -> None:
    """The trainer's state in ``extra``: config, LR scheduler, history, data shape."""
    from dataclasses import fields

    from .trainer import TrainConfig

    keys = set(extra)
    _need(_TRAINER_EXTRA <= keys <= _TRAINER_EXTRA | _TRAINER_OPTIONAL,
          f"has malformed trainer state (keys {sorted(keys)[:12]}, expected "
          f"{sorted(_TRAINER_EXTRA)} and optionally {sorted(_TRAINER_OPTIONAL)})")
    cfg = extra["train_config"]
    names = {f.name for f in fields(TrainConfig)}
    _need(isinstance(cfg, dict) and set(cfg) == names
          and all(_json_scalar(v) for v in cfg.values()),
          "has a malformed train_config (the fields of TrainConfig are needed)")
    try:
        config = TrainConfig(**cfg)
    except (TypeError, ValueError) as err:
        raise _Bad(f"has an invalid train_config: {err}") from None
    _need(step <= config.steps, f"is at step {step}, beyond its own train_config steps = "
                                f"{config.steps}")
    shape = extra["data_shape"]
    _need(isinstance(shape, list) and 2 <= len(shape) <= 5
          and all(_is_int(d) and 1 <= d <= 1 << 31 for d in shape)
          and math.prod(shape) <= 1 << 32,
          f"has a malformed data_shape {str(shape)[:60]} (2 to 5 positive sizes, at most "
          f"2**32 numbers in all)")
    _need(event_shape is None or tuple(shape[1:]) == event_shape,
          f"has data_shape {shape}, which does not fit the model's input shape "
          f"{list(event_shape or ())}")
    sched = extra["scheduler"]
    _need(isinstance(sched, dict) and all(isinstance(k, str) for k in sched),
          "has a malformed LR scheduler state")
    _need(sched.get("last_epoch") == step and not isinstance(sched.get("last_epoch"), bool),
          f"has an LR scheduler at epoch {str(sched.get('last_epoch'))[:40]}, not at step {step}")
    for key, value in sched.items():
        if isinstance(value, list):
            _need(len(value) <= 64 and all(v is None or _is_num(v) for v in value),
                  f"has a malformed LR scheduler entry {key[:40]!r}")
        else:
            _need(_json_scalar(value), f"has a malformed LR scheduler entry {key[:40]!r}")
    base = sched.get("base_lrs")
    _need(isinstance(base, list) and len(base) >= 1 and all(_is_num(v) and v > 0 for v in base),
          "has malformed LR scheduler base_lrs")
    hist = extra["history"]
    _need(isinstance(hist, dict) and set(hist) == {"steps", "losses", "lrs"}
          and all(isinstance(v, list) for v in hist.values())
          and len(hist["steps"]) == len(hist["losses"]) == len(hist["lrs"]) <= step,
          "has a malformed loss history (lists steps, losses and lrs of one length)")
    _need(all(_is_int(s) for s in hist["steps"]) and hist["steps"] == sorted(set(hist["steps"]))
          and all(1 <= s <= step for s in hist["steps"]),
          "has a malformed loss history (steps must increase within 1..step)")
    _need(all(_is_num(v) for v in hist["losses"] + hist["lrs"]),
          "has non-finite or non-numeric values in its loss history")
    count = extra["loss_count"]
    _need(_is_int(count) and 0 <= count <= step,
          f"has loss_count {str(count)[:40]}; an integer in 0..step is needed")
    if "data_sha256" in extra:
        d = extra["data_sha256"]
        _need(isinstance(d, str) and len(d) == 64 and all(c in "0123456789abcdef" for c in d),
              "has a malformed data_sha256")
    if "run" in extra:
        run = extra["run"]
        _need(isinstance(run, dict) and len(run) <= 64 and all(
            isinstance(k, str) and _json_scalar(v) for k, v in run.items()),
            "has malformed run settings")


def _check_tensors(entries: dict[str, tuple[str, list[int]]], info: dict[str, Any],
                   spec: dict[str, Any]) -> None:
    """Tensor names, dtypes and shapes against the model, EMA, optimiser and trainer state."""
    want: dict[str, tuple[torch.dtype, tuple[int, ...]]] = {}
    want.update({f"model.{k}": v for k, v in spec["state"].items()})
    if info["has_ema"]:
        want.update({f"ema.module.{k}": v for k, v in spec["state"].items()})
        want["ema.n_averaged"] = (torch.int64, ())
    got = {k: (_DTYPES[d][0], tuple(s)) for k, (d, s) in entries.items()}
    for key, (dtype, shape) in got.items():
        prefix = next((p for p in _PREFIXES if key.startswith(p)), None)
        _need(prefix is not None, f"has an unexpected tensor {key[:80]!r}")
        if prefix in ("model.", "ema."):
            _need(key in want, f"has an unexpected tensor {key[:80]!r} for its "
                               f"{info['model']['name']}")
            _need(got[key] == want[key],
                  f"has tensor {key[:80]!r} of {dtype} {list(shape)}; the model needs "
                  f"{want[key][0]} {list(want[key][1])}")
    missing = sorted(set(want) - set(got))
    _need(not missing, f"lacks tensor {missing[0]!r}" if missing else "")
    optim = info["optimizer"]
    ids = set(optim["ids"]) if optim is not None else set()
    for key, (dtype, shape) in got.items():
        if key.startswith("optim."):
            _need(optim is not None, f"has optimizer tensor {key[:80]!r} but no optimizer")
            pid, _, name = key[len("optim."):].partition(".")
            _need(pid.isdigit() and int(pid) in ids and name != "",
                  f"has an unexpected tensor {key[:80]!r}")
            _need(dtype.is_floating_point, f"has optimizer tensor {key[:80]!r} of {dtype}; a "
                                           f"floating dtype is needed")
            if name in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer"):
                need = spec["params"][int(pid)]
                _need(shape == need, f"has optimizer tensor {key[:80]!r} of shape "
                                     f"{list(shape)}; its parameter has shape {list(need)}")
            elif name == "step":
                _need(shape == (), f"has optimizer tensor {key[:80]!r} that is not a scalar")
        elif key == "rng.generator":
            sizes = _generator_state_sizes()
            _need(dtype == torch.uint8 and len(shape) == 1 and shape[0] in sizes,
                  f"has a malformed generator state of {dtype} {list(shape)} (1-D uint8 of "
                  f"{' or '.join(map(str, sorted(sizes)))} bytes, a CPU or CUDA generator's, "
                  f"is needed)")
        elif key.startswith("rng."):
            raise _Bad(f"has an unexpected tensor {key[:80]!r}")
        elif key.startswith("schedule."):
            _need(key == "schedule.betas", f"has an unexpected tensor {key[:80]!r}")
            T = info["model"]["config"].get("T")
            _need(dtype == torch.float64 and len(shape) == 1 and shape[0] >= 1
                  and (not _is_int(T) or shape[0] == T),
                  f"has schedule betas of {dtype} {list(shape)}; float64 of length "
                  f"T = {T} is needed")
        elif key.startswith("extra."):
            _need(dtype.is_floating_point and math.prod(shape) <= 1 << 24,
                  f"has extra tensor {key[:80]!r} of {dtype} {list(shape)}; floating and "
                  f"bounded is needed")
    if _is_trainer_state(info["extra"]):
        _need(got.get("extra.loss_sum") == (torch.float32, ()),
              "lacks the trainer's scalar float32 tensor 'extra.loss_sum'"
              if "extra.loss_sum" not in got else
              "has a malformed 'extra.loss_sum' (a float32 scalar is needed)")
        for key in ("rng.generator",):
            _need(key in got, f"lacks tensor {key!r} of the trainer state")
        _need(optim is not None and info["has_ema"],
              "has trainer state but lacks its optimiser or EMA")


def _generator_state_sizes() -> set[int]:
    """Lengths of a torch generator's state: the CPU's Mersenne twister, CUDA's seed + offset."""
    return {int(torch.Generator().get_state().numel()), 16}


def _check_values(tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    """Values: finite weights, optimiser state and loss sum; betas in (0, 1); EMA count."""
    for key, value in tensors.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise _Bad(f"has non-finite values in tensor {key[:80]!r}")
    betas = tensors.get("schedule.betas")
    if betas is not None:
        _need(bool(((betas > 0) & (betas < 1)).all()),
              "has schedule betas outside (0, 1)")
    n = tensors.get("ema.n_averaged")
    if n is not None:
        _need(0 <= int(n) <= info["step"] + 1,
              f"has an EMA count of {int(n)}, impossible at step {info['step']}")
    for key, value in tensors.items():
        if key.startswith("optim.") and key.endswith(".step"):
            _need(0 <= float(value) <= info["step"],
                  f"has optimizer step {float(value)} beyond the checkpoint's step")


def _build(path: Path, info: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Checkpoint:
    groups: dict[str, dict[str, torch.Tensor]] = {p: {} for p in _PREFIXES}
    for key, value in tensors.items():
        prefix = next(p for p in _PREFIXES if key.startswith(p))
        groups[prefix][key[len(prefix):]] = value
    optimizer_state = None
    if info["optimizer"] is not None:
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
        ema_state=groups["ema."] if info["has_ema"] else None,
        optimizer_state=optimizer_state,
        rng_state=groups["rng."].get("generator"),
        schedule_betas=groups["schedule."].get("betas"),
        step=info["step"],
        extra=info["extra"],
        extra_tensors=groups["extra."],
        torch_threads=info["torch_threads"],
    )


def load_model(
    path: str | os.PathLike[str], *, ema: bool = True, device: str | torch.device = "cpu"
) -> nn.Module:
    """The model stored in a checkpoint, rebuilt from its name and config, in eval mode on
    ``device``; with the EMA weights when ``ema`` and present."""
    return load_checkpoint(path).build_model(ema=ema).to(device)
