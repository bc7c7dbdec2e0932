"""The notebook tools: execute in place, check executed state, check the HTML is offline."""

import json
import subprocess
import sys

import nbformat
import pytest

from kexue_nb.checks import DIGEST_PREFIX, Ledger, ledger_digest, ledger_outputs, read_ledger
from kexue_nb.tools import check_executed, check_offline, execute


def _write_chapter(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_markdown_cell("# T")] + [
        nbformat.v4.new_code_cell(c) for c in cells
    ]
    nbformat.write(nb, path)
    return path


CHAPTER_CELLS = [
    "import numpy as np\nfrom kexue_nb.checks import Ledger\nledger = Ledger('chap')",
    "x = np.random.default_rng(0).normal(size=1000).mean()\n"
    "ledger.numeric('mean', 'sample mean', x, 0.0, atol=4 / 1000**0.5, basis='4 se',\n"
    "               rules_out={'mean of the squares': 1.0})\n"
    "print(f'{x:.3f}')",
    "ledger.table()",
]


@pytest.fixture(scope="module")
def executed_chapter(tmp_path_factory):
    folder = tmp_path_factory.mktemp("book")
    path = _write_chapter(folder / "chap.ipynb", CHAPTER_CELLS)
    run = execute.execute_notebook(path)
    return path, run


def test_execute_runs_in_place_top_to_bottom(executed_chapter):
    path, run = executed_chapter
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == [1, 2, 3]
    assert code[1].outputs[0]["text"] == "-0.048\n"  # seeded: the same on every run
    code_indices = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    assert sorted(run.cell_seconds) == code_indices
    assert all(s > 0 for s in run.cell_seconds.values())
    assert run.seconds >= sum(run.cell_seconds.values())
    assert check_executed.problems_in(path) == []


def test_execute_main_lists_the_slowest_cells(tmp_path, capsys):
    path = _write_chapter(tmp_path / "slow.ipynb",
                          ["import time", "time.sleep(0.3)", "x = 1"])
    assert execute.main([str(path), "--slowest", "1"]) == 0
    out = capsys.readouterr().out
    cell_line = [line for line in out.splitlines() if line.startswith("  cell ")]
    assert len(cell_line) == 1 and "time.sleep(0.3)" in cell_line[0]
    assert float(cell_line[0].split()[-1]) >= 0.3
    with pytest.raises(SystemExit):
        execute.main([str(path), "--slowest", "-1"])


def test_find_notebooks_puts_readers_last_and_skips_build(tmp_path):
    for name in ("verification.ipynb", "b.ipynb", "a.ipynb"):
        (tmp_path / name).write_text("{}")
    (tmp_path / "_build").mkdir()
    (tmp_path / "_build" / "c.ipynb").write_text("{}")
    names = [p.name for p in execute.find_notebooks([tmp_path])]
    assert names == ["a.ipynb", "b.ipynb", "verification.ipynb"]
    with pytest.raises(ValueError, match="`paths` must name notebooks or folders"):
        execute.find_notebooks([tmp_path / "missing.txt"])


def test_check_executed_finds_each_problem(tmp_path, executed_chapter):
    unexecuted = _write_chapter(tmp_path / "chap.ipynb", CHAPTER_CELLS)
    assert check_executed.problems_in(unexecuted) == [
        "3 of 3 code cells never executed",
        "no ledger table in the stored outputs",
    ]

    data = json.loads(executed_chapter[0].read_text())
    code = [c for c in data["cells"] if c["cell_type"] == "code"]
    code[0]["execution_count"] = 7
    code[1]["outputs"].append(
        {"output_type": "error", "ename": "ZeroDivisionError", "evalue": "", "traceback": []}
    )
    claim = code[2]["outputs"][0]["metadata"]["kexue_nb"]["ledger"]["claims"][0]
    claim["passed"] = False
    claim["evidence"]["rules_out"][0]["excluded"] = False
    broken = tmp_path / "other.ipynb"
    broken.write_text(json.dumps(data))
    assert check_executed.problems_in(broken) == [
        "execution counts [7, 2, 3] are not one top-to-bottom run",
        "1 error output(s): ZeroDivisionError",
        "failing claims ['mean']",
        "claims whose alternatives are not all excluded: ['mean']",
        "the stored ledger metadata does not match the digest in its text/plain (edited after "
        "execution?)",
        "ledger chapter 'chap' is not the stem 'other'",
    ]
    assert check_executed.main([str(tmp_path)]) == 1


def test_check_executed_enforces_contract_version_3(tmp_path, executed_chapter):
    data = json.loads(executed_chapter[0].read_text())
    ledger = [c for c in data["cells"] if c["cell_type"] == "code"][2]["outputs"][0]["metadata"][
        "kexue_nb"]["ledger"]
    del ledger["version"]
    del ledger["claims"][0]["evidence"]["rules_out"]
    old = tmp_path / "chap.ipynb"
    old.write_text(json.dumps(data))
    assert check_executed.problems_in(old)[:2] == [
        "ledger version None, not 3",
        "claims that name no alternative they rule out: ['mean']",
    ]
    ledger["version"] = 2
    old.write_text(json.dumps(data))
    assert "ledger version 2, not 3" in check_executed.problems_in(old)


def test_check_executed_main_passes_clean_book(executed_chapter, capsys):
    assert check_executed.main([str(executed_chapter[0])]) == 0
    assert "all executed and clean" in capsys.readouterr().out


def test_ledger_table_output_is_what_check_reads(executed_chapter):
    ledger = Ledger("chap")
    ledger.numeric("mean", "sample mean", -0.0480283, 0.0, atol=4 / 1000**0.5, basis="4 se",
                   rules_out={"mean of the squares": 1.0})
    stored = read_ledger(executed_chapter[0])
    assert stored == ledger.metadata()["kexue_nb"]["ledger"]


def _ledger_output(data):
    return [c for c in data["cells"] if c["cell_type"] == "code"][2]["outputs"][0]


def _tamper_statement(out):
    out["metadata"]["kexue_nb"]["ledger"]["claims"][0]["statement"] = "sample mean is exact"


def _tamper_estimate(out):
    out["metadata"]["kexue_nb"]["ledger"]["claims"][0]["evidence"]["estimate"] = 0.0


def _tamper_passed(out):
    out["metadata"]["kexue_nb"]["ledger"]["claims"][0]["passed"] = False


def _tamper_markdown(out):
    out["data"]["text/markdown"] = "".join(out["data"]["text/markdown"]).replace(
        "sample mean", "exact mean")


def _tamper_plain(out):
    out["data"]["text/plain"] = "".join(out["data"]["text/plain"]).replace("yes", "YES")


@pytest.mark.parametrize("tamper", [_tamper_statement, _tamper_estimate, _tamper_passed,
                                    _tamper_markdown, _tamper_plain])
def test_any_edit_of_the_stored_ledger_is_found(tmp_path, executed_chapter, tamper):
    data = json.loads(executed_chapter[0].read_text())
    tamper(_ledger_output(data))
    edited = tmp_path / "chap.ipynb"
    edited.write_text(json.dumps(data))
    problems = check_executed.problems_in(edited)
    assert any("edited after execution?" in p for p in problems), problems


def test_a_consistent_forgery_is_found_by_nbval(tmp_path, executed_chapter):
    """Metadata, Markdown, plain text and digest all edited to agree: check_executed cannot
    tell, but nbval compares the plain text (and so the digest) with a re-execution."""
    data = json.loads(executed_chapter[0].read_text())
    out = _ledger_output(data)
    ledger = out["metadata"]["kexue_nb"]["ledger"]
    ledger["claims"][0]["statement"] = "sample mean is exact"
    out["data"] = ledger_outputs(ledger)
    forged = tmp_path / "chap.ipynb"
    forged.write_text(json.dumps(data))
    assert check_executed.problems_in(forged) == []
    assert out["data"]["text/plain"].endswith(DIGEST_PREFIX + ledger_digest(ledger))
    run = subprocess.run([sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env", "-q",
                          "-p", "no:cacheprovider", str(forged)], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode == 1 and "Cell outputs differ" in run.stdout, run.stdout[-2000:]


def _page(body):
    head = "<script src='_static/mathjax/tex-chtml.js'></script>"
    return f"<html><head>{head}</head><body>{body}</body></html>"


@pytest.mark.parametrize(
    ("body", "remote"),
    [
        ("<a href='https://kexue.fm/archives/8829'>article</a>", []),
        ("<img src='images/a.png'>", []),
        ("<script src='https://unpkg.com/thebe'></script>", ["<script> https://unpkg.com/thebe"]),
        ("<link rel='stylesheet' href='//cdn.example/x.css'>", ["<link> //cdn.example/x.css"]),
        ("<link rel='canonical' href='https://example.org/'>", []),
        ("<img src='http://example.org/a.png'>", ["<img> http://example.org/a.png"]),
    ],
)
def test_check_offline_flags_remote_loads_only(tmp_path, body, remote):
    (tmp_path / "index.html").write_text(_page(body))
    found, pages, mathjax = check_offline.scan(tmp_path)
    assert pages == 1 and mathjax
    assert found.get(tmp_path / "index.html", []) == remote
    assert check_offline.main([str(tmp_path)]) == (1 if remote else 0)


def test_check_offline_requires_local_mathjax_and_pages(tmp_path):
    assert check_offline.main([str(tmp_path)]) == 1
    (tmp_path / "index.html").write_text("<html><body>no math</body></html>")
    assert check_offline.main([str(tmp_path)]) == 1


def test_merge_streams_joins_chunks_of_one_stream_only():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="a\n"),
        nbformat.v4.new_output("stream", name="stdout", text="b\n"),
        nbformat.v4.new_output("stream", name="stderr", text="warn\n"),
        nbformat.v4.new_output("display_data", data={"text/plain": "d"}),
        nbformat.v4.new_output("stream", name="stdout", text="c\n"),
    ]
    nb.cells = [cell, nbformat.v4.new_markdown_cell("m")]
    execute.merge_streams(nb)
    assert [(o.output_type, o.get("text")) for o in nb.cells[0].outputs] == [
        ("stream", "a\nb\n"), ("stream", "warn\n"), ("display_data", None), ("stream", "c\n")]


def test_reexecuting_an_unchanged_chapter_is_byte_identical(tmp_path):
    """A cheap chapter run twice by the executor gives the same file, byte for byte: streams
    merged, PNGs without varying metadata, evidence rounded in the ledger metadata."""
    cells = [
        "import numpy as np, matplotlib.pyplot as plt\nfrom kexue_nb.checks import Ledger\n"
        "from kexue_nb.plotting import book_style, show\nledger = Ledger('twice')",
        "for i in range(3):\n    print('line', i, flush=True)\n"
        "x = np.random.default_rng(0).normal(size=1000)\nprint(f'{x.mean():.3f}')",
        "with book_style():\n    fig, ax = plt.subplots()\n    ax.plot(x[:50])\n    show(fig)",
        "ledger.numeric('mean', 'sample mean', x.mean(), 0.0, atol=4 / 1000**0.5, basis='4 se',\n"
        "               rules_out={'mean of the squares': 1.0})\nledger.table()",
    ]
    path = _write_chapter(tmp_path / "twice.ipynb", cells)
    execute.execute_notebook(path)
    first = path.read_bytes()
    execute.execute_notebook(path)
    assert path.read_bytes() == first


@pytest.mark.parametrize("tool", [execute, check_executed])
def test_a_missing_path_is_one_line_without_traceback(tool, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        tool.main([str(tmp_path / "no-such.ipynb")])
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == (f"python -m kexue_nb.tools.{tool.__name__.rsplit('.', 1)[-1]}: error: "
                    f"`paths` must name notebooks or folders, got "
                    f"{str(tmp_path / 'no-such.ipynb')!r}")
