"""Tests of kexue_nb._validation, the argument checks shared by the chapter modules."""

import math

import numpy as np
import pytest

from kexue_nb._validation import positive_float


def test_positive_float_accepts_numbers_and_numpy_scalars():
    assert positive_float(2, "dt") == 2.0 and isinstance(positive_float(2, "dt"), float)
    assert positive_float(np.float32(0.5), "g") == 0.5
    assert positive_float("1e-3", "k") == 1e-3


@pytest.mark.parametrize("bad", [0, -1.0, math.inf, math.nan, None, "x", [1.0]])
def test_positive_float_names_the_argument(bad):
    with pytest.raises(ValueError, match=r"`theta` must be a positive finite number, got "):
        positive_float(bad, "theta")
