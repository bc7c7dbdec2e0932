"""Argument checks shared by kexue_nb's modules: a ``ValueError`` that names the argument."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def positive_float(value: Any, name: str) -> float:
    """``value`` as a float, which must be finite and > 0; else a ValueError naming ``name``."""
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`{name}` must be a positive finite number, got {value!r}") from exc
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"`{name}` must be a positive finite number, got {value!r}")
    return number


def same_shape(value: Any, name: str, like: Any, like_name: str) -> None:
    """A ValueError unless ``value`` has the shape of ``like`` (both arrays or tensors)."""
    if value.shape != like.shape:
        raise ValueError(f"`{name}` must have {like_name}'s shape {tuple(like.shape)}, "
                         f"got {tuple(value.shape)}")


def real_array(value: Any, name: str) -> np.ndarray:
    """``value`` as a float array without NaN; else a ValueError naming ``name``."""
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`{name}` must be a real number or array, got {value!r}") from exc
    if np.isnan(array).any():
        raise ValueError(f"`{name}` must not contain NaN")
    return array
