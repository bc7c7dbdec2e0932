"""JSON numbers stored by Python come back unchanged from a save in JupyterLab's JavaScript."""

import json
import math
from decimal import Decimal
from pathlib import Path

import nbformat
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jupyter_client.kernelspec import KernelSpecManager

from kexue_nb.json_numbers import js_stable

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").rglob("*.ipynb"))


def js_number_to_string(x: float) -> str:
    """ECMA-262 ``Number::toString(x)`` for a finite double (what ``JSON.stringify`` writes)."""
    if x == 0:
        return "0"
    if x < 0:
        return "-" + js_number_to_string(-x)
    _, digit_tuple, exponent = Decimal(repr(x)).normalize().as_tuple()  # shortest digits
    digits = "".join(map(str, digit_tuple))
    n = exponent + len(digits)  # x = 0.digits × 10^n
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    sign = "+" if n - 1 >= 0 else "-"
    return (digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + sign + str(abs(n - 1)))


def lab_round_trip(data):
    """``data`` after JavaScript's JSON.parse + JSON.stringify and Python's json.loads."""
    if isinstance(data, dict):
        return {key: lab_round_trip(item) for key, item in data.items()}
    if isinstance(data, list):
        return [lab_round_trip(item) for item in data]
    if isinstance(data, bool) or not isinstance(data, int | float):
        return data
    return json.loads(js_number_to_string(float(data)))


@pytest.mark.parametrize(("x", "text"), [
    (4.0, "4"), (0.5, "0.5"), (1e-05, "0.00001"), (1e-07, "1e-7"), (1.5e-07, "1.5e-7"),
    (123.456, "123.456"), (1e21, "1e+21"), (1.5e20, "150000000000000000000"), (-2.5, "-2.5"),
    (2.0 ** 60, "1152921504606847000"), (0.1 + 0.2, "0.30000000000000004"), (-0.0, "0")])
def test_js_number_to_string_follows_ecma_262(x, text):
    assert js_number_to_string(x) == text


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_stable_numbers_survive_the_round_trip(x):
    stored = js_stable({"value": [x]})
    assert lab_round_trip(stored) == stored
    assert json.dumps(lab_round_trip(stored)) == json.dumps(stored)
    assert float(stored["value"][0]) == x  # the same double, only the spelling can change


def test_integer_valued_floats_become_ints_and_the_rest_stay():
    assert js_stable({"a": 4.0, "b": [1e-05, -0.0, 1e21, math.inf], "c": "4.0", "d": True}) == {
        "a": 4, "b": [1e-05, 0, 1e21, "inf"], "c": "4.0", "d": True}
    assert js_stable([-math.inf, math.nan]) == ["-inf", "nan"]
    assert type(js_stable(4.0)) is int and type(js_stable(4.5)) is float


def test_a_plain_float_four_would_not_survive():
    """The failure this module prevents: Python writes 4.0, JupyterLab writes it back as 4."""
    assert json.dumps(lab_round_trip({"x": 4.0})) != json.dumps({"x": 4.0})


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_every_stored_chapter_survives_a_jupyterlab_save(chapter):
    text = chapter.read_text(encoding="utf-8")
    saved = nbformat.writes(nbformat.from_dict(lab_round_trip(json.loads(text)))) + "\n"
    assert saved == text


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_names_the_kernel_as_jupyterlab_saves_it(chapter):
    """JupyterLab writes the running kernel's display name into the file on every save."""
    spec = KernelSpecManager().get_kernel_spec("python3")
    stored = json.loads(chapter.read_text(encoding="utf-8"))["metadata"]["kernelspec"]
    assert stored == {"name": "python3", "display_name": spec.display_name, "language": "python"}
