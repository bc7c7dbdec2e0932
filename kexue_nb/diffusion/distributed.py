"""Data-parallel training on PyTorch's own engine: process group, ranks and collectives.

The trainer runs unchanged on one process or under ``torchrun``. ``torchrun`` starts one process
per device and hands each its place through environment variables (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``); :func:`init_distributed` reads them and joins
the process group with the backend the device needs (NCCL on CUDA, gloo on CPU), and
:class:`~kexue_nb.diffusion.trainer.Trainer` then wraps its model in
:class:`torch.nn.parallel.DistributedDataParallel`. Outside ``torchrun`` (no ``WORLD_SIZE``, or
``WORLD_SIZE=1``) nothing is initialised and every helper here is the identity or a no-op, so the
single-process trainer pays nothing.

    torchrun --standalone --nproc_per_node=4 -m kexue_nb.diffusion train --data digits --out run
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = [
    "DEFAULT_TIMEOUT",
    "DistEnv",
    "PeerLost",
    "RendezvousTimeout",
    "backend_for",
    "barrier",
    "broadcast_bytes",
    "collective_device",
    "distributed_session",
    "env_from",
    "init_distributed",
    "is_distributed",
    "is_main_process",
    "mean_over_ranks_",
    "peer_lost_error",
    "shard",
    "shutdown_distributed",
    "world",
]

#: Seconds a rank waits for the others at the rendezvous and in collectives (torch's default).
DEFAULT_TIMEOUT = 600.0


class RendezvousTimeout(TimeoutError):
    """The ranks of a run did not all meet at the rendezvous within the timeout."""


class PeerLost(RuntimeError):
    """A collective failed because another rank of the run exited or stopped answering."""


#: Phrases of the errors gloo and NCCL raise when a peer is gone or a collective times out.
_PEER_SIGNS = ("connection closed by peer", "connection reset", "timed out", "timeout",
               "broken pipe", "gloo", "nccl", "socket", "connection refused", "watchdog")


def peer_lost_error(err: BaseException, env: DistEnv, timeout: float) -> PeerLost | None:
    """The one-line :class:`PeerLost` for a collective's error ``err`` on rank ``env.rank``
    (``None`` when ``err`` is not a lost peer or a collective timeout)."""
    dist_error = getattr(dist, "DistError", ())
    text = str(err)
    if not (isinstance(err, dist_error) or (isinstance(err, RuntimeError) and any(
            sign in text.lower() for sign in _PEER_SIGNS))):
        return None
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(err).__name__)
    if len(first) > 200:
        first = first[:200] + "…"
    return PeerLost(f"rank {env.rank} of {env.world_size} lost contact with the other ranks: "
                    f"a peer exited or did not answer within the timeout of {timeout:g} s "
                    f"(--dist-timeout); the last checkpoint can be resumed with --resume "
                    f"[{first}]")


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands: ``rank`` of ``world_size`` processes, ``local_rank`` on its
    machine, and the ``backend`` of the process group (``None`` for a single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs, shows progress and writes checkpoints."""
        return self.rank == 0


def _int_var(env: Mapping[str, str], name: str, minimum: int, default: int | None) -> int:
    raw = env.get(name)
    if raw is None:
        if default is None:
            raise ValueError(f"`{name}` must be set in the environment for a distributed run "
                             f"(torchrun sets it)")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {raw!r}")
    return value


def env_from(env: Mapping[str, str] | None = None) -> DistEnv:
    """The rank, world size and local rank that ``torchrun`` put into ``env`` (default
    ``os.environ``), validated; a single process when ``WORLD_SIZE`` is absent or 1.

    A world of several processes also needs ``RANK`` < ``WORLD_SIZE`` and, unless torchrun's
    agent hosts the store, ``MASTER_ADDR`` and ``MASTER_PORT``.
    """
    env = os.environ if env is None else env
    world_size = _int_var(env, "WORLD_SIZE", 1, 1)
    if world_size == 1:
        return DistEnv()
    rank = _int_var(env, "RANK", 0, None)
    if rank >= world_size:
        raise ValueError(f"`RANK` must lie in 0..{world_size - 1} (WORLD_SIZE = {world_size}), "
                         f"got {rank}")
    local_rank = _int_var(env, "LOCAL_RANK", 0, rank)
    if not env.get("MASTER_ADDR"):
        raise ValueError("`MASTER_ADDR` must be set in the environment for a distributed run "
                         "(torchrun sets it)")
    port = _int_var(env, "MASTER_PORT", 1, None)
    if port > 65535:
        raise ValueError(f"`MASTER_PORT` must be a TCP port in 1..65535, got {port}")
    return DistEnv(rank=rank, world_size=world_size, local_rank=local_rank)


def backend_for(device: str | torch.device) -> str:
    """The collective backend of a device type: ``"nccl"`` on CUDA, ``"gloo"`` elsewhere."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"`device` must be a torch device such as 'cpu' or 'cuda', "
                         f"got {device!r}") from None
    return "nccl" if dev.type == "cuda" else "gloo"


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world() -> DistEnv:
    """This process's place in the initialised process group (rank 0 of 1 outside one)."""
    if not is_distributed():
        return DistEnv()
    local = _int_var(os.environ, "LOCAL_RANK", 0, dist.get_rank())
    return DistEnv(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local,
                   backend=str(dist.get_backend()))


def is_main_process() -> bool:
    """Rank 0 (always true for a single process)."""
    return world().is_main


def init_distributed(device: str | torch.device = "auto",
                     timeout: float = DEFAULT_TIMEOUT) -> DistEnv:
    """Join the process group described by torchrun's environment variables.

    ``device`` picks the backend (``"auto"``: CUDA when available); on CUDA the process is bound
    to ``cuda:LOCAL_RANK``. ``timeout`` (seconds) bounds the rendezvous and every later
    collective; a rank that cannot meet the others in time raises :class:`RendezvousTimeout`
    naming it. Without ``WORLD_SIZE`` > 1 nothing happens and a single-process
    :class:`DistEnv` is returned; an already initialised group is reused.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0 \
            or timeout == float("inf"):
        raise ValueError(f"`timeout` must be a positive number of seconds, got {timeout!r}")
    if is_distributed():
        return world()
    env = env_from()
    if env.world_size == 1:
        return env
    if not dist.is_available():
        raise RuntimeError("torch.distributed is not available in this build of PyTorch")
    spec = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    backend = backend_for(spec)
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise ValueError(f"`device` is {str(spec)!r} but CUDA is not available here")
        index = torch.device(spec).index
        torch.cuda.set_device(env.local_rank if index is None else index)
    try:
        dist.init_process_group(backend, init_method="env://", rank=env.rank,
                                world_size=env.world_size,
                                timeout=datetime.timedelta(seconds=timeout))
    except (dist.DistStoreError, dist.DistNetworkError) as err:
        where = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
        raise RendezvousTimeout(
            f"rank {env.rank} of {env.world_size} could not meet the other ranks at the "
            f"rendezvous {where} within the timeout of {timeout:g} s: are all "
            f"{env.world_size} processes started and can they reach {where}? ({err})"
        ) from None
    return DistEnv(rank=env.rank, world_size=env.world_size, local_rank=env.local_rank,
                   backend=backend)


def shutdown_distributed() -> None:
    """Leave and destroy the process group, if one is initialised."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def distributed_session(device: str | torch.device = "auto",
                        timeout: float = DEFAULT_TIMEOUT) -> Iterator[DistEnv]:
    """``with distributed_session() as env:`` joins the group (:func:`init_distributed`) and
    destroys it on exit if it was created here. In a world of several ranks, the errors of a
    collective whose peer is gone (or that timed out) leave the block as :class:`PeerLost`, one
    line naming this rank and the timeout."""
    owned = not (dist.is_available() and dist.is_initialized())
    env = init_distributed(device, timeout)
    try:
        yield env
    except Exception as err:
        lost = peer_lost_error(err, env, timeout) if env.world_size > 1 else None
        if lost is None:
            raise
        raise lost from None
    finally:
        if owned:
            shutdown_distributed()


def barrier() -> None:
    """Wait until every rank arrives here (no-op for a single process)."""
    if is_distributed():
        dist.barrier()


def mean_over_ranks_(tensor: torch.Tensor) -> torch.Tensor:
    """Replace ``tensor`` in place by its mean over the ranks (unchanged for one process)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor.div_(dist.get_world_size())
    return tensor


def shard(batch_size: int, env: DistEnv | None = None) -> slice:
    """The contiguous slice of a global batch of ``batch_size`` that rank ``env.rank`` of
    ``env.world_size`` trains on; the batch must split evenly."""
    env = world() if env is None else env
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be an integer >= 1, got {batch_size!r}")
    if batch_size % env.world_size:
        raise ValueError(f"`batch_size` = {batch_size} (the global batch) must be divisible by "
                         f"the world size {env.world_size}")
    per_rank = batch_size // env.world_size
    return slice(env.rank * per_rank, (env.rank + 1) * per_rank)


def collective_device() -> torch.device:
    """The device collectives of the process group run on: this process's CUDA device under
    NCCL, the CPU otherwise."""
    if is_distributed() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_bytes(data: bytes | None, src: int = 0) -> bytes | None:
    """``data`` of rank ``src`` on every rank (``None`` passes as ``None``; the other ranks'
    ``data`` is ignored), sent as a uint8 tensor. For one process ``data`` is returned."""
    if data is not None and not isinstance(data, bytes | bytearray | memoryview):
        raise ValueError(f"`data` must be bytes or None, got {type(data).__name__}")
    if not is_distributed():
        return None if data is None else bytes(data)
    device = collective_device()
    mine = dist.get_rank() == src
    size = torch.tensor([len(data) if mine and data is not None else -1], dtype=torch.int64,
                        device=device)
    dist.broadcast(size, src)
    n = int(size.item())
    if n < 0:
        return None
    if n == 0:
        return b""
    buf = (torch.frombuffer(bytearray(data), dtype=torch.uint8).to(device) if mine
           else torch.empty(n, dtype=torch.uint8, device=device))
    dist.broadcast(buf, src)
    return buf.cpu().numpy().tobytes()
