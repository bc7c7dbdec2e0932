"""Faults for ``train-your-accuracy`` (kexue.fm/archives/9098, the EXACT paper).

Plausible bugs in :mod:`kexue_nb.exact`, the code the chapter relies on, each of which one of the
chapter's claims must catch:

- ``exact-gh-nodes-unscaled``: the Gauss–Hermite nodes for N(0, 1) returned without the factor √2
  (the rule's weight e^{−t²} is a normal law of variance 1/2); the weights still sum to 1;
- ``exact-binary-sigma-sqrt2``: the binary expected accuracy computed as Φ(l f/(σ√2)), the law of
  a difference of two noises, instead of Φ(l f/σ);
- ``exact-margin-sign``: the multiclass expected accuracy built on the margins (μ_j − μ_y)/σ
  instead of (μ_y − μ_j)/σ;
- ``exact-toy-slope-sign``: the toy cross-entropy's stationarity condition with the derivative of
  log(1 + e^{−m}) taken as σ(m) instead of σ(−m) in every term;
- ``exact-toy-boundary-right``: the toy accuracy counts a point on the decision boundary as
  correctly classified (``>=`` instead of ``>``);
- ``exact-toy-b-sign``: the toy accuracy computed for f(x) = x + b (the boundary at −b), so at the
  cross-entropy optimum the wrong point is reported as misclassified;
- ``exact-log-flag-inverted``: ``expected_accuracy`` returns log p unless asked for log p, so
  training on −E[p] silently becomes the per-sample probit cross-entropy −E[log p].
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import optimize, special

from kexue_nb import exact
from kexue_nb.tools.faults import Fault

CHAPTER = "train-your-accuracy"


def _gh_unscaled(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def gauss_hermite_normal(nodes: int) -> tuple[np.ndarray, np.ndarray]:
        eps, w = original(nodes)
        return eps / math.sqrt(2.0), w  # bug: the nodes t of e^{−t²}, not ε = √2 t
    return gauss_hermite_normal


def _binary_sqrt2(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def binary_expected_accuracy(margin: Any, sigma: Any = 1.0) -> Any:
        return original(margin, sigma * math.sqrt(2.0))  # bug: σ√2 in place of σ
    return binary_expected_accuracy


def _margin_sign(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def expected_accuracy(logits: Any, labels: Any, sigma: Any = 1.0, **kwargs: Any) -> Any:
        # negating the scores turns every margin (μ_y − μ_j)/σ into (μ_j − μ_y)/σ
        return original(-logits if hasattr(logits, "detach") else -np.asarray(logits, dtype=float),
                        labels, sigma, **kwargs)
    return expected_accuracy


def _toy_slope_sign(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def toy_cross_entropy_optimum(k: float = 1.0) -> float:
        kk = float(k)
        if not (math.isfinite(kk) and kk > 0):
            return original(k)  # keep the original's validation

        def slope(b: float) -> float:  # bug: each term's σ(−m) written σ(m)
            return float(special.expit(-kk * (b - 0.25)) - special.expit(kk * (0.25 + b))
                         - special.expit(kk * b))

        return float(optimize.brentq(slope, -1.0, 2.0, xtol=1e-15, rtol=4 * np.finfo(float).eps))
    return toy_cross_entropy_optimum


def _boundary_right(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def toy_accuracy(b: Any, *, per_point: bool = False) -> np.ndarray:
        right = (exact._toy_margins(b, 1.0) >= 0).astype(float)  # bug: the boundary counts as right
        return right if per_point else right.mean(-1)
    return toy_accuracy


def _toy_b_sign(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def toy_accuracy(b: Any, *, per_point: bool = False) -> np.ndarray:
        # bug: the model read as f(x) = x + b, so the boundary sits at −b
        return original(-np.asarray(b, dtype=float), per_point=per_point)
    return toy_accuracy


def _log_flag_inverted(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def expected_accuracy(logits: Any, labels: Any, sigma: Any = 1.0, *, nodes: int = 48,
                          log: bool = False) -> Any:
        return original(logits, labels, sigma, nodes=nodes, log=not log)  # bug: flag inverted
    return expected_accuracy


FAULTS = [
    Fault("exact-gh-nodes-unscaled", CHAPTER, "kexue_nb.exact:gauss_hermite_normal",
          "Gauss–Hermite nodes for N(0, 1) without the factor √2", _gh_unscaled),
    Fault("exact-binary-sigma-sqrt2", CHAPTER, "kexue_nb.exact:binary_expected_accuracy",
          "binary expected accuracy Φ(l f/(σ√2)) instead of Φ(l f/σ)", _binary_sqrt2),
    Fault("exact-margin-sign", CHAPTER, "kexue_nb.exact:expected_accuracy",
          "multiclass margins (μ_j − μ_y)/σ instead of (μ_y − μ_j)/σ", _margin_sign),
    Fault("exact-toy-slope-sign", CHAPTER, "kexue_nb.exact:toy_cross_entropy_optimum",
          "toy cross-entropy stationarity with σ(m) in place of σ(−m) in every term",
          _toy_slope_sign),
    Fault("exact-toy-boundary-right", CHAPTER, "kexue_nb.exact:toy_accuracy",
          "toy accuracy counts a point on the decision boundary as right", _boundary_right),
    Fault("exact-toy-b-sign", CHAPTER, "kexue_nb.exact:toy_accuracy",
          "toy accuracy of f(x) = x + b instead of x − b (boundary at −b)", _toy_b_sign),
    Fault("exact-log-flag-inverted", CHAPTER, "kexue_nb.exact:expected_accuracy",
          "expected_accuracy returns log p by default and p when log=True", _log_flag_inverted),
]
