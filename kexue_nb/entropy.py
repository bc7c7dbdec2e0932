"""Entropy normalisation: give a probability distribution a prescribed entropy.

Su Jianlin, "概率分布的熵归一化" (Entropy normalization of probability distributions),
https://kexue.fm/archives/8829. The article's equations are cited by number in order:
(1) the entropy H = −Σ p_i log p_i; (2) the power transform p̃_i = p_i^γ / Σ_j p_j^γ;
(3) its limit γ → ∞ (one-hot); (4) the entropy of the transformed law,
H_γ = log Σ p_i^γ − γ Σ p_i^γ log p_i / Σ p_i^γ; (5) its expansion at γ = 1,
H_γ ≈ H_1 + (H_1² − E[(log p)²])(γ − 1); (6) the exponent read off (5); (7) the iteration
H ← −Σ p log p, γ ← 1 + (H* − H)/(H² − E[(log p)²]), p ← p^γ/Σ p^γ.

Iteration (7) is Newton's method on Γ ↦ H_Γ for the cumulative exponent Γ = γ_1γ_2⋯ (the
book's chapter derives this). Unguarded, it can step to Γ ≤ 0 when the target is far from
H_1. :func:`entropy_normalize` solves the same equation H_Γ = H* with a safeguarded iteration:

* it works in u = log Γ, so Γ stays positive;
* it keeps a bracket [u_lo, u_hi] that provably contains the root (bounds below) and falls back
  to bisection whenever a step leaves it;
* its steps are Halley steps (Newton with a curvature correction) on the logit-like transform
  φ(H) = log(log s − H) − log(H − log m), which is close to linear in u over the whole range;
  the derivatives of H_Γ in Γ are the moments of log p under p̃ (dH/dΓ = −Γ Var_p̃(log p));
* it starts from Γ = 1 (no exponential needed there), works on cache-sized blocks of rows and
  stops each row as soon as \\lvert H − H*\\rvert <= ``tol``.

Which targets can be reached: with s nonzero entries, m of them tied at the maximum, H_Γ falls
strictly from log s (Γ → 0⁺, the uniform law on the support) to log m (Γ → ∞, uniform on the
maxima), so exactly the targets in the open interval (log m, log s) are reachable; a law that is
uniform on its support (m = s) has the same entropy for every Γ.

Everything works on NumPy arrays and on torch tensors (batched along ``dim``, on the input's
device, in its floating dtype; float16/bfloat16 are computed in float32). In torch,
:func:`entropy_normalize` is differentiable in ``p`` and in ``target`` by implicit
differentiation: the returned Γ is one Newton step taken with the graph attached from the
converged, detached root, whose derivative is exactly dΓ = −(∂H − dH*)/(∂H/∂Γ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = [
    "SUM_TOL",
    "SolveInfo",
    "entropy",
    "entropy_normalize",
    "entropy_of_power",
    "power_transform",
    "reachable_range",
]

#: Largest allowed deviation of Σ_i p_i from 1 (the sum is 1, so absolute = relative).
SUM_TOL = 1e-6
#: Rows × categories processed together on a CPU (keeps the work arrays in cache).
_CPU_BLOCK = 2**20
#: The same on an accelerator (one block: launches, not caches, are the cost there).
_GPU_BLOCK = 2**27


class ConvergenceError(RuntimeError, ValueError):
    """:func:`entropy_normalize` did not meet ``tol`` within ``max_iter`` steps (a
    ``ValueError`` too: raise ``max_iter`` or loosen ``tol``)."""


@dataclass(frozen=True)
class SolveInfo:
    """How :func:`entropy_normalize` converged (``full_output=True``).

    ``iterations``: the most updates of Γ any row needed after the start Γ = 1;
    ``evaluations``: row-evaluations of H_Γ with an exponential, divided by the number of rows
    (the mean number of passes of ``exp`` a row cost); ``bisections``: how many updates, over
    all rows, fell back to bisection; ``max_error``: the largest \\lvert H_Γ − H*\\rvert at the
    returned Γ (as the solver evaluated it).
    """

    iterations: int
    evaluations: float
    bisections: int
    max_error: float


# -- input handling ---------------------------------------------------------------------------
def _is_tensor(value: Any) -> bool:
    return isinstance(value, torch.Tensor)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


class _Rows:
    """``p`` moved to a (rows, n) float tensor, and what is needed to move results back."""

    def __init__(self, p: Any, dim: Any) -> None:
        self.numpy = not _is_tensor(p)
        if self.numpy:
            try:
                array = np.asarray(p)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"`p` must be an array of probabilities, got {p!r}") from exc
            if array.dtype.kind not in "biuf":
                raise ValueError(f"`p` must be a real array, got dtype {array.dtype}")
            self.out_np_dtype = array.dtype if array.dtype.kind == "f" else np.dtype(np.float64)
            work = np.float32 if array.dtype == np.float32 else np.float64
            tensor = torch.from_numpy(np.array(array, dtype=work, order="C", copy=None))
            self.out_dtype = tensor.dtype
        else:
            if p.is_complex():
                raise ValueError(f"`p` must be a real tensor, got dtype {p.dtype}")
            self.out_dtype = p.dtype if p.is_floating_point() else torch.float64
            tensor = p.to(_compute_dtype(self.out_dtype))
        if tensor.ndim == 0:
            raise ValueError("`p` must have at least one dimension (the categories), got a scalar")
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer):
            raise ValueError(f"`dim` must be an integer, got {dim!r}")
        ndim = tensor.ndim
        if not -ndim <= dim < ndim:
            raise ValueError(
                f"`dim` must lie in [{-ndim}, {ndim - 1}] for `p` of shape {tuple(tensor.shape)}, "
                f"got {dim}"
            )
        self.dim = int(dim) % ndim
        self.n = int(tensor.shape[self.dim])
        if self.n < 2:
            raise ValueError(
                f"`p` must have at least 2 categories along `dim` = {dim}, got {self.n}"
            )
        moved = tensor.movedim(self.dim, -1)
        self.moved_shape = tuple(moved.shape)
        self.batch_shape = self.moved_shape[:-1]
        self.rows = moved.reshape(-1, self.n)
        self.device = self.rows.device
        self.dtype = self.rows.dtype

    def where(self, row: int) -> str:
        """`` at batch index (i, j)`` for a flat row number (empty for a single row)."""
        if not self.batch_shape:
            return ""
        return f" at batch index {tuple(int(i) for i in np.unravel_index(row, self.batch_shape))}"

    def per_row(self, value: Any, name: str) -> torch.Tensor:
        """``value`` (scalar or batch-shaped) as a flat (rows,) tensor on the rows' device."""
        if isinstance(value, str | bytes):
            raise ValueError(f"`{name}` must be a real number or array, got {value!r}")
        if value is None or isinstance(value, bool):
            raise TypeError(f"`{name}` must be a real number or array, got {value!r}")
        if value.is_complex() if _is_tensor(value) else np.iscomplexobj(value):
            raise ValueError(f"`{name}` must be real, got complex values")
        if _is_tensor(value):
            if value.dtype == torch.bool:
                raise TypeError(f"`{name}` must be a real tensor, got dtype torch.bool")
            tensor = value.to(device=self.device, dtype=self.dtype)
        else:
            try:
                tensor = torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=self.dtype)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"`{name}` must be a real number or array, got {value!r}") from exc
            tensor = tensor.to(self.device)
        try:
            tensor = torch.broadcast_to(tensor, self.batch_shape)
        except RuntimeError as exc:
            raise ValueError(
                f"`{name}` must be a scalar or broadcast to the batch shape {self.batch_shape} "
                f"of `p` (its shape without `dim`), got shape {tuple(tensor.shape)}"
            ) from exc
        return tensor.reshape(-1)

    def distribution(self, rows: torch.Tensor) -> Any:
        """(rows, n) back to the shape, dtype and kind of ``p``."""
        out = rows.reshape(self.moved_shape).movedim(-1, self.dim)
        if self.numpy:
            return out.detach().cpu().numpy().astype(self.out_np_dtype, copy=False)
        return out.to(self.out_dtype)

    def batch(self, values: torch.Tensor) -> Any:
        """(rows,) back to the batch shape (a NumPy scalar for a single NumPy row)."""
        out = values.reshape(self.batch_shape)
        if self.numpy:
            return out.detach().cpu().numpy().astype(self.out_np_dtype, copy=False)[()]
        return out.to(self.out_dtype)


def _check_probabilities(rows: _Rows) -> torch.Tensor:
    """Raise unless every row is finite, non-negative and sums to 1 within :data:`SUM_TOL`;
    return the smallest entry of each row."""
    p = rows.rows.detach()
    if p.numel() == 0:
        return p.sum(-1)
    sums = p.sum(-1)
    if not bool(torch.isfinite(sums).all()):
        row = int((~torch.isfinite(sums)).nonzero()[0, 0])
        raise ValueError(f"`p` must be finite, got NaN or infinite entries{rows.where(row)}")
    smallest = p.amin(-1)
    if bool((smallest < 0).any()):
        row = int((smallest < 0).nonzero()[0, 0])
        raise ValueError(
            f"`p` must be non-negative, got an entry {float(smallest[row]):.6g}{rows.where(row)}"
        )
    deviation = (sums - 1).abs()
    if bool((deviation > SUM_TOL).any()):
        row = int((deviation > SUM_TOL).nonzero()[0, 0])
        raise ValueError(
            f"`p` must sum to 1 along `dim` (within {SUM_TOL:g}, relative), got a sum of "
            f"{float(sums[row]):.10g}{rows.where(row)}"
        )
    return smallest


def _check_gamma(gamma: torch.Tensor, value: Any) -> None:
    g = gamma.detach()
    if g.numel() and not bool((torch.isfinite(g) & (g >= 0)).all()):
        raise ValueError(f"`gamma` must be finite and >= 0, got {value!r}")


def _masked_logits(p: torch.Tensor, gamma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """γ·log p_i on the support and −∞ off it, and log p with 0 off the support.

    Written with ``where`` on both sides so that zeros in ``p`` give no NaN gradients.
    """
    support = p > 0
    log_p = torch.where(support, torch.log(torch.where(support, p, 1)), 0)
    logits = torch.where(support, gamma[:, None] * log_p, -math.inf)
    return logits, log_p


# -- the article's quantities -----------------------------------------------------------------
def entropy(p: Any, dim: int = -1) -> Any:
    """The entropy H = −Σ_i p_i log p_i in nats (article eq. 1), with 0·log 0 = 0.

    ``p`` is a NumPy array or torch tensor of probabilities along ``dim`` (non-negative, summing
    to 1 within :data:`SUM_TOL`); the result has the shape of ``p`` without ``dim``.
    """
    rows = _Rows(p, dim)
    _check_probabilities(rows)
    return rows.batch(torch.special.entr(rows.rows).sum(-1))


def power_transform(p: Any, gamma: Any, dim: int = -1) -> Any:
    """The power transform p̃_i = p_i^γ / Σ_j p_j^γ (article eq. 2), computed as a softmax of
    γ·log p (stable for any γ >= 0); zeros stay zero, and γ = 0 is the limit γ → 0⁺, the
    uniform law on the support of ``p``.

    ``gamma`` is a scalar or one exponent per row (the shape of ``p`` without ``dim``).
    """
    rows = _Rows(p, dim)
    _check_probabilities(rows)
    g = rows.per_row(gamma, "gamma")
    _check_gamma(g, gamma)
    logits, _ = _masked_logits(rows.rows, g)
    return rows.distribution(torch.softmax(logits, dim=-1))


def entropy_of_power(p: Any, gamma: Any, dim: int = -1) -> Any:
    """H_γ = log Σ_i p_i^γ − γ Σ_i p_i^γ log p_i / Σ_i p_i^γ (article eq. 4), the entropy of
    :func:`power_transform` (p, γ), evaluated in log space (a log-sum-exp)."""
    rows = _Rows(p, dim)
    _check_probabilities(rows)
    g = rows.per_row(gamma, "gamma")
    _check_gamma(g, gamma)
    logits, log_p = _masked_logits(rows.rows, g)
    log_z = torch.logsumexp(logits, dim=-1)
    q = torch.exp(logits - log_z[:, None])
    return rows.batch(log_z - g * (q * log_p).sum(-1))


def reachable_range(p: Any, dim: int = -1) -> tuple[Any, Any]:
    """The open interval (log m, log s) of entropies H_γ, γ ∈ (0, ∞), reachable from ``p``.

    s is the number of nonzero p_i and m the number tied at the maximum: H_γ → log s as γ → 0⁺
    and → log m as γ → ∞ (article eq. 3 for m = 1). Both ends coincide when p is uniform on its
    support. Returns two arrays with the shape of ``p`` without ``dim``.
    """
    rows = _Rows(p, dim)
    _check_probabilities(rows)
    p_rows = rows.rows.detach()
    top = p_rows.amax(-1, keepdim=True)
    m = (p_rows == top).sum(-1).to(rows.dtype)
    s = (p_rows > 0).sum(-1).to(rows.dtype)
    return rows.batch(torch.log(m)), rows.batch(torch.log(s))


# -- the solver -------------------------------------------------------------------------------
def _moments(w: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Σw, Σwx, Σwx², Σwx³ per row; overwrites ``w`` (three in-place passes, no new arrays)."""
    s0 = w.sum(-1)
    w.mul_(x)
    s1 = w.sum(-1)
    w.mul_(x)
    s2 = w.sum(-1)
    s3 = torch.linalg.vecdot(w, x)
    return s0, s1, s2, s3


def _solve_block(
    p: torch.Tensor,
    target: torch.Tensor,
    out: torch.Tensor,
    smallest: torch.Tensor,
    buffers: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    mask_buf: torch.Tensor,
    tol: float,
    max_iter: int,
    rows: _Rows,
    first_row: int,
) -> tuple[torch.Tensor, int, int, int, float]:
    """Solve H_Γ = target for a block of rows, write p^Γ/Σp^Γ into ``out`` and return Γ.

    ``smallest`` is each row's smallest entry. ``buffers`` are three work arrays of at least the
    block's size, reused from block to block: x = log(p / max p), the weights
    w = e^{Γx} = (p/max p)^Γ, and the products w·x^k; ``mask_buf`` a boolean one.
    """
    b, n = p.shape
    dtype = p.dtype
    x_buf, w_buf, t_buf = (buf[:b] for buf in buffers)
    mask = mask_buf[:b]
    # Full-size temporaries go into the work buffers: fresh large arrays are slow to allocate.
    top = p.amax(-1)
    is_top = torch.eq(p, top[:, None], out=mask)
    m = torch.count_nonzero(is_top, dim=-1)
    zero = torch.zeros((), dtype=dtype, device=p.device)
    second = torch.where(is_top, zero, p, out=t_buf).amax(-1)
    if bool((smallest > 0).all()):
        s = torch.full_like(m, n)
        bottom = smallest
        support = None
    else:
        support = torch.gt(p, 0, out=mask)
        s = torch.count_nonzero(support, dim=-1)
        inf = torch.full((), math.inf, dtype=dtype, device=p.device)
        bottom = torch.where(support, p, inf, out=t_buf).amin(-1)
    log_m = torch.log(m.to(dtype))
    log_s = torch.log(s.to(dtype))

    # Reachable targets: the open interval (log m, log s) (module docstring).
    tied = m == s
    if bool(tied.any()):
        i = int(tied.nonzero()[0, 0])
        k = int(s[i])
        raise ValueError(
            f"`target` cannot be reached{rows.where(first_row + i)}: `p` is uniform on its {k} "
            f"nonzero entries, so H_gamma = log {k} = {math.log(k):.6g} for every gamma"
        )
    unreachable = ~((target > log_m) & (target < log_s))
    if bool(unreachable.any()):
        i = int(unreachable.nonzero()[0, 0])
        mi, si = int(m[i]), int(s[i])
        raise ValueError(
            f"`target` = {float(target[i]):.6g} cannot be reached{rows.where(first_row + i)}: `p` "
            f"has {si} nonzero entries, {mi} of them tied at the maximum, so H_gamma ranges over "
            f"the open interval (log {mi}, log {si}) = ({math.log(mi):.6g}, {math.log(si):.6g})"
        )

    # A bracket for Γ (proved in the chapter): with R = log(max p / min p), H_Γ >= log s − ΓR,
    # so Γ_lo = (log s − H*)/R has H >= H*. With D = log(max p / second largest value), the mass
    # ε off the maxima is at most (s − m)/m·e^{−ΓD}, and H_Γ <= log m + ε(1 + log(s − m) − log ε);
    # the ε below makes that <= H*, so Γ_hi has H <= H*.
    log_top = torch.log(top)
    spread = log_top - torch.log(bottom)
    gap = log_top - torch.log(second)
    # A second value within round-off of the maximum can make the difference of logs 0 (then
    # Γ_hi would be inf and the iteration NaN): take log(top/second) = log1p((top − second)/second).
    gap = torch.where(gap > 0, gap, torch.log1p((top - second) / second))
    delta = target - log_m
    c = 1 + torch.log((s - m).to(dtype))
    big = torch.clamp(c + torch.log(2 / delta), min=1)
    eps = torch.clamp(delta / (2 * big), max=0.5)
    gamma_lo = (log_s - target) / spread
    gamma_hi = (torch.log((s - m).to(dtype) / m.to(dtype)) - torch.log(eps)) / gap
    lo = torch.log(gamma_lo) - 1e-3  # widened a little against round-off in the bounds
    hi = torch.maximum(torch.log(gamma_hi), lo + 1e-3) + 1e-3

    # x = log(p / max p) <= 0, with a finite sentinel off the support whose exponential
    # underflows to exactly 0 for every Γ in the bracket.
    x = torch.log(p, out=x_buf)
    x.sub_(log_top[:, None])
    if support is not None:
        underflow = -2 * math.log(torch.finfo(dtype).tiny)
        sentinel = -underflow / torch.exp(lo)
        torch.where(support, x, sentinel[:, None], out=x)

    gamma = torch.empty(b, dtype=dtype, device=p.device)
    error = torch.empty(b, dtype=dtype, device=p.device)
    # Per-row state of the rows still iterating (compacted as rows finish).
    index = torch.arange(b, device=p.device)
    u = torch.zeros(b, dtype=dtype, device=p.device)  # u = log Γ; the article starts at Γ = 1
    t, log_s_a, log_m_a = target, log_s, log_m
    phi_target = torch.log(log_s - target) - torch.log(target - log_m)
    iterations = bisections = exps = 0
    tiny_width = 8 * torch.finfo(dtype).eps
    compacted = False  # first the whole block in place; the last few rows gathered apart
    for step in range(max_iter + 1):
        k = len(index)
        w, prod = w_buf[:k], t_buf[:k]
        g = torch.exp(u)
        if step == 0:
            torch.div(p, top[:, None], out=w)  # Γ = 1: the weights are p / max p, no exp
        else:
            torch.mul(x, g[:, None], out=w)
            w.exp_()
            exps += k
        # Moments of x under p̃ ∝ w (κ3: the third central moment).
        s0 = w.sum(-1)
        torch.mul(w, x, out=prod)
        e1 = prod.sum(-1) / s0
        prod.mul_(x)
        e2 = prod.sum(-1) / s0
        prod.mul_(x)
        e3 = prod.sum(-1) / s0
        var = e2 - e1 * e1
        k3 = e3 - 3 * e1 * e2 + 2 * e1**3
        h = torch.log(s0) - g * e1  # eq. (4), shifted by log max p (H is shift invariant)
        dh = -g * g * var  # dH/du = Γ·dH/dΓ = −Γ²·Var
        d2h = -2 * g * g * var - g**3 * k3
        err = (h - t).abs()
        # A row stops when it meets the tolerance or its bracket has shrunk to round-off; a
        # stopped row keeps its u, so re-evaluating it gives the same (done) result.
        done = (err <= tol) | (hi - lo <= tiny_width * (1 + u.abs()))
        if step == max_iter:
            done = torch.ones_like(done)
        remaining = k - int(done.sum())
        if not compacted and (remaining <= k // 2 or remaining == 0):
            # Write every row (rows not done yet are overwritten when they finish).
            gamma.copy_(g)
            error.copy_(err)
            torch.div(w, s0[:, None], out=out)
        elif compacted and remaining < k:
            rows_done = index[done]
            gamma.index_copy_(0, rows_done, g[done])
            error.index_copy_(0, rows_done, err[done])
            out.index_copy_(0, rows_done, w[done].div_(s0[done][:, None]))
        if remaining == 0:
            break
        iterations = step + 1
        # Update the bracket, then a Halley step on φ(H) = log(log s − H) − log(H − log m).
        above = h > t
        lo = torch.where(above, torch.maximum(lo, u), lo)
        hi = torch.where(above, hi, torch.minimum(hi, u))
        a, z = log_s_a - h, h - log_m_a
        f = torch.log(a) - torch.log(z) - phi_target
        f1 = -(1 / a + 1 / z) * dh
        f2 = (1 / z**2 - 1 / a**2) * dh * dh - (1 / a + 1 / z) * d2h
        new = u - 2 * f * f1 / (2 * f1 * f1 - f * f2)
        bisect = ~(torch.isfinite(new) & (new > lo) & (new < hi)) & ~done
        bisections += int(bisect.sum())
        u = torch.where(done, u, torch.where(bisect, (lo + hi) / 2, new))
        if remaining < k and (compacted or remaining <= k // 2):  # gather the rest
            compacted = True
            keep = ~done
            index, u, lo, hi, t = index[keep], u[keep], lo[keep], hi[keep], t[keep]
            log_s_a, log_m_a, phi_target = log_s_a[keep], log_m_a[keep], phi_target[keep]
            x = x[keep]
    worst = float(error.max())
    if not (math.isfinite(worst) and bool(torch.isfinite(gamma).all())):
        raise ConvergenceError(
            "entropy_normalize could not resolve `p`: the target needs an exponent beyond the "
            "float range (entries of `p` within round-off of its maximum); tie them exactly"
        )
    if worst > 100 * tol:  # only a bracket shrunk to round-off may stop a row above tol
        raise ConvergenceError(
            f"entropy_normalize did not converge in `max_iter` = {max_iter} steps: "
            f"|H - target| = {worst:.3g} > tol = {tol:.3g} (raise `max_iter`; or `p` has "
            f"entries within round-off of its maximum: tie them exactly)"
        )
    return gamma, iterations, exps, bisections, worst


def entropy_normalize(
    p: Any,
    target: Any,
    dim: int = -1,
    *,
    tol: float | None = None,
    max_iter: int = 100,
    full_output: bool = False,
) -> tuple[Any, Any] | tuple[Any, Any, SolveInfo]:
    """Power-transform ``p`` (article eq. 2) so that its entropy is ``target``.

    Solves H_Γ = H* (eq. 4) for the exponent Γ > 0 row by row: the root the article's iteration
    (eq. 7) converges to, found here by a safeguarded Halley iteration in log Γ (module
    docstring) that converges from any valid input.

    Parameters
    ----------
    p
        Probabilities along ``dim`` (NumPy array or torch tensor, any leading/trailing batch
        dimensions): finite, non-negative, summing to 1 within :data:`SUM_TOL`, at least two
        categories.
    target
        The entropy H* in nats: a scalar or one value per row (the shape of ``p`` without
        ``dim``), inside (0, log n) and inside the row's reachable interval (log m, log s)
        (:func:`reachable_range`).
    tol
        Stop a row once \\lvert H_Γ − H*\\rvert <= ``tol``; default 1e-11 in float64 and 1e-5
        in float32.
    max_iter
        Most updates of Γ per row (the safeguard converges long before the default).
    full_output
        Also return a :class:`SolveInfo`.

    Returns
    -------
    (q, gamma)
        q = p^Γ/Σp^Γ with the shape of ``p``; Γ with the shape of ``p`` without ``dim`` (a NumPy
        scalar for a single NumPy row). Torch results are differentiable in ``p`` and ``target``.
    """
    rows = _Rows(p, dim)
    smallest = _check_probabilities(rows)
    if tol is None:
        tol = 1e-11 if rows.dtype == torch.float64 else 1e-5
    if isinstance(tol, bool) or not isinstance(tol, int | float) or not (0 < tol < 1):
        raise ValueError(f"`tol` must be a number in (0, 1), got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int | np.integer) or max_iter < 1:
        raise ValueError(f"`max_iter` must be an integer >= 1, got {max_iter!r}")
    target_rows = rows.per_row(target, "target")
    t = target_rows.detach()
    log_n = math.log(rows.n)
    outside = ~((t > 0) & (t < log_n))
    if bool(outside.any()):
        i = int(outside.nonzero()[0, 0])
        raise ValueError(
            f"`target` must lie in the open interval (0, log n) = (0, {log_n:.6g}) for n = "
            f"{rows.n} categories, got {float(t[i]):.6g}{rows.where(i)}"
        )

    p_rows = rows.rows
    count = p_rows.shape[0]
    q = torch.empty_like(p_rows)
    gamma = torch.empty(count, dtype=rows.dtype, device=rows.device)
    elements = _CPU_BLOCK if rows.device.type == "cpu" else _GPU_BLOCK
    block = max(1, min(count, elements // rows.n))
    buffers = tuple(torch.empty_like(p_rows[:block]) for _ in range(3))
    mask_buf = torch.empty(buffers[0].shape, dtype=torch.bool, device=rows.device)
    iterations = bisections = exps = 0
    max_error = 0.0
    with torch.no_grad():
        p_det = p_rows.detach()
        for start in range(0, count, block):
            stop = min(start + block, count)
            g, its, ex, bis, err = _solve_block(
                p_det[start:stop],
                t[start:stop],
                q[start:stop],
                smallest[start:stop].detach(),
                buffers,
                mask_buf,
                tol,
                max_iter,
                rows,
                start,
            )
            gamma[start:stop] = g
            iterations = max(iterations, its)
            exps += ex
            bisections += bis
            max_error = max(max_error, err)

    if torch.is_grad_enabled() and (p_rows.requires_grad or target_rows.requires_grad):
        # Implicit differentiation: one Newton step from the detached root with the graph on.
        logits, log_p = _masked_logits(p_rows, gamma)
        log_z = torch.logsumexp(logits, dim=-1)
        h = log_z - gamma * (torch.exp(logits - log_z[:, None]) * log_p).sum(-1)
        with torch.no_grad():
            mean = (q * log_p).sum(-1)
            slope = -gamma * ((q * log_p * log_p).sum(-1) - mean * mean)  # dH/dΓ
        gamma = gamma - (h - target_rows) / slope
        q = torch.softmax(_masked_logits(p_rows, gamma)[0], dim=-1)

    result = (rows.distribution(q), rows.batch(gamma))
    if full_output:
        info = SolveInfo(
            iterations=iterations,
            evaluations=exps / max(count, 1),
            bisections=bisections,
            max_error=max_error,
        )
        return (*result, info)
    return result
