"""Train the digits feature network behind ``frechet_digits_distance`` (metrics.py).

Run ``python -m kexue_nb.diffusion.train_features`` (a few seconds on a CPU). It trains
:class:`~kexue_nb.diffusion.metrics.DigitsFeatureNet` on a seeded 80 % split of scikit-learn's
bundled digits (no download) with Adam and light random shifts, reports the held-out accuracy,
and writes ``kexue_nb/diffusion/digits_features.safetensors``. Everything is seeded through
explicit generators (no global RNG state) and the command line trains on one thread, so a rerun
on the same machine writes the same bytes (held-out accuracy 0.975 with the defaults).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .._validation import integer, positive_float
from .data import load_digits
from .metrics import FEATURES_PATH, DigitsFeatureNet

__all__ = ["HELD_OUT_SEED", "init_parameters", "main", "split_digits", "train_feature_net"]

# The seed of the shipped weights (see their recipe metadata); split_digits with it gives
# their held-out set.
HELD_OUT_SEED = 0


def init_parameters(net: torch.nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default initialisation, drawn from ``generator``: weights and biases
    U(−1/√fan_in, 1/√fan_in) for every convolution and linear layer."""
    if not isinstance(net, torch.nn.Module):
        raise TypeError(f"`net` must be a torch.nn.Module, got {type(net).__name__}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"`generator` must be a torch.Generator, got {type(generator).__name__}")
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.Conv2d | torch.nn.Linear):
                fan_in = module.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in)
                module.weight.uniform_(-bound, bound, generator=generator)
                if module.bias is not None:
                    module.bias.uniform_(-bound, bound, generator=generator)


def split_digits(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random split of ``n`` image indices: (the 80 % trained on, the held-out 20 %)."""
    n = integer(n, "n", 2, 10**9)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"`generator` must be a torch.Generator, got {type(generator).__name__}")
    perm = torch.randperm(n, generator=generator)
    n_train = int(0.8 * n)
    return perm[:n_train], perm[n_train:]


def _shift(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by −1, 0 or 1 pixel in each direction, padding with the background −1."""
    padded = F.pad(x, (1, 1, 1, 1), value=-1.0)
    dx = torch.randint(0, 3, (x.shape[0],), generator=generator)
    dy = torch.randint(0, 3, (x.shape[0],), generator=generator)
    rows = (dy[:, None] + torch.arange(8)[None, :])  # (N, 8)
    cols = (dx[:, None] + torch.arange(8)[None, :])
    idx_n = torch.arange(x.shape[0])[:, None, None]
    return padded[idx_n, 0, rows[:, :, None], cols[:, None, :]][:, None]


def train_feature_net(
    seed: int = 0, epochs: int = 20, batch_size: int = 64, lr: float = 2e-3, progress: bool = True
) -> tuple[DigitsFeatureNet, float]:
    """Train the network; returns it (eval mode) and its accuracy on the held-out 20 %.

    ``seed`` in 0..2**63 − 1, ``epochs`` in 1..1000, ``batch_size`` in 1..100000, ``lr`` a positive
    finite number."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= 1000:
        raise ValueError(f"`epochs` must be a positive integer <= 1000, got {epochs!r}")
    seed = integer(seed, "seed", 0, 2**63 - 1)
    batch_size = integer(batch_size, "batch_size", 1, 100_000)
    if isinstance(lr, str | bytes):
        raise ValueError(f"`lr` must be a positive finite number, got {lr!r}")
    positive_float(lr, "lr")
    g = torch.Generator().manual_seed(seed)
    x, y = load_digits()
    tr, te = split_digits(x.shape[0], g)
    n_train = tr.numel()
    net = DigitsFeatureNet()
    init_parameters(net, g)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    net.train()
    for _ in tqdm(range(epochs), desc="features", disable=not progress):
        order = tr[torch.randperm(n_train, generator=g)]
        for i in range(0, n_train, batch_size):
            idx = order[i:i + batch_size]
            loss = F.cross_entropy(net(_shift(x[idx], g)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
    net.eval()
    with torch.inference_mode():
        acc = float((net(x[te]).argmax(1) == y[te]).double().mean())
    return net, acc


def main(argv: list[str] | None = None) -> None:
    """Command line: train and save the weights (safetensors)."""
    from safetensors.torch import save_file

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=FEATURES_PATH)
    args = parser.parse_args(argv)
    # one thread: multi-threaded reductions sum in a varying order, which changes the weights in
    # the 6th digit; with one thread a rerun on the same machine writes the same bytes
    torch.set_num_threads(1)
    try:
        net, acc = train_feature_net(seed=args.seed, epochs=args.epochs)
    except ValueError as err:  # a one-line usage error, not a traceback
        parser.error(str(err))
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    # a single metadata entry (safetensors does not keep the order of several)
    recipe = f"seed={args.seed} epochs={args.epochs} heldout_accuracy={acc:.4f}"
    save_file(state, str(args.out), metadata={"recipe": recipe})
    print(f"held-out accuracy {acc:.4f}; wrote {args.out}")


if __name__ == "__main__":
    main()
