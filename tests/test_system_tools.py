"""Every system program a test or a check calls is installed by the make target that runs it.

Read from the sources: the programs called through ``subprocess``, ``shutil.which`` or
:func:`kexue_nb.tools.system_tools.require`; read from the Makefile (expanded by ``make -n``):
which target installs which Debian package and what each test target depends on.
"""

import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kexue_nb.tools.system_tools import DEBIAN_PACKAGE, MissingProgram, require

ROOT = Path(__file__).resolve().parent.parent
#: Every source but this file, whose own examples name made-up programs.
SOURCES = sorted({*(ROOT / "kexue_nb").rglob("*.py"), *(ROOT / "tests").glob("*.py"),
                  *(ROOT / "benchmarks").glob("*.py")} - {Path(__file__).resolve()})
#: What the README asks a fresh machine to have before any make target can run.
GIVEN = {"make"}
#: The make targets that run tests or checks, and the sources whose programs each one calls.
RUNS = {
    "unit": ["kexue_nb/tools", "tests"],
    "browser": ["kexue_nb/tools/check_browser.py"],
    "lab-check": ["kexue_nb/tools/check_lab.py", "kexue_nb/tools/check_browser.py"],
    "pdf-check": ["kexue_nb/tools/check_pdf.py"],
}
CALLERS = {("subprocess", "run"), ("subprocess", "Popen"), ("subprocess", "check_output"),
           ("subprocess", "check_call"), ("shutil", "which")}


def programs_called(path: Path) -> set[str]:
    """Literal program names in ``path``: the first element of a ``subprocess`` command list,
    the argument of ``shutil.which`` or ``require``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func, first = node.func, node.args[0]
        name = (func.value.id, func.attr) if isinstance(func, ast.Attribute) and isinstance(
            func.value, ast.Name) else None
        if isinstance(func, ast.Name) and func.id == "require":
            target = first
        elif name in CALLERS:
            target = first.elts[0] if isinstance(first, ast.List | ast.Tuple) and first.elts \
                else first
            if isinstance(target, ast.Call) and getattr(target.func, "id", None) == "require":
                target = target.args[0]
        else:
            continue
        if isinstance(target, ast.Constant) and isinstance(target.value, str):
            found.add(target.value)
    return found


def make_rules() -> dict[str, list[str]]:
    """Each explicit target of the Makefile and its prerequisites."""
    rules = {}
    for line in (ROOT / "Makefile").read_text().replace("\\\n", " ").splitlines():
        match = re.match(r"^([A-Za-z][\w-]*)\s*:(?!=)(.*)$", line)
        if match:
            rules[match.group(1)] = match.group(2).split()
    return rules


def recipe(target: str) -> str:
    """The target's own recipe, expanded by make, without running it or its prerequisites."""
    return subprocess.run(["make", "-n", "-B", "--no-print-directory", "-f", "Makefile",
                           target], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def installer_of(program: str, rules: dict[str, list[str]]) -> str:
    """The make target that probes for ``program`` and installs its Debian package."""
    package = DEBIAN_PACKAGE[program]
    for target, prerequisites in rules.items():
        if prerequisites:
            continue
        text = recipe(target)
        if f"command -v {program}" in text and re.search(
                rf"apt-get install [^;]*\b{re.escape(package)}\b", text):
            return target
    raise AssertionError(f"no make target probes for {program} and installs {package}")


def closure(target: str, rules: dict[str, list[str]]) -> set[str]:
    seen, todo = set(), [target]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += [p for p in rules.get(name, []) if p in rules]
    return seen


def test_every_program_called_is_a_known_debian_program():
    called = set().union(*(programs_called(p) for p in SOURCES))
    unknown = sorted(called - set(DEBIAN_PACKAGE) - GIVEN)
    assert not unknown, f"called but not in system_tools.DEBIAN_PACKAGE: {unknown}"
    assert called, "the scan found no program at all: the parser is broken"


def test_each_test_target_installs_what_its_code_calls():
    rules = make_rules()
    for target, places in RUNS.items():
        files = [q for place in places for q in
                 ([ROOT / place] if place.endswith(".py") else (ROOT / place).rglob("*.py"))
                 if q.resolve() in SOURCES]
        needed = set().union(*(programs_called(f) for f in files)) - GIVEN
        assert target in rules, f"make target {target} is gone"
        for program in sorted(needed):
            installer = installer_of(program, rules)
            assert installer in closure(target, rules), (
                f"make {target} runs code that calls {program}, but does not depend on "
                f"{installer}, which installs {DEBIAN_PACKAGE[program]}")


def test_unit_target_covers_the_pdf_tools():
    """The regression this file exists for: unit tests call pdftotext (poppler-utils), which
    was once installed only by the later PDF target."""
    rules = make_rules()
    assert installer_of("pdftotext", rules) in closure("unit", rules)


def test_the_scanner_finds_each_way_of_calling(tmp_path):
    source = tmp_path / "calls.py"
    source.write_text('import shutil, subprocess\nsubprocess.run(["pdftotext", "x"])\n'
                      'subprocess.Popen(("tool-b",))\nshutil.which("tool-c")\n'
                      'require("tool-d")\nsubprocess.run([require("tool-e"), "-v"])\n'
                      'subprocess.run([sys.executable, "-c", "pass"])\n')
    assert programs_called(source) == {"pdftotext", "tool-b", "tool-c", "tool-d", "tool-e"}


def test_missing_program_fails_with_one_line_naming_the_package(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(MissingProgram) as info:
        require("pdftotext")
    message = str(info.value)
    assert "\n" not in message and "poppler-utils" in message and "pdftotext" in message


def test_require_refuses_an_unlisted_program():
    with pytest.raises(ValueError, match="`program` must be one of"):
        require("xelatex-typo")
