"""Argument checks shared by kexue_nb's modules: a ``ValueError`` (or ``TypeError`` for a value of
the wrong kind) that names the argument and the allowed range."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Longest ``repr`` an error message quotes; longer values are described by type and shape.
QUOTE_LIMIT = 80


def described(value: Any) -> str:
    """``value`` for an error message: an array or tensor by its type, shape and dtype (its
    values could run to thousands of characters), anything else by a ``repr`` of at most
    :data:`QUOTE_LIMIT` characters."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        kind = type(value)
        return (f"a {kind.__module__.split('.')[0]}.{kind.__name__} of shape "
                f"{tuple(value.shape)} and dtype {value.dtype}")
    text = repr(value)
    return text if len(text) <= QUOTE_LIMIT else f"{text[:QUOTE_LIMIT - 1]}…"


def _is_complex(value: Any) -> bool:
    if hasattr(value, "is_complex") and callable(value.is_complex):  # a torch tensor
        return bool(value.is_complex())
    return isinstance(value, complex) or np.iscomplexobj(value)


def integer(value: Any, name: str, minimum: int | None = None,
            maximum: int | None = None) -> int:
    """``value`` as an int (bools and floats refused, even 3.0) within [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"`{name}` must be an integer, got {value!r}")
    number = int(value)
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        low = "-inf" if minimum is None else minimum
        high = "inf" if maximum is None else maximum
        raise ValueError(f"`{name}` must be an integer in [{low}, {high}], got {number}")
    return number


def real_float(value: Any, name: str, lower: float = -math.inf, upper: float = math.inf) -> float:
    """``value`` as a finite float in [lower, upper]; complex, bool, None and NaN refused."""
    if isinstance(value, bool) or value is None or _is_complex(value):
        raise TypeError(f"`{name}` must be a real number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"`{name}` must be a real number, got {value!r}") from exc
    if not (math.isfinite(number) and lower <= number <= upper):
        raise ValueError(f"`{name}` must be a finite number in [{lower}, {upper}], got {value!r}")
    return number


def positive_float(value: Any, name: str) -> float:
    """``value`` as a float, which must be finite and > 0; else a ValueError naming ``name``."""
    if _is_complex(value) or isinstance(value, bool):
        raise ValueError(f"`{name}` must be a positive finite number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`{name}` must be a positive finite number, got {value!r}") from exc
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"`{name}` must be a positive finite number, got {value!r}")
    return number


def nonnegative_float(value: Any, name: str) -> float:
    """``value`` as a finite float >= 0; else a ValueError naming ``name``."""
    return real_float(value, name, lower=0.0)


def same_shape(value: Any, name: str, like: Any, like_name: str) -> None:
    """A ValueError unless ``value`` has the shape of ``like`` (both arrays or tensors)."""
    if value.shape != like.shape:
        raise ValueError(f"`{name}` must have {like_name}'s shape {tuple(like.shape)}, "
                         f"got {tuple(value.shape)}")


def real_array(value: Any, name: str, finite: bool = False) -> np.ndarray:
    """``value`` as a float array without NaN (and without ±inf if ``finite``); complex input
    is refused, never silently made real; else a ValueError naming ``name``."""
    if _is_complex(value):
        raise ValueError(f"`{name}` must be real, got complex values")
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`{name}` must be a real number or array, got {described(value)}"
                         ) from exc
    if np.isnan(array).any():
        raise ValueError(f"`{name}` must not contain NaN")
    if finite and not np.isfinite(array).all():
        raise ValueError(f"`{name}` must be finite (no ±inf)")
    return array


def floating_tensor(value: Any, name: str) -> Any:
    """A torch tensor of a floating dtype, else a TypeError naming ``name``: integer tensors
    would make coefficients be cast to integers (zeros, inf, NaN) and complex ones be cut."""
    import torch

    if not isinstance(value, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"`{name}` must have a floating dtype, got {value.dtype}")
    return value
