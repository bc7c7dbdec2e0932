"""The files a real project carries agree with each other: one repository URL, one licence,
workflows that run the README's test command, and pins split so the book installs alone."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _repository_url():
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]


def test_one_repository_url_everywhere():
    url = _repository_url()
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url)
    assert url in (ROOT / "README.md").read_text()
    assert yaml.safe_load((ROOT / "CITATION.cff").read_text())["repository-code"] == url
    for text in (ROOT / "README.md", ROOT / "CITATION.cff"):
        others = set(re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", text.read_text()))
        assert others <= {url}, (text.name, others)


def test_licence_is_the_one_declared():
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert 'license = "MIT"' in (ROOT / "pyproject.toml").read_text()
    assert yaml.safe_load((ROOT / "CITATION.cff").read_text())["license"] == "MIT"


def test_workflows_run_the_readme_test_command_and_publish_the_site():
    test = yaml.safe_load((ROOT / ".github/workflows/test.yml").read_text())
    steps = [s.get("run", "") for s in test["jobs"]["test"]["steps"]]
    assert "bash .ci/run" in steps
    assert "make test" in (ROOT / ".ci/run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()
    publish = yaml.safe_load((ROOT / ".github/workflows/publish.yml").read_text())
    uses = [s.get("uses", "") for job in publish["jobs"].values() for s in job["steps"]]
    assert any(u.startswith("actions/deploy-pages@") for u in uses)


def _pins(name):
    lines = (ROOT / name).read_text().splitlines()
    return {re.split(r"[=<>\[]", line)[0].strip().lower() for line in lines
            if line.strip() and not line.startswith(("#", "-"))}


def test_book_pins_exclude_test_and_lab_tools_and_requirements_take_all():
    book = _pins("requirements/book.txt")
    assert "jupyter-book" in book and {"numpy", "sympy"} <= book
    assert not book & {"pytest", "nbval", "ruff", "diffusers", "playwright", "jupyterlab"}
    assert not book & {"torch", "scipy", "scikit-learn", "safetensors"}  # no training stack
    assert "-e ." not in (ROOT / "requirements/book.txt").read_text()
    assert "torch" in _pins("requirements/package.txt")
    top = (ROOT / "requirements.txt").read_text()
    for part in ("book", "package", "lab", "test"):
        assert f"-r requirements/{part}.txt" in top


def test_pyproject_declares_every_runtime_import():
    """Each third-party module kexue_nb imports is a declared dependency or an extra's."""
    import ast
    import sys
    import tomllib
    from importlib.metadata import packages_distributions

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    def norm(name):
        return re.split(r"[=<>\[ ;]", name)[0].lower().replace("_", "-")

    declared = {norm(d) for d in project["dependencies"]}
    declared |= {norm(d) for deps in project["optional-dependencies"].values() for d in deps}
    owners = packages_distributions()
    missing = set()
    for path in (ROOT / "kexue_nb").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("kexue_nb", "__future__"):
                    continue
                dists = {norm(d) for d in owners.get(top, [top])}
                if not dists & declared:
                    missing.add(f"{top} ({path.relative_to(ROOT)})")
    assert not missing, sorted(missing)


def test_no_reference_outside_the_repository():
    for name in ("requirements.txt", "_toc.yml", "_config.yml", "README.md", "Makefile"):
        assert "../shared" not in (ROOT / name).read_text(), name


def test_stored_notebooks_stay_small():
    """Contract version 3 stores large arrays as summaries and figures as compact PNGs: no
    notebook over 1.5 MB, the book's notebooks together under 4 MB (8.5 MB under version 2)."""
    sizes = {p.name: p.stat().st_size for p in (ROOT / "book").rglob("*.ipynb")
             if "_build" not in p.parts}
    assert max(sizes.values()) <= 1_500_000, sizes
    assert sum(sizes.values()) < 4_000_000, sizes


def test_readme_names_every_debian_package_the_makefile_installs():
    """README's make pdf / make test paragraphs list what the Makefile's `debian` calls install."""
    makefile = (ROOT / "Makefile").read_text()
    tex = re.search(r"^TEX_PACKAGES\s*:=\s*((?:.*\\\n)*.*)$", makefile, re.M).group(1)
    packages = set(tex.replace("\\\n", " ").split())
    recipes = "\n".join(line for line in makefile.splitlines() if line.startswith("\t"))
    for call in re.findall(r"\$\(call debian,[^,]*,([^,)]*)", recipes):
        packages |= {name for name in call.split() if not name.startswith("$(")}
    readme = (ROOT / "README.md").read_text()
    assert packages and sorted(p for p in packages if f"`{p}`" not in readme) == []
