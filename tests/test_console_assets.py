"""The console works offline: its page, scripts and styles are all served by the app, and none names another host.
(No browser needed: this runs wherever the suite does.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from api.app import create_app
from api.routes.console import CONSOLE_DIR

# The one absolute URL the scripts hold is SVG's namespace name, an identifier the browser never fetches.
SVG_NAMESPACE = "http://www.w3.org/2000/svg"
# Any absolute URL (http, https, ws...), a protocol-relative one (//host.tld), or a CSS import.
EXTERNAL_URL = re.compile(r"""\b[a-z][a-z0-9+.-]*://|["'(\s]//[a-z0-9-]+\.[a-z0-9.-]+|@import""", re.I)
# What a page or script loads: src/href attributes, CSS url(...), module imports.
REFERENCE = re.compile(
    r"""(?:src|href)="([^"#][^"]*)"|url\(\s*['"]?([^'")]+)|(?:import|from)\s*\(?\s*["']([^"']+)["']"""
)


def console_files() -> list[Path]:
    return sorted(path for path in CONSOLE_DIR.rglob("*") if path.is_file())


def test_no_console_file_names_another_host():
    files = console_files()
    assert {path.suffix for path in files} >= {".html", ".js", ".css"}
    for path in files:
        text = path.read_text(encoding="utf-8").replace(SVG_NAMESPACE, "")
        found = EXTERNAL_URL.findall(text)
        assert not found, f"{path.relative_to(CONSOLE_DIR)} refers elsewhere: {found}"


@pytest.fixture
def client(make_settings):
    return create_app(make_settings()).test_client()


@pytest.mark.parametrize("path", ["/", "/console"])
def test_every_asset_the_page_loads_is_served_by_the_app(client, path):
    """From the page, follow every script, stylesheet and module import: each answers 200 from this app."""
    page = client.get(path)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"  # Vietnamese text is read as UTF-8
    assert '<meta charset="utf-8" />' in page.text
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    seen: set[str] = set()
    pending = [("/", page.text)]
    while pending:
        base, text = pending.pop()
        for groups in REFERENCE.findall(text):
            reference = next(group for group in groups if group)
            if reference.startswith("/docs"):  # the API's own Swagger UI, named in the page's <noscript>
                continue
            url = reference if reference.startswith("/") else base.rsplit("/", 1)[0] + "/" + reference.lstrip("./")
            if url in seen:
                continue
            seen.add(url)
            asset = client.get(url)
            assert asset.status_code == 200, f"{url} (from {base}) answered {asset.status_code}"
            assert "charset=utf-8" in asset.headers["Content-Type"]
            pending.append((url, asset.get_data(as_text=True)))
    served = {url.rsplit("/", 1)[-1] for url in seen}
    # Every file of the console is reached from the page (none is dead, none is loaded from elsewhere).
    assert served == {path.name for path in console_files() if path.name != "index.html"}
