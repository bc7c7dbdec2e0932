"""Stochastic differential equations and their densities, for the Fokker–Planck chapter.

The chapter is *Continuity and Fokker–Planck equations by test functions* (Su Jianlin,
https://kexue.fm/archives/9461; equation numbers below are that article's). For the SDE (17)

    dx_t = f_t(x_t) dt + g_t dw,

this module offers three views of the law of x_t:

* **particles** – :func:`euler_maruyama`, the discretisation (18)
  x_{t+Δt} = x_t + f_t(x_t) Δt + g_t √Δt ε, vectorised over paths, in NumPy or torch;
* **exact laws** – :func:`ou_mean_var`, :func:`ou_density` (Ornstein–Uhlenbeck),
  :func:`linear_gaussian` and :func:`lyapunov_covariance` (linear drift, any dimension),
  :func:`stationary_density` (the zero-flux solution ∝ exp(−2U/g²) of (24) for f = −U′);
* **the Fokker–Planck equation (24) itself** in one dimension – :func:`fokker_planck_matrix`
  and :func:`solve_fokker_planck`, a finite-volume scheme with the exponentially fitted
  Scharfetter–Gummel flux (identical to Chang–Cooper's weighting for this equation) and
  implicit time steps (second-order modified Patankar–Runge–Kutta, or implicit Euler): the
  discrete mass is conserved to round-off and the density stays non-negative for every step
  size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.integrate
import scipy.linalg
import scipy.optimize
import scipy.sparse
from scipy.linalg import lapack
from tqdm import tqdm

from ._validation import _is_complex, positive_float, real_array

__all__ = [
    "FokkerPlanckSolution",
    "Paths",
    "bernoulli",
    "euler_maruyama",
    "fokker_planck_matrix",
    "linear_gaussian",
    "lyapunov_covariance",
    "ou_density",
    "ou_mean_var",
    "solve_fokker_planck",
    "stationary_density",
]

NOISE_KINDS = ("scalar", "diagonal", "matrix")
#: Most time steps one call of :func:`euler_maruyama` or :func:`solve_fokker_planck` may take.
MAX_STEPS = 10**7
#: Most values the saved states may hold (2**27 float64 values, 1 GiB).
MAX_SAVED_ELEMENTS = 2**27
#: Largest dimension d of the matrices of :func:`linear_gaussian` / :func:`lyapunov_covariance`.
MAX_DIM = 500
#: Most cells of the Fokker–Planck grid.
MAX_CELLS = 10**7


# -- validation helpers -----------------------------------------------------------------------
def _positive(value: Any, name: str) -> float:
    """:func:`positive_float`, with text refused too (``float("1")`` would accept it)."""
    if isinstance(value, str | bytes):
        raise ValueError(f"`{name}` must be a positive finite number, got {value!r}")
    return positive_float(value, name)


def _finite_float(value: Any, name: str) -> float:
    if isinstance(value, str | bytes):
        raise ValueError(f"`{name}` must be a finite number, got {value!r}")
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"`{name}` must be a finite number, got {value!r}")
    if _is_complex(value):
        raise ValueError(f"`{name}` must be a real finite number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`{name}` must be a finite number, got {value!r}") from exc
    if not math.isfinite(number):
        raise ValueError(f"`{name}` must be a finite number, got {value!r}")
    return number


def _positive_int(value: Any, name: str, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be an integer in [1, {maximum}], got {value!r}")
    return int(value)


def _real_values(value: Any, name: str) -> np.ndarray:
    """A callable's result as a float array; complex results are refused, not made real."""
    if _is_complex(value):
        raise ValueError(f"`{name}` must return real values, got complex ones")
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`{name}` must return real numbers, got {type(value).__name__}") from exc


def _check_saved(steps: int, stride: int, size: int) -> None:
    saved = (steps // stride + 1) * size
    if saved > MAX_SAVED_ELEMENTS:
        raise ValueError(
            f"`save_every` = {stride} keeps {steps // stride + 1} states of {size} values "
            f"({saved} in all); the limit is {MAX_SAVED_ELEMENTS}: save less often"
        )


def _save_stride(save_every: int | None, steps: int) -> int:
    if save_every is None:
        return steps
    stride = _positive_int(save_every, "save_every")
    if steps % stride:
        raise ValueError(f"`save_every` must divide `steps` ({steps}), got {save_every!r}")
    return stride


# -- Euler–Maruyama ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Paths:
    """Euler–Maruyama output: times ``t`` (shape ``(K,)``) and states ``x`` (shape
    ``(K, *x0.shape)``, same array type, dtype and device as ``x0``)."""

    t: np.ndarray
    x: Any


def euler_maruyama(
    f: Callable[[Any, float], Any],
    g: Callable[[Any, float], Any],
    x0: Any,
    dt: float,
    steps: int,
    *,
    generator: Any,
    t0: float = 0.0,
    noise: str = "scalar",
    save_every: int | None = None,
    progress: bool = True,
) -> Paths:
    r"""Simulate ``dx = f(x, t) dt + g(x, t) dw`` by Euler–Maruyama, eq. (18) of 9461.

    Each step is :math:`x \leftarrow x + f(x,t)\Delta t + g(x,t)\sqrt{\Delta t}\,\varepsilon`
    with fresh standard normal :math:`\varepsilon` (Kloeden and Platen 1992, §9.1); all paths
    advance together.

    Parameters
    ----------
    f, g
        Drift and diffusion, called as ``f(x, t)``, ``g(x, t)`` with the current states ``x``
        (shape ``(n,)`` for ``n`` scalar paths, ``(n, d)`` for ``n`` paths in ``d`` dimensions)
        and the time ``t`` (a float). ``f`` returns an array of ``x``'s shape (or one that
        broadcasts to it). What ``g`` returns depends on ``noise``.
    x0
        Initial states, a NumPy array or a torch tensor, shape ``(n,)`` or ``(n, d)``.
    dt, steps
        Step size Δt > 0 and number of steps.
    generator
        ``numpy.random.Generator`` for NumPy ``x0``, ``torch.Generator`` for torch ``x0``.
    t0
        Initial time.
    noise
        ``"scalar"``: ``g`` is one positive number per path (a float, or shape ``(n,)``)
        multiplying a ``d``-dimensional Brownian motion, as in the article's
        :math:`g_t\,d\boldsymbol{w}`. ``"diagonal"``: ``g`` is positive, broadcastable to
        ``x``'s shape, one factor per component. ``"matrix"``: ``g`` returns a ``(d, m)`` or
        ``(n, d, m)`` matrix G driving an ``m``-dimensional Brownian motion (``x0`` must be
        ``(n, d)``), so the generator is :math:`f\cdot\nabla + \frac12\sum_{ij}(GG^\top)_{ij}
        \partial_i\partial_j`.
    save_every
        Keep the state every ``save_every`` steps (must divide ``steps``); default: only the
        initial and final states.
    progress
        Show a ``tqdm`` bar over the steps.

    Returns
    -------
    Paths
        ``t`` of shape ``(K,)`` and ``x`` of shape ``(K, *x0.shape)``.
    """
    if not isinstance(noise, str) or noise not in NOISE_KINDS:
        raise ValueError(f"`noise` must be one of {NOISE_KINDS}, got {noise!r}")
    dt = _positive(dt, "dt")
    steps = _positive_int(steps, "steps", MAX_STEPS)
    t0 = _finite_float(t0, "t0")
    stride = _save_stride(save_every, steps)
    if not callable(f):
        raise ValueError(f"`f` must be a callable f(x, t), got {type(f).__name__}")
    if not callable(g):
        raise ValueError(f"`g` must be a callable g(x, t), got {type(g).__name__}")

    is_torch = type(x0).__module__.split(".")[0] == "torch"
    if is_torch:
        import torch

        if not isinstance(generator, torch.Generator):
            raise ValueError(
                f"`generator` must be a torch.Generator for a torch `x0`, "
                f"got {type(generator).__name__}"
            )
        if not x0.is_floating_point():
            raise ValueError(f"`x0` must have a floating dtype, got {x0.dtype}")
        x = x0.clone()

        def xp_asarray(v: Any, name: str) -> Any:
            if (v.is_complex() if isinstance(v, torch.Tensor) else _is_complex(v)):
                raise ValueError(f"`{name}` must return real values, got complex ones")
            try:
                return torch.as_tensor(v, dtype=x.dtype, device=x.device)
            except (TypeError, ValueError, RuntimeError) as exc:
                raise ValueError(
                    f"`{name}` must return real numbers, got {type(v).__name__}"
                ) from exc

        all_finite = lambda v: bool(torch.isfinite(v).all())  # noqa: E731
        all_positive = lambda v: bool((v > 0).all())  # noqa: E731
        stack = torch.stack

        def normal(shape: tuple[int, ...]) -> Any:
            return torch.randn(shape, generator=generator, dtype=x.dtype, device=x.device)

    else:
        if not isinstance(generator, np.random.Generator):
            raise ValueError(
                f"`generator` must be a numpy.random.Generator for a NumPy `x0`, "
                f"got {type(generator).__name__}"
            )
        if x0 is None or _is_complex(x0):
            raise ValueError(f"`x0` must be a real array, got {x0!r}")
        try:
            x = np.array(x0, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"`x0` must be a real array, got {x0!r}") from exc
        xp_asarray = _real_values
        all_finite = lambda v: bool(np.isfinite(v).all())  # noqa: E731
        all_positive = lambda v: bool((v > 0).all())  # noqa: E731
        stack = np.stack

        def normal(shape: tuple[int, ...]) -> Any:
            return generator.standard_normal(shape)

    if x.ndim not in (1, 2) or x.shape[0] == 0:
        raise ValueError(f"`x0` must have shape (n,) or (n, d) with n >= 1, got {tuple(x.shape)}")
    if not all_finite(x):
        raise ValueError("`x0` must be finite")
    if noise == "matrix" and x.ndim != 2:
        raise ValueError(f"`x0` must have shape (n, d) for matrix noise, got {tuple(x.shape)}")
    n = x.shape[0]
    sqrt_dt = math.sqrt(dt)
    _check_saved(steps, stride, int(np.prod(tuple(x.shape))))

    def increment(t: float) -> Any:
        drift = xp_asarray(f(x, t), "f")
        if not all_finite(drift) and not all_finite(x):
            raise ValueError(
                f"the simulation overflowed (non-finite states at t = {t:g}): reduce `dt` = "
                f"{dt:g} or check `f` and `g`"
            )
        if not all_finite(drift):
            raise ValueError(f"`f` must return finite values; it did not at t = {t:g}")
        if np.broadcast_shapes(tuple(drift.shape), tuple(x.shape)) != tuple(x.shape):
            raise ValueError(f"`f` must return an array of x's shape {tuple(x.shape)} (or one "
                             f"that broadcasts to it), got shape {tuple(drift.shape)}")
        gval = xp_asarray(g(x, t), "g")
        if not all_finite(gval):
            raise ValueError(f"`g` must return finite values; it did not at t = {t:g}")
        if noise == "matrix":
            if gval.ndim not in (2, 3) or gval.shape[-2] != x.shape[1]:
                raise ValueError(
                    f"`g` must return a (d, m) or (n, d, m) matrix with d = {x.shape[1]} for "
                    f"matrix noise, got shape {tuple(gval.shape)}"
                )
            eps = normal((n, gval.shape[-1]))
            shock = (gval @ eps[..., None])[..., 0] if gval.ndim == 3 else eps @ gval.T
        else:
            if not all_positive(gval):
                raise ValueError(f"`g` must return positive values; it did not at t = {t:g}")
            if noise == "scalar":
                if gval.ndim > 1 or (gval.ndim == 1 and gval.shape[0] not in (1, n)):
                    raise ValueError(
                        f"`g` must return a number or one value per path (shape ({n},)) for "
                        f"scalar noise, got shape {tuple(gval.shape)}"
                    )
                if gval.ndim == 1 and x.ndim == 2:
                    gval = gval[:, None]
            elif np.broadcast_shapes(tuple(gval.shape), tuple(x.shape)) != tuple(x.shape):
                raise ValueError(
                    f"`g` must return values broadcastable to x's shape {tuple(x.shape)} for "
                    f"diagonal noise, got shape {tuple(gval.shape)}"
                )
            shock = gval * normal(tuple(x.shape))
        return drift * dt + shock * sqrt_dt

    times, saved = [t0], [x.clone() if is_torch else x.copy()]
    for k in tqdm(range(1, steps + 1), disable=not progress, desc="Euler-Maruyama"):
        x = x + increment(t0 + (k - 1) * dt)
        if k % stride == 0:
            times.append(t0 + k * dt)
            saved.append(x)
    if not all_finite(x):
        raise ValueError(
            f"the simulation overflowed (non-finite states at t = {t0 + steps * dt:g}): "
            f"reduce `dt` = {dt:g} or check `f` and `g`"
        )
    return Paths(t=np.asarray(times), x=stack(saved))


# -- exact laws -------------------------------------------------------------------------------
def ou_mean_var(
    t: Any, theta: float, g: float, *, m0: float = 0.0, s0: float = 0.0, mu: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    r"""Mean and variance at time ``t`` of the Ornstein–Uhlenbeck process
    ``dx = −θ(x − μ) dt + g dw`` started from N(m0, s0²):

    .. math:: m_t = \mu + (m_0 - \mu)e^{-\theta t},\qquad
              s_t^2 = s_0^2 e^{-2\theta t} + \frac{g^2}{2\theta}\bigl(1 - e^{-2\theta t}\bigr),

    the Gaussian solution of the Fokker–Planck equation (24) of 9461 for a linear drift.
    """
    theta = _positive(theta, "theta")
    g = _positive(g, "g")
    m0, mu = _finite_float(m0, "m0"), _finite_float(mu, "mu")
    s0 = _finite_float(s0, "s0")
    if s0 < 0:
        raise ValueError(f"`s0` must be >= 0, got {s0!r}")
    for name, value in (("g", g), ("s0", s0)):
        if value > 1e154:  # its square would overflow float64
            raise ValueError(
                f"`{name}` must be at most 1e154 (its square overflows), got {value!r}"
            )
    if t is None or isinstance(t, str | bytes):
        raise ValueError(f"`t` must be finite and >= 0, got {t!r}")
    t = real_array(t, "t")
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError("`t` must be finite and >= 0")
    decay = np.exp(-theta * t)
    mean = mu + (m0 - mu) * decay
    var = s0**2 * decay**2 - g**2 * np.expm1(-2 * theta * t) / (2 * theta)
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var))):
        raise ValueError(
            f"the variance overflows float64 for `g` = {g!r}, `theta` = {theta!r} and `s0` = "
            f"{s0!r}: g^2/(2 theta) and s0^2 must stay below 1.8e308"
        )
    return mean, var


def ou_density(
    x: Any,
    t: Any,
    theta: float,
    g: float,
    *,
    m0: float = 0.0,
    s0: float = 0.0,
    mu: float = 0.0,
) -> np.ndarray:
    """Density at ``x`` of the OU process of :func:`ou_mean_var` at time ``t`` (> 0 when
    ``s0 = 0``: then it is the transition density p(x, t | m0))."""
    mean, var = ou_mean_var(t, theta, g, m0=m0, s0=s0, mu=mu)
    if np.any(var <= 0):
        raise ValueError("`t` must be > 0 when `s0` = 0 (the law at t = 0 is a point mass)")
    if x is None:
        raise ValueError("`x` must be a real number or array, got None")
    x = real_array(x, "x")
    return np.exp(-((x - mean) ** 2) / (2 * var)) / np.sqrt(2 * np.pi * var)


def _square(matrix: Any, name: str) -> np.ndarray:
    if matrix is None or _is_complex(matrix):
        raise ValueError(f"`{name}` must be a finite real square matrix, got {matrix!r}")
    try:
        a = np.atleast_2d(np.asarray(matrix, dtype=float))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`{name}` must be a finite real square matrix, got {matrix!r}") from exc
    if a.ndim != 2 or a.shape[0] != a.shape[1] or not np.all(np.isfinite(a)):
        raise ValueError(f"`{name}` must be a finite square matrix, got shape {np.shape(matrix)}")
    if a.shape[0] > MAX_DIM:
        raise ValueError(f"`{name}` must be at most {MAX_DIM} x {MAX_DIM}, got {a.shape}")
    return a


def _real_vector(value: Any, name: str, d: int) -> np.ndarray:
    if value is None or _is_complex(value):
        raise ValueError(f"`{name}` must be a finite real vector of length {d}, got {value!r}")
    try:
        return np.asarray(value, dtype=float).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`{name}` must be a finite real vector of length {d}") from exc


def _noise_matrix(G: Any, d: int) -> np.ndarray:
    if G is None or _is_complex(G):
        raise ValueError(f"`G` must be a finite real number or a ({d}, m) matrix, got {G!r}")
    try:
        gm = np.asarray(G, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`G` must be a finite real number or a ({d}, m) matrix") from exc
    if gm.ndim == 0:
        gm = gm * np.eye(d)
    if gm.ndim != 2 or gm.shape[0] != d or not np.all(np.isfinite(gm)):
        raise ValueError(f"`G` must be a finite number or a ({d}, m) matrix, got {np.shape(G)}")
    return gm


def linear_gaussian(
    A: Any, G: Any, t: float, m0: Any, S0: Any, b: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    r"""Exact law of ``dx = (A x + b) dt + G dw`` at time ``t`` from N(m0, S0).

    The mean solves :math:`m' = Am + b` and the covariance the Lyapunov ODE
    :math:`\Sigma' = A\Sigma + \Sigma A^\top + GG^\top` (moments of eq. (24) of 9461 for a
    linear drift). Both come from one matrix exponential each (``scipy.linalg.expm``):
    an augmented matrix for the mean, and Van Loan's block matrix
    :math:`\exp\!\bigl(t\begin{smallmatrix}-A & GG^\top\\ 0 & A^\top\end{smallmatrix}\bigr)`
    for :math:`\int_0^\tau e^{As}GG^\top e^{A^\top s}ds` over a short :math:`\tau`, doubled
    up to ``t``; singular ``A`` (Brownian motion) and long times work alike. For stable
    ``A`` the covariance tends to :func:`lyapunov_covariance`.

    Parameters
    ----------
    A
        Drift matrix, (d, d).
    G
        Noise matrix, (d, m), or a number g for g·I.
    t
        Time, >= 0.
    m0, S0
        Initial mean (d,) and covariance (d, d), symmetric positive semi-definite.
    b
        Constant drift (d,), default 0.

    Returns
    -------
    (mean, cov) of shapes (d,) and (d, d).
    """
    a = _square(A, "A")
    d = a.shape[0]
    gm = _noise_matrix(G, d)
    t = _finite_float(t, "t")
    if t < 0:
        raise ValueError(f"`t` must be >= 0, got {t!r}")
    m0 = _real_vector(m0, "m0", d)
    if m0.shape != (d,) or not np.all(np.isfinite(m0)):
        raise ValueError(f"`m0` must be a finite vector of length {d}, got shape {np.shape(m0)}")
    s0 = _square(S0, "S0")
    if s0.shape != (d, d) or not np.allclose(s0, s0.T):
        raise ValueError(f"`S0` must be a symmetric ({d}, {d}) matrix")
    smallest = float(np.linalg.eigvalsh((s0 + s0.T) / 2).min())
    if smallest < -1e-12 * max(1.0, float(np.abs(s0).max())):
        raise ValueError(
            f"`S0` must be positive semi-definite (a covariance), got an eigenvalue {smallest:.6g}"
        )
    bv = np.zeros(d) if b is None else _real_vector(b, "b", d)
    if bv.shape != (d,) or not np.all(np.isfinite(bv)):
        raise ValueError(f"`b` must be a finite vector of length {d}, got shape {np.shape(b)}")

    # mean: exp(t [[A, b], [0, 0]]) = [[e^{At}, ∫_0^t e^{As} ds b], [0, 1]]
    aug = np.zeros((d + 1, d + 1))
    aug[:d, :d], aug[:d, d] = a, bv
    flow = scipy.linalg.expm(t * aug)
    e_at = flow[:d, :d]
    mean = e_at @ m0 + flow[:d, d]
    # covariance: Van Loan, exp(τ [[-A, Q], [0, A^T]]) = [[., F12], [0, F22]] with
    # F22^T F12 = ∫_0^τ e^{As} Q e^{A^T s} ds, on a short τ = t / 2^k (the -A block would
    # overflow for long times), then doubled k times: N(2τ) = N(τ) + e^{Aτ} N(τ) e^{A^T τ}.
    q = gm @ gm.T
    norm = float(np.abs(a).sum(axis=1).max())
    doublings = max(0, math.ceil(math.log2(norm * t))) if norm * t > 1 else 0
    tau = t / 2**doublings
    block = np.zeros((2 * d, 2 * d))
    block[:d, :d], block[:d, d:], block[d:, d:] = -a, q, a.T
    van_loan = scipy.linalg.expm(tau * block)
    e_tau = van_loan[d:, d:].T
    noise_cov = e_tau @ van_loan[:d, d:]
    for _ in range(doublings):
        noise_cov = noise_cov + e_tau @ noise_cov @ e_tau.T
        e_tau = e_tau @ e_tau
    cov = e_at @ s0 @ e_at.T + noise_cov
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(cov))):
        raise ValueError(
            f"the law overflows float64 at `t` = {t!r}: e^(A t) is too large for this `A`"
        )
    return mean, (cov + cov.T) / 2


def lyapunov_covariance(A: Any, G: Any) -> np.ndarray:
    r"""Stationary covariance of ``dx = A x dt + G dw``: the solution of
    :math:`A\Sigma + \Sigma A^\top + GG^\top = 0` (``scipy.linalg.solve_continuous_lyapunov``),
    the fixed point of the covariance ODE of :func:`linear_gaussian`. ``A`` must be stable
    (every eigenvalue with negative real part)."""
    a = _square(A, "A")
    gm = _noise_matrix(G, a.shape[0])
    if np.max(np.linalg.eigvals(a).real) >= 0:
        raise ValueError("`A` must be stable (all eigenvalues with negative real part)")
    cov = scipy.linalg.solve_continuous_lyapunov(a, -(gm @ gm.T))
    if not np.all(np.isfinite(cov)):
        raise ValueError("the stationary covariance overflows float64 for this `A` and `G`")
    return (cov + cov.T) / 2


def stationary_density(
    U: Callable[[Any], Any], g: float, *, lower: float = -math.inf, upper: float = math.inf
) -> Callable[[Any], np.ndarray]:
    r"""The stationary density :math:`p(x) = e^{-2U(x)/g^2}/Z` of ``dx = −U′(x) dt + g dw``.

    It makes the probability flux :math:`f p - \frac12 g^2 p'` of the Fokker–Planck
    equation (24) of 9461 vanish for :math:`f = -U'`. ``Z`` is computed by
    ``scipy.integrate.quad`` over ``[lower, upper]`` (after shifting ``U`` by its minimum
    from ``scipy.optimize.minimize_scalar``, so large potentials do not overflow).

    Returns
    -------
    A vectorised callable ``p(x)`` (zero outside ``[lower, upper]``).
    """
    if not callable(U):
        raise ValueError(f"`U` must be a callable U(x), got {type(U).__name__}")
    g = _positive(g, "g")
    for name, value in (("lower", lower), ("upper", upper)):
        if value is None or isinstance(value, bool | np.bool_) or _is_complex(value):
            raise ValueError(f"`{name}` must be a real number or ±inf, got {value!r}")
        try:
            float(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"`{name}` must be a real number or ±inf, got {value!r}") from exc
    lower, upper = float(lower), float(upper)
    if math.isnan(lower) or math.isnan(upper) or not lower < upper:
        raise ValueError(f"`lower` must be < `upper`, got {lower!r} and {upper!r}")
    probe = 0.5 * (lower + upper) if math.isfinite(lower + upper) else (
        lower if math.isfinite(lower) else upper if math.isfinite(upper) else 0.0)
    try:  # complex potentials are refused before the minimiser sees them
        probe_value = U(probe)
    except Exception:  # noqa: BLE001 - U may be undefined at the probe; the solver decides
        probe_value = 0.0
    _real_values(probe_value, "U")
    if math.isfinite(lower) and math.isfinite(upper):
        found = scipy.optimize.minimize_scalar(U, bounds=(lower, upper), method="bounded")
    else:
        found = scipy.optimize.minimize_scalar(U)
    shift = float(found.fun)
    if not math.isfinite(shift):
        raise ValueError("`U` must return finite values")
    scale = 2.0 / g**2

    def unnormalised(x: Any) -> Any:
        return np.exp(-scale * (_real_values(U(x), "U") - shift))

    z, _ = scipy.integrate.quad(unnormalised, lower, upper, limit=200)
    if not (math.isfinite(z) and z > 0):
        raise ValueError(
            "`U` must grow fast enough that exp(-2U/g^2) is integrable on [lower, upper]"
        )

    def density(x: Any) -> np.ndarray:
        if x is None:
            raise ValueError("`x` must be a real number or array, got None")
        x = real_array(x, "x")
        inside = (x >= lower) & (x <= upper)
        with np.errstate(over="ignore", invalid="ignore"):
            values = np.where(inside, unnormalised(np.where(inside, x, 0.0)) / z, 0.0)
        return values

    return density


# -- the 1-D Fokker–Planck equation -----------------------------------------------------------
def bernoulli(z: Any) -> np.ndarray:
    r"""The Bernoulli function :math:`B(z) = z/(e^z - 1)`, with :math:`B(0) = 1`, computed
    stably (``expm1``; series near 0; no overflow for large ``|z|``). It weights the
    Scharfetter–Gummel flux; :math:`B(-z) = B(z) + z`. The limits are kept at the ends:
    B(+inf) = 0 and B(−inf) = +inf; NaN and complex ``z`` are refused."""
    if z is None or isinstance(z, str | bytes):
        raise ValueError(f"`z` must be a real number or array, got {z!r}")
    z = real_array(z, "z")
    small = np.abs(z) < 1e-6
    safe = np.where(small, 1.0, z)
    with np.errstate(over="ignore", invalid="ignore"):
        far = safe / np.expm1(safe)
        far = np.where(z == math.inf, 0.0, far)  # inf/inf: the limit z e^{−z} → 0
        return np.where(small, 1.0 - z / 2 + z**2 / 12, far)


def _edges(edges: Any) -> np.ndarray:
    if edges is None or _is_complex(edges):
        raise ValueError(f"`edges` must be a strictly increasing finite real 1-D array, "
                         f"got {edges!r}")
    try:
        e = np.asarray(edges, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError("`edges` must be a strictly increasing finite 1-D array") from exc
    if e.ndim == 1 and e.size - 1 > MAX_CELLS:
        raise ValueError(f"`edges` must hold at most {MAX_CELLS + 1} edges, got {e.size}")
    if e.ndim != 1 or e.size < 3 or not np.all(np.isfinite(e)) or not np.all(np.diff(e) > 0):
        raise ValueError("`edges` must be a strictly increasing finite 1-D array of >= 3 edges")
    return e


def _values_at(func: Callable[[Any, float], Any], x: np.ndarray, t: float, name: str) -> Any:
    raw = _real_values(func(x, t), name)
    try:
        values = np.broadcast_to(raw, x.shape)
    except ValueError as exc:
        raise ValueError(f"`{name}` must return values broadcastable to shape {x.shape}, got "
                         f"shape {raw.shape}") from exc
    if not np.all(np.isfinite(values)):
        raise ValueError(f"`{name}` must return finite values; it did not at t = {t:g}")
    return values


def _tridiagonal(
    f: Callable[[Any, float], Any], g: Callable[[Any, float], Any], e: np.ndarray, t: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sub-, main and super-diagonal of the operator L with dp/dt = L p (zero-flux ends)."""
    centres = (e[:-1] + e[1:]) / 2
    widths = np.diff(e)
    faces = e[1:-1]
    spacing = np.diff(centres)  # between neighbouring centres
    drift = _values_at(f, faces, t, "f")
    g_face = _values_at(g, faces, t, "g")
    g_cell = _values_at(g, centres, t, "g")
    if np.any(g_face <= 0) or np.any(g_cell <= 0):
        raise ValueError(f"`g` must return positive values; it did not at t = {t:g}")
    diff_face = g_face**2 / 2
    diff_cell = g_cell**2 / 2
    # Flux through face i+1/2 of J = f p - (D p)': with q = D p and w = f δ / D,
    # J = [B(-w) q_i - B(w) q_{i+1}] / δ (Scharfetter–Gummel; Chang–Cooper's weights).
    w = drift * spacing / diff_face
    left = bernoulli(-w) / spacing * diff_cell[:-1]  # coefficient of p_i
    right = bernoulli(w) / spacing * diff_cell[1:]  # coefficient of p_{i+1}
    # dp_i/dt = (J_{i-1/2} - J_{i+1/2}) / h_i
    main = np.zeros_like(centres)
    main[:-1] -= left / widths[:-1]
    main[1:] -= right / widths[1:]
    upper = right / widths[:-1]  # L[i, i+1]
    lower = left / widths[1:]  # L[i+1, i]
    if not (np.all(np.isfinite(main)) and np.all(np.isfinite(upper))
            and np.all(np.isfinite(lower))):
        raise ValueError(
            f"the Fokker-Planck operator overflows at t = {t:g}: `f` is too large against "
            f"`g`^2 / 2 on these `edges` (drift * spacing / diffusion must stay finite)"
        )
    return lower, main, upper


def fokker_planck_matrix(
    f: Callable[[Any, float], Any], g: Callable[[Any, float], Any], edges: Any, t: float = 0.0
) -> scipy.sparse.csr_matrix:
    r"""The finite-volume operator L with :math:`dp/dt = Lp` for the 1-D Fokker–Planck equation

    .. math:: \partial_t p = -\partial_x\bigl(f p\bigr) + \tfrac12\partial_x^2\bigl(g^2 p\bigr)

    (eq. (24) of 9461, with g allowed to depend on x) on the cells between ``edges``, with no
    flux through the two ends. ``p`` holds cell averages. The flux through each inner face is
    the Scharfetter–Gummel (1969) exponentially fitted flux, which for this equation is the
    Chang–Cooper (1970) scheme. Every column of L sums to zero after weighting by the cell
    widths (mass conservation) and the off-diagonal entries are >= 0.

    Returns a ``scipy.sparse`` CSR matrix of shape (N, N), N = ``len(edges) − 1``.
    """
    if not callable(f):
        raise ValueError(f"`f` must be a callable f(x, t), got {type(f).__name__}")
    if not callable(g):
        raise ValueError(f"`g` must be a callable g(x, t), got {type(g).__name__}")
    e = _edges(edges)
    t = _finite_float(t, "t")
    lower, main, upper = _tridiagonal(f, g, e, t)
    return scipy.sparse.diags([lower, main, upper], [-1, 0, 1], format="csr")


@dataclass(frozen=True)
class FokkerPlanckSolution:
    """Output of :func:`solve_fokker_planck`: cell ``edges`` (N+1,), centres ``x`` (N,),
    saved times ``t`` (K,), cell averages ``p`` (K, N) and discrete masses ``mass`` (K,)."""

    edges: np.ndarray
    x: np.ndarray
    t: np.ndarray
    p: np.ndarray
    mass: np.ndarray

    def cdf(self, k: int = -1) -> Callable[[Any], np.ndarray]:
        """The distribution function of saved state ``k``: piecewise linear through the
        cumulative cell masses (exact at the edges for a piecewise-constant density)."""
        count = len(self.p)
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not -count <= k < count:
            raise ValueError(f"`k` must be an integer in [{-count}, {count - 1}], got {k!r}")
        cumulative = np.concatenate([[0.0], np.cumsum(self.p[k] * np.diff(self.edges))])

        def cdf(x: Any) -> np.ndarray:
            if x is None:
                raise ValueError("`x` must be a real number or array, got None")
            return np.interp(real_array(x, "x"), self.edges, cumulative)

        return cdf


def solve_fokker_planck(
    f: Callable[[Any, float], Any],
    g: Callable[[Any, float], Any],
    p0: Any,
    edges: Any,
    dt: float,
    steps: int,
    *,
    method: str = "mprk22",
    t0: float = 0.0,
    save_every: int | None = None,
    autonomous: bool = False,
    mass_tol: float = 1e-6,
    progress: bool = True,
) -> FokkerPlanckSolution:
    r"""Evolve a density by the 1-D Fokker–Planck equation (24) of 9461, implicitly.

    Space: the finite volumes of :func:`fokker_planck_matrix` (operator L, dp/dt = L p),
    second order in the cell width. Time, both unconditionally positive and conservative:

    ``"euler"``
        implicit Euler, :math:`(I - \Delta t\,L_{k+1})\,p^{k+1} = p^k`, first order in Δt;
    ``"mprk22"`` (default)
        the modified Patankar–Runge–Kutta scheme MPRK22 (Burchard, Deleersnijder and Meister
        2003), second order in Δt: an implicit Euler stage
        :math:`p^{(1)} = (I - \Delta t\,L_k)^{-1}p^k`, then
        :math:`\bigl(I - \tfrac{\Delta t}{2}(L_k\,\mathrm{diag}(r) + L_{k+1})\bigr)\,p^{k+1}
        = p^k` with the Patankar ratios :math:`r_i = p^k_i / p^{(1)}_i` (Heun's average of
        the two slopes, each flux made implicit in the cell it leaves).

    Every system matrix is tridiagonal (LAPACK ``gttrf``/``gttrs``/``gtsv``), has unit
    width-weighted column sums and is a column-diagonally-dominant M-matrix on a uniform
    grid: the discrete mass :math:`\sum_i h_i p_i` is conserved to round-off and
    :math:`p \ge 0` for every Δt (elimination needs no pivoting and never subtracts).

    Parameters
    ----------
    f, g
        Drift and diffusion, vectorised callables ``f(x, t)`` and ``g(x, t)`` (g > 0).
    p0
        Initial density: a callable ``p0(x)`` (evaluated at cell centres) or an array of N
        cell averages. Its mass on the grid must be 1 within ``mass_tol``.
    edges
        Strictly increasing cell edges (N+1,), covering the mass for the whole run; no
        probability leaves through the ends.
    dt, steps
        Step size > 0 and number of steps.
    method
        ``"mprk22"`` or ``"euler"``, as above.
    t0
        Initial time.
    save_every
        Keep the density every ``save_every`` steps (must divide ``steps``); default: only
        the initial and final densities.
    autonomous
        Declare that f and g do not depend on t: the operator is built (and the implicit
        Euler matrix factorised) once.
    mass_tol
        Allowed deficit of the initial mass on the grid.
    progress
        Show a ``tqdm`` bar over the steps.
    """
    if not callable(f):
        raise ValueError(f"`f` must be a callable f(x, t), got {type(f).__name__}")
    if not callable(g):
        raise ValueError(f"`g` must be a callable g(x, t), got {type(g).__name__}")
    if method not in ("mprk22", "euler"):
        raise ValueError(f"`method` must be 'mprk22' or 'euler', got {method!r}")
    e = _edges(edges)
    dt = _positive(dt, "dt")
    steps = _positive_int(steps, "steps", MAX_STEPS)
    t0 = _finite_float(t0, "t0")
    stride = _save_stride(save_every, steps)
    mass_tol = _positive(mass_tol, "mass_tol")
    widths = np.diff(e)
    centres = (e[:-1] + e[1:]) / 2
    _check_saved(steps, stride, centres.size)
    if p0 is None:
        raise ValueError("`p0` must be a callable or an array of cell values, got None")
    p = _real_values(p0(centres), "p0") if callable(p0) else None
    if p is None:
        if _is_complex(p0):
            raise ValueError("`p0` must be real, got complex values")
        try:
            p = np.array(p0, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"`p0` must be an array of {centres.size} real cell values") from exc
    else:
        p = np.array(p, dtype=float)
    if p.shape != centres.shape:
        raise ValueError(f"`p0` must give {centres.size} cell values, got shape {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("`p0` must be finite and non-negative")
    mass0 = float(widths @ p)
    if abs(mass0 - 1) > mass_tol:
        raise ValueError(
            f"`p0` must have mass 1 on the grid and `edges` must cover it: the grid holds "
            f"{mass0:.6g}, more than `mass_tol` = {mass_tol:g} away from 1"
        )

    def operator(t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _tridiagonal(f, g, e, t)

    def euler_factors(bands: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        lower, main, upper = bands
        factors = lapack.dgttrf(-dt * lower, 1 - dt * main, -dt * upper)
        if factors[-1] != 0:  # pragma: no cover - the matrix is diagonally dominant
            raise RuntimeError(f"LAPACK dgttrf failed with info = {factors[-1]}")
        return factors[:-1]

    def euler_step(factors: tuple[np.ndarray, ...], rhs: np.ndarray) -> np.ndarray:
        solution, _ = lapack.dgttrs(*factors, rhs)
        return solution

    bands_now = operator(t0)
    if autonomous:
        factors = euler_factors(bands_now)
        bands_next = bands_now
        scaled_next = [-dt / 2 * band for band in bands_next]  # -Δt/2 · L, reused every step
    times, saved = [t0], [p.copy()]
    for k in tqdm(range(1, steps + 1), disable=not progress, desc="Fokker-Planck"):
        if not autonomous:
            bands_next = operator(t0 + k * dt)
            scaled_next = [-dt / 2 * band for band in bands_next]
            # implicit Euler uses L at the new time; MPRK22's first stage at the old one
            factors = euler_factors(bands_next if method == "euler" else bands_now)
        stage = euler_step(factors, p)
        if method == "mprk22":
            # Patankar ratios p^k / p^(1); a stage value lost to underflow gets ratio 1.
            ratio = np.divide(p, stage, out=np.ones_like(p), where=stage > 0)
            scaled_now = scaled_next if autonomous else [-dt / 2 * band for band in bands_now]
            # I - Δt/2 (L_k diag(r) + L_{k+1}), band by band
            lower = scaled_now[0] * ratio[:-1] + scaled_next[0]
            main = scaled_now[1] * ratio + scaled_next[1] + 1
            upper = scaled_now[2] * ratio[1:] + scaled_next[2]
            *_, stage, info = lapack.dgtsv(
                lower, main, upper, p, overwrite_dl=1, overwrite_d=1, overwrite_du=1
            )
            if info != 0:  # pragma: no cover - the matrix is diagonally dominant
                raise RuntimeError(f"LAPACK dgtsv failed with info = {info}")
        p = stage
        bands_now = bands_next
        if k % stride == 0:
            times.append(t0 + k * dt)
            saved.append(p.copy())
    densities = np.stack(saved)
    return FokkerPlanckSolution(
        edges=e, x=centres, t=np.asarray(times), p=densities, mass=densities @ widths
    )
