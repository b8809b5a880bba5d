"""The headless browser the console tests drive: Debian's chromium under Playwright (never Playwright's own download,
which can't work offline). Without it the tests skip, saying why, unless REQUIRE_BROWSER=1 (CI), where they fail."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Screenshots of the console tests, kept after the run (git-ignored).
ARTIFACTS_DIR = Path(__file__).resolve().parent.parent / "test-artifacts" / "console"


def missing_browser() -> str | None:
    """Why the browser can't run here, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is not installed (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -r requirements-dev.txt)"
    return None


def launched_browser() -> Iterator:
    """A headless chromium for one test module; skips (or, with REQUIRE_BROWSER=1, fails) when there is none."""
    reason = missing_browser()
    if reason:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"REQUIRE_BROWSER=1, but {reason}")
        pytest.skip(f"no browser for the console tests: {reason}; .ci/run installs it and sets REQUIRE_BROWSER=1")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page, name: str) -> Path:
    """Keep what the page shows now as test-artifacts/console/<name>.png."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
