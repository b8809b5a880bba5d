"""Every module with logic in api/, worker/, broker/ and ops/ has its own test file under tests/unit/<package>/.

"With logic" means the module defines a function or a class with a method; a module of declarations only (constants,
models without methods) or an empty package marker has nothing of its own to test. The exceptions below are entry
points that only start a process, each with the reason it is tested elsewhere.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "worker", "broker", "ops")
EXCEPTIONS = {
    "api/wsgi.py": "gunicorn's entry point: builds the app from the environment; the end-to-end suites serve it",
    "worker/__main__.py": "`python -m worker`: parses argv and starts Celery; the session's worker fixture runs it",
    "ops/__main__.py": "`python -m ops`: calls ops.main.main; the webhook_worker fixture runs it",
    "ops/main.py": "the ops process: signal handlers and threads around the reconciler, sampler and sender, which "
    "have unit tests of their own; tests/test_webhooks.py and tests/test_reconciler.py run the process",
}


def has_logic(path: Path) -> bool:
    """Whether the module defines a function, or a class with a method of its own."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return True
    return False


def modules_with_logic() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if path.name != "__init__.py" and has_logic(path):
                found.append(relative)
    return found


def mirror_of(module: str) -> Path:
    """tests/unit/<package>/<subfolders>/test_<module>.py for <package>/<subfolders>/<module>.py."""
    path = Path(module)
    return ROOT / "tests" / "unit" / path.parent / f"test_{path.stem}.py"


@pytest.mark.parametrize("module", modules_with_logic())
def test_each_module_with_logic_has_its_test_file(module):
    if module in EXCEPTIONS:
        pytest.skip(EXCEPTIONS[module])
    assert mirror_of(module).is_file(), f"{module} has no {mirror_of(module).relative_to(ROOT)}"


def test_the_exceptions_name_modules_that_still_exist_and_lack_a_mirror():
    for module in EXCEPTIONS:
        assert (ROOT / module).is_file(), f"{module} is gone: drop its exception"
        assert not mirror_of(module).is_file(), f"{module} has a test file now: drop its exception"


def test_every_test_folder_is_a_package():
    for package in PACKAGES:
        for folder in [ROOT / "tests" / "unit" / package, *(ROOT / "tests" / "unit" / package).rglob("*")]:
            if folder.is_dir() and folder.name != "__pycache__":
                assert (folder / "__init__.py").is_file(), folder
