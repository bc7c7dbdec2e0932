"""Re-execute notebooks in place, top to bottom, and report how long each took.

    python -m kexue_nb.tools.execute book/                      # every notebook of the book
    python -m kexue_nb.tools.execute book/probability/entropy-normalization.ipynb
    python -m kexue_nb.tools.execute book/diffusion/ --slowest 5   # and each one's slowest cells

Each notebook runs in a fresh kernel of the current environment, in its own folder, with
``PYTHONHASHSEED=0`` and one math-library thread (``OMP_NUM_THREADS=1``: float reductions
then do not depend on the core count, and small tensors run faster than with a contended
thread pool); chapters seed their own generators and switch their progress bars off.
``book/verification.ipynb`` (which reads the others' ledgers) always runs last.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

#: Notebooks that read the other notebooks' stored outputs, so they run after them.
RUN_LAST = ("verification.ipynb",)
#: Seconds a notebook may take on the 2-core CPU with default sizes (the book's budget).
BUDGET_S = 180.0


def find_notebooks(paths: Iterable[str | Path]) -> list[Path]:
    """Notebooks named by ``paths`` (files or folders, searched recursively), readers last."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += [
                p
                for p in sorted(path.rglob("*.ipynb"))
                if "_build" not in p.parts and ".ipynb_checkpoints" not in p.parts
            ]
        elif path.suffix == ".ipynb" and path.is_file():
            found.append(path)
        else:
            raise ValueError(f"`paths` must name notebooks or folders, got {str(path)!r}")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return sorted(unique, key=lambda p: p.name in RUN_LAST)


class Execution(NamedTuple):
    """Wall-clock seconds of a notebook's run, and of each code cell (by cell index)."""

    seconds: float
    cell_seconds: dict[int, float]


def run_notebook(notebook: nbformat.NotebookNode, folder: Path, timeout: int = 900) -> Execution:
    """Execute ``notebook`` in a fresh kernel, in ``folder``, as the book's chapters run
    (``PYTHONHASHSEED=0``, one math-library thread); its outputs are filled in place.
    A failing cell raises nbclient's ``CellExecutionError``."""
    started: dict[int, float] = {}
    cell_seconds: dict[int, float] = {}

    def start(cell, cell_index, **_):
        started[cell_index] = time.perf_counter()

    def stop(cell, cell_index, **_):
        cell_seconds[cell_index] = time.perf_counter() - started[cell_index]

    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(folder)}},
        record_timing=False,
        on_cell_execute=start,
        on_cell_executed=stop,
    )
    env = {"PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    previous = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    begin = time.perf_counter()
    try:
        client.execute()
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return Execution(time.perf_counter() - begin, cell_seconds)


def merge_streams(notebook: nbformat.NotebookNode) -> None:
    """Join consecutive ``stdout`` (or ``stderr``) outputs of each cell into one: how the kernel
    chunks a stream depends on timing, so unmerged chunks would make re-execution rewrite an
    unchanged chapter."""
    for cell in notebook.cells:
        merged: list = []
        for output in cell.get("outputs", []):
            previous = merged[-1] if merged else None
            if (output.get("output_type") == "stream" and previous is not None
                    and previous.get("output_type") == "stream"
                    and previous.get("name") == output.get("name")):
                previous["text"] = previous["text"] + output["text"]
            else:
                merged.append(output)
        if "outputs" in cell:
            cell["outputs"] = merged


def name_kernel(notebook: nbformat.NotebookNode) -> None:
    """Record the kernel as JupyterLab writes it on saving (the kernel spec's own display name,
    e.g. "Python 3 (ipykernel)"), so that a save in JupyterLab leaves the file unchanged."""
    spec = KernelSpecManager().get_kernel_spec("python3")
    notebook.metadata["kernelspec"] = {"display_name": spec.display_name,
                                       "language": spec.language, "name": "python3"}


def execute_notebook(path: Path, timeout: int = 900) -> Execution:
    """Execute ``path`` in place, streams merged, kernel named as JupyterLab names it; return
    how long it and each of its code cells took."""
    notebook = nbformat.read(path, as_version=4)
    run = run_notebook(notebook, path.parent, timeout)
    merge_streams(notebook)
    name_kernel(notebook)
    nbformat.write(notebook, path)
    return run


def _first_line(path: Path, index: int) -> str:
    source = nbformat.read(path, as_version=4).cells[index].source
    return source.splitlines()[0][:50] if source else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kexue_nb.tools.execute",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="notebooks or folders of notebooks")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell")
    parser.add_argument("--slowest", type=int, default=0, metavar="N",
                        help="also list each notebook's N slowest cells")
    args = parser.parse_args(argv)
    if args.slowest < 0:
        parser.error(f"--slowest must be >= 0, got {args.slowest}")
    try:
        notebooks = find_notebooks(args.paths)
    except ValueError as err:
        parser.error(str(err))
    if not notebooks:
        parser.error("no notebooks found")
    rows = []
    for path in notebooks:
        shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
        print(f"executing {shown}", flush=True)
        rows.append((path, execute_notebook(path, timeout=args.timeout)))
    print(f"\n{'notebook':<60} {'seconds':>8}")
    for path, run in rows:
        flag = "  over budget" if run.seconds > BUDGET_S else ""
        print(f"{path.name:<60} {run.seconds:8.1f}{flag}")
        slowest = sorted(run.cell_seconds.items(), key=lambda item: -item[1])[:args.slowest]
        for index, seconds in slowest:
            print(f"  cell {index:<3} {_first_line(path, index):<52} {seconds:8.1f}")
    print(f"{'total':<60} {sum(run.seconds for _, run in rows):8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
