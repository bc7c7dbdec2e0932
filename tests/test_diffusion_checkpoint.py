"""Checkpoint integrity and resume (issue 15, items 1-6): a hostile-file suite refused cleanly on
every path (loader, Trainer restore and resume, ``sample``, ``train --resume``) with no state
change; resume refusing changed settings; stale temporaries removed; lost distributed peers
reported in one line; byte-reproducible files and the math-thread count recorded."""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import safetensors.torch
import torch

from kexue_nb.diffusion import checkpoint as ck
from kexue_nb.diffusion import distributed as D
from kexue_nb.diffusion.__main__ import build_parser, build_trainer, main
from kexue_nb.diffusion.checkpoint import (
    CHECKPOINT_NAME,
    CheckpointError,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from kexue_nb.diffusion.models import MLPDenoiser

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["train", "--data", "mixture", "--conditional", "--T", "20", "--width", "16", "--depth",
         "1", "--batch-size", "16", "--n", "64", "--log-every", "2", "--warmup", "2",
         "--no-progress", "--device", "cpu", "--checkpoint-every", "0"]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> bytes:
    out = tmp_path_factory.mktemp("base")
    assert main([*TRAIN, "--steps", "4", "--out", str(out)]) == 0
    return (out / CHECKPOINT_NAME).read_bytes()


# --------------------------------------------------------------------------------------
# Crafting files
def split(blob: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def raw(header: dict, data: bytes) -> bytes:
    head = json.dumps(header).encode()
    return struct.pack("<Q", len(head)) + head + data


def forge(blob: bytes, info_fn=None, tensors_fn=None, sign: bool = True,
          info_text=None) -> bytes:
    """The checkpoint edited as an attacker who knows the format would: tensors and metadata
    changed, and (``sign``) the digest recomputed, so that only the schema can catch it."""
    header, _ = split(blob)
    old = header["__metadata__"]
    info = json.loads(old["kexue_nb"])
    tensors = safetensors.torch.load(blob)
    if tensors_fn is not None:
        tensors_fn(tensors)
    if info_fn is not None:
        info_fn(info)
    h, d = split(safetensors.torch.save(tensors))
    h.pop("__metadata__", None)
    text = json.dumps(info) if info_text is None else info_text
    h["__metadata__"] = {"kexue_nb_format": ck.FORMAT, "kexue_nb": text}
    h["__metadata__"]["sha256"] = ck._digest(h, d) if sign else old["sha256"]
    return ck._assemble(h, d)


def edit_header(blob: bytes, fn) -> bytes:
    header, data = split(blob)
    fn(header)
    return raw(header, data)


def setter(*keys, value):
    def fn(info):
        node = info
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return fn


def deleter(*keys):
    def fn(info):
        node = info
        for k in keys[:-1]:
            node = node[k]
        del node[keys[-1]]
    return fn


def tensor_fn(fn):
    return lambda blob: forge(blob, tensors_fn=fn)


def info_fn(fn):
    return lambda blob: forge(blob, info_fn=fn)


class Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED-by-checkpoint",))


def _model_key(t: dict) -> str:
    return sorted(k for k in t if k.startswith("model.") and k.endswith("weight"))[0]


def _cast(prefix: str, dtype):
    def fn(t):
        for k in list(t):
            if k.startswith(prefix) and t[k].is_floating_point():
                t[k] = t[k].to(dtype)
    return fn


def _replace(key_fn, value_fn):
    def fn(t):
        k = key_fn(t)
        t[k] = value_fn(t[k])
    return fn


def _step_edit(blob: bytes) -> bytes:
    header, data = split(blob)
    meta = header["__metadata__"]
    meta["kexue_nb"] = meta["kexue_nb"].replace('"step":4', '"step":2')
    assert '"step":2' in meta["kexue_nb"]
    return raw(header, data)


def _first_entry(header: dict) -> dict:
    return header[sorted(k for k in header if k != "__metadata__")[0]]


HOSTILE = {
    # bytes that are not a checkpoint at all
    "empty": lambda b: b"",
    "four bytes": lambda b: b[:4],
    "header length 2**63": lambda b: struct.pack("<Q", 2 ** 63) + b[8:],
    "header longer than file": lambda b: struct.pack("<Q", len(b)) + b[8:],
    "truncated in header": lambda b: b[:100],
    "truncated in data": lambda b: b[:len(b) // 2 + 200],
    "last byte cut": lambda b: b[:-1],
    "trailing byte": lambda b: b + b"\0",
    "header not utf-8": lambda b: b[:8] + b"\xff" * struct.unpack("<Q", b[:8])[0] + b[
        8 + struct.unpack("<Q", b[:8])[0]:],
    "header not json": lambda b: struct.pack("<Q", 16) + b"not json at all!",
    "header a json list": lambda b: struct.pack("<Q", 2) + b"[]",
    "200,000 [": lambda b: struct.pack("<Q", 200_000) + b"[" * 200_000,
    "deeply nested object": lambda b: struct.pack("<Q", 100_000 * 6 + 1) + (
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000)[:600_001],
    "nested metadata": lambda b: struct.pack("<Q", 100_030) + (
        b'{"__metadata__":{"x":' + b"[" * 50_000 + b"]" * 50_000 + b"}}")[:100_030],
    # pickles
    "torch.save pickle": lambda b: _torch_pickle(),
    "raw pickle payload": lambda b: pickle.dumps(Evil()),
    "pickle in metadata": lambda b: forge(b, info_text=pickle.dumps(Evil()).hex()),
    "pickle as tensor data": lambda b: raw({"__metadata__": split(b)[0]["__metadata__"],
                                            "model.x": {"dtype": "U8", "shape": [len(
                                                pickle.dumps(Evil()))], "data_offsets": [
                                                0, len(pickle.dumps(Evil()))]}},
                                           pickle.dumps(Evil())),
    # foreign or damaged safetensors
    "foreign safetensors": lambda b: safetensors.torch.save({"w": torch.zeros(3)}),
    "metadata not an object": lambda b: edit_header(b, setter("__metadata__", value="x")),
    "metadata value not a string": lambda b: edit_header(
        b, setter("__metadata__", "sha256", value=5)),
    "kexue_nb missing": lambda b: edit_header(b, deleter("__metadata__", "kexue_nb")),
    "sha256 missing": lambda b: edit_header(b, deleter("__metadata__", "sha256")),
    "extra metadata key": lambda b: edit_header(b, setter("__metadata__", "x", value="y")),
    "data byte flipped": lambda b: b[:-5] + bytes([b[-5] ^ 0xFF]) + b[-4:],
    "step 4 edited to 2": _step_edit,
    "dtype edited in header": lambda b: edit_header(
        b, lambda h: _first_entry(h).update(dtype="I32")),
    "unknown dtype": lambda b: edit_header(b, lambda h: _first_entry(h).update(dtype="X99")),
    "negative shape": lambda b: edit_header(b, lambda h: _first_entry(h).update(shape=[-1])),
    "huge shape": lambda b: edit_header(
        b, lambda h: _first_entry(h).update(shape=[10 ** 12, 10 ** 12])),
    "offsets beyond data": lambda b: edit_header(
        b, lambda h: _first_entry(h).update(data_offsets=[0, 10 ** 15])),
    "offsets not ints": lambda b: edit_header(
        b, lambda h: _first_entry(h).update(data_offsets=["0", "4"])),
    "entry lacks offsets": lambda b: edit_header(
        b, lambda h: _first_entry(h).pop("data_offsets")),
    # re-signed metadata that breaks the schema
    "unreadable kexue_nb": lambda b: forge(b, info_text="{not json"),
    "kexue_nb a list": lambda b: forge(b, info_text="[1, 2]"),
    "kexue_nb NaN": lambda b: forge(b, info_text='{"step": NaN}'),
    "format version 1": info_fn(setter("format_version", value=1)),
    "format version string": info_fn(setter("format_version", value="2")),
    "step negative": info_fn(setter("step", value=-1)),
    "step a string": info_fn(setter("step", value="4")),
    "step a float": info_fn(setter("step", value=4.5)),
    "step a bool": info_fn(setter("step", value=True)),
    "step 10**30": info_fn(setter("step", value=10 ** 30)),
    "step beyond steps": info_fn(setter("step", value=99)),
    "unknown model": info_fn(setter("model", "name", value="os.system")),
    "model name a list": info_fn(setter("model", "name", value=["MLPDenoiser"])),
    "model config a list": info_fn(setter("model", "config", value=[1, 2])),
    "model config unknown key": info_fn(setter("model", "config", "evil", value=1)),
    "model config hidden 10**12": info_fn(setter("model", "config", "hidden", value=10 ** 12)),
    "model config depth 10**9": info_fn(setter("model", "config", "depth", value=10 ** 9)),
    "model config other width": info_fn(setter("model", "config", "hidden", value=8)),
    "model config T mismatch": info_fn(setter("model", "config", "T", value=30)),
    "has_ema a string": info_fn(setter("has_ema", value="yes")),
    "has_ema missing": info_fn(deleter("has_ema")),
    "unknown top-level key": info_fn(setter("evil", value=1)),
    "optimizer a string": info_fn(setter("optimizer", value="adam")),
    "optimizer ids strings": info_fn(setter("optimizer", "ids", value=["0"])),
    "optimizer lr negative": info_fn(lambda i: i["optimizer"]["param_groups"][0].update(lr=-1)),
    "optimizer groups missing": info_fn(deleter("optimizer", "param_groups")),
    "optimizer params wrong": info_fn(
        lambda i: i["optimizer"]["param_groups"][0].update(params=[0, 0, 1])),
    "extra a list": info_fn(setter("extra", value=[])),
    "train_config missing": info_fn(deleter("extra", "train_config")),
    "train_config unknown key": info_fn(setter("extra", "train_config", "evil", value=1)),
    "train_config lr negative": info_fn(setter("extra", "train_config", "lr", value=-1.0)),
    "scheduler missing": info_fn(deleter("extra", "scheduler")),
    "scheduler epoch wrong": info_fn(setter("extra", "scheduler", "last_epoch", value=1)),
    "scheduler base_lrs strings": info_fn(setter("extra", "scheduler", "base_lrs",
                                                 value=["x"])),
    "history lengths differ": info_fn(setter("extra", "history", "losses", value=[1.0])),
    "history losses strings": info_fn(setter("extra", "history", "losses",
                                             value=["a", "b"])),
    "history a list": info_fn(setter("extra", "history", value=[])),
    "loss_count negative": info_fn(setter("extra", "loss_count", value=-1)),
    "data_shape 10**12": info_fn(setter("extra", "data_shape", value=[500, 10 ** 12])),
    "data_shape strings": info_fn(setter("extra", "data_shape", value=["64", "2"])),
    "data_shape nested": info_fn(setter("extra", "data_shape", value=[[64], [2]])),
    "data_shape wrong event": info_fn(setter("extra", "data_shape", value=[64, 3])),
    "data_sha256 malformed": info_fn(setter("extra", "data_sha256", value="abc")),
    "torch_threads zero": info_fn(setter("torch_threads", value=0)),
    # tensors of the wrong kind, re-signed
    "weights int32": tensor_fn(_cast("model.", torch.int32)),
    "weights float64": tensor_fn(_cast("model.", torch.float64)),
    "weights complex64": tensor_fn(_replace(_model_key, lambda v: v.to(torch.complex64))),
    "weights float16": tensor_fn(_cast("model.", torch.float16)),
    "ema weights bfloat16": tensor_fn(_cast("ema.module.", torch.bfloat16)),
    "weight reshaped": tensor_fn(_replace(_model_key, lambda v: v.reshape(-1))),
    "weight NaN": tensor_fn(_replace(_model_key, lambda v: v * float("nan"))),
    "weight missing": tensor_fn(lambda t: t.pop(_model_key(t))),
    "unexpected model tensor": tensor_fn(lambda t: t.update({"model.evil": torch.zeros(2)})),
    "unexpected prefix": tensor_fn(lambda t: t.update({"bad.x": torch.zeros(2)})),
    "optim unknown param": tensor_fn(lambda t: t.update({"optim.99.exp_avg": torch.zeros(2)})),
    "optim exp_avg wrong shape": tensor_fn(_replace(
        lambda t: "optim.0.exp_avg", lambda v: torch.zeros(3))),
    "optim exp_avg inf": tensor_fn(_replace(
        lambda t: "optim.0.exp_avg", lambda v: v + float("inf"))),
    "optim step int": tensor_fn(_replace(lambda t: "optim.0.step", lambda v: v.long())),
    "rng float32": tensor_fn(_replace(lambda t: "rng.generator", lambda v: v.float())),
    "rng wrong length": tensor_fn(_replace(lambda t: "rng.generator", lambda v: v[:100])),
    "rng missing": tensor_fn(lambda t: t.pop("rng.generator")),
    "betas wrong length": tensor_fn(_replace(lambda t: "schedule.betas", lambda v: v[:5])),
    "betas above 1": tensor_fn(_replace(lambda t: "schedule.betas", lambda v: v + 1)),
    "betas float32": tensor_fn(_replace(lambda t: "schedule.betas", lambda v: v.float())),
    "betas NaN": tensor_fn(_replace(lambda t: "schedule.betas", lambda v: v * float("nan"))),
    "loss_sum missing": tensor_fn(lambda t: t.pop("extra.loss_sum")),
    "loss_sum wrong shape": tensor_fn(_replace(lambda t: "extra.loss_sum",
                                               lambda v: torch.zeros(3))),
    "loss_sum NaN": tensor_fn(_replace(lambda t: "extra.loss_sum",
                                       lambda v: v * float("nan"))),
    "n_averaged missing": tensor_fn(lambda t: t.pop("ema.n_averaged")),
    "n_averaged float": tensor_fn(_replace(lambda t: "ema.n_averaged", lambda v: v.float())),
    "n_averaged huge": tensor_fn(_replace(lambda t: "ema.n_averaged", lambda v: v + 10 ** 9)),
}


def _torch_pickle() -> bytes:
    import io

    buf = io.BytesIO()
    torch.save({"evil": Evil()}, buf)
    return buf.getvalue()


def test_the_suite_is_large_enough():
    assert len(HOSTILE) >= 50


def one_line(message: str) -> None:
    assert "\n" not in message.strip() and "Traceback" not in message


def trainer_state(tr) -> dict:
    return {"model": {k: v.clone() for k, v in tr.model.state_dict().items()},
            "ema": {k: v.clone() for k, v in tr._ema.state_dict().items()},
            "optim": repr(tr.optimizer.state_dict()), "sched": repr(tr.scheduler.state_dict()),
            "rng": tr.generator.get_state().clone(), "step": tr.step,
            "hist": repr(tr.history), "loss": tr._loss_sum.clone(), "count": tr._loss_count}


def same_state(a: dict, b: dict) -> bool:
    return all(torch.equal(a[p][k], b[p][k]) for p in ("model", "ema") for k in a[p]) and all(
        (torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k])
        for k in ("optim", "sched", "rng", "step", "hist", "loss", "count"))


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_file_is_refused_cleanly_on_every_path(case, base, tmp_path, capsys,
                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    blob = HOSTILE[case](base)
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(blob)
    # 1. the loader
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    one_line(str(err.value))
    assert str(path) in str(err.value)
    # 2. Trainer: restore and train(resume=…), state unchanged; a good restore warms it first
    tr = build_trainer(build_parser().parse_args([*TRAIN, "--steps", "8", "--out",
                                                 str(tmp_path)]))
    good = tmp_path / "good.safetensors"
    good.write_bytes(base)
    tr.restore(good)
    before = trainer_state(tr)
    for call in (lambda: tr.restore(path), lambda: tr.train(resume=path)):
        with pytest.raises(CheckpointError) as err:
            call()
        one_line(str(err.value))
        assert same_state(before, trainer_state(tr))
    good.unlink()
    # 3. sample, 4. train --resume: exit status 2 and one line on stderr
    capsys.readouterr()
    for argv in (["sample", "--checkpoint", str(path), "--n", "4", "--steps", "2",
                  "--no-progress", "--device", "cpu"],
                 [*TRAIN, "--steps", "8", "--out", str(tmp_path), "--resume"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        err_text = capsys.readouterr().err
        one_line(err_text)
        assert "error: checkpoint" in err_text, err_text
    assert path.read_bytes() == blob                  # nothing overwrote the file
    assert not (tmp_path / "PWNED-by-checkpoint").exists()


# --------------------------------------------------------------------------------------
# Item 1: the digest covers the metadata
def test_digest_covers_metadata_and_tensor_entries(base, tmp_path):
    path = tmp_path / "c.safetensors"
    path.write_bytes(base)
    assert load_checkpoint(path).step == 4
    path.write_bytes(_step_edit(base))
    with pytest.raises(CheckpointError, match="sha256 of the header and tensor data"):
        load_checkpoint(path)
    path.write_bytes(HOSTILE["dtype edited in header"](base))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_int32_weights_and_huge_data_shape_are_refused_by_schema(base, tmp_path):
    path = tmp_path / "c.safetensors"
    path.write_bytes(HOSTILE["weights int32"](base))
    with pytest.raises(CheckpointError, match="of torch.int32 .* the model needs torch.float32"):
        load_checkpoint(path)
    path.write_bytes(HOSTILE["data_shape 10**12"](base))
    with pytest.raises(CheckpointError, match="malformed data_shape"):
        load_checkpoint(path)


# --------------------------------------------------------------------------------------
# Item 2: restoring is atomic, even when applying fails late
def test_failed_apply_rolls_back(base, tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    path.write_bytes(base)
    tr = build_trainer(build_parser().parse_args([*TRAIN, "--steps", "8", "--out",
                                                 str(tmp_path)]))
    before = trainer_state(tr)

    cls = type(tr.scheduler)
    real, calls = cls.load_state_dict, []

    def boom(self, state):   # fails once, after the weights, EMA and optimiser were loaded
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("disk gone")
        return real(self, state)

    monkeypatch.setattr(cls, "load_state_dict", boom)
    with pytest.raises(CheckpointError, match="cannot be restored .*disk gone"):
        tr.restore(path)
    assert len(calls) == 2                                    # the rollback reloaded it
    monkeypatch.undo()
    assert same_state(before, trainer_state(tr))


def _bad_objects(ck_):
    from dataclasses import replace

    first = sorted(ck_.model_state)[0]
    opt = ck_.optimizer_state
    yield replace(ck_, model_state={**ck_.model_state, first: ck_.model_state[first].int()})
    yield replace(ck_, model_state={k: v for k, v in ck_.model_state.items() if k != first})
    yield replace(ck_, ema_state={**ck_.ema_state, "n_averaged": 3.5})
    yield replace(ck_, optimizer_state={"state": {0: {"step": torch.tensor(1.0)}},
                                        "param_groups": opt["param_groups"]})
    yield replace(ck_, optimizer_state={**opt, "param_groups": [{"lr": 1.0}]})
    yield replace(ck_, rng_state=ck_.rng_state[:16])
    yield replace(ck_, extra={**ck_.extra, "history": None})
    yield replace(ck_, extra={k: v for k, v in ck_.extra.items() if k != "scheduler"})
    yield replace(ck_, extra={**ck_.extra, "loss_count": "3"})
    yield replace(ck_, extra_tensors={})
    yield replace(ck_, schedule_betas=ck_.schedule_betas * 0.5)
    yield replace(ck_, extra=[])
    yield "not a checkpoint object"


def test_hand_built_checkpoint_objects_are_refused_without_change(base, tmp_path):
    path = tmp_path / "c.safetensors"
    path.write_bytes(base)
    good = load_checkpoint(path)
    tr = build_trainer(build_parser().parse_args([*TRAIN, "--steps", "8", "--out",
                                                 str(tmp_path)]))
    before = trainer_state(tr)
    for bad in _bad_objects(good):
        with pytest.raises(ValueError) as err:      # CheckpointError, or ValueError for a str
            tr.restore(bad)
        one_line(str(err.value))
        assert same_state(before, trainer_state(tr))
    tr.restore(good)
    assert tr.step == 4


# --------------------------------------------------------------------------------------
# Item 3: resume refuses changed settings
@pytest.mark.parametrize(("change", "message"), [
    (["--schedule", "cosine"], "setting `--schedule` = 'linear', this run has 'cosine'"),
    (["--T", "30"], "setting `--T` = 20, this run has 30"),
    (["--width", "8"], "setting `--width` = 16, this run has 8"),
    (["--n", "65"], "setting `--n` = 64, this run has 65"),
    (["--seed", "1"], "setting `--seed` = 0, this run has 1"),
    (["--lr", "0.002"], "`--lr` = 0.001, this run has 0.002; pass allow_changes"),
    (["--batch-size", "8"], "`--batch-size` = 16, this run has 8"),
    (["--ema-decay", "0.99"], "`--ema-decay` = 0.999, this run has 0.99"),
])
def test_cli_resume_refuses_changed_settings(base, tmp_path, capsys, change, message):
    (tmp_path / CHECKPOINT_NAME).write_bytes(base)
    with pytest.raises(SystemExit) as exit_:
        main([*TRAIN, "--steps", "6", "--out", str(tmp_path), "--resume", *change])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    one_line(err)
    assert message in err
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == base


def test_allow_change_continues_with_the_new_value(base, tmp_path, capsys):
    (tmp_path / CHECKPOINT_NAME).write_bytes(base)
    assert main([*TRAIN, "--steps", "6", "--out", str(tmp_path), "--resume", "--lr", "0.002",
                 "--batch-size", "8", "--allow-change", "lr", "--allow-change",
                 "batch_size"]) == 0
    ckpt = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert ckpt.step == 6 and ckpt.extra["train_config"]["lr"] == 0.002
    assert ckpt.extra["scheduler"]["base_lrs"] == [0.002]
    with pytest.raises(SystemExit):
        main([*TRAIN, "--steps", "6", "--out", str(tmp_path), "--allow-change", "lr"])
    assert "applies only with `--resume`" in capsys.readouterr().err
    with pytest.raises(SystemExit):      # seed may never change
        main([*TRAIN, "--steps", "8", "--out", str(tmp_path), "--resume", "--seed", "3",
              "--allow-change", "seed"])
    assert "invalid choice: 'seed'" in capsys.readouterr().err


def test_trainer_api_refuses_changed_settings_and_data(base, tmp_path):
    path = tmp_path / "c.safetensors"
    path.write_bytes(base)
    args = build_parser().parse_args([*TRAIN, "--steps", "8", "--out", str(tmp_path)])
    tr = build_trainer(args)
    tr.run_settings = {}                        # the API alone: no CLI settings to compare
    tr.config.seed = 5
    with pytest.raises(CheckpointError, match="`seed` = 0, this run has 5; it cannot change"):
        tr.restore(path)
    tr.config.seed, tr.config.lr = 0, 0.5
    with pytest.raises(CheckpointError, match="`lr` = 0.001, this run has 0.5"):
        tr.restore(path)
    tr.restore(path, allow_changes=("lr",))
    assert tr.scheduler.base_lrs == [0.5] and tr.step == 4
    tr2 = build_trainer(args)
    tr2.run_settings = {}
    tr2.x = tr2.x + 1                           # same shape, other data
    tr2._data_sha256 = None
    with pytest.raises(CheckpointError, match="trained on other data"):
        tr2.restore(path)
    with pytest.raises(ValueError, match="`allow_changes` may name only"):
        tr2.restore(path, allow_changes=("seed",))


# --------------------------------------------------------------------------------------
# Item 4: no debris
def test_stale_temporaries_are_removed_at_the_next_start(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".{CHECKPOINT_NAME}.tmp-{dead.pid}"
    alive = tmp_path / f".{CHECKPOINT_NAME}.tmp-{os.getppid()}"
    other = tmp_path / ".other.tmp-1"
    for f in (stale, alive, other):
        f.write_bytes(b"x" * 100)
    tr = build_trainer(build_parser().parse_args([*TRAIN, "--steps", "1", "--out",
                                                 str(tmp_path)]))
    tr.train()
    assert not stale.exists() and alive.exists() and other.exists()
    mine = tmp_path / f".{CHECKPOINT_NAME}.tmp-{os.getpid()}"    # a write in progress here
    mine.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == [] and mine.exists()
    assert remove_stale_temporaries(tmp_path / "missing") == []


# --------------------------------------------------------------------------------------
# Item 5: a lost peer gives one line naming the rank and the timeout
def test_peer_lost_error_translation(monkeypatch, capsys):
    env = D.DistEnv(rank=1, world_size=2, backend="gloo")
    gloo = RuntimeError("[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection "
                        "closed by peer [127.0.0.1]:4242\nmore detail")
    lost = D.peer_lost_error(gloo, env, 30.0)
    assert isinstance(lost, D.PeerLost)
    assert "rank 1 of 2" in str(lost) and "timeout of 30 s" in str(lost)
    one_line(str(lost))
    assert D.peer_lost_error(RuntimeError("shape mismatch"), env, 30.0) is None

    monkeypatch.setattr(D, "init_distributed", lambda device, timeout: env)
    monkeypatch.setattr(D, "shutdown_distributed", lambda: None)
    with pytest.raises(D.PeerLost, match="rank 1 of 2 lost contact"):
        with D.distributed_session("cpu", timeout=30.0):
            raise gloo
    with pytest.raises(RuntimeError, match="shape mismatch"):
        with D.distributed_session("cpu", timeout=30.0):
            raise RuntimeError("shape mismatch")

    import kexue_nb.diffusion.__main__ as cli

    def lose(args, main_rank):
        raise gloo

    monkeypatch.setattr(cli, "distributed_session", D.distributed_session)
    monkeypatch.setattr(cli, "_train_in", lose)
    with pytest.raises(SystemExit) as exit_:
        main([*TRAIN, "--out", "x", "--dist-timeout", "7"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    one_line(err)
    assert "rank 1 of 2 lost contact" in err and "timeout of 7 s" in err


def test_real_gloo_peer_loss_names_rank_and_timeout(tmp_path):
    code = (
        "import os, sys, time\n"
        "from kexue_nb.diffusion import distributed as D\n"
        "with D.distributed_session('cpu', timeout=5) as env:\n"
        "    if env.rank == 1:\n"
        "        os._exit(0)\n"
        "    time.sleep(0.5)\n"
        "    try:\n"
        "        D.barrier(); D.barrier()\n"
        "    except BaseException:\n"
        "        raise\n")
    wrapper = ("import sys\nfrom kexue_nb.diffusion import distributed as D\n"
               "try:\n    exec(open(sys.argv[1]).read())\n"
               "except D.PeerLost as e:\n    print('LOST:', e); sys.exit(3)\n")
    (tmp_path / "w.py").write_text(code)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    env |= {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
            "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    procs = [subprocess.Popen([sys.executable, "-c", wrapper, str(tmp_path / "w.py")],
                              env=env | {"RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in range(2)]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert procs[0].returncode == 3, outs[0][-2000:]
    line = next(x for x in outs[0].splitlines() if x.startswith("LOST:"))
    assert "rank 0 of 2 lost contact" in line and "timeout of 5 s" in line


# --------------------------------------------------------------------------------------
# Item 6: byte-reproducible files, thread count recorded
def test_same_state_gives_identical_bytes_across_processes(tmp_path):
    def net():
        return MLPDenoiser(dim=2, hidden=8, depth=1, T=10, num_classes=3,
                           generator=torch.Generator().manual_seed(0))

    extra = {"b": 1, "a": {"z": 2, "y": [1, 2]}}
    threads = torch.get_num_threads()
    save_checkpoint(tmp_path / "a.safetensors", net(), step=3, extra_tensors={
        "q": torch.ones(2)}, extra={"free": extra})
    save_checkpoint(tmp_path / "b.safetensors", net(), step=3, extra_tensors={
        "q": torch.ones(2)}, extra={"free": extra})
    code = ("import sys, torch\n"
            "from kexue_nb.diffusion.checkpoint import save_checkpoint\n"
            "from kexue_nb.diffusion.models import MLPDenoiser\n"
            f"torch.set_num_threads({threads})\n"
            "m = MLPDenoiser(dim=2, hidden=8, depth=1, T=10, num_classes=3,"
            " generator=torch.Generator().manual_seed(0))\n"
            f"save_checkpoint(sys.argv[1], m, step=3, extra_tensors={{'q': torch.ones(2)}},"
            f" extra={{'free': {extra!r}}})\n")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "c.safetensors")], check=True,
                   env=dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED="123",
                            PYTHONWARNINGS="ignore"), timeout=120)
    a = (tmp_path / "a.safetensors").read_bytes()
    assert a == (tmp_path / "b.safetensors").read_bytes() == (
        tmp_path / "c.safetensors").read_bytes()
    header, _ = split(a)
    assert list(header) == sorted(header) and list(header["__metadata__"]) == sorted(
        header["__metadata__"])
    assert load_checkpoint(tmp_path / "a.safetensors").torch_threads == threads
    assert safetensors.torch.load(a)["extra.q"].tolist() == [1.0, 1.0]   # still safetensors


def test_resume_on_another_thread_count_warns(base, tmp_path):
    path = tmp_path / "c.safetensors"
    path.write_bytes(base)
    recorded = load_checkpoint(path).torch_threads
    tr = build_trainer(build_parser().parse_args([*TRAIN, "--steps", "8", "--out",
                                                 str(tmp_path)]))
    old = torch.get_num_threads()
    torch.set_num_threads(recorded + 1)
    try:
        with pytest.warns(RuntimeWarning, match=f"written with {recorded} math threads.*"
                                                f"OMP_NUM_THREADS={recorded}"):
            tr.restore(path)
    finally:
        torch.set_num_threads(old)
    if old == recorded:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            tr.restore(path)


def test_checkpoint_layout_is_plain_safetensors(base, tmp_path):
    header, data = split(base)
    assert set(header["__metadata__"]) == {"kexue_nb_format", "kexue_nb", "sha256"}
    assert len(base[8:8 + struct.unpack("<Q", base[:8])[0]]) % 8 == 0
    assert safetensors.torch.load(base)["schedule.betas"].dtype == torch.float64

