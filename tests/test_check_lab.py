"""The JupyterLab check: MyST rendered by jupyterlab-myst, solutions collapsed, errors found."""


import platform

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager

from kexue_nb.tools.check_lab import check_chapter, render_problems, source_counts

KERNEL = KernelSpecManager().get_kernel_spec("python3")  # what JupyterLab writes on saving
MARKDOWN = """# Toy

```{prf:theorem} Toy
:label: toy-thm
$x = x$.
```

```{prf:proof}
Obvious; see {prf:ref}`toy-thm`.
```

```{exercise}
:label: toy-ex
Show $1 + 1 = 2$.
```

```{solution} toy-ex
:class: dropdown
Count.
```
"""


def _chapter(path, code, **metadata):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": KERNEL.display_name,
                                 "language": "python"}
    nb.metadata["language_info"] = {       # as an executed chapter stores it (the kernel's reply)
        "codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
        "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
        "pygments_lexer": "ipython3", "version": platform.python_version()}
    nb.metadata.update(metadata)
    nb.cells = [nbformat.v4.new_markdown_cell(MARKDOWN), nbformat.v4.new_code_cell(code)]
    nbformat.write(nb, path)
    return path


def test_source_counts(tmp_path):
    counts = source_counts(_chapter(tmp_path / "toy.ipynb", "x = 1"))
    assert counts == {"proofs": 2, "exercises": 1, "solutions": 1}


def test_render_problems_names_each_defect():
    report = {"markdown": 3, "rendered": 2, "text": "x :label: y $$", "proofs": 1,
              "exercises": 0, "solutions": [True]}
    problems = render_problems(report, {"proofs": 2, "exercises": 1, "solutions": 2})
    assert problems == [
        "1 of 3 Markdown cells not rendered by jupyterlab-myst",
        "raw MyST left in the rendered text: ':label:'",
        "raw MyST left in the rendered text: '$$'",
        "1 rendered theorem/proof blocks, the source has 2",
        "0 rendered exercises, the source has 1",
        "1 rendered solutions, the source has 2",
        "1 solutions are open: they must start collapsed",
    ]


@pytest.mark.parametrize(("code", "expected"), [
    ("x = 1", []),
    ("raise ValueError('broken chapter')", ["code cell 1: ValueError: broken chapter"]),
])
def test_real_jupyterlab_renders_myst_and_reports_errors(chromium, tmp_path, code, expected):
    chapter = _chapter(tmp_path / "toy.ipynb", code)
    assert check_chapter(chapter, tmp_path / "shots", chromium, timeout=120) == expected
    assert (tmp_path / "shots" / "lab__toy__proof.png").stat().st_size > 0
    assert nbformat.read(chapter, as_version=4).cells[1].outputs == []  # the copy ran, not it


def test_real_jupyterlab_save_that_rewrites_a_number_is_reported(chromium, tmp_path):
    """The stored double 4.0 comes back from JavaScript as 4: the check must say so."""
    chapter = _chapter(tmp_path / "toy.ipynb", "x = 1", kexue_nb={"evidence": 4.0})
    problems = check_chapter(chapter, tmp_path / "shots", chromium, run=False)
    assert len(problems) == 1 and "'\"evidence\": 4.0' became '\"evidence\": 4'" in problems[0]
