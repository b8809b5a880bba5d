"""Imports run one way: what each package may import, read from the source and checked in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BROKER_LIBRARIES = {"celery", "kombu"}
MODEL_LIBRARIES = {"torch", "transformers"}
# The tools around the service: the service's own packages never import them (they start its processes, test and
# measure it, from outside).
TOOLING = {"launcher", "scripts", "bench", "tests"}


def imported_modules(package: str) -> dict[str, set[str]]:
    """For each module file of the package, the top-level names of everything it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
            elif isinstance(node, ast.ImportFrom):
                names.add(package)  # a relative import stays inside the package
        found[str(path.relative_to(ROOT))] = names
    return found


def offenders(package: str, forbidden: set[str]) -> dict[str, set[str]]:
    return {path: names & forbidden for path, names in imported_modules(package).items() if names & forbidden}


def test_the_walk_sees_imports():
    """The checks below read real import statements (they would pass vacuously on an empty walk)."""
    assert "celery" in imported_modules("broker")["broker/app.py"]
    assert "torch" in set().union(*imported_modules("worker").values())


@pytest.mark.parametrize("package", ["worker", "ops"])
def test_workers_never_import_the_api(package):
    assert offenders(package, {"api"}) == {}


def test_core_imports_no_web_broker_or_model_library():
    assert offenders("core", {"flask", "werkzeug"} | BROKER_LIBRARIES | MODEL_LIBRARIES) == {}


@pytest.mark.parametrize("package", ["api", "ops", "core"])
def test_only_the_broker_layer_talks_to_celery(package):
    """The API and the ops worker publish through broker/; they never build a Celery app or read kombu's keys."""
    assert offenders(package, BROKER_LIBRARIES) == {}


def test_kombu_is_read_only_in_the_broker_layer():
    for package in ("api", "worker", "ops", "core", "launcher", "scripts"):
        assert offenders(package, {"kombu"}) == {}, package


@pytest.mark.parametrize("package", ["api", "broker", "core", "worker", "ops"])
def test_the_service_never_imports_its_tooling(package):
    assert offenders(package, TOOLING) == {}


def test_the_launcher_starts_the_processes_without_importing_them():
    """`make run`'s supervisor runs the API, the broker's workers and the model as child processes; it imports
    none of their web, broker or model libraries (a crash there must not take the supervisor with it)."""
    heavy = {"api", "broker", "flask", "werkzeug"} | BROKER_LIBRARIES | MODEL_LIBRARIES
    assert offenders("launcher", heavy) == {}


@pytest.mark.parametrize("package", ["api", "broker", "ops"])
def test_light_packages_never_import_the_model_libraries(package):
    assert offenders(package, MODEL_LIBRARIES | {"worker"}) == {}


def test_broker_and_celeryconfig_import_one_way():
    """broker/ builds its Celery apps from celeryconfig; celeryconfig imports nothing of this project."""
    tree = ast.parse((ROOT / "celeryconfig.py").read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not {name.split(".")[0] for name in imported} & {"broker", "api", "worker", "ops", "core"}


@pytest.mark.parametrize("module", ["ops.main", "api.app", "launcher.run_local"])
def test_light_process_loads_no_torch_or_transformers(module):
    """Importing the whole program in a fresh interpreter leaves torch and transformers unloaded."""
    check = (
        f"import sys, {module}\n"
        "loaded = sorted({'torch', 'transformers'} & {name.split('.')[0] for name in sys.modules})\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
