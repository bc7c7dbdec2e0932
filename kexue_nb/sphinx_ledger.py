"""Sphinx extension: claim counts read from the chapters' stored ledgers.

The role ``{claims}`book/probability/entropy-normalization``` renders as ``12/12`` (passing
claims / all claims) from the notebook's stored ledger table, so no page types a count by hand.
A chapter without a ledger is a build warning (an error under ``-W``).
"""

from __future__ import annotations

from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxRole

from kexue_nb.checks import read_ledger

logger = logging.getLogger(__name__)


class ClaimsRole(SphinxRole):
    """``{claims}`DOCNAME``` → ``passed/total`` claims of the notebook ``DOCNAME.ipynb``."""

    def run(self) -> tuple[list[nodes.Node], list[nodes.system_message]]:
        docname = self.text.strip().removesuffix(".ipynb")
        path = Path(self.env.srcdir) / f"{docname}.ipynb"
        if not path.is_file():
            logger.warning("claims: no notebook %s", path, location=self.get_location())
            return [nodes.inline(text="?")], []
        self.env.note_dependency(str(path))
        ledger = read_ledger(path)
        if ledger is None:
            logger.warning("claims: %s has no stored ledger", path, location=self.get_location())
            return [nodes.inline(text="?")], []
        claims = ledger["claims"]
        passed = sum(bool(c.get("passed")) for c in claims)
        return [nodes.inline(text=f"{passed}/{len(claims)}")], []


def setup(app: Sphinx) -> dict[str, object]:
    app.add_role("claims", ClaimsRole())
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
