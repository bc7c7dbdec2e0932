"""Benchmark of kexue_nb.diffusion's Trainer: overhead, a diffusers peer, time to quality, GPU.

    python benchmarks/trainer.py                       # everything, 60 s budgets, this device
    python benchmarks/trainer.py --budget 30 --only peer
    python benchmarks/trainer.py --device cuda --only gpu

Sections (each prints its rows; one table at the end):

overhead  Trainer vs a bare hand-written loop doing the same work (same MLP, batch, AdamW,
          warmup + cosine LR, gradient clipping, EMA), on 2-D moons, interleaved in rounds so
          that both see the same machine load. Target: Trainer >= 0.95x the loop's steps/s.
peer      8x8 digits, equal wall-clock budget: Trainer + UNet8 against the pattern of diffusers'
          unconditional training example (UNet2DModel + DDPMScheduler.add_noise, MSE on the
          noise, AdamW, get_cosine_schedule_with_warmup, DataLoader, gradient clipping). Both
          are sampled with the same DDIM sampler and number of steps; quality is the Fréchet
          distance in the digits-classifier features against real digits. Target: ahead on
          steps/s and on the distance.
ttq       time to quality: a 2-D DDPM on moons, trained in chunks; after each chunk DDPM
          ancestral samples are compared with fresh data by the energy distance. Target: within
          2x the noise floor (real vs real at the same n) in <= 60 s of training on CPU.
gpu       on CUDA only: Trainer steps/s with fp32 eager against bf16 autocast + torch.compile.

Timings depend on the machine and its load; the script prints the device, thread count and
torch version with the table.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from kexue_nb.diffusion.data import load_digits, moons
from kexue_nb.diffusion.metrics import (
    energy_distance,
    frechet_digits_distance,
    noise_floor,
)
from kexue_nb.diffusion.models import MLPDenoiser, UNet8, count_parameters
from kexue_nb.diffusion.samplers import ddim_sample, ddpm_sample
from kexue_nb.diffusion.schedule import Schedule
from kexue_nb.diffusion.trainer import (
    TrainConfig,
    Trainer,
    lr_factor,
    resolve_device,
)


@dataclass
class Row:
    section: str
    name: str
    value: str
    target: str = ""
    verdict: str = ""


ROWS: list[Row] = []


def report(section: str, name: str, value: str, target: str = "", ok: bool | None = None) -> None:
    verdict = "" if ok is None else ("met" if ok else "MISSED")
    ROWS.append(Row(section, name, value, target, verdict))
    print(f"  [{section}] {name}: {value}" + (f"  (target {target}: {verdict})" if target else ""),
          flush=True)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------------------
# overhead: Trainer vs the same algorithm written by hand
class BareLoop:
    """The Trainer's algorithm in the fewest lines: index batches, AdamW, warmup + cosine LR,
    clipping, EMA. ``features=False`` drops LR schedule, clipping and EMA."""

    def __init__(self, model, schedule, x, cfg: TrainConfig, device, features: bool = True):
        self.model, self.x, self.cfg, self.features = model.to(device), x.to(device), cfg, features
        self.T, self.device = schedule.T, device
        self.ab = schedule.alpha_bar.to(device, torch.float32)
        self.bb = schedule.beta_bar.to(device, torch.float32)
        self.g = torch.Generator(device=device).manual_seed(cfg.seed)
        self.opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr,
                                     fused=True if device.type == "cuda" else None)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: lr_factor(s, cfg.warmup_steps, cfg.steps))
        self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay),
                                 use_buffers=True)
        self.ema.n_averaged = self.ema.n_averaged.cpu()

    def run(self, steps: int) -> None:
        B, g, dev = self.cfg.batch_size, self.g, self.device
        for _ in range(steps):
            x0 = self.x[torch.randint(self.x.shape[0], (B,), generator=g, device=dev)]
            t = torch.randint(1, self.T + 1, (B,), generator=g, device=dev)
            eps = torch.randn(x0.shape, generator=g, device=dev)
            x_t = self.ab[t][:, None] * x0 + self.bb[t][:, None] * eps
            loss = F.mse_loss(self.model(x_t, t), eps)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if self.features:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip,
                                               foreach=True)
            self.opt.step()
            if self.features:
                self.sched.step()
                self.ema.update_parameters(self.model)


def bench_overhead(args, device: torch.device) -> None:
    print("overhead: Trainer vs a hand-written loop (MLP 256x4, batch 512, moons)", flush=True)
    x = moons(20000, seeded(0))
    schedule = Schedule.linear(1000)
    rounds, per_round = args.overhead_rounds, args.overhead_steps
    cfg = TrainConfig(steps=rounds * per_round + 20, batch_size=512, lr=1e-3, warmup_steps=50,
                      device=str(device), progress=False, log_every=100)
    base = MLPDenoiser(hidden=256, depth=4, T=1000, generator=seeded(1))
    trainer = Trainer(copy.deepcopy(base), schedule, x, config=cfg)
    bare = BareLoop(copy.deepcopy(base), schedule, x, cfg, device)
    minimal = BareLoop(copy.deepcopy(base), schedule, x, cfg, device, features=False)
    trainer.train(stop_at=10)           # warm-up (allocator, first calls), not timed
    bare.run(10)
    minimal.run(10)
    times = {"trainer": 0.0, "bare": 0.0, "minimal": 0.0}
    for r in range(rounds):
        for name in (["trainer", "bare", "minimal"] if r % 2 == 0
                     else ["minimal", "bare", "trainer"]):
            sync(device)
            t0 = time.perf_counter()
            if name == "trainer":
                trainer.train(stop_at=10 + (r + 1) * per_round)
            elif name == "bare":
                bare.run(per_round)
            else:
                minimal.run(per_round)
            sync(device)
            times[name] += time.perf_counter() - t0
    steps = rounds * per_round
    rate = {k: steps / v for k, v in times.items()}
    report("overhead", "Trainer steps/s", f"{rate['trainer']:.1f}")
    report("overhead", "bare loop, same work, steps/s", f"{rate['bare']:.1f}")
    report("overhead", "bare loop without LR/clip/EMA, steps/s", f"{rate['minimal']:.1f}")
    ratio = rate["trainer"] / rate["bare"]
    report("overhead", "Trainer / bare loop (same work)", f"{ratio:.3f}x", ">= 0.95x",
           ratio >= 0.95)
    report("overhead", "Trainer / bare loop without LR/clip/EMA",
           f"{rate['trainer'] / rate['minimal']:.3f}x")


# ------------------------------------------------------------------------------------------
# peer: diffusers' training-example pattern on 8x8 digits
def diffusers_unet():
    from diffusers import UNet2DModel

    return UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
                       block_out_channels=(32, 64), norm_num_groups=8,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"))


class PeerLoop:
    """diffusers' examples/unconditional_image_generation/train_unconditional.py, reduced to its
    training step: DataLoader batches, DDPMScheduler.add_noise at timesteps 0..T-1, MSE on the
    noise, AdamW, get_cosine_schedule_with_warmup, clip_grad_norm_ 1.0."""

    def __init__(self, x, batch_size, lr, warmup, total, device, seed):
        from diffusers import DDPMScheduler
        from diffusers.optimization import get_cosine_schedule_with_warmup

        self.model = diffusers_unet().to(device).train()  # initialised from torch's global RNG
        self.noise_scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=lr, betas=(0.95, 0.999),
                                     weight_decay=1e-6, eps=1e-8)
        self.lr_sched = get_cosine_schedule_with_warmup(self.opt, warmup, total)
        self.g = seeded(seed)
        self.loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(x), batch_size=batch_size, shuffle=True,
            drop_last=True, generator=self.g)
        self.batches = iter(self.loader)
        self.device = device

    def next_batch(self):
        try:
            (b,) = next(self.batches)
        except StopIteration:
            self.batches = iter(self.loader)
            (b,) = next(self.batches)
        return b.to(self.device)

    def run(self, steps: int) -> None:
        for _ in range(steps):
            clean = self.next_batch()
            noise = torch.randn(clean.shape, generator=self.g).to(self.device)
            timesteps = torch.randint(0, 1000, (clean.shape[0],), generator=self.g).to(self.device)
            noisy = self.noise_scheduler.add_noise(clean, noise, timesteps)
            pred = self.model(noisy, timesteps, return_dict=False)[0]
            loss = F.mse_loss(pred.float(), noise.float())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.opt.step()
            self.lr_sched.step()
            self.opt.zero_grad()


class PeerEps(torch.nn.Module):
    """The diffusers UNet as an ε-model of our samplers: our t = 1..T is its timestep t − 1."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet
        self.num_classes = 0

    def forward(self, x_t, t, y=None):
        return self.unet(x_t, t - 1, return_dict=False)[0]


def rate_probe(fn, seconds: float) -> float:
    """Steps per second of ``fn(1)`` over about ``seconds`` (after two untimed calls)."""
    fn(2)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn(1)
        n += 1
    return n / (time.perf_counter() - t0)


def sample_digits(model, schedule, n, steps, device, seed):
    model.eval()
    out = ddim_sample(model, schedule, (n, 1, 8, 8), steps=steps, generator=torch.Generator(
        device=device).manual_seed(seed), device=device, progress=False)
    return out.x.float().clamp(-1, 1).cpu()


def bench_peer(args, device: torch.device) -> None:
    print(f"peer: digits, {args.budget:.0f} s each, UNet8 + Trainer vs diffusers UNet2DModel "
          f"+ DDPMScheduler", flush=True)
    x, _ = load_digits()
    schedule = Schedule.linear(1000)
    batch, lr, warmup = 128, args.peer_lr, 50

    ours_model = UNet8(base=32, mult=args.unet_mult, T=1000, generator=seeded(1))
    probe = Trainer(copy.deepcopy(ours_model), schedule, x, config=TrainConfig(
        steps=10 ** 6, batch_size=batch, device=str(device), progress=False))
    ours_rate = rate_probe(lambda k: probe.train(stop_at=probe.step + k), args.probe)
    peer_probe = PeerLoop(x, batch, lr, warmup, 10 ** 6, device, seed=0)
    peer_rate = rate_probe(peer_probe.run, args.probe)
    ours_total = max(warmup + 10, int(ours_rate * args.budget))
    peer_total = max(warmup + 10, int(peer_rate * args.budget))
    print(f"  probe: ours {ours_rate:.2f} steps/s -> {ours_total} steps; diffusers "
          f"{peer_rate:.2f} steps/s -> {peer_total} steps", flush=True)

    # EMA horizon a tenth of the run unless given
    ema_decay = args.ema_decay if args.ema_decay is not None else min(0.999, 1 - 10 / ours_total)
    trainer = Trainer(ours_model, schedule, x, config=TrainConfig(
        steps=ours_total, batch_size=batch, lr=lr, warmup_steps=warmup, grad_clip=1.0,
        ema_decay=ema_decay, label_dropout=0.0, device=str(device), progress=False,
        log_every=max(1, ours_total // 10)))
    peer = PeerLoop(x, batch, lr, warmup, peer_total, device, seed=0)
    # interleave ten chunks each so both see the same machine load
    times = {"ours": 0.0, "peer": 0.0}
    for k in range(1, 11):
        sync(device)
        t0 = time.perf_counter()
        trainer.train(stop_at=ours_total * k // 10)
        sync(device)
        t1 = time.perf_counter()
        peer.run(peer_total * k // 10 - peer_total * (k - 1) // 10)
        sync(device)
        times["ours"] += t1 - t0
        times["peer"] += time.perf_counter() - t1
    ours_sps, peer_sps = ours_total / times["ours"], peer_total / times["peer"]

    real = x[torch.randperm(x.shape[0], generator=seeded(7))[: min(args.samples, len(x))]]
    floor = noise_floor(frechet_digits_distance, x, n=min(args.samples, len(x) // 2),
                        generator=seeded(8), repeats=3)
    fd_ema = frechet_digits_distance(sample_digits(
        trainer.ema_model, schedule, args.samples, args.ddim_steps, device, 0), real)
    fd_raw = frechet_digits_distance(sample_digits(
        trainer.model, schedule, args.samples, args.ddim_steps, device, 0), real)
    fd_peer = frechet_digits_distance(sample_digits(
        PeerEps(peer.model), schedule, args.samples, args.ddim_steps, device, 0), real)

    report("peer", "parameters ours / diffusers",
           f"{count_parameters(trainer.model):,} / {count_parameters(peer.model):,}")
    report("peer", "training seconds ours / diffusers",
           f"{times['ours']:.1f} / {times['peer']:.1f}")
    report("peer", "steps ours / diffusers", f"{ours_total} / {peer_total}")
    report("peer", "steps/s ours / diffusers", f"{ours_sps:.2f} / {peer_sps:.2f} "
           f"({ours_sps / peer_sps:.2f}x)", "ours ahead", ours_sps > peer_sps)
    report("peer", f"Frechet distance, {args.samples} DDIM-{args.ddim_steps} samples: ours (EMA "
           f"{ema_decay:.3f}) / diffusers", f"{fd_ema:.2f} / {fd_peer:.2f}", "ours ahead",
           fd_ema < fd_peer)
    report("peer", "Frechet distance of our raw (non-EMA) weights", f"{fd_raw:.2f}")
    report("peer", f"Frechet noise floor (real vs real, n={min(args.samples, len(x) // 2)})",
           f"{floor.mean:.2f} +- {floor.std:.2f}")


# ------------------------------------------------------------------------------------------
# time to quality on 2-D data
def bench_ttq(args, device: torch.device) -> None:
    print(f"ttq: 2-D DDPM on moons, energy distance vs 2x noise floor within "
          f"{args.ttq_budget:.0f} s", flush=True)
    n = 2000
    x = moons(50000, seeded(0))
    reference = moons(n, seeded(1))
    floor = noise_floor(energy_distance, moons(20 * n, seeded(2)), n=n, generator=seeded(3),
                        repeats=5)
    schedule = Schedule.linear(1000)
    model = MLPDenoiser(hidden=128, depth=3, T=1000, generator=seeded(4))
    probe = Trainer(copy.deepcopy(model), schedule, x, config=TrainConfig(
        steps=10 ** 6, batch_size=512, device=str(device), progress=False))
    rate = rate_probe(lambda k: probe.train(stop_at=probe.step + k), args.probe)
    total = max(200, int(rate * args.ttq_budget))
    trainer = Trainer(model, schedule, x, config=TrainConfig(
        steps=total, batch_size=512, lr=3e-3, warmup_steps=100, ema_decay=0.995,
        device=str(device), progress=False, log_every=max(1, total // 10)))
    train_time, reached, ed = 0.0, None, math.inf
    for k in range(1, args.ttq_checks + 1):
        sync(device)
        t0 = time.perf_counter()
        trainer.train(stop_at=total * k // args.ttq_checks)
        sync(device)
        train_time += time.perf_counter() - t0
        trainer.ema_model.eval()
        out = ddpm_sample(trainer.ema_model, schedule, (n, 2), generator=torch.Generator(
            device=device).manual_seed(k), device=device, progress=False)
        ed = energy_distance(out.x.float().cpu(), reference)
        print(f"    after {trainer.step} steps, {train_time:.1f} s: energy distance "
              f"{ed:.5f} (2x floor {2 * floor.mean:.5f})", flush=True)
        if reached is None and ed <= 2 * floor.mean:
            reached = train_time
    report("ttq", f"noise floor of the energy distance (n={n})",
           f"{floor.mean:.5f} +- {floor.std:.5f}")
    report("ttq", "final energy distance (EMA, DDPM ancestral)", f"{ed:.5f}")
    report("ttq", "training seconds to reach 2x floor",
           "not reached" if reached is None else f"{reached:.1f}", "<= 60 s",
           reached is not None and reached <= 60)


# ------------------------------------------------------------------------------------------
# GPU: fp32 eager vs bf16 + compile
def bench_gpu(args, device: torch.device) -> None:
    if device.type != "cuda":
        report("gpu", "CUDA steps/s fp32 eager vs bf16 + compile", "not measured (no CUDA device)")
        return
    print("gpu: Trainer steps/s, fp32 eager vs bf16 autocast + torch.compile", flush=True)
    x_digits, _ = load_digits()
    x_moons = moons(50000, seeded(0))
    schedule = Schedule.linear(1000)
    cases = [("UNet8 digits, batch 256", lambda: UNet8(T=1000, generator=seeded(1)), x_digits,
              256),
             ("MLP 256x4 moons, batch 4096",
              lambda: MLPDenoiser(hidden=256, depth=4, T=1000, generator=seeded(1)), x_moons,
              4096)]
    for name, make, x, batch in cases:
        rates = {}
        for label, precision, compiled in (("fp32 eager", "fp32", False),
                                           ("bf16 + compile", "bf16", True)):
            trainer = Trainer(make(), schedule, x, config=TrainConfig(
                steps=10 ** 6, batch_size=batch, precision=precision, compile=compiled,
                device=str(device), progress=False, log_every=10 ** 6))
            trainer.train(stop_at=30)   # warm-up and compilation
            sync(device)
            t0 = time.perf_counter()
            trainer.train(stop_at=30 + args.gpu_steps)
            sync(device)
            rates[label] = args.gpu_steps / (time.perf_counter() - t0)
        report("gpu", f"{name}: steps/s fp32 eager / bf16 + compile",
               f"{rates['fp32 eager']:.0f} / {rates['bf16 + compile']:.0f} "
               f"({rates['bf16 + compile'] / rates['fp32 eager']:.2f}x)")


# ------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--only", default="overhead,peer,ttq,gpu",
                        help="comma-separated sections to run")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--budget", type=float, default=60.0,
                        help="peer: training seconds for each contender")
    parser.add_argument("--ttq-budget", type=float, default=60.0,
                        help="ttq: planned training seconds")
    parser.add_argument("--ttq-checks", type=int, default=4, help="ttq: evaluations")
    parser.add_argument("--probe", type=float, default=4.0,
                        help="seconds of each throughput probe that sizes the LR schedules")
    parser.add_argument("--samples", type=int, default=1000, help="peer: samples per model")
    parser.add_argument("--ddim-steps", type=int, default=50, help="peer: DDIM steps")
    parser.add_argument("--peer-lr", type=float, default=1e-3, help="peer: LR of both loops")
    parser.add_argument("--ema-decay", type=float, default=None,
                        help="peer: our EMA decay (default 1 - 10/steps, at most 0.999)")
    parser.add_argument("--unet-mult", type=int, default=3,
                        help="peer: UNet8 width at 4x4 (4 gives 0.79 M parameters)")
    parser.add_argument("--overhead-rounds", type=int, default=6)
    parser.add_argument("--overhead-steps", type=int, default=40)
    parser.add_argument("--gpu-steps", type=int, default=300)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    known = {"overhead": bench_overhead, "peer": bench_peer, "ttq": bench_ttq, "gpu": bench_gpu}
    unknown = [s for s in sections if s not in known]
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {sorted(known)}")
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads",
          flush=True)
    for s in sections:
        known[s](args, device)
    width = max(len(r.name) for r in ROWS) if ROWS else 10
    print("\n| section | measure | value | target | verdict |\n|---|---|---|---|---|")
    for r in ROWS:
        print(f"| {r.section} | {r.name:<{width}} | {r.value} | {r.target} | {r.verdict} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
