"""Tests of kexue_nb.diffusion.trainer and .checkpoint: loss, schedule, EMA, clipping, precision,
exact resume, and checkpoints that fail loudly and never half-written."""

from __future__ import annotations

import json
import math
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

from kexue_nb.diffusion import checkpoint as ckpt_mod
from kexue_nb.diffusion.checkpoint import (
    CHECKPOINT_NAME,
    CheckpointError,
    atomic_write_bytes,
    checkpoint_from_bytes,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from kexue_nb.diffusion.models import MLPDenoiser
from kexue_nb.diffusion.schedule import Schedule
from kexue_nb.diffusion.trainer import (
    TrainConfig,
    Trainer,
    TrainResult,
    ema_decay_at,
    lr_factor,
    resolve_device,
    resolve_precision,
)

T = 50
SCHEDULE = Schedule.linear(T, beta_start=1e-3, beta_end=0.2)


def data(n: int = 256, labels: bool = False):
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 2, generator=g) * 0.2 + torch.stack([y.float() - 1, torch.zeros(n)], 1)
    return (x, y) if labels else (x, None)


def model(num_classes: int = 0, seed: int = 1) -> MLPDenoiser:
    return MLPDenoiser(hidden=16, depth=1, T=T, num_classes=num_classes,
                       generator=torch.Generator().manual_seed(seed))


def config(**kw) -> TrainConfig:
    base = dict(steps=12, batch_size=32, lr=1e-2, warmup_steps=3, log_every=4, progress=False,
                device="cpu")
    return TrainConfig(**(base | kw))


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(),
                                                 b.state_dict().values(), strict=True))


# --------------------------------------------------------------------------------------
# TrainConfig, resolve_device, resolve_precision, lr_factor
@pytest.mark.parametrize(("kwargs", "match"), [
    ({"steps": 0}, "`steps` must be an integer >= 1"),
    ({"batch_size": 0}, "`batch_size` must be an integer >= 1"),
    ({"batch_size": 2.5}, "`batch_size` must be an integer >= 1"),
    ({"lr": 0.0}, "`lr` must be a positive number"),
    ({"weight_decay": -1.0}, "`weight_decay` must be a number >= 0"),
    ({"warmup_steps": -1}, "`warmup_steps` must be an integer >= 0"),
    ({"grad_clip": 0.0}, "`grad_clip` must be a positive number or None"),
    ({"ema_decay": 1.0}, r"`ema_decay` must lie in \[0, 1\)"),
    ({"ema_decay": -0.1}, r"`ema_decay` must lie in \[0, 1\)"),
    ({"label_dropout": 1.0}, r"`label_dropout` must lie in \[0, 1\)"),
    ({"precision": "fp16"}, "`precision` must be one of"),
    ({"compile": "yes"}, "`compile` must be a bool"),
    ({"device": 0}, "`device` must be a string"),
    ({"device": "gpu0"}, "`device` must be 'auto' or a torch device"),
    ({"log_every": 0}, "`log_every` must be an integer >= 1"),
    ({"checkpoint_every": 5}, "`out_dir` must be set when `checkpoint_every` > 0"),
])
def test_train_config_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_resolve_device():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize(("spec", "match"), [
    ("gpu", "`device` must be 'auto' or a torch device"),
    (3, "`device` must be a string"),
    ("meta", "`device` must be a CPU, CUDA or MPS device"),
] + ([] if torch.cuda.is_available() else [("cuda", "CUDA is not available")]))
def test_resolve_device_bad_input(spec, match):
    with pytest.raises(ValueError, match=match):
        resolve_device(spec)


def test_resolve_precision():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) is None   # fp32 on CPU
    assert resolve_precision("fp32", cpu) is None
    assert resolve_precision("bf16", cpu) is torch.bfloat16
    with pytest.raises(ValueError, match="`precision` must be one of"):
        resolve_precision("half", cpu)


def test_lr_factor_matches_diffusers_cosine_with_warmup():
    from diffusers.optimization import get_cosine_schedule_with_warmup

    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    peer = get_cosine_schedule_with_warmup(opt, num_warmup_steps=10, num_training_steps=100)
    peer_factor = peer.lr_lambdas[0]
    for step in range(100):
        # ours warms up one step earlier (no wasted step at lr = 0), then agrees exactly
        expected = peer_factor(step + 1) if step < 10 else peer_factor(step)
        assert lr_factor(step, 10, 100) == pytest.approx(expected, abs=1e-12)
    assert lr_factor(55, 10, 100) == pytest.approx(0.5)
    assert lr_factor(150, 10, 100) == 0.0


@pytest.mark.parametrize(("args", "match"), [
    ((-1, 10, 100), "`step` must be an integer >= 0"),
    ((0, -1, 100), "`warmup_steps` must be an integer >= 0"),
    ((0, 10, 0), "`total_steps` must be an integer >= 1"),
])
def test_lr_factor_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        lr_factor(*args)


# --------------------------------------------------------------------------------------
# Trainer: what one step computes
def test_loss_is_eps_mse_at_q_sample():
    x, _ = data()
    trainer = Trainer(model(), SCHEDULE, x, config=config())
    g = torch.Generator().manual_seed(5)
    x0 = x[:16]
    t = torch.randint(1, T + 1, (16,), generator=g)
    noise = torch.randn(16, 2, generator=g)
    x_t = SCHEDULE.q_sample(x0, t, noise)          # CORE's ᾱ_t x_0 + β̄_t ε
    with torch.no_grad():
        expected = (trainer.model(x_t, t) - noise).square().mean()
        got = trainer.loss(x0, t, noise)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)


def test_label_dropout_rate_and_null_label():
    x, y = data(labels=True)
    trainer = Trainer(model(num_classes=3), SCHEDULE, x, y,
                      config(batch_size=4000, label_dropout=0.25))
    _, t, noise, yb = trainer._batch()
    null = (yb == 3).float().mean().item()
    assert abs(null - 0.25) < 4 * math.sqrt(0.25 * 0.75 / 4000)
    assert int(t.min()) >= 1 and int(t.max()) <= T
    assert abs(noise.std().item() - 1) < 0.03


def test_lr_schedule_and_history():
    x, _ = data()
    cfg = config(log_every=1)
    result = Trainer(model(), SCHEDULE, x, config=cfg).train()
    assert isinstance(result, TrainResult)
    assert result.steps == list(range(1, 13)) and result.final_step == 12
    expected = [cfg.lr * lr_factor(s - 1, cfg.warmup_steps, cfg.steps) for s in result.steps]
    assert result.lrs == pytest.approx(expected, rel=1e-12)
    assert all(math.isfinite(v) for v in result.losses)


def test_training_lowers_the_loss():
    x, _ = data(512)
    trainer = Trainer(model(), SCHEDULE, x, config=config(steps=60, log_every=20,
                                                          batch_size=64, warmup_steps=5))
    result = trainer.train()
    assert result.losses[-1] < 0.8 * result.losses[0]


def test_ema_is_a_warmed_up_exponential_average():
    x, _ = data()
    trainer = Trainer(model(), SCHEDULE, x, config=config(ema_decay=0.9, steps=90))
    trainer.train(stop_at=1)   # first update copies the weights
    assert same_weights(trainer.ema_model, trainer.model)
    for stop, decay in ((2, 2 / 11), (85, 0.9)):  # min(0.9, (1+n)/(10+n)) after n updates
        trainer.train(stop_at=stop - 1)
        ema_before = [p.clone() for p in trainer.ema_model.parameters()]
        trainer.train(stop_at=stop)
        assert ema_decay_at(0.9, stop - 1) == pytest.approx(decay)
        for e0, e1, w in zip(ema_before, trainer.ema_model.parameters(),
                             trainer.model.parameters(), strict=True):
            torch.testing.assert_close(e1, decay * e0 + (1 - decay) * w, rtol=1e-6, atol=1e-7)


def test_a_short_run_ema_is_not_its_first_step():
    """Issue: with a fixed decay of 0.999 a 100-step run's EMA still weighs the first step's
    (nearly initial) weights by 0.999^99 ≈ 0.91, so it sampled garbage; warmed up, that weight
    is 10!·100!/109! ≈ 2e-12 and the EMA lies near the trained weights."""
    x, _ = data(512)
    trainer = Trainer(model(), SCHEDULE, x, config=config(steps=100, ema_decay=0.999))
    trainer.train(stop_at=1)
    first = torch.cat([p.detach().flatten().clone() for p in trainer.model.parameters()])
    trainer.train()
    raw, ema = (torch.cat([p.detach().flatten() for p in m.parameters()])
                for m in (trainer.model, trainer.ema_model))
    # fixed decay: ≈ 0.91 of the way back to the first step; warmed up: near the end
    assert float((ema - raw).norm() / (first - raw).norm()) < 0.5


def test_gradient_clipping_bounds_the_norm():
    x, _ = data()
    trainer = Trainer(model(), SCHEDULE, x, config=config(grad_clip=1e-3))
    trainer.train(stop_at=1)
    norm = torch.linalg.vector_norm(torch.stack(
        [torch.linalg.vector_norm(p.grad) for p in trainer.model.parameters()]))
    assert norm.item() <= 1e-3 * (1 + 1e-5)


def test_bf16_autocast_on_cpu_keeps_fp32_weights_and_close_loss():
    x, _ = data()
    fp32 = Trainer(model(), SCHEDULE, x, config=config())
    bf16 = Trainer(model(), SCHEDULE, x, config=config(precision="bf16"))
    assert bf16.autocast_dtype is torch.bfloat16 and fp32.autocast_dtype is None
    x0, t, noise, _ = fp32._batch()
    with torch.no_grad():
        a, b = fp32.loss(x0, t, noise), bf16.loss(x0, t, noise)
    assert a.dtype == b.dtype == torch.float32
    assert abs(a.item() - b.item()) < 0.03 * a.item()
    bf16.train()
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())


def test_compile_flag_wraps_the_forward_only():
    x, _ = data()
    trainer = Trainer(model(), SCHEDULE, x, config=config(compile=True))
    assert trainer._forward is not trainer.model                 # compiled lazily
    assert type(trainer.model) is MLPDenoiser                     # saved module stays plain
    assert type(trainer.ema_model) is MLPDenoiser


def test_compiled_loss_matches_eager():
    x, _ = data()
    eager = Trainer(model(), SCHEDULE, x, config=config())
    compiled = Trainer(model(), SCHEDULE, x, config=config(compile=True))
    x0, t, noise, _ = eager._batch()
    torch.testing.assert_close(compiled.loss(x0, t, noise), eager.loss(x0, t, noise))


def test_trainer_bad_input():
    x, y = data(labels=True)
    with pytest.raises(ValueError, match="`y` must be None for an unconditional model"):
        Trainer(model(), SCHEDULE, x, y, config())
    with pytest.raises(ValueError, match=r"`y` must hold class ids in 0..1"):
        Trainer(model(num_classes=2), SCHEDULE, x, y, config())
    with pytest.raises(ValueError, match=r"`y` must be a tensor of shape \(256,\)"):
        Trainer(model(num_classes=3), SCHEDULE, x, y[:10], config())
    with pytest.raises(ValueError, match="`x` must be a tensor of shape"):
        Trainer(model(), SCHEDULE, x[:, 0], config=config())
    # a NumPy array is named by type and shape, not printed (it ran to 10,567 characters)
    with pytest.raises(ValueError) as err:
        Trainer(model(), SCHEDULE, np.zeros((3000, 2), np.float32), config=config())
    assert str(err.value).endswith("got a numpy.ndarray of shape (3000, 2) and dtype float32")
    with pytest.raises(ValueError, match="`schedule` has T = 1000"):
        Trainer(model(), Schedule.su(1000), x, config=config())
    with pytest.raises(ValueError, match="`config` must be a TrainConfig"):
        Trainer(model(), SCHEDULE, x, config={"steps": 3})
    with pytest.raises(ValueError, match="`stop_at` must be an integer in 1..steps"):
        Trainer(model(), SCHEDULE, x, config=config()).train(stop_at=13)


# --------------------------------------------------------------------------------------
# Exact resume
def test_interrupted_and_resumed_run_is_bit_identical(tmp_path):
    x, y = data(labels=True)

    def trainer(out):
        return Trainer(model(num_classes=3), SCHEDULE, x, y,
                       config(out_dir=str(out), checkpoint_every=5, log_every=3))

    full = trainer(tmp_path / "full")
    full_result = full.train()
    first = trainer(tmp_path / "cut")
    first.train(stop_at=6)                       # "killed" after the checkpoint at step 5
    assert load_checkpoint(tmp_path / "cut" / CHECKPOINT_NAME).step == 6
    resumed = trainer(tmp_path / "cut")          # a fresh process would start like this
    result = resumed.train(resume=True)
    assert same_weights(resumed.model, full.model)
    assert same_weights(resumed.ema_model, full.ema_model)
    assert torch.equal(resumed.generator.get_state(), full.generator.get_state())
    assert result.losses == full_result.losses and result.steps == full_result.steps


def test_load_checkpoint_classmethod_rebuilds_and_continues(tmp_path):
    x, _ = data()
    full = Trainer(model(), SCHEDULE, x, config=config(out_dir=str(tmp_path / "a")))
    full.train()
    half = Trainer(model(), SCHEDULE, x, config=config(out_dir=str(tmp_path / "b")))
    half.train(stop_at=7)
    again = Trainer.load_checkpoint(tmp_path / "b" / CHECKPOINT_NAME, x)
    assert again.step == 7 and again.config == half.config
    torch.testing.assert_close(again.schedule.alpha_bar, SCHEDULE.alpha_bar, rtol=1e-14, atol=0)
    again.train()
    # the schedule rebuilt from stored β_t may differ from the original in the last bit only
    for p, q in zip(again.model.parameters(), full.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_resume_refuses_another_model_or_data(tmp_path):
    x, _ = data()
    Trainer(model(), SCHEDULE, x, config=config(out_dir=str(tmp_path))).train(stop_at=2)
    other = Trainer(MLPDenoiser(hidden=8, depth=1, T=T), SCHEDULE, x,
                    config=config(out_dir=str(tmp_path)))
    with pytest.raises(CheckpointError, match="holds a MLPDenoiser with config"):
        other.train(resume=True)
    with pytest.raises(CheckpointError, match=r"trained on data of shape \[256, 2\]"):
        Trainer(model(), SCHEDULE, x[:100],
                config=config(out_dir=str(tmp_path))).train(resume=True)


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    x, _ = data()
    trainer = Trainer(model(), SCHEDULE, x, config=config(out_dir=str(tmp_path / "new")))
    assert trainer.train(resume=True).final_step == 12
    with pytest.raises(ValueError, match="`resume` must be a checkpoint path"):
        Trainer(model(), SCHEDULE, x, config=config()).train(resume=True)


# --------------------------------------------------------------------------------------
# Checkpoint files
def test_checkpoint_round_trip_and_load_model(tmp_path):
    x, _ = data()
    trainer = Trainer(model(), SCHEDULE, x, config=config(out_dir=str(tmp_path)))
    trainer.train()
    path = tmp_path / CHECKPOINT_NAME
    ck = load_checkpoint(path)
    assert ck.model_name == "MLPDenoiser" and ck.model_config == trainer.model.config
    assert ck.step == 12 and ck.rng_state.dtype == torch.uint8
    torch.testing.assert_close(ck.schedule_betas, SCHEDULE.ddpm_paper().betas, rtol=0, atol=0)
    assert same_weights(load_model(path), trainer.ema_model)
    assert same_weights(load_model(path, ema=False), trainer.model)
    # no pickle anywhere: the file is plain safetensors with string metadata
    (n,) = struct.unpack("<Q", path.read_bytes()[:8])
    header = json.loads(path.read_bytes()[8:8 + n])
    assert header["__metadata__"]["kexue_nb_format"] == ckpt_mod.FORMAT
    assert len(ck.optimizer_state["state"]) == len(list(trainer.model.parameters()))


def saved(tmp_path: Path) -> Path:
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, model(), step=3)
    return path


def test_truncated_checkpoint_is_refused_naming_the_file(tmp_path):
    path = saved(tmp_path)
    cut = tmp_path / "cut.safetensors"
    blob = path.read_bytes()
    for size in (4, 100, len(blob) - 10):
        cut.write_bytes(blob[:size])
        with pytest.raises(CheckpointError, match=r"cut\.safetensors' is truncated"):
            load_checkpoint(cut)
    assert load_checkpoint(path).step == 3


def test_corrupted_and_foreign_files_are_refused(tmp_path):
    path = saved(tmp_path)
    bad = tmp_path / "bad.safetensors"
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 0xFF
    bad.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="is corrupted"):
        load_checkpoint(bad)
    foreign = tmp_path / "foreign.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="is not a kexue_nb diffusion checkpoint"):
        load_checkpoint(foreign)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(CheckpointError, match="is not a safetensors file"):
        load_checkpoint(junk)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_failed_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = saved(tmp_path)
    before = path.read_bytes()

    def crash(fd):   # the process dies after the data went out but before the rename
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod.os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model(seed=9), step=4)
    monkeypatch.undo()
    assert path.read_bytes() == before and load_checkpoint(path).step == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]


def test_checkpoint_from_bytes_equals_load_checkpoint(tmp_path):
    path = saved(tmp_path)
    a, b = load_checkpoint(path), checkpoint_from_bytes(path.read_bytes(), path)
    assert b.path == path and b.step == a.step == 3 and b.model_config == a.model_config
    assert all(torch.equal(a.model_state[k], b.model_state[k]) for k in a.model_state)
    with pytest.raises(CheckpointError, match=r"checkpoint 'sent' is truncated"):
        checkpoint_from_bytes(path.read_bytes()[:-3], "sent")
    with pytest.raises(ValueError, match="`blob` must be bytes"):
        checkpoint_from_bytes(str(path))


def test_single_process_trainer_is_not_wrapped():
    x, _ = data()
    trainer = Trainer(model(), SCHEDULE, x, config=config(batch_size=33))
    assert trainer.world.world_size == 1 and trainer.world.is_main
    assert trainer._ddp is None and trainer._shard is None and trainer._forward is trainer.model
    assert trainer._batch()[0].shape == (33, 2)   # any batch size on one process


def test_atomic_write_bytes(tmp_path):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"abc")
    atomic_write_bytes(target, b"defg")
    assert target.read_bytes() == b"defg"
    with pytest.raises(ValueError, match="`data` must be bytes"):
        atomic_write_bytes(target, "text")
    with pytest.raises(ValueError, match="`path` must be in an existing folder"):
        atomic_write_bytes(tmp_path / "no" / "f.bin", b"x")


def test_save_checkpoint_bad_input(tmp_path):
    with pytest.raises(ValueError, match="`model` must have a `config` dict"):
        save_checkpoint(tmp_path / "x", torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="`step` must be an integer >= 0"):
        save_checkpoint(tmp_path / "x", model(), step=-1)
    with pytest.raises(ValueError, match="`extra` and the model config must be JSON-able"):
        save_checkpoint(tmp_path / "x", model(), extra={"bad": object()})


def test_checkpoint_of_other_version_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt_mod, "FORMAT_VERSION", 99)
    path = saved(tmp_path)
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="has format version 99"):
        load_checkpoint(path)


def test_copy_of_checkpoint_loads_identically(tmp_path):
    path = saved(tmp_path)
    shutil.copy(path, tmp_path / "copy.safetensors")
    a, b = load_checkpoint(path), load_checkpoint(tmp_path / "copy.safetensors")
    assert all(torch.equal(a.model_state[k], b.model_state[k]) for k in a.model_state)
