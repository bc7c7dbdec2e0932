"""Numbers that survive a JupyterLab save: the same JSON text from Python and from JavaScript.

A notebook saved from JupyterLab goes through JavaScript: the browser parses the file's JSON into
doubles and sends them back with ``JSON.stringify``, and the server writes what it receives with
Python's ``json``. Python writes the double 4 as ``4.0``; JavaScript writes it as ``4``, which
Python then reads back as an int. So a float with an integer value, stored by Python, comes back
changed after a save in the browser (the other doubles come back equal: JavaScript writes
``1e-05`` as ``0.00001`` but Python reads that into the same double and writes ``1e-05`` again).

:func:`js_stable` therefore stores integer-valued doubles as the integer JavaScript would print
(``Number::toString`` of ECMA-262 prints them without exponent below 10²¹, using the shortest
digits that round-trip, as Python's ``repr`` does), leaving every other value as it is.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

#: ``Number::toString`` prints an integer-valued double without exponent below this magnitude.
JS_PLAIN_LIMIT = 1e21


def js_stable(value: Any) -> Any:
    """``value`` (JSON data) with every integer-valued finite float below :data:`JS_PLAIN_LIMIT`
    in magnitude replaced by the int JavaScript prints for it, and every non-finite float by the
    string ``"inf"``, ``"-inf"`` or ``"nan"`` (Python writes ``Infinity``, which is not JSON and
    which JavaScript's ``JSON.parse`` refuses); lists and dicts are copied."""
    if isinstance(value, dict):
        return {key: js_stable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [js_stable(item) for item in value]
    if (isinstance(value, float) and math.isfinite(value) and value == math.floor(value)
            and abs(value) < JS_PLAIN_LIMIT):
        return int(Decimal(repr(value)))
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value
