"""The ε-prediction networks of the diffusion chapters, and a noisy-input classifier.

Every denoiser is called as ``model(x_t, t, y=None)`` and returns ε̂ with ``x_t``'s shape: the
DDPM paper's ε-prediction (Ho et al. 2020), so that x_t = ᾱ_t x_0 + β̄_t ε in Su's notation
(kexue.fm/archives/9119, eq. for the unrolled chain) and the reverse mean is
(x_t − (β_t²/β̄_t) ε̂)/α_t. ``t`` is a long tensor of shape (B,) with values in 1..T; it is
embedded sinusoidally after rescaling to t·1000/T, so the same embedding frequencies serve every T.
``y`` holds class ids 0..num_classes−1 or the null id ``num_classes`` (the label that
classifier-free guidance drops to, kexue.fm/archives/9257); ``y=None`` means all-null.

Each model stores its constructor arguments in ``config`` (JSON-able) so that a checkpoint can
rebuild it with :func:`build_model` from its class name.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MLPDenoiser",
    "NoisyClassifier",
    "UNet8",
    "build_model",
    "count_parameters",
    "init_weights_",
    "timestep_embedding",
]


#: Upper bounds of the constructor arguments (larger values are refused up front rather than
#: allocated), and of the estimated parameter count of a model.
LIMITS = {"dim": 10**5, "hidden": 8192, "depth": 256, "T": 10**6, "num_classes": 10**5,
          "channels": 1024, "base": 1024, "mult": 64}
MAX_PARAMETERS = 2 * 10**8


def _positive_int(value: Any, name: str, minimum: int = 1, multiple_of: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}")
    if name in LIMITS and value > LIMITS[name]:
        raise ValueError(f"`{name}` must be an integer in {minimum}..{LIMITS[name]}, got {value}")
    if value % multiple_of:
        what = "even" if multiple_of == 2 else f"a multiple of {multiple_of}"
        raise ValueError(f"`{name}` must be {what}, got {value}")
    return value


def _check_size(estimate: int, what: str, names: str) -> None:
    if estimate > MAX_PARAMETERS:
        raise ValueError(f"{names} too large: {what} would have about {estimate:.3g} parameters, "
                         f"more than the limit {MAX_PARAMETERS:.0e}; choose smaller sizes")


def _check_tensor(value: Any, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch tensor, got {type(value).__name__}")
    return value


def _check_x(model: nn.Module, x_t: Any) -> None:
    """``x_t`` a floating tensor with the model's dtype and device (else a clear TypeError)."""
    _check_tensor(x_t, "x_t")
    param = next(model.parameters())
    if x_t.dtype != param.dtype or x_t.device != param.device:
        raise TypeError(f"`x_t` must have the model's dtype and device ({param.dtype}, "
                        f"{param.device}), got {x_t.dtype} on {x_t.device}")


def timestep_embedding(t: torch.Tensor, dim: int, T: int) -> torch.Tensor:
    """Sinusoidal embedding of the timesteps ``t`` (shape (B,)) rescaled to ``t·1000/T``.

    Transformer-style features: for k = 0..dim/2−1 and s = t·1000/T,
    ``[sin(s·ω_k), cos(s·ω_k)]`` with ω_k = 10000^(−k/(dim/2)) (the embedding of the DDPM
    paper's code, Ho et al. 2020). Returns float32 (B, dim).
    """
    _positive_int(dim, "dim", 2, multiple_of=2)
    if dim > 2**16:
        raise ValueError(f"`dim` must be an even integer in 2..{2**16}, got {dim}")
    _positive_int(T, "T")
    _check_tensor(t, "t")
    if t.ndim != 1:
        raise ValueError(f"`t` must have shape (B,), got {tuple(t.shape)}")
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"`t` must hold real timesteps, got {t.dtype}")
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise ValueError("`t` must be finite (no NaN or ±inf)")
    half = dim // 2
    freqs = torch.exp(
        -math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half
    )
    s = t.to(torch.float32) * (1000.0 / T)
    angles = s[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars of ``model``."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def init_weights_(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-draw every Linear/Conv2d/Embedding parameter of ``model`` from ``generator``, with
    PyTorch's default laws (weights U(±1/√fan_in) via Kaiming-uniform with a = √5, biases
    U(±1/√fan_in), embeddings N(0, 1)); norms keep weight 1, bias 0. Returns ``model``.

    PyTorch layers draw their initial weights from the global RNG; this makes an initialisation
    reproducible without touching global state.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"`generator` must be a torch.Generator, got {type(generator).__name__}")
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Conv2d):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
            if module.bias is not None:
                fan_in = module.weight[0].numel()
                bound = 1 / math.sqrt(fan_in)
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, generator=generator)
    return model


class _Conditioning(nn.Module):
    """Time (and optional label) embedding: sinusoid → MLP, plus a learned label vector.

    The label table has ``num_classes + 1`` rows; the last one is the null label.
    """

    def __init__(self, emb_dim: int, T: int, num_classes: int) -> None:
        super().__init__()
        self.T = T
        self.num_classes = num_classes
        self.freq_dim = emb_dim
        self.time_mlp = nn.Sequential(
            nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        self.label = nn.Embedding(num_classes + 1, emb_dim) if num_classes > 0 else None

    def forward(self, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.freq_dim, self.T))
        if self.label is not None:
            if y is None:
                y = torch.full_like(t, self.num_classes)
            emb = emb + self.label(y)
        return emb


def _check_inputs(
    model: nn.Module,
    x_t: torch.Tensor,
    t: torch.Tensor,
    y: torch.Tensor | None,
    event_shape: tuple[int, ...],
) -> None:
    """Validate shapes always; validate values of CPU tensors (free there, a sync on a GPU)."""
    _check_x(model, x_t)
    _check_tensor(t, "t")
    if y is not None:
        _check_tensor(y, "y")
    if tuple(x_t.shape[1:]) != event_shape or x_t.ndim != len(event_shape) + 1:
        raise ValueError(f"`x_t` must have shape (B, {', '.join(map(str, event_shape))}), "
                         f"got {tuple(x_t.shape)}")
    if t.shape != x_t.shape[:1] or t.dtype != torch.long:
        raise ValueError(f"`t` must be a long tensor of shape ({x_t.shape[0]},), "
                         f"got {t.dtype} {tuple(t.shape)}")
    checking_values = t.device.type == "cpu" and not torch.compiler.is_compiling()
    if checking_values and t.numel() and (int(t.min()) < 1 or int(t.max()) > model.T):
        raise ValueError(f"`t` must lie in 1..{model.T}, got values in "
                         f"{int(t.min())}..{int(t.max())}")
    if y is None:
        return
    if model.num_classes == 0:
        raise ValueError("`y` must be None for an unconditional model (num_classes = 0)")
    if y.shape != x_t.shape[:1] or y.dtype != torch.long:
        raise ValueError(f"`y` must be a long tensor of shape ({x_t.shape[0]},), "
                         f"got {y.dtype} {tuple(y.shape)}")
    if checking_values and y.numel() and (int(y.min()) < 0 or int(y.max()) > model.num_classes):
        raise ValueError(f"`y` must lie in 0..{model.num_classes} ({model.num_classes} = null), "
                         f"got values in {int(y.min())}..{int(y.max())}")


class _MLPBlock(nn.Module):
    """Pre-norm residual block h + W₂ SiLU(W₁ LN(h) + E emb)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.inner = nn.Linear(hidden, hidden)
        self.emb = nn.Linear(hidden, hidden)
        self.outer = nn.Linear(hidden, hidden)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return h + self.outer(F.silu(self.inner(self.norm(h)) + self.emb(emb)))


class MLPDenoiser(nn.Module):
    """ε-prediction MLP for low-dimensional data (the 2-D toy sets).

    Parameters
    ----------
    dim : int
        Data dimension (2 for the toy sets), >= 1.
    hidden : int
        Width of the residual blocks and of the time/label embedding, even, >= 2.
    depth : int
        Number of residual blocks, >= 1.
    T : int
        Number of diffusion steps; ``t`` takes values 1..T.
    num_classes : int
        Number of labels (0: unconditional). Label ``num_classes`` is the null label.
    generator : torch.Generator, optional
        Draws the initial weights (:func:`init_weights_`); default: PyTorch's global RNG.
        Not part of ``config``.
    """

    def __init__(
        self,
        dim: int = 2,
        hidden: int = 256,
        depth: int = 4,
        T: int = 1000,
        num_classes: int = 0,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        _positive_int(dim, "dim")
        _positive_int(hidden, "hidden", 2, multiple_of=2)
        _positive_int(depth, "depth")
        _positive_int(T, "T")
        _positive_int(num_classes, "num_classes", 0)
        _check_size(3 * depth * hidden**2 + 2 * hidden**2 + (num_classes + 1 + 2 * dim) * hidden,
                    "MLPDenoiser", "`hidden`, `depth` or `num_classes`")
        self.config = {"dim": dim, "hidden": hidden, "depth": depth, "T": T,
                       "num_classes": num_classes}
        self.dim, self.T, self.num_classes = dim, T, num_classes
        self.cond = _Conditioning(hidden, T, num_classes)
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(_MLPBlock(hidden) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, dim))
        if generator is not None:
            init_weights_(self, generator)

    def forward(
        self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        _check_inputs(self, x_t, t, y, (self.dim,))
        emb = self.cond(t, y)
        h = self.inp(x_t)
        for block in self.blocks:
            h = block(h, emb)
        return self.out(h)


def _groups(channels: int) -> int:
    return math.gcd(channels, 8)


class _ResBlock(nn.Module):
    """GroupNorm–SiLU–conv, add the projected embedding, GroupNorm–SiLU–conv, plus a skip."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class UNet8(nn.Module):
    """Small conditional UNet for 8×8 images (scikit-learn's digits), ε-prediction.

    One level down and up (8×8 → 4×4 → 8×8): a residual block at 8×8, two at 4×4, one at 8×8
    after the skip connection, each taking the time/label embedding; GroupNorm and SiLU
    throughout. The 4×4 level is the wide one (``mult·base`` channels) because it is four times
    cheaper per channel²; about 0.5 M parameters at the defaults.

    Parameters
    ----------
    channels : int
        Image channels, >= 1.
    base : int
        Channels at 8×8, >= 8 and a multiple of 8.
    T : int
        Number of diffusion steps.
    num_classes : int
        Number of labels (0: unconditional); label ``num_classes`` is the null label.
    mult : int
        Channels at 4×4 as a multiple of ``base``, >= 1.
    generator : torch.Generator, optional
        Draws the initial weights (:func:`init_weights_`); not part of ``config``.
    """

    def __init__(
        self,
        channels: int = 1,
        base: int = 32,
        T: int = 1000,
        num_classes: int = 0,
        mult: int = 3,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        _positive_int(channels, "channels")
        _positive_int(base, "base", 8, multiple_of=8)
        _positive_int(T, "T")
        _positive_int(num_classes, "num_classes", 0)
        _positive_int(mult, "mult")
        c1, c2, e = base, mult * base, 4 * base
        _check_size(9 * (6 * c1**2 + 2 * c1 * c2 + 4 * c2**2 + 2 * channels * c1) + 2 * e**2
                    + (num_classes + 1) * e, "UNet8", "`base`, `mult` or `num_classes`")
        self.config = {"channels": channels, "base": base, "T": T, "num_classes": num_classes,
                       "mult": mult}
        self.channels, self.T, self.num_classes = channels, T, num_classes
        emb_dim = 4 * base
        c1, c2 = base, mult * base
        self.cond = _Conditioning(emb_dim, T, num_classes)
        self.conv_in = nn.Conv2d(channels, c1, 3, padding=1)
        self.down1 = _ResBlock(c1, c1, emb_dim)                  # 8×8
        self.down = nn.Conv2d(c1, c2, 3, stride=2, padding=1)    # 8×8 → 4×4
        self.mid1 = _ResBlock(c2, c2, emb_dim)                   # 4×4
        self.mid2 = _ResBlock(c2, c2, emb_dim)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")    # 4×4 → 8×8
        self.up_conv = nn.Conv2d(c2, c1, 3, padding=1)
        self.up1 = _ResBlock(2 * c1, c1, emb_dim)                # with the 8×8 skip
        self.norm_out = nn.GroupNorm(_groups(c1), c1)
        self.conv_out = nn.Conv2d(c1, channels, 3, padding=1)
        if generator is not None:
            init_weights_(self, generator)

    def forward(
        self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        _check_inputs(self, x_t, t, y, (self.channels, 8, 8))
        emb = self.cond(t, y)
        h0 = self.down1(self.conv_in(x_t), emb)
        h = self.mid2(self.mid1(self.down(h0), emb), emb)
        h = self.up_conv(self.up(h))
        h = self.up1(torch.cat([h, h0], dim=1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))


class NoisyClassifier(nn.Module):
    """Classifier p(y | x_t) of noisy inputs, for classifier guidance (kexue.fm/archives/9257).

    ``forward(x_t, t)`` returns logits (B, num_classes) for timesteps ``t`` in 0..T (0: clean
    input); the guidance gradient is ∇_{x_t} log softmax(logits)_y by autograd.

    Parameters
    ----------
    num_classes : int
        Number of classes, >= 2.
    kind : {"mlp", "image"}
        ``"mlp"`` for vectors of size ``dim`` (the 2-D sets), ``"image"`` for 8×8 images with
        ``channels`` channels (a time-conditioned conv encoder, pooled).
    dim, hidden, depth :
        Input size, width and residual blocks of the ``"mlp"`` kind.
    channels, base :
        Image channels and width of the ``"image"`` kind.
    T : int
        Number of diffusion steps.
    generator : torch.Generator, optional
        Draws the initial weights (:func:`init_weights_`); not part of ``config``.
    """

    def __init__(
        self,
        num_classes: int = 10,
        kind: str = "mlp",
        dim: int = 2,
        hidden: int = 128,
        depth: int = 3,
        channels: int = 1,
        base: int = 32,
        T: int = 1000,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        _positive_int(num_classes, "num_classes", 2)
        if not isinstance(kind, str) or kind not in ("mlp", "image"):
            raise ValueError(f"`kind` must be 'mlp' or 'image', got {kind!r}")
        _positive_int(T, "T")
        self.config = {"num_classes": num_classes, "kind": kind, "dim": dim, "hidden": hidden,
                       "depth": depth, "channels": channels, "base": base, "T": T}
        self.kind, self.T, self.num_classes = kind, T, num_classes
        if kind == "mlp":
            _positive_int(dim, "dim")
            _positive_int(hidden, "hidden", 2, multiple_of=2)
            _positive_int(depth, "depth")
            _check_size(3 * depth * hidden**2 + 2 * hidden**2 + (num_classes + dim) * hidden,
                        "NoisyClassifier", "`hidden`, `depth` or `num_classes`")
            self.event_shape: tuple[int, ...] = (dim,)
            self.cond = _Conditioning(hidden, T, 0)
            self.inp = nn.Linear(dim, hidden)
            self.blocks = nn.ModuleList(_MLPBlock(hidden) for _ in range(depth))
            self.head = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(),
                                      nn.Linear(hidden, num_classes))
        else:
            _positive_int(channels, "channels")
            _positive_int(base, "base", 8, multiple_of=8)
            _check_size(9 * (channels * base + 2 * base**2 + 2 * base**2 + 8 * base**2)
                        + 32 * base**2 + 2 * base * num_classes, "NoisyClassifier",
                        "`base` or `num_classes`")
            self.event_shape = (channels, 8, 8)
            emb_dim = 4 * base
            self.cond = _Conditioning(emb_dim, T, 0)
            self.conv_in = nn.Conv2d(channels, base, 3, padding=1)
            self.block1 = _ResBlock(base, base, emb_dim)
            self.down = nn.Conv2d(base, 2 * base, 3, stride=2, padding=1)
            self.block2 = _ResBlock(2 * base, 2 * base, emb_dim)
            self.head = nn.Sequential(nn.GroupNorm(_groups(2 * base), 2 * base), nn.SiLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                      nn.Linear(2 * base, num_classes))
        if generator is not None:
            init_weights_(self, generator)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        _check_x(self, x_t)
        _check_tensor(t, "t")
        if tuple(x_t.shape[1:]) != self.event_shape or x_t.ndim != len(self.event_shape) + 1:
            raise ValueError(f"`x_t` must have shape (B, {', '.join(map(str, self.event_shape))})"
                             f", got {tuple(x_t.shape)}")
        if t.shape != x_t.shape[:1] or t.dtype != torch.long:
            raise ValueError(f"`t` must be a long tensor of shape ({x_t.shape[0]},), "
                             f"got {t.dtype} {tuple(t.shape)}")
        checking_values = t.device.type == "cpu" and not torch.compiler.is_compiling()
        if checking_values and t.numel() and (int(t.min()) < 0 or int(t.max()) > self.T):
            raise ValueError(f"`t` must lie in 0..{self.T}, got values in "
                             f"{int(t.min())}..{int(t.max())}")
        emb = self.cond(t, None)
        if self.kind == "mlp":
            h = self.inp(x_t)
            for block in self.blocks:
                h = block(h, emb)
            return self.head(h)
        h = self.block1(self.conv_in(x_t), emb)
        h = self.block2(self.down(h), emb)
        return self.head(h)


_REGISTRY: dict[str, type[nn.Module]] = {
    "MLPDenoiser": MLPDenoiser,
    "UNet8": UNet8,
    "NoisyClassifier": NoisyClassifier,
}
#: Short names accepted by :func:`build_model` (and the CLI) besides the class names.
ALIASES = {"mlp": "MLPDenoiser", "unet8": "UNet8", "classifier": "NoisyClassifier"}


def build_model(name: str, config: dict[str, Any] | None = None) -> nn.Module:
    """Rebuild a model from its class name (or alias ``mlp``/``unet8``/``classifier``) and the
    JSON-able constructor kwargs stored in its ``config``."""
    if not isinstance(name, str) or ALIASES.get(name, name) not in _REGISTRY:
        known = sorted(_REGISTRY) + sorted(ALIASES)
        raise ValueError(f"`name` must be one of {known}, got {name!r}")
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ValueError(f"`config` must be a dict of constructor arguments, "
                         f"got {type(config).__name__}")
    cls = _REGISTRY[ALIASES.get(name, name)]
    try:
        return cls(**config)
    except TypeError as err:
        raise ValueError(f"`config` does not fit {cls.__name__}: {err}") from None
