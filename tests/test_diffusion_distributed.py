"""Tests of data-parallel training (kexue_nb.diffusion.distributed and the Trainer under DDP).

Real process groups: two CPU processes joined by gloo on 127.0.0.1, started the way torchrun
starts them (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), and once by torchrun
itself through the command line (which resumes the run the workers left killed at step 6).
Each worker process runs :func:`worker` of this file.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kexue_nb.diffusion import distributed as D
from kexue_nb.diffusion.__main__ import load_data, make_schedule
from kexue_nb.diffusion.checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint
from kexue_nb.diffusion.models import MLPDenoiser
from kexue_nb.diffusion.trainer import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
# One run, built exactly as `python -m kexue_nb.diffusion train` builds it from these options,
# so that torchrun can resume with the command line what the workers started.
CLI = ["--data", "mixture", "--conditional", "--num-points", "256", "--T", "50", "--width", "16",
       "--depth", "1", "--steps", "12", "--batch-size", "32", "--lr", "0.01", "--warmup", "3",
       "--label-dropout", "0.2", "--log-every", "4", "--checkpoint-every", "5", "--device", "cpu",
       "--seed", "0"]


def trainer(out: Path | None, hidden: int = 16, **kw) -> Trainer:
    x, y = load_data("mixture", 256, seed=0)
    net = MLPDenoiser(dim=2, hidden=hidden, depth=1, T=50, num_classes=8,
                      generator=torch.Generator().manual_seed(0))
    base = dict(steps=12, batch_size=32, lr=1e-2, warmup_steps=3, log_every=4, progress=False,
                device="cpu", label_dropout=0.2, seed=0, checkpoint_every=5 if out else 0,
                out_dir=None if out is None else str(out))
    return Trainer(net, make_schedule("linear", 50), x, y, TrainConfig(**(base | kw)))


def state(tr: Trainer) -> dict:
    return {"model": tr.model.state_dict(), "ema": tr.ema_model.state_dict(),
            "optim": tr.optimizer.state_dict()["state"], "rng": tr.generator.get_state(),
            "losses": torch.tensor(tr.history.losses, dtype=torch.float64), "step": tr.step}


# --------------------------------------------------------------------------------------
# What each of the two worker processes runs (python -c, see `launch`)
def worker(out: Path) -> None:
    env = D.init_distributed("cpu", timeout=60)
    r = env.rank
    full = trainer(out / "full")
    full.train()
    torch.save(state(full), out / f"full-{r}.pt")
    trainer(out / "cut").train(stop_at=6)          # "killed" after step 6; torchrun resumes it
    if r == 0:
        shutil.copy(out / "cut" / CHECKPOINT_NAME, out / "cut6.safetensors")
    other = trainer(None)                          # a 1-process checkpoint, resumed on 2 ranks
    other.train(resume=out / "one6.safetensors")
    torch.save(state(other), out / f"from-one-{r}.pt")
    report = {"world": [D.world().rank, D.world().world_size, D.world().backend],
              "bytes": (D.broadcast_bytes(b"from rank 0" if r == 0 else b"x") or b"").hex(),
              "none": D.broadcast_bytes(None) is None,
              "mean": D.mean_over_ranks_(torch.tensor([float(r)])).item()}
    try:
        trainer(None, batch_size=33)
    except ValueError as err:
        report["batch"] = str(err)
    try:
        trainer(None, hidden=8).train(resume=out / "full" / CHECKPOINT_NAME)
    except CheckpointError as err:
        report["model"] = str(err)
    (out / f"report-{r}.json").write_text(json.dumps(report))
    D.shutdown_distributed()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(**kw: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    return env | {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
                  "PYTHONPATH": str(ROOT)} | kw


def launch(out: Path, world_size: int = 2) -> None:
    """Start `worker` on `world_size` processes as torchrun would (its environment variables)."""
    code = ("import importlib.util, sys, pathlib\n"
            f"spec = importlib.util.spec_from_file_location('ddp_case', {str(Path(__file__))!r})\n"
            "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
            "mod.worker(pathlib.Path(sys.argv[1]))\n")
    port = str(free_port())
    procs = [subprocess.Popen(
        [sys.executable, "-c", code, str(out)], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
        env=child_env(RANK=str(r), WORLD_SIZE=str(world_size), LOCAL_RANK=str(r),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=port))
        for r in range(world_size)]
    logs = [p.communicate(timeout=180)[0] for p in procs]
    for r, (p, log) in enumerate(zip(procs, logs, strict=True)):
        assert p.returncode == 0, f"rank {r} failed:\n{log[-3000:]}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    one = trainer(out / "one")                 # the same run on one process, batch 32
    one.train()
    torch.save(state(one), out / "one.pt")
    trainer(out / "one-cut").train(stop_at=6)
    shutil.copy(out / "one-cut" / CHECKPOINT_NAME, out / "one6.safetensors")
    launch(out)
    return out


def load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def assert_states(a: dict, b: dict, exact: bool) -> None:
    tol = dict(rtol=0, atol=0) if exact else dict(rtol=1e-5, atol=1e-6)
    assert a["step"] == b["step"]
    for part in ("model", "ema"):
        for k in a[part]:
            torch.testing.assert_close(a[part][k], b[part][k], **tol, msg=f"{part}.{k}")
    for pid in a["optim"]:
        for k, v in a["optim"][pid].items():
            torch.testing.assert_close(v, b["optim"][pid][k], **tol, msg=f"optim.{pid}.{k}")
    assert torch.equal(a["rng"], b["rng"])       # the same global draws on every rank
    torch.testing.assert_close(a["losses"], b["losses"], rtol=1e-5, atol=0)


# --------------------------------------------------------------------------------------
# Two gloo processes
def test_two_ranks_equal_one_process_with_the_global_batch(runs):
    one, r0, r1 = load(runs / "one.pt"), load(runs / "full-0.pt"), load(runs / "full-1.pt")
    assert_states(r0, r1, exact=True)            # weights, EMA, AdamW state agree across ranks
    assert_states(r0, one, exact=False)          # = the 1-process run up to float sum order
    ck = load_checkpoint(runs / "full" / CHECKPOINT_NAME)   # written once, by rank 0
    assert ck.step == 12 and ck.extra["train_config"]["batch_size"] == 32
    assert all(torch.equal(ck.model_state[k], r0["model"][k]) for k in ck.model_state)
    assert sorted(p.name for p in (runs / "full").iterdir()) == [CHECKPOINT_NAME]


def test_resume_on_another_world_size(runs):
    one = load(runs / "one.pt")
    for r in (0, 1):                              # 1-process checkpoint, resumed on 2 ranks
        assert_states(load(runs / f"from-one-{r}.pt"), one, exact=False)
    single = trainer(None)                        # 2-rank checkpoint, resumed on 1 process
    single.train(resume=runs / "cut6.safetensors")
    assert_states(state(single), one, exact=False)


def test_collectives_and_bad_setups_on_two_ranks(runs):
    reports = [json.loads((runs / f"report-{r}.json").read_text()) for r in (0, 1)]
    for r, rep in enumerate(reports):
        assert rep["world"] == [r, 2, "gloo"]
        assert bytes.fromhex(rep["bytes"]) == b"from rank 0" and rep["none"]
        assert rep["mean"] == 0.5
        assert "`batch_size` = 33 (the global batch) must be divisible by the world size 2" \
            in rep["batch"]
        assert "holds a MLPDenoiser with config" in rep["model"]


def test_torchrun_resumes_the_killed_two_rank_run(runs):
    """The run killed at step 6 (new processes, started by torchrun through the command line)
    ends where the uninterrupted 2-rank run ended."""
    cut = runs / "cut"
    assert load_checkpoint(cut / CHECKPOINT_NAME).step == 6
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "kexue_nb.diffusion", "train", *CLI, "--out", str(cut), "--resume",
           "--dist-timeout", "60"]
    res = subprocess.run(cmd, cwd=ROOT, env=child_env(), capture_output=True, text=True,
                         timeout=240)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    report = "trained 6 steps (resumed at step 6, now at 12) on cpu × 2 ranks"
    assert res.stdout.count(report) == 1  # rank 0 only
    ck, full = load_checkpoint(cut / CHECKPOINT_NAME), load(runs / "full-0.pt")
    assert ck.step == 12
    for k in full["model"]:   # bit for bit: same world size, and a 2-term sum is commutative
        assert torch.equal(ck.model_state[k], full["model"][k]), k
        assert torch.equal(ck.ema_state[f"module.{k}"], full["ema"][k]), k
    assert torch.equal(ck.rng_state, full["rng"])
    np.testing.assert_allclose(np.load(cut / "loss.npz")["loss"], full["losses"].numpy(),
                               rtol=1e-5)


def test_torchrun_bad_input_is_reported_once(tmp_path):
    """Every rank refuses the batch alike; rank 0 alone prints the one-line error."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "kexue_nb.diffusion", "train", *CLI, "--out", str(tmp_path / "r"),
           "--batch-size", "33", "--dist-timeout", "60"]
    res = subprocess.run(cmd, cwd=ROOT, env=child_env(), capture_output=True, text=True,
                         timeout=240)
    assert res.returncode != 0
    line = ("python -m kexue_nb.diffusion train: error: `--batch-size` = 33 (the global batch) "
            "must be divisible by the world size 2")
    assert (res.stdout + res.stderr).count(line) == 1, res.stderr[-3000:]


# --------------------------------------------------------------------------------------
# The helpers on one process, and the rendezvous timeout
def test_env_from_reads_torchrun_variables():
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "10.0.0.1",
           "MASTER_PORT": "29500"}
    assert D.env_from(env) == D.DistEnv(rank=3, world_size=4, local_rank=1)
    assert D.env_from({}) == D.DistEnv() and D.env_from({"WORLD_SIZE": "1"}).world_size == 1
    assert not D.DistEnv(rank=1, world_size=2).is_main and D.DistEnv().is_main


@pytest.mark.parametrize(("env", "match"), [
    ({"WORLD_SIZE": "two"}, "`WORLD_SIZE` must be an integer >= 1, got 'two'"),
    ({"WORLD_SIZE": "0"}, "`WORLD_SIZE` must be an integer >= 1"),
    ({"WORLD_SIZE": "2"}, "`RANK` must be set in the environment"),
    ({"WORLD_SIZE": "2", "RANK": "2"}, r"`RANK` must lie in 0..1 \(WORLD_SIZE = 2\), got 2"),
    ({"WORLD_SIZE": "2", "RANK": "0"}, "`MASTER_ADDR` must be set"),
    ({"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "h"}, "`MASTER_PORT` must be set"),
    ({"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "h", "MASTER_PORT": "70000"},
     "`MASTER_PORT` must be a TCP port"),
])
def test_env_from_bad_input(env, match):
    with pytest.raises(ValueError, match=match):
        D.env_from(env)


def test_backend_for_device():
    assert D.backend_for("cpu") == "gloo" and D.backend_for(torch.device("cpu")) == "gloo"
    assert D.backend_for("cuda:1") == "nccl"
    with pytest.raises(ValueError, match="`device` must be a torch device"):
        D.backend_for("gpu")


def test_shard_splits_the_global_batch():
    parts = [D.shard(12, D.DistEnv(rank=r, world_size=3)) for r in range(3)]
    assert parts == [slice(0, 4), slice(4, 8), slice(8, 12)]
    assert D.shard(5) == slice(0, 5)               # one process takes all
    with pytest.raises(ValueError, match="must be divisible by the world size 4"):
        D.shard(10, D.DistEnv(rank=0, world_size=4))
    with pytest.raises(ValueError, match="`batch_size` must be an integer >= 1"):
        D.shard(0)


def test_single_process_helpers_are_identities(monkeypatch):
    for var in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(var, raising=False)
    assert not D.is_distributed() and D.is_main_process() and D.world() == D.DistEnv()
    assert D.broadcast_bytes(b"abc") == b"abc" and D.broadcast_bytes(None) is None
    t = torch.tensor([2.0])
    assert D.mean_over_ranks_(t) is t and t.item() == 2.0
    assert D.collective_device() == torch.device("cpu")
    D.barrier()
    with D.distributed_session("cpu") as env:
        assert env == D.DistEnv()
    assert D.init_distributed("cpu") == D.DistEnv()
    with pytest.raises(ValueError, match="`data` must be bytes or None"):
        D.broadcast_bytes("text")
    with pytest.raises(ValueError, match="`timeout` must be a positive number of seconds"):
        D.init_distributed("cpu", timeout=0)


@pytest.mark.parametrize("rank", [0, 1])
def test_rank_that_cannot_meet_the_others_times_out(monkeypatch, rank):
    # a world of 2 with only this process started: rank 0 waits for a client that never comes,
    # rank 1 for a server that is not there
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    with pytest.raises(D.RendezvousTimeout, match=rf"rank {rank} of 2 could not meet the other "
                                                  rf"ranks .* within the timeout of 1 s"):
        D.init_distributed("cpu", timeout=1)
    assert not D.is_distributed()
