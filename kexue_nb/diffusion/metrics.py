"""Two-sample distances for judging generated samples, with their noise floors.

* :func:`energy_distance`: Székely & Rizzo's energy distance (V-statistic, square-root form, as
  ``scipy.stats.energy_distance``): D(X, Y) = √(2E‖X − Y‖ − E‖X − X'‖ − E‖Y − Y'‖).
* :func:`sliced_wasserstein`: the average over random unit directions θ of the 1-D Wasserstein
  distance of the projections θ·X, θ·Y (order p = 1 or 2).
* :func:`frechet_digits_distance`: the Fréchet distance ‖μ_x − μ_y‖² + Tr(Σ_x + Σ_y −
  2(Σ_x^{1/2} Σ_y Σ_x^{1/2})^{1/2}) (Heusel et al. 2017, the FID formula) between Gaussians fitted
  to the penultimate features of a small 8×8-digits classifier shipped with the package
  (``digits_features.safetensors``, trained by ``python -m kexue_nb.diffusion.train_features``).
* :func:`noise_floor`: the same distance between two disjoint real subsets of the sample size
  used, the level below which a generated set cannot be told from real data.
* :func:`gaussian_fit_sample`: draws from the Gaussian with the data's mean and covariance, the
  baseline every sample-quality test of the book must reject.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .._validation import _is_complex, real_array

__all__ = [
    "DigitsFeatureNet",
    "FEATURES_PATH",
    "NoiseFloor",
    "digits_features",
    "energy_distance",
    "frechet_digits_distance",
    "frechet_distance",
    "gaussian_fit_sample",
    "load_feature_net",
    "noise_floor",
    "sliced_wasserstein",
]

#: The shipped weights of the digits feature network.
FEATURES_PATH = Path(__file__).with_name("digits_features.safetensors")

ArrayLike = torch.Tensor | np.ndarray

#: Bound on (n + m)²·d, the work of :func:`energy_distance` (a few seconds at the limit).
MAX_ENERGY_WORK = 4 * 10**9
#: Bound on n_projections·(n + m), the projected values :func:`sliced_wasserstein` sorts.
MAX_PROJECTED = 10**8
#: Largest dimension :func:`frechet_distance` accepts (three d×d eigendecompositions).
MAX_FRECHET_DIM = 2048
#: Most images :func:`digits_features` takes at once.
MAX_DIGITS = 10**6


def _as_tensor(x: object, name: str) -> torch.Tensor:
    """``x`` (array-like or tensor) as a real tensor; complex and non-numeric input refused."""
    try:
        complex_input = _is_complex(x)
    except (TypeError, ValueError) as exc:  # ragged nesting
        raise ValueError(f"`{name}` must be a real array or tensor, got {x!r}") from exc
    if x is None or isinstance(x, bool | str) or complex_input:
        raise ValueError(f"`{name}` must be a real array or tensor, got "
                         f"{'complex values' if complex_input else repr(x)}")
    try:
        t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x.detach())
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"`{name}` must be a real array or tensor, got {x!r}") from exc
    if t.dtype == torch.bool or t.is_complex():
        raise ValueError(f"`{name}` must be a real array or tensor, got {t.dtype}")
    return t


def _as_points(x: ArrayLike, name: str) -> torch.Tensor:
    """A float64 CPU tensor of shape (n, d); a 1-D input is n points in one dimension."""
    t = _as_tensor(x, name)
    t = t.to("cpu", torch.float64)
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2 or t.shape[0] < 1:
        raise ValueError(
            f"`{name}` must have shape (n,) or (n, d) with n >= 1, got {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"`{name}` must be finite")
    return t


def _pair(x: ArrayLike, y: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _as_points(x, "x"), _as_points(y, "y")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"`y` must have x's dimension {a.shape[1]}, got {b.shape[1]}")
    return a, b


def _mean_distance(a: torch.Tensor, b: torch.Tensor, block: int = 2048) -> float:
    """(1/(n m)) Σ_ij ‖a_i − b_j‖, in row blocks to bound the memory."""
    total = 0.0
    for i in range(0, a.shape[0], block):
        total += float(torch.cdist(a[i:i + block], b,
                                  compute_mode="donot_use_mm_for_euclid_dist").sum())
    return total / (a.shape[0] * b.shape[0])


def energy_distance(x: ArrayLike, y: ArrayLike) -> float:
    """Energy distance D = √(2E‖X − Y‖ − E‖X − X'‖ − E‖Y − Y'‖) of two samples (n, d), (m, d).

    Székely & Rizzo (2013): the V-statistic with all pairs (i = j included), the convention of
    ``scipy.stats.energy_distance`` (which it equals in 1-D). D = 0 iff the empirical laws agree.
    """
    a, b = _pair(x, y)
    work = (a.shape[0] + b.shape[0]) ** 2 * a.shape[1]
    if work > MAX_ENERGY_WORK:
        raise ValueError(f"`x` and `y` are too large: (n + m)²·d = {work} exceeds the limit "
                         f"{MAX_ENERGY_WORK} (e.g. at most {int((MAX_ENERGY_WORK / 2) ** 0.5) // 2}"
                         " points each in 2-D); subsample them")
    d2 = 2 * _mean_distance(a, b) - _mean_distance(a, a) - _mean_distance(b, b)
    return math.sqrt(max(d2, 0.0))


def _wasserstein_1d(u: torch.Tensor, v: torch.Tensor, p: int) -> torch.Tensor:
    """W_p^p between the empirical laws of the rows of u (P, n) and v (P, m), row by row:
    ∫_0^1 |F^{-1}(q) − G^{-1}(q)|^p dq with piecewise-constant quantile functions."""
    n, m = u.shape[1], v.shape[1]
    us, vs = torch.sort(u, dim=1).values, torch.sort(v, dim=1).values
    levels = torch.cat([torch.arange(1, n + 1, dtype=torch.float64) / n,
                        torch.arange(1, m + 1, dtype=torch.float64) / m]).unique()  # sorted
    widths = torch.diff(levels, prepend=torch.zeros(1, dtype=torch.float64))
    mid = levels - widths / 2
    iu = torch.clamp(torch.ceil(mid * n).long() - 1, 0, n - 1)
    iv = torch.clamp(torch.ceil(mid * m).long() - 1, 0, m - 1)
    return ((us[:, iu] - vs[:, iv]).abs() ** p * widths).sum(1)


def sliced_wasserstein(
    x: ArrayLike,
    y: ArrayLike,
    n_projections: int = 256,
    generator: torch.Generator | None = None,
    p: int = 1,
) -> float:
    """Sliced Wasserstein distance (E_θ W_p^p(θ·X, θ·Y))^{1/p}, θ uniform on the unit sphere.

    The expectation is a Monte Carlo average over ``n_projections`` directions drawn with
    ``generator``. In 1-D there is one direction up to sign and the result is the exact W_p
    (``scipy.stats.wasserstein_distance`` for p = 1). Sample sizes may differ.
    """
    a, b = _pair(x, y)
    if isinstance(n_projections, bool) or not isinstance(n_projections, int) or n_projections < 1:
        raise ValueError(f"`n_projections` must be a positive integer, got {n_projections!r}")
    if isinstance(p, bool) or not isinstance(p, int | float | np.integer) or p not in (1, 2):
        raise ValueError(f"`p` must be 1 or 2, got {p!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"`generator` must be a torch.Generator or None, "
                        f"got {type(generator).__name__}")
    d = a.shape[1]
    projected = (1 if d == 1 else n_projections) * (a.shape[0] + b.shape[0])
    if projected > MAX_PROJECTED:
        raise ValueError(f"`n_projections` × (n + m) = {projected} exceeds the limit "
                         f"{MAX_PROJECTED}; use fewer projections or points")
    if d == 1:
        theta = torch.ones(1, 1, dtype=torch.float64)
    else:
        theta = torch.randn(n_projections, d, generator=generator, dtype=torch.float64)
        theta = theta / theta.norm(dim=1, keepdim=True)
    wp = _wasserstein_1d(theta @ a.T, theta @ b.T, p)
    return float(wp.mean() ** (1.0 / p))


# --------------------------------------------------------------------------------------
# Fréchet distance in the features of a small digits classifier
def frechet_distance(mu1: ArrayLike, cov1: ArrayLike, mu2: ArrayLike, cov2: ArrayLike) -> float:
    """Fréchet (2-Wasserstein²) distance of N(μ1, Σ1) and N(μ2, Σ2):
    ‖μ1 − μ2‖² + Tr Σ1 + Tr Σ2 − 2 Tr (Σ1^{1/2} Σ2 Σ1^{1/2})^{1/2} (Heusel et al. 2017).

    Matrix square roots by symmetric eigendecomposition (eigenvalues clipped at 0), float64;
    the result is clipped at 0 (round-off of near-singular covariances). The means must be
    finite 1-D vectors of one length d <= 2048, the covariances finite, symmetric and positive
    semidefinite (d, d) matrices (up to round-off); anything else is refused.
    """
    for name, value in (("mu1", mu1), ("cov1", cov1), ("mu2", mu2), ("cov2", cov2)):
        _as_tensor(value, name)  # complex, boolean, text and ragged input refused
        real_array(value.detach().cpu() if isinstance(value, torch.Tensor) else value, name,
                   finite=True)
    m1, m2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    c1, c2 = np.asarray(cov1, dtype=np.float64), np.asarray(cov2, dtype=np.float64)
    if m1.ndim != 1 or not 1 <= m1.shape[0] <= MAX_FRECHET_DIM:
        raise ValueError(f"`mu1` must be a vector of length 1..{MAX_FRECHET_DIM}, "
                         f"got shape {m1.shape}")
    d = m1.shape[0] if m1.ndim == 1 else -1
    for name, c in (("cov1", c1), ("cov2", c2)):
        if c.shape != (d, d):
            raise ValueError(f"`{name}` must have shape ({d}, {d}), got {c.shape}")
    if m1.ndim != 1 or m2.shape != m1.shape:
        raise ValueError(f"`mu2` must have mu1's shape {m1.shape}, got {m2.shape}")
    for name, c in (("cov1", c1), ("cov2", c2)):
        scale = float(np.abs(c).max())
        tol = 1e-8 * scale + 1e-300
        if float(np.abs(c - c.T).max()) > tol:
            raise ValueError(f"`{name}` must be a symmetric covariance matrix")
        low = float(np.linalg.eigvalsh((c + c.T) / 2).min())
        if low < -1e-8 * scale * d:
            raise ValueError(f"`{name}` must be positive semidefinite, got an eigenvalue {low:.4g}")

    def sqrt_psd(c: np.ndarray) -> np.ndarray:
        w, v = np.linalg.eigh((c + c.T) / 2)
        return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T

    s1 = sqrt_psd(c1)
    inner = np.linalg.eigvalsh(s1 @ ((c2 + c2.T) / 2) @ s1)
    tr_sqrt = float(np.sqrt(np.clip(inner, 0.0, None)).sum())
    diff = m1 - m2
    # the value is >= 0; near-singular covariances (e.g. dead ReLU features) leave round-off of
    # order √(machine ε)·Tr Σ from the square roots, which is clipped at 0
    return max(float(diff @ diff + np.trace(c1) + np.trace(c2) - 2.0 * tr_sqrt), 0.0)


class DigitsFeatureNet(nn.Module):
    """A small CNN for 8×8 digits in [−1, 1]: two 3×3 convolutions (16, 32 channels, ReLU), 2×2
    average pooling, a 64-unit ReLU layer (the features) and a 10-way linear head."""

    feature_dim = 64

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.AvgPool2d(2), nn.Flatten(),
            nn.Linear(32 * 4 * 4, self.feature_dim), nn.ReLU(),
        )
        self.head = nn.Linear(self.feature_dim, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features, (N, 64), of x (N, 1, 8, 8) in the network's dtype."""
        self._check_input(x)
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, (N, 10)."""
        self._check_input(x)
        return self.head(self.body(x))

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != (1, 8, 8):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"`x` must be a tensor of shape (N, 1, 8, 8), got {got}")
        weight = self.head.weight
        if x.dtype != weight.dtype or x.device != weight.device:
            raise TypeError(f"`x` must have the network's dtype and device ({weight.dtype}, "
                            f"{weight.device}), got {x.dtype} on {x.device}")


def load_feature_net(path: str | Path | None = None) -> DigitsFeatureNet:
    """The shipped feature network (CPU, eval mode), loaded with safetensors (no pickle)."""
    from safetensors.torch import load_file

    if path is not None and not isinstance(path, str | Path):
        raise TypeError(f"`path` must be a str or Path, got {type(path).__name__}")
    path = FEATURES_PATH if path is None else Path(path)
    if not path.is_file():
        raise ValueError(f"`path` must name the feature weights file, {path} does not exist "
                         "(run `python -m kexue_nb.diffusion.train_features`)")
    net = DigitsFeatureNet()
    try:
        state = load_file(str(path))
        expected = net.state_dict()
        for key, value in state.items():
            if key in expected and value.dtype != expected[key].dtype:
                raise ValueError(f"tensor {key!r} has dtype {value.dtype}, "
                                 f"expected {expected[key].dtype}")
        net.load_state_dict(state)
    except Exception as err:  # safetensors and load_state_dict raise their own error types
        raise ValueError(f"`path` must name a DigitsFeatureNet weights file; {path} does not "
                         f"load: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
                         ) from None
    return net.eval()


def _check_digits(x: ArrayLike, name: str) -> torch.Tensor:
    t = _as_tensor(x, name)
    t = t.to("cpu", torch.float32)
    if t.ndim == 3:
        t = t[:, None]
    if t.ndim != 4 or t.shape[1:] != (1, 8, 8) or not 2 <= t.shape[0] <= MAX_DIGITS:
        raise ValueError(f"`{name}` must be digits of shape (N, 1, 8, 8) with 2 <= N <= "
                         f"{MAX_DIGITS}, got {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"`{name}` must be finite (no NaN or ±inf)")
    return t


def _check_net(net: object) -> None:
    if not isinstance(net, DigitsFeatureNet):
        raise TypeError(f"`net` must be a DigitsFeatureNet or None, got {type(net).__name__}")


def digits_features(x: ArrayLike, net: DigitsFeatureNet | None = None) -> np.ndarray:
    """Penultimate features (N, 64) float64 of 8×8 digits in [−1, 1] (shape (N, 1, 8, 8))."""
    t = _check_digits(x, "x")
    if net is not None:
        _check_net(net)
    net = load_feature_net() if net is None else net
    with torch.inference_mode():
        return net.features(t).double().numpy()


def frechet_digits_distance(x: ArrayLike, y: ArrayLike,
                            net: DigitsFeatureNet | None = None) -> float:
    """Fréchet distance between Gaussians fitted (mean, unbiased covariance) to the digits
    features of x and y (each (N, 1, 8, 8) in [−1, 1]); an FID for 8×8 digits."""
    if net is not None:
        _check_net(net)
    net = load_feature_net() if net is None else net
    fx = digits_features(_check_digits(x, "x"), net)
    fy = digits_features(_check_digits(y, "y"), net)
    return frechet_distance(fx.mean(0), np.cov(fx, rowvar=False),
                            fy.mean(0), np.cov(fy, rowvar=False))


# --------------------------------------------------------------------------------------
class NoiseFloor(NamedTuple):
    """Mean and standard deviation of a distance between disjoint real subsets (and the values)."""

    mean: float
    std: float
    values: tuple[float, ...]


def noise_floor(
    metric: Callable[[torch.Tensor, torch.Tensor], float],
    reference: torch.Tensor,
    n: int,
    generator: torch.Generator | None = None,
    repeats: int = 5,
) -> NoiseFloor:
    """The distance ``metric(a, b)`` between two disjoint random subsets a, b of ``reference``,
    each of size ``n``, over ``repeats`` draws: its mean and (sample) standard deviation.

    A generated set of size n whose distance to real data lies within this floor cannot be told
    from real data by the metric at that sample size.
    """
    if not callable(metric):
        raise TypeError(f"`metric` must be callable (a, b) -> float, got {metric!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"`generator` must be a torch.Generator or None, "
                        f"got {type(generator).__name__}")
    if not isinstance(reference, torch.Tensor) or reference.ndim < 1:
        raise ValueError(f"`reference` must be a tensor of samples, got {type(reference).__name__}")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= reference.shape[0] // 2:
        raise ValueError(f"`n` must be an integer in 1..len(reference)//2 = "
                         f"{reference.shape[0] // 2}, got {n!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 2 <= repeats <= 10**4:
        raise ValueError(f"`repeats` must be an integer in 2..10000, got {repeats!r}")
    values = []
    for _ in range(repeats):
        perm = torch.randperm(reference.shape[0], generator=generator)
        a, b = reference[perm[:n]], reference[perm[n:2 * n]]
        value = metric(a, b)
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"`metric` must return a number, got {value!r}") from exc
        if not math.isfinite(number):
            raise ValueError(f"`metric` returned a non-finite value {number!r}")
        values.append(number)
    v = np.asarray(values)
    return NoiseFloor(float(v.mean()), float(v.std(ddof=1)), tuple(values))


def gaussian_fit_sample(
    data: torch.Tensor, n: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """n draws from N(μ, Σ), the sample mean and covariance of ``data`` (N samples of any event
    shape, flattened): the Gaussian baseline of the diffusion chapters' two-sample tests.

    x = μ + Σ^{1/2} z with z ~ N(0, I) drawn as one (n, d) float64 ``torch.randn`` and Σ^{1/2} =
    V diag(√max(λ, 0)) from the eigendecomposition Σ = V diag(λ) Vᵀ, so a coordinate that never
    varies (the digits' corner pixels) needs no jitter. Returned as (n, *data.shape[1:]) in the
    dtype of ``data``.
    """
    shape = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
    if (not isinstance(data, torch.Tensor) or not data.is_floating_point() or data.ndim < 2
            or data.shape[0] < 2 or not bool(torch.isfinite(data).all())):
        raise ValueError(f"`data` must be a finite floating tensor of shape (N, ...) with N >= 2, "
                         f"got {shape}")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10**7:
        raise ValueError(f"`n` must be an integer in 1..10**7, got {n!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"`generator` must be a torch.Generator or None, "
                        f"got {type(generator).__name__}")
    flat = data.reshape(data.shape[0], -1).double()
    d = flat.shape[1]
    eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov(flat.T).reshape(d, d))
    root = eigenvectors * eigenvalues.clamp(min=0).sqrt()
    z = torch.randn(n, d, generator=generator, dtype=torch.float64, device=data.device)
    return (flat.mean(0) + z @ root.T).to(data.dtype).reshape(n, *data.shape[1:])
