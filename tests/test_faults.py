"""Fault injection: a bug injected into kexue_nb is caught by the claim that should catch it."""

import sys
import textwrap

import nbformat
import pytest

from kexue_nb.tools import faults
from kexue_nb.tools.faults import Fault, Outcome, outcome_row, run_fault
from kexue_nb.tools.faults.__main__ import main

CATALOG = '''
import kexue_nb.checks
from kexue_nb.tools.faults import Fault


def three_figures(original):
    return lambda x, digits=4: original(x, 3)


def raising(original):
    def broken(*args, **kwargs):
        raise RuntimeError("injected crash")
    return broken


FAULTS = [
    Fault("toy-three-figures", "toy", "kexue_nb.checks:format_number",
          "format_number keeps 3 figures", three_figures),
    Fault("toy-constant", "toy", "kexue_nb.checks:collect_ledgers",
          "collect_ledgers crashes (the toy never calls it)", raising),
    Fault("toy-crash", "toy", "kexue_nb.checks:Ledger.table", "the table crashes", raising),
]
'''

CELLS = [
    "from kexue_nb.checks import Ledger, format_number\nledger = Ledger('toy')",
    "ledger.numeric('digits', 'format_number keeps four figures', float(format_number(0.123456)),"
    " 0.1235, atol=1e-12, basis='exact decimal', rules_out={'three figures': 0.123})",
    "ledger.table()",
]


@pytest.fixture(scope="module")
def toy_book(tmp_path_factory):
    book = tmp_path_factory.mktemp("book")
    (book / "part").mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in CELLS]
    nbformat.write(nb, book / "part" / "toy.ipynb")
    (book / "part" / "toyfaults.py").write_text(textwrap.dedent(CATALOG))
    sys.path.insert(0, str(book / "part"))  # the kernel finds it in its working folder
    import toyfaults

    yield book, {f.name: f for f in toyfaults.FAULTS}
    sys.path.remove(str(book / "part"))


def test_caught_missed_and_crashed(toy_book):
    book, found = toy_book
    caught = run_fault(found["toy-three-figures"], book)
    assert caught.caught and caught.caught_by == "digits" and caught.error is None
    missed = run_fault(found["toy-constant"], book)
    assert not missed.caught and missed.error is None
    crashed = run_fault(found["toy-crash"], book)
    assert not crashed.caught and crashed.error == "RuntimeError: injected crash"
    assert outcome_row(caught).endswith("| caught by `digits` |")
    assert outcome_row(missed).endswith("| MISSED |")
    assert "MISSED by the ledger (chapter crashed: RuntimeError" in outcome_row(crashed)
    assert nbformat.read(book / "part" / "toy.ipynb", as_version=4).cells[0].outputs == []


def test_inject_replaces_reexported_names(toy_book, monkeypatch):
    import kexue_nb.checks

    original = kexue_nb.checks.format_number
    monkeypatch.setattr(kexue_nb.checks, "format_number", original)  # restored afterwards
    faults.inject("toy-three-figures", "toyfaults")
    assert kexue_nb.checks.format_number(0.123456) == "0.123"


def test_unknown_chapter_and_fault_names(toy_book, tmp_path):
    _, found = toy_book
    fault = found["toy-three-figures"]
    elsewhere = Fault("x", "no-such-chapter", fault.target, "d", fault.patch)
    with pytest.raises(ValueError, match="chapter 'no-such-chapter' not found"):
        run_fault(elsewhere, tmp_path)
    with pytest.raises(ValueError, match="`name` must name a fault"):
        faults.find_fault("no-such-fault")
    with pytest.raises(ValueError, match="`target` must look like"):
        faults._resolve("kexue_nb.checks")
    with pytest.raises(SystemExit):
        main(["--fault", "no-such-fault"])


def test_the_command_line_names_what_it_knows(tmp_path, capsys):
    for argv, said in (
        (["--chapter", "no-such"], "--chapter no-such: not in the catalogue; choose from "
                                   "conditional-guidance, ddpm-bayes-denoise"),
        (["--fault", "nope", "--list"], "--fault nope: not in the catalogue"),
        (["--book", str(tmp_path / "none")], "--book must be the book's folder"),
    ):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2 and said in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert text.startswith("usage: python -m kexue_nb.tools.faults") and ":mod:" not in text


def test_every_book_fault_targets_an_existing_function():
    book_faults = faults.all_faults()
    chapters = {f.chapter for f in book_faults}
    for fault in book_faults:
        faults._resolve(fault.target)  # raises if the target moved or was renamed
    for chapter in chapters:
        assert sum(f.chapter == chapter for f in book_faults) >= 2, chapter
    assert isinstance(Outcome(book_faults[0], None, None).caught, bool) if book_faults else True
