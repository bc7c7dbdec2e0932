"""Tests of kexue_nb._validation, the argument checks shared by the chapter modules."""

import math

import numpy as np
import pytest
import torch

from kexue_nb._validation import positive_float, real_array, same_shape


def test_positive_float_accepts_numbers_and_numpy_scalars():
    assert positive_float(2, "dt") == 2.0 and isinstance(positive_float(2, "dt"), float)
    assert positive_float(np.float32(0.5), "g") == 0.5
    assert positive_float("1e-3", "k") == 1e-3


@pytest.mark.parametrize("bad", [0, -1.0, math.inf, math.nan, None, "x", [1.0]])
def test_positive_float_names_the_argument(bad):
    with pytest.raises(ValueError, match=r"`theta` must be a positive finite number, got "):
        positive_float(bad, "theta")


def test_real_array():
    np.testing.assert_array_equal(real_array([1, 2.5], "b"), np.array([1.0, 2.5]))
    assert real_array(3, "b").dtype == np.float64
    with pytest.raises(ValueError, match="`b` must be a real number or array, got 'x'"):
        real_array("x", "b")
    with pytest.raises(ValueError, match="`b` must not contain NaN"):
        real_array([0.0, math.nan], "b")


def test_same_shape():
    same_shape(torch.zeros(2, 3), "eps", torch.ones(2, 3), "x_t")
    same_shape(np.zeros(4), "noise", np.ones(4), "x0")
    with pytest.raises(ValueError, match=r"`eps` must have x_t's shape \(2, 3\), got \(3, 2\)"):
        same_shape(torch.zeros(3, 2), "eps", torch.zeros(2, 3), "x_t")
