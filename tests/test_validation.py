"""Tests of kexue_nb._validation, the argument checks shared by the chapter modules."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from kexue_nb._validation import (
    floating_tensor,
    integer,
    nonnegative_float,
    positive_float,
    real_array,
    real_float,
    same_shape,
)


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


# -- the checks added for issue 15 (property-based) ----------------------------------------------

@given(st.integers(-10**6, 10**6))
def test_integer_accepts_ints_in_range_and_names_the_argument(n):
    if n >= 0:
        assert integer(n, "n", minimum=0) == n
    else:
        with pytest.raises(ValueError, match=r"`n` must be an integer in \[0, inf\]"):
            integer(n, "n", minimum=0)


@pytest.mark.parametrize("bad", [True, 3.0, "3", None, 3 + 0j])
def test_integer_refuses_other_kinds(bad):
    with pytest.raises(TypeError, match="`k` must be an integer"):
        integer(bad, "k")


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_real_float_accepts_exactly_the_finite_values(x):
    if math.isfinite(x):
        assert real_float(x, "x") == x
    else:
        with pytest.raises(ValueError, match="`x` must be a finite number"):
            real_float(x, "x")


@pytest.mark.parametrize("bad", [1j, True, None, "a", np.complex128(1)])
def test_real_float_refuses_complex_bool_none(bad):
    with pytest.raises(TypeError, match="`s` must be a real number"):
        real_float(bad, "s")


def test_nonnegative_and_complex_arrays():
    assert nonnegative_float(0, "a") == 0.0
    with pytest.raises(ValueError, match="`a` must be a finite number in"):
        nonnegative_float(-1e-300, "a")
    with pytest.raises(ValueError, match="`v` must be real, got complex"):
        real_array(np.array([5j, 1, 2]), "v")
    with pytest.raises(ValueError, match="`v` must be real, got complex"):
        real_array(torch.tensor([1j]), "v")
    with pytest.raises(ValueError, match="`v` must be finite"):
        real_array([1.0, np.inf], "v", finite=True)


def test_floating_tensor():
    x = torch.zeros(2)
    assert floating_tensor(x, "x") is x
    with pytest.raises(TypeError, match="`x0` must have a floating dtype, got torch.int64"):
        floating_tensor(torch.zeros(2, dtype=torch.long), "x0")
    with pytest.raises(TypeError, match="`x0` must be a torch tensor"):
        floating_tensor(np.zeros(2), "x0")


def test_described_names_arrays_by_type_and_shape():
    import torch

    from kexue_nb._validation import QUOTE_LIMIT, described
    assert described(np.zeros((3000, 2))) == "a numpy.ndarray of shape (3000, 2) and dtype float64"
    assert described(torch.zeros(4, dtype=torch.int64)) == (
        "a torch.Tensor of shape (4,) and dtype torch.int64")
    assert described("abc") == "'abc'"
    long = described(list(range(1000)))
    assert len(long) == QUOTE_LIMIT and long.endswith("…")
