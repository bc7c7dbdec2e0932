"""Shared test settings: Hypothesis runs derandomised with a bounded number of examples, so the
property-based tests are deterministic and fast in CI (``HYPOTHESIS_PROFILE=thorough`` for a
longer local search)."""

import os

import pytest
from hypothesis import HealthCheck, settings

from kexue_nb.tools.system_tools import require

settings.register_profile(
    "ci", derandomize=True, max_examples=40, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def chromium():
    """Debian's Chromium; where it is missing the test fails with one line naming the package
    (``make unit`` installs it as root), it does not skip."""
    return require("chromium")
