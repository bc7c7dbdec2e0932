"""EXACT: the expected accuracy of a stochastic classifier, and the article's toy objectives.

Su Jianlin, "如何训练你的准确率？" (How to train your accuracy?), https://kexue.fm/archives/9098,
reading Karpukhin, Dereka & Kolesnikov, "EXACT: How to Train Your Accuracy" (arXiv 2205.09615).

EXACT turns a score vector μ(x) and a positive scale σ(x) into the stochastic prediction
``argmax_i μ_i/σ + ε_i`` with ε_i i.i.d. N(0, 1) (article eq. 1), and trains on −E[p(y|x)]
(eq. 2), the expected accuracy of that stochastic classifier:

* binary, one score f(x) and labels l = ±1: the prediction is sign(f/σ + ε), so
  p = Φ(l·f(x)/σ) (:func:`binary_expected_accuracy`);
* n classes: p_y = ∫ φ(ε) Π_{j≠y} Φ((μ_y − μ_j)/σ + ε) dε (:func:`expected_accuracy`), computed by
  Gauss–Hermite quadrature. Only the label's entry is formed: n times cheaper than all of p.

Both work on NumPy arrays and on torch tensors (any device and float dtype; differentiable in the
scores and in σ through ``torch.special.log_ndtr``).

The toy problem of the article (data {(−0.25, −1), (0, −1), (0.25, 1)}, model f(x) = k(x − b)) is
in :func:`toy_cross_entropy`, :func:`toy_hinge`, :func:`toy_accuracy`,
:func:`toy_expected_accuracy` and :func:`toy_cross_entropy_optimum`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import optimize, special

from ._validation import _is_complex, positive_float, real_array

__all__ = [
    "TOY_LABELS",
    "TOY_X",
    "binary_expected_accuracy",
    "expected_accuracy",
    "gauss_hermite_normal",
    "toy_accuracy",
    "toy_cross_entropy",
    "toy_cross_entropy_optimum",
    "toy_expected_accuracy",
    "toy_hinge",
]

#: The toy inputs x of the article's three-point data set.
TOY_X = (-0.25, 0.0, 0.25)
#: Their labels l (−1 negative, +1 positive).
TOY_LABELS = (-1, -1, 1)
#: Most Gauss–Hermite nodes: NumPy's rule returns NaN weights from 372 nodes on (overflow).
MAX_NODES = 350
#: Above this slope k the toy optimum is the asymptotic b(k) = 1/8 + log1p(e^{−k/4})/(2k): the
#: sigmoids in the stationarity condition underflow near k ≈ 5.8e3, and the neglected terms
#: are of relative size e^{−k/8} < 1e-222 here.
_TOY_ASYMPTOTIC_K = 4096.0


# -- helpers -------------------------------------------------------------------------------------
def _is_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def _check_sigma(sigma: Any) -> None:
    """Raise unless every entry of ``sigma`` is a finite positive number."""
    if isinstance(sigma, str | bytes):
        raise ValueError(f"`sigma` must be a positive number or array, got {sigma!r}")
    if sigma is None or isinstance(sigma, bool):
        raise TypeError(f"`sigma` must be a positive number or array, got {sigma!r}")
    if _is_complex(sigma):
        raise ValueError(f"`sigma` must be real and > 0, got complex values {sigma!r}")
    if _is_tensor(sigma):
        if sigma.dtype == __import__("torch").bool:
            raise TypeError(f"`sigma` must be a positive number or array, got dtype {sigma.dtype}")
        values = sigma.detach()
        bad = bool(((values <= 0) | ~values.isfinite()).any())
    else:
        try:
            values = np.asarray(sigma, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"`sigma` must be a positive number or array, got {sigma!r}") from exc
        bad = bool(np.any(~(values > 0)) or np.any(~np.isfinite(values)))
    if bad:
        raise ValueError(f"`sigma` must be finite and > 0, got {sigma!r}")


def _positive_k(k: Any) -> float:
    if isinstance(k, str | bytes):
        raise ValueError(f"`k` must be a positive finite number, got {k!r}")
    return positive_float(k, "k")


def gauss_hermite_normal(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ε_k and weights w_k with Σ_k w_k g(ε_k) ≈ E g(ε), ε ~ N(0, 1).

    NumPy's Gauss–Hermite rule for the weight e^{−t²}, rescaled by ε = √2 t, w = w_t/√π; exact
    for polynomials of degree < 2·``nodes``.
    """
    if isinstance(nodes, bool) or not isinstance(nodes, int | np.integer) or nodes < 2:
        raise ValueError(f"`nodes` must be an integer >= 2, got {nodes!r}")
    if nodes > MAX_NODES:
        raise ValueError(f"`nodes` must be an integer in [2, {MAX_NODES}], got {nodes!r}")
    t, w = np.polynomial.hermite.hermgauss(int(nodes))
    return math.sqrt(2.0) * t, w / math.sqrt(math.pi)


# -- EXACT ---------------------------------------------------------------------------------------
def binary_expected_accuracy(margin: Any, sigma: Any = 1.0) -> Any:
    """Expected accuracy of sign(f(x)/σ + ε), ε ~ N(0, 1), for label l = ±1: Φ(l·f(x)/σ).

    Parameters
    ----------
    margin
        l·f(x), the signed score (array or tensor, any shape).
    sigma
        The noise scale σ > 0, broadcastable against ``margin`` (a float or the same kind of
        array/tensor).

    Returns
    -------
    The same kind of object as ``margin``: p = Φ(margin/σ). A two-class model with scores
    (f/√2, −f/√2) gives the same p under :func:`expected_accuracy`, since ε_1 − ε_2 ~ N(0, 2).
    """
    _check_sigma(sigma)
    if _is_tensor(margin):
        import torch

        if margin.is_complex():
            raise ValueError(f"`margin` must be real, got dtype {margin.dtype}")
        if margin.dtype == torch.bool:
            raise TypeError("`margin` must be a real tensor, got dtype torch.bool")
        if not margin.is_floating_point():
            margin = margin.to(torch.get_default_dtype())
        if bool(margin.detach().isnan().any()):
            raise ValueError("`margin` must not contain NaN")
        try:
            torch.broadcast_shapes(tuple(margin.shape), tuple(np.shape(sigma)))
        except RuntimeError as exc:
            raise ValueError(f"`sigma` shape {tuple(np.shape(sigma))} must broadcast against "
                             f"`margin` shape {tuple(margin.shape)}") from exc
        return torch.special.ndtr(margin / sigma)
    if margin is None or isinstance(margin, str | bytes):
        raise ValueError(f"`margin` must be a real number or array, got {margin!r}")
    m = real_array(margin, "margin")
    s = np.asarray(sigma, dtype=float)
    try:
        np.broadcast_shapes(m.shape, s.shape)
    except ValueError as exc:
        raise ValueError(f"`sigma` shape {s.shape} must broadcast against `margin` shape "
                         f"{m.shape}") from exc
    return special.ndtr(m / s)


def expected_accuracy(
    logits: Any, labels: Any, sigma: Any = 1.0, *, nodes: int = 48, log: bool = False
) -> Any:
    """EXACT's p(y|x) = P(y = argmax_i μ_i/σ + ε_i), ε_i i.i.d. N(0, 1) (article eq. 1).

    Computes, for the label only,

        p_y = ∫ φ(ε) Π_{j≠y} Φ((μ_y − μ_j)/σ + ε) dε ≈ Σ_k w_k exp(Σ_{j≠y} log Φ(d_j + ε_k)),

    with Gauss–Hermite nodes ε_k (:func:`gauss_hermite_normal`) and the sum taken in log space
    (``log_ndtr`` and log-sum-exp), so it stays finite and differentiable for large margins.

    Parameters
    ----------
    logits
        μ, shape ``(..., n)`` with n >= 2 classes: a NumPy array or a float torch tensor.
    labels
        y, integers in ``[0, n)``, shape ``logits.shape[:-1]``.
    sigma
        σ > 0, a float or an array/tensor broadcastable to ``labels``' shape (one σ(x) per
        sample). With torch it may require grad.
    nodes
        Number of Gauss–Hermite nodes (>= 2). The default 48 reproduces adaptive quadrature to
        about 1e-12 for margins (μ_y − μ_j)/σ within ±8.
    log
        Return log p_y instead of p_y.

    Returns
    -------
    p_y (or log p_y), shape ``labels``' shape; a tensor on ``logits``' device and dtype when
    ``logits`` is a tensor, else a NumPy array.
    """
    eps, weights = gauss_hermite_normal(nodes)
    _check_sigma(sigma)
    if not isinstance(log, bool | np.bool_):
        raise TypeError(f"`log` must be a bool, got {log!r}")
    if _is_tensor(logits):
        import torch

        if logits.dtype in (torch.float16, torch.bfloat16):  # log_ndtr needs float32 or wider
            result = _expected_accuracy_torch(logits.float(), labels, sigma, eps, weights, log)
            return result.to(logits.dtype)
        return _expected_accuracy_torch(logits, labels, sigma, eps, weights, log)
    if logits is None or _is_complex(logits):
        raise ValueError(f"`logits` must be a real array, got {logits!r}")
    try:
        mu = np.asarray(logits, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`logits` must be a real array, got {logits!r}") from exc
    if np.isinf(mu).any():
        raise ValueError("`logits` must be finite (no ±inf)")
    label_array = np.asarray(labels.detach().cpu() if _is_tensor(labels) else labels)
    y = _check_labels(label_array, mu.shape, bool(np.isnan(mu).any()))
    s = np.asarray(sigma, dtype=float)
    try:
        s = np.broadcast_to(s, y.shape)
    except ValueError as exc:
        raise ValueError(
            f"`sigma` shape {s.shape} must broadcast to the labels' shape {y.shape}"
        ) from exc
    mu_y = np.take_along_axis(mu, y[..., None], axis=-1)
    d = (mu_y - mu) / s[..., None]  # (..., n): (μ_y − μ_j)/σ
    # The j = y factor is left out by setting its d to +inf: log Φ(+inf) = 0.
    d = np.where(np.arange(mu.shape[-1]) == y[..., None], np.inf, d)
    log_phi = special.log_ndtr(d[..., None, :] + eps[:, None])  # (..., K, n)
    log_p = special.logsumexp(log_phi.sum(-1), b=weights, axis=-1)
    return log_p if log else np.exp(log_p)


def _check_labels(y: np.ndarray, shape: tuple[int, ...], has_nan: bool) -> np.ndarray:
    """Validate the scores' ``shape`` and the labels against it; return labels as int64."""
    shape = tuple(shape)
    if len(shape) < 1 or shape[-1] < 2:
        raise ValueError(f"`logits` must have shape (..., n) with n >= 2 classes, got {shape}")
    if has_nan:
        raise ValueError("`logits` must not contain NaN")
    if y.dtype == bool or not (np.issubdtype(y.dtype, np.integer) or y.size == 0):
        raise ValueError(f"`labels` must be integers, got dtype {y.dtype}")
    if y.shape != shape[:-1]:
        raise ValueError(f"`labels` must have shape {shape[:-1]} (logits without the last "
                         f"axis), got {y.shape}")
    n = shape[-1]
    if y.size and (y.min() < 0 or y.max() >= n):
        raise ValueError(f"`labels` must lie in [0, {n}), got values in [{y.min()}, {y.max()}]")
    return y.astype(np.int64)


def _expected_accuracy_torch(
    logits: Any, labels: Any, sigma: Any, eps: np.ndarray, weights: np.ndarray, log: bool
) -> Any:
    import torch

    if not logits.is_floating_point():
        raise ValueError(f"`logits` must be a floating-point tensor, got dtype {logits.dtype}")
    if bool(logits.detach().isinf().any()):
        raise ValueError("`logits` must be finite (no ±inf)")
    label_array = labels.detach().cpu().numpy() if _is_tensor(labels) else np.asarray(labels)
    _check_labels(label_array, tuple(logits.shape), bool(logits.detach().isnan().any()))
    y = torch.as_tensor(label_array, dtype=torch.long, device=logits.device)
    try:
        s = sigma if _is_tensor(sigma) else torch.as_tensor(sigma, dtype=logits.dtype)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"`sigma` must be a positive number or array, got {sigma!r}") from exc
    s = s.to(device=logits.device)
    if not s.is_floating_point():
        s = s.to(logits.dtype)
    try:
        s = s.expand(y.shape)
    except RuntimeError as exc:
        raise ValueError(
            f"`sigma` shape {tuple(s.shape)} must broadcast to the labels' shape {tuple(y.shape)}"
        ) from exc
    nodes = torch.as_tensor(eps, dtype=logits.dtype, device=logits.device)
    log_w = torch.as_tensor(np.log(weights), dtype=logits.dtype, device=logits.device)
    mu_y = logits.gather(-1, y.unsqueeze(-1))
    d = (mu_y - logits) / s.unsqueeze(-1)  # (..., n): (μ_y − μ_j)/σ
    # The j = y factor is left out by setting its d to +inf: log Φ(+inf) = 0, with zero gradient.
    own = torch.nn.functional.one_hot(y, logits.shape[-1]).bool()
    d = d.masked_fill(own, math.inf)
    log_phi = torch.special.log_ndtr(d.unsqueeze(-2) + nodes.unsqueeze(-1))  # (..., K, n)
    log_p = torch.logsumexp(log_phi.sum(-1) + log_w, dim=-1)
    return log_p if log else log_p.exp()


# -- the toy problem -----------------------------------------------------------------------------
def _toy_margins(b: Any, k: float) -> np.ndarray:
    """l·f(x) = l·k(x − b) for the three toy points, shape ``b.shape + (3,)``."""
    if b is None or isinstance(b, bool | np.bool_ | str | bytes):
        raise TypeError(f"`b` must be a real number or array, got {b!r}")
    bb = real_array(b, "b", finite=True)
    x, labels = np.asarray(TOY_X), np.asarray(TOY_LABELS, dtype=float)
    return labels * _positive_k(k) * (x - bb[..., None])


def toy_cross_entropy(b: Any, k: float = 1.0) -> np.ndarray:
    """Sigmoid cross-entropy summed over the toy points: Σ log(1 + e^{−l·k(x − b)})."""
    return np.logaddexp(0.0, -_toy_margins(b, k)).sum(-1)


def toy_hinge(b: Any, k: float = 1.0) -> np.ndarray:
    """Hinge loss summed over the toy points: Σ max(0, 1 − l·k(x − b))."""
    return np.maximum(0.0, 1.0 - _toy_margins(b, k)).sum(-1)


def toy_accuracy(b: Any, *, per_point: bool = False) -> np.ndarray:
    """Fraction of toy points with sign(x − b) = l (a point on the boundary counts as wrong).

    With ``per_point=True`` return instead, for each point in the order of :data:`TOY_X`,
    1.0 where it is classified correctly and 0.0 where not (shape ``b.shape + (3,)``).
    """
    if not isinstance(per_point, bool | np.bool_):
        raise ValueError(f"`per_point` must be a bool, got {per_point!r}")
    right = (_toy_margins(b, 1.0) > 0).astype(float)
    return right if per_point else right.mean(-1)


def toy_expected_accuracy(b: Any, sigma: float) -> np.ndarray:
    """EXACT's expected accuracy on the toy points: mean of Φ(l·(x − b)/σ)."""
    _check_sigma(sigma)
    return binary_expected_accuracy(_toy_margins(b, 1.0), sigma).mean(-1)


def toy_cross_entropy_optimum(k: float = 1.0) -> float:
    """The minimiser b(k) of :func:`toy_cross_entropy`: the root of its derivative in b,

        σ(k(b − 0.25)) − σ(−k(0.25 + b)) − σ(−k b) = 0,

    found by Brent's method on [−1, 2] (the derivative is increasing and changes sign there
    for k >= 0.35; for smaller k on [−1, 4/k]).
    b(1) ≈ 0.700; b(k) → 1/8, the max-margin boundary, as k → ∞. For k > 4096, where the
    sigmoids underflow, the root is the asymptotic b(k) = 1/8 + log1p(e^{−k/4})/(2k): with
    σ(z) ≈ e^{z} for z ≪ 0 the condition reads e^{k(b−1/4)} = e^{−kb}(1 + e^{−k/4}), and the
    neglected factors differ from 1 by about e^{−k/8}.
    """
    kk = _positive_k(k)
    if kk < 1e-300:
        raise ValueError(f"`k` must be >= 1e-300 (the optimum, about 2/(3k), overflows), got {k!r}")
    if kk > _TOY_ASYMPTOTIC_K:
        return 0.125 + math.log1p(math.exp(-kk / 4)) / (2 * kk)

    def slope(b: float) -> float:
        return float(special.expit(kk * (b - 0.25)) - special.expit(-kk * (0.25 + b))
                     - special.expit(-kk * b))

    # For k < 1/3 or so the root, about 2/(3k) as k → 0, lies beyond 2: widen the bracket.
    upper = 2.0 if slope(2.0) >= 0 else 4.0 / kk
    return float(optimize.brentq(slope, -1.0, upper, xtol=1e-15, rtol=4 * np.finfo(float).eps))
