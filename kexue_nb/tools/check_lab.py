"""Open a chapter in a real JupyterLab (with jupyterlab-myst) and check it as a learner meets it.

    python -m kexue_nb.tools.check_lab book/probability/entropy-normalization.ipynb \\
        --screenshots _build/screenshots

A copy of the chapter is served by JupyterLab on 127.0.0.1 (as root too: ``--allow-root``), and
Debian's Chromium, driven by Playwright, opens it. Checked: every Markdown cell is rendered by
jupyterlab-myst with no raw MyST left in the text (``:label:``, ``{prf:…}``, ``{cite}``, ``$$``);
there are as many rendered theorem/proof blocks, exercises and solutions as the source has; every
solution starts collapsed; saving the unchanged chapter with JupyterLab's own save command leaves
its bytes as they were. Then all cells are run in the kernel and no output may be an error.
Screenshots of the first proof block and of the solutions are saved. Nothing is downloaded, and
the chapter in the repository is not touched.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from kexue_nb.tools.check_browser import CHROMIUM_FLAGS
from kexue_nb.tools.system_tools import require

#: Text that must not survive rendering: MyST syntax a learner would otherwise read raw.
RAW_MYST = (":label:", "{prf:", "{exercise}", "{solution", "{cite", "{doc}", "{ref}", "$$", "```")
#: JupyterLab renders every cell at once, so all of them can be checked without scrolling.
NO_WINDOWING = {"@jupyterlab/notebook-extension/tracker.jupyterlab-settings":
                {"windowingMode": "none"}}

RENDER_REPORT_JS = """() => {
  const md = [...document.querySelectorAll('.jp-MarkdownCell')];
  const rendered = md.filter(c => c.querySelector('.myst'));
  const text = rendered.map(c => c.querySelector('.myst').innerText).join('\\n');
  return {
    markdown: md.length, rendered: rendered.length, text,
    proofs: document.querySelectorAll('.jp-MarkdownCell aside.myst-proof').length,
    exercises: document.querySelectorAll('.jp-MarkdownCell aside.myst-exercise').length,
    solutions: [...document.querySelectorAll('.jp-MarkdownCell details.myst-exercise')]
      .map(d => d.open),
  };
}"""

RUN_STATE_JS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const cells = panel.content.widgets.filter(c => c.model.type === 'code');
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const errors = [];
  cells.forEach((c, i) => c.model.outputs.toJSON().forEach(o => {
    if (o.output_type === 'error') errors.push(`code cell ${i + 1}: ${o.ename}: ${o.evalue}`);
  }));
  return {done: cells.every(c => c.model.executionCount !== null),
          idle: kernel ? kernel.status === 'idle' : false, errors};
}"""


def source_counts(notebook: Path) -> dict[str, int]:
    """How many theorem-like/proof blocks, exercises and solutions the Markdown cells declare."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return {
        "proofs": len(re.findall(r"^```\{prf:(?!ref)[a-z]+\}", text, re.M)),
        "exercises": len(re.findall(r"^```\{exercise\}", text, re.M)),
        "solutions": len(re.findall(r"^```\{solution\}", text, re.M)),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(root: Path, settings: Path, port: int, token: str) -> subprocess.Popen:
    """JupyterLab serving ``root`` on 127.0.0.1:``port``; returns once it answers."""
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}",
               "--ip=127.0.0.1", f"--ServerApp.root_dir={root}",
               f"--IdentityProvider.token={token}", "--LabApp.expose_app_in_browser=True"]
    if os.geteuid() == 0:
        command.append("--allow-root")  # JupyterLab refuses root (containers) without it
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings)}
    lab = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
            return lab
        except OSError:
            if lab.poll() is not None:
                raise RuntimeError("JupyterLab exited before it answered") from None
            time.sleep(0.5)
    lab.terminate()
    raise RuntimeError("JupyterLab did not answer within 90 s")


def check_chapter(notebook: Path, screenshots: Path, chromium: str, run: bool = True,
                  timeout: float = 600) -> list[str]:
    """Every problem a learner would meet with ``notebook`` in JupyterLab (empty when none)."""
    from playwright.sync_api import sync_playwright

    expected = source_counts(notebook)
    problems: list[str] = []
    screenshots.mkdir(parents=True, exist_ok=True)
    stem = notebook.stem
    with tempfile.TemporaryDirectory() as tmp:
        root, settings = Path(tmp) / "lab", Path(tmp) / "settings"
        root.mkdir()
        shutil.copy(notebook, root / notebook.name)
        for name, value in NO_WINDOWING.items():
            (settings / name).parent.mkdir(parents=True, exist_ok=True)
            (settings / name).write_text(json.dumps(value))
        port, token = _free_port(), secrets.token_hex(16)
        lab = start_lab(root, settings, port, token)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"http://127.0.0.1:{port}/lab/tree/{notebook.name}?token={token}")
                page.wait_for_selector(".jp-Notebook .jp-MarkdownCell", timeout=90_000)
                deadline = time.monotonic() + 60
                report = page.evaluate(RENDER_REPORT_JS)
                while report["rendered"] < report["markdown"] and time.monotonic() < deadline:
                    page.wait_for_timeout(500)
                    report = page.evaluate(RENDER_REPORT_JS)
                problems += render_problems(report, expected)
                problems += save_problems(page, root / notebook.name, notebook.read_bytes())
                proof = page.locator(".jp-MarkdownCell aside.myst-proof").first
                if proof.count():
                    proof.scroll_into_view_if_needed()
                    page.screenshot(path=str(screenshots / f"lab__{stem}__proof.png"))
                solution = page.locator(".jp-MarkdownCell details.myst-exercise").first
                if solution.count():
                    solution.scroll_into_view_if_needed()
                    page.screenshot(path=str(screenshots / f"lab__{stem}__solutions.png"))
                if run:
                    problems += run_problems(page, timeout)
                browser.close()
        finally:
            lab.terminate()
            try:
                lab.wait(timeout=30)
            except subprocess.TimeoutExpired:   # a loaded machine can stall the server's shutdown
                lab.kill()
                lab.wait()
    return problems


def render_problems(report: dict, expected: dict[str, int]) -> list[str]:
    """What the rendering ``report`` shows wrong, against the ``expected`` block counts."""
    problems = []
    if report["rendered"] < report["markdown"]:
        problems.append(f"{report['markdown'] - report['rendered']} of {report['markdown']} "
                        "Markdown cells not rendered by jupyterlab-myst")
    problems += [f"raw MyST left in the rendered text: {raw!r}"
                 for raw in RAW_MYST if raw in report["text"]]
    if report["proofs"] < expected["proofs"]:
        problems.append(f"{report['proofs']} rendered theorem/proof blocks, the source has "
                        f"{expected['proofs']}")
    if report["exercises"] < expected["exercises"]:
        problems.append(f"{report['exercises']} rendered exercises, the source has "
                        f"{expected['exercises']}")
    if len(report["solutions"]) != expected["solutions"]:
        problems.append(f"{len(report['solutions'])} rendered solutions, the source has "
                        f"{expected['solutions']}")
    if any(report["solutions"]):
        problems.append(f"{sum(report['solutions'])} solutions are open: they must start "
                        "collapsed")
    return problems


def save_problems(page, saved: Path, original: bytes, timeout: float = 30) -> list[str]:
    """Save the unchanged chapter from JupyterLab and report a file that is no longer the same
    bytes (JavaScript writes the stored double 4.0 back as 4, see :mod:`kexue_nb.json_numbers`)."""
    before = saved.stat().st_mtime_ns
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    deadline = time.monotonic() + timeout
    while saved.stat().st_mtime_ns == before and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    if saved.stat().st_mtime_ns == before:
        return [f"JupyterLab did not save the chapter within {timeout:.0f} s"]
    after = saved.read_bytes()
    if after == original:
        return []
    old, new = original.decode().splitlines(), after.decode().splitlines()
    pairs = enumerate(zip(old, new, strict=False))
    line = next((i for i, (a, b) in pairs if a != b), min(len(old), len(new)))
    shown = (old[line].strip()[:80] if line < len(old) else "(end of file)",
             new[line].strip()[:80] if line < len(new) else "(end of file)")
    return [f"saving from JupyterLab changes the file at line {line + 1}: {shown[0]!r} became "
            f"{shown[1]!r}"]


def run_problems(page, timeout: float) -> list[str]:
    """Clear the outputs, run every cell in the kernel, and report error outputs."""
    # Started, not awaited: the commands' promises settle only when every cell has run.
    for command in ("notebook:clear-all-cell-outputs", "notebook:run-all-cells"):
        page.evaluate(f"() => {{ window.jupyterapp.commands.execute('{command}'); }}")
        page.wait_for_timeout(500)
    deadline = time.monotonic() + timeout
    state = page.evaluate(RUN_STATE_JS)
    while not (state["done"] and state["idle"]) and time.monotonic() < deadline:
        page.wait_for_timeout(1000)
        state = page.evaluate(RUN_STATE_JS)
    problems = list(state["errors"])
    if not (state["done"] and state["idle"]):
        problems.append(f"the cells did not finish running within {timeout:.0f} s")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path, help="the chapter to open")
    parser.add_argument("--screenshots", type=Path, default=Path("_build/screenshots"))
    parser.add_argument("--chromium", default=None)
    parser.add_argument("--no-run", action="store_true", help="check the rendering only")
    args = parser.parse_args(argv)
    if not args.notebook.is_file():
        parser.error(f"no notebook {args.notebook}")
    begin = time.monotonic()
    problems = check_chapter(args.notebook, args.screenshots, args.chromium or require("chromium"),
                             not args.no_run)
    for problem in problems:
        print(f"{args.notebook}: {problem}")
    counts = source_counts(args.notebook)
    print(f"JupyterLab check of {args.notebook.name} ({counts['proofs']} theorem/proof blocks, "
          f"{counts['exercises']} exercises, {counts['solutions']} solutions"
          f"{'' if args.no_run else ', all cells run'}) in {time.monotonic() - begin:.0f} s: "
          + ("sound" if not problems else f"{len(problems)} problems"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
