"""The Debian programs that the checks and the tests call, and the package that provides each.

The Makefile installs these packages (target ``system-deps`` and its parts ``poppler``,
``chromium``, ``texlive``) before the target that needs them runs, when they are missing and
the user is root. Where one is still missing, :func:`require` stops with one line naming the
package, so a test fails with that line instead of skipping or raising ``FileNotFoundError``.
``tests/test_system_tools.py`` reads the Makefile and the sources and fails when a program is
called that no make target installs.
"""

from __future__ import annotations

import shutil

__all__ = ["DEBIAN_PACKAGE", "MissingProgram", "require"]

#: Each program called by a check or a test, and the Debian package that installs it.
DEBIAN_PACKAGE = {
    "chromium": "chromium",
    "pdfinfo": "poppler-utils",
    "pdftoppm": "poppler-utils",
    "pdftotext": "poppler-utils",
}


class MissingProgram(RuntimeError):
    """A program a check needs is not installed; the message names its Debian package."""


def require(program: str) -> str:
    """The path of ``program``, or :class:`MissingProgram` naming the Debian package to install."""
    if program not in DEBIAN_PACKAGE:
        raise ValueError(f"`program` must be one of {sorted(DEBIAN_PACKAGE)}, got {program!r}")
    path = shutil.which(program)
    if path is None:
        raise MissingProgram(
            f"{program} is not installed: install Debian's package {DEBIAN_PACKAGE[program]} "
            "(`make system-deps` does, as root)"
        )
    return path
