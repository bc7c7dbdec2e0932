"""Argument checks shared by the chapter modules: a ``ValueError`` that names the argument."""

from __future__ import annotations

import math
from typing import Any


def positive_float(value: Any, name: str) -> float:
    """``value`` as a float, which must be finite and > 0; else a ValueError naming ``name``."""
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`{name}` must be a positive finite number, got {value!r}") from exc
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"`{name}` must be a positive finite number, got {value!r}")
    return number
