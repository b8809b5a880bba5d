"""The unit tests mirror the code: every module with logic in core/, api/, worker/, broker/, ops/ and launcher/ has
its test file at the same place under tests/unit/ (core/jobs/store.py -> tests/unit/core/jobs/test_store.py), no
test file outlives its module, and every test folder is a package.

"With logic" means the module defines a function or a method; a module of declarations only (constants, models
without methods) or an empty package marker has nothing of its own to test. The exceptions below each say why the
module has no unit test file and where it is tested instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "tests" / "unit"
PACKAGES = ("core", "api", "worker", "broker", "ops", "launcher")

# Modules with logic and no unit test file of their own, each with the reason.
EXCEPTIONS = {
    "worker/__main__.py": "`python -m worker`: parses argv and starts Celery; the session's worker fixture runs it",
    "ops/main.py": "the ops process: signal handlers and threads around the reconciler, sampler and sender, which "
    "have unit tests of their own; tests/test_webhooks.py and tests/test_reconciler.py run the process",
}


def has_logic(path: Path) -> bool:
    """Whether the module defines a function or a method anywhere (top level, in a class, under a condition)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) for node in ast.walk(tree))


def modules() -> list[Path]:
    """Every module of the mirrored packages but the package markers."""
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py") if path.name != "__init__.py")


def mirror_of(module: Path) -> Path:
    """tests/unit/<package>/<folders>/test_<module>.py for <package>/<folders>/<module>.py."""
    relative = module.relative_to(ROOT)
    return UNIT / relative.parent / f"test_{relative.name}"


def name_of(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("module", [name_of(path) for path in modules() if has_logic(path)])
def test_each_module_with_logic_has_its_test_file(module: str) -> None:
    if module in EXCEPTIONS:
        pytest.skip(EXCEPTIONS[module])
    assert mirror_of(ROOT / module).is_file(), f"add {name_of(mirror_of(ROOT / module))} for {module}"


def test_every_exception_is_still_needed() -> None:
    stale = [
        name
        for name in EXCEPTIONS
        if not (ROOT / name).is_file() or not has_logic(ROOT / name) or mirror_of(ROOT / name).is_file()
    ]
    assert stale == [], f"these modules are gone, have no logic, or have their test file now: {stale}"


def test_every_unit_test_file_mirrors_a_module() -> None:
    mirrored = {mirror_of(module) for module in modules()}
    test_files = [path for package in PACKAGES for path in sorted((UNIT / package).rglob("test_*.py"))]
    orphans = [name_of(path) for path in test_files if path not in mirrored]
    assert orphans == [], f"these test files mirror no module (moved or renamed?): {orphans}"


def test_every_test_folder_is_a_package() -> None:
    folders = {UNIT} | {
        folder
        for package in PACKAGES
        for folder in [UNIT / package, *(UNIT / package).rglob("*")]
        if folder.is_dir() and folder.name != "__pycache__"
    }
    assert [name_of(folder) for folder in sorted(folders) if not (folder / "__init__.py").is_file()] == []
