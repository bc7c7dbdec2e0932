"""Faults for the chapter ``entropy-normalization`` (kexue_nb.entropy).

Five small, plausible bugs in the functions the chapter relies on, each of which its ledger must
catch:

- ``entropy-log2``: :func:`~kexue_nb.entropy.entropy` in bits (log base 2) instead of nats;
- ``entropy-power-wrong-axis``: :func:`~kexue_nb.entropy.power_transform` normalises p^γ along
  the first (batch) axis instead of ``dim``;
- ``entropy-hgamma-no-gamma``: :func:`~kexue_nb.entropy.entropy_of_power` drops the factor γ in
  front of the second term of eq. (4);
- ``entropy-implicit-slope-no-mean``: the Newton step that gives
  :func:`~kexue_nb.entropy.entropy_normalize` its implicit gradient uses dH/dΓ = −Γ·E[(log p)²],
  the variance's −E[log p]² term missing;
- ``entropy-normalize-no-write-back``: :func:`~kexue_nb.entropy.entropy_normalize` on NumPy
  input returns the input law instead of the power it solved for (Γ still right).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from kexue_nb.tools.faults import Fault

CHAPTER = "entropy-normalization"


def _entropy_in_bits(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def entropy(p: Any, dim: int = -1) -> Any:
        return original(p, dim) / math.log(2)

    return entropy


def _power_wrong_axis(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def power_transform(p: Any, gamma: Any, dim: int = -1) -> Any:
        q = original(p, gamma, dim)  # validates the input
        if q.ndim < 2:
            return q
        tensor = isinstance(p, torch.Tensor)
        g = gamma if tensor or np.ndim(gamma) == 0 else np.asarray(gamma)
        if np.ndim(g):
            g = g[..., None]
        w = p**g
        w = torch.where(p > 0, w, 0.0) if tensor else np.where(p > 0, w, 0.0)
        return w / w.sum(0, keepdim=True) if tensor else w / w.sum(axis=0, keepdims=True)

    return power_transform


def _h_gamma_without_gamma(original: Callable[..., Any]) -> Callable[..., Any]:
    from kexue_nb import entropy as module

    @functools.wraps(original)
    def entropy_of_power(p: Any, gamma: Any, dim: int = -1) -> Any:
        original(p, gamma, dim)  # validates the input
        rows = module._Rows(p, dim)
        g = rows.per_row(gamma, "gamma")
        logits, log_p = module._masked_logits(rows.rows, g)
        log_z = torch.logsumexp(logits, dim=-1)
        q = torch.exp(logits - log_z[:, None])
        return rows.batch(log_z - (q * log_p).sum(-1))  # the factor γ is missing

    return entropy_of_power


def _implicit_slope_without_mean(original: Callable[..., Any]) -> Callable[..., Any]:
    from kexue_nb import entropy as module

    @functools.wraps(original)
    def entropy_normalize(p: Any, target: Any, dim: int = -1, **kwargs: Any) -> Any:
        needs_grad = isinstance(p, torch.Tensor) and torch.is_grad_enabled() and (
            p.requires_grad or (isinstance(target, torch.Tensor) and target.requires_grad))
        if not needs_grad or p.ndim != 2 or dim not in (-1, 1):
            return original(p, target, dim, **kwargs)
        t = target.detach() if isinstance(target, torch.Tensor) else target
        result = original(p.detach(), t, dim, **kwargs)
        gamma0 = result[1]
        target_rows = torch.as_tensor(target, dtype=p.dtype).expand(p.shape[0])
        logits, log_p = module._masked_logits(p, gamma0)
        log_z = torch.logsumexp(logits, dim=-1)
        h = log_z - gamma0 * (torch.exp(logits - log_z[:, None]) * log_p).sum(-1)
        with torch.no_grad():
            q0 = result[0]
            slope = -gamma0 * (q0 * log_p * log_p).sum(-1)  # bug: − E[log p]² is missing
        gamma = gamma0 - (h - target_rows) / slope
        q = torch.softmax(module._masked_logits(p, gamma)[0], dim=-1)
        return (q, gamma, *result[2:])

    return entropy_normalize


def _normalize_without_write_back(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def entropy_normalize(p: Any, target: Any, dim: int = -1, **kwargs: Any) -> Any:
        result = original(p, target, dim, **kwargs)
        if isinstance(p, torch.Tensor):
            return result
        q = np.array(p, dtype=result[0].dtype)  # bug: p^Γ/Σp^Γ never written back
        return (q, *result[1:])

    return entropy_normalize


FAULTS = [
    Fault(
        name="entropy-log2",
        chapter=CHAPTER,
        target="kexue_nb.entropy:entropy",
        description="entropy computed in bits (log base 2) instead of nats",
        patch=_entropy_in_bits,
    ),
    Fault(
        name="entropy-power-wrong-axis",
        chapter=CHAPTER,
        target="kexue_nb.entropy:power_transform",
        description="power transform p^γ normalised along the batch axis instead of `dim`",
        patch=_power_wrong_axis,
    ),
    Fault(
        name="entropy-hgamma-no-gamma",
        chapter=CHAPTER,
        target="kexue_nb.entropy:entropy_of_power",
        description="H_γ of eq. (4) without the factor γ in its second term",
        patch=_h_gamma_without_gamma,
    ),
    Fault(
        name="entropy-implicit-slope-no-mean",
        chapter=CHAPTER,
        target="kexue_nb.entropy:entropy_normalize",
        description="implicit-gradient slope dH/dΓ = −Γ·E[(log p)²]: the −E[log p]² term missing",
        patch=_implicit_slope_without_mean,
    ),
    Fault(
        name="entropy-normalize-no-write-back",
        chapter=CHAPTER,
        target="kexue_nb.entropy:entropy_normalize",
        description="entropy_normalize (NumPy input) returns the input law instead of p^Γ/Σp^Γ",
        patch=_normalize_without_write_back,
    ),
]
