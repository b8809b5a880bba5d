"""The project installs as a package: no file edits the import path, every console script names a callable of an
installed package, and `make` and the image install the project. Read from the files; no Redis, no server."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
# Top-level folders that are never installed: run from the checkout (`python -m bench.run_bench`, pytest).
NOT_INSTALLED = {"bench", "tests"}


def python_files() -> list[Path]:
    """Every .py file of the checkout, outside hidden folders (.venv, .gpu-site, .run...) and caches."""
    return [
        path
        for path in ROOT.rglob("*.py")
        if not any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(ROOT).parts[:-1])
    ]


def edits_import_path(tree: ast.AST) -> bool:
    """Whether the code calls a method of `sys.path` (insert, append...) or assigns to it or to an item of it."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and is_sys_path(node.func.value):
            return True
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for target in targets:
            if is_sys_path(target) or (isinstance(target, ast.Subscript) and is_sys_path(target.value)):
                return True
    return False


def is_sys_path(node: ast.AST | None) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "path"
        and isinstance(node.value, ast.Name)
        and node.value.id == "sys"
    )


def installed_top_level() -> set[str]:
    """The top-level packages and modules the build installs (pyproject's explicit include list)."""
    setuptools = PYPROJECT["tool"]["setuptools"]
    packages = {name.removesuffix(".*") for name in setuptools["packages"]["find"]["include"]}
    return packages | set(setuptools["py-modules"])


def console_scripts() -> dict[str, str]:
    return PYPROJECT["project"]["scripts"]


def make_rule(target: str) -> list[str]:
    """The header line and the recipe lines of one Makefile rule."""
    lines = (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("\t")), len(lines))
    return lines[start:end]


def test_the_walk_finds_a_path_edit():
    """The check below would see the edits it forbids."""
    for source in ("import sys\nsys.path.insert(0, 'x')\n", "import sys\nsys.path = []\n", "sys.path[0:0] = ['x']\n"):
        assert edits_import_path(ast.parse(source)), source
    assert not edits_import_path(ast.parse("import sys\nprint(sys.path)\nfrom os import path\npath.join('a')\n"))


def test_no_file_edits_the_import_path():
    """Programs run as installed console scripts or as `python -m package.module` from the checkout."""
    files = python_files()
    assert ROOT / "launcher" / "run_local.py" in files
    sources = {path: path.read_bytes() for path in files}
    editing = [
        str(path.relative_to(ROOT))
        for path, source in sources.items()
        if b"sys" in source and edits_import_path(ast.parse(source))
    ]
    assert editing == []


def test_every_package_of_the_checkout_is_installed_or_run_from_it():
    """A new top-level package is either installed (pyproject's include list) or one of the checkout-only ones."""
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    assert {"api", "core", "broker", "worker", "ops", "launcher", "scripts"} <= packages
    assert packages - NOT_INSTALLED == installed_top_level() - {"celeryconfig"}
    assert not installed_top_level() & NOT_INSTALLED


def test_every_console_script_is_a_function_of_an_installed_package():
    """Each `module:function` is a module that the import system finds in an installed package, defining that
    function at its top level. Read, not run: importing them all would load torch for seconds (the tests of each
    program import it)."""
    scripts = console_scripts()
    assert all(name.startswith("llmq-") for name in scripts), scripts
    for target in scripts.values():
        module, _, function = target.partition(":")
        assert module.split(".")[0] in installed_top_level(), target
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin is not None, target
        tree = ast.parse(Path(spec.origin).read_bytes())
        assert function in {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}, target


def test_the_programs_people_run_have_console_scripts():
    scripts = console_scripts()
    assert scripts["llmq-run"] == "launcher.run_local:main"
    assert scripts["llmq-gpu-worker"] == "worker.__main__:main"
    assert scripts["llmq-ops-worker"] == "ops.main:main"
    for name in ("llmq-healthcheck", "llmq-submit-batch", "llmq-prepare-model", "llmq-demo-model", "llmq-gpu-check"):
        assert name in scripts


def test_make_installs_the_pinned_requirements_then_the_project_without_dependencies():
    header, *recipe = make_rule("$(RUNTIME_STAMP)")
    assert "requirements.txt" in header and "pyproject.toml" in header
    requirements = recipe.index("\t$(PY) -m pip install --quiet -r requirements.txt")
    project = recipe.index("\t$(PY) -m pip install --quiet --no-deps -e .")
    assert requirements < project


def test_make_targets_call_console_scripts_that_exist():
    """`$(VENV)/bin/llmq-...` in the Makefile names a console script of pyproject."""
    called = set(re.findall(r"\$\(VENV\)/bin/(llmq-[a-z-]+)", (ROOT / "Makefile").read_text(encoding="utf-8")))
    assert "llmq-run" in called
    assert called <= set(console_scripts())
    assert make_rule("run")[1:] == ["\t$(VENV)/bin/llmq-run"]


def test_the_image_installs_the_project_without_dependencies():
    """The Dockerfile installs the project (console scripts included) after requirements.txt's pinned set."""
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^RUN pip install --no-cache-dir --no-deps \. ", dockerfile, re.MULTILINE)
    assert "COPY pyproject.toml" in dockerfile
    assert "PYTHONPATH=" not in dockerfile, "the installed project needs no import path of its own"


def test_the_installed_console_scripts_are_pyprojects():
    """Where the project is installed (`make` always installs it), its console scripts are the ones pyproject names:
    an install older than a change to them would run stale entry points."""
    try:
        installed = importlib.metadata.distribution(PYPROJECT["project"]["name"])
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the project is not installed in this interpreter (`make test` installs it)")
    scripts = {entry.name: entry.value for entry in installed.entry_points if entry.group == "console_scripts"}
    assert scripts == console_scripts()
