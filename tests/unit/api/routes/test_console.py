"""The console's page and files: served by the app itself, under a strict content security policy."""

from __future__ import annotations

from api.routes.console import CONSOLE_DIR, CONTENT_SECURITY_POLICY


def test_the_page_is_served_at_the_root_and_console_with_its_headers(api):
    for path in ("/", "/console"):
        response = api.client.get(path)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_every_static_file_is_served_without_a_key(api):
    files = [path for path in (CONSOLE_DIR / "static").rglob("*") if path.is_file()]
    assert files
    for path in files:
        relative = path.relative_to(CONSOLE_DIR / "static").as_posix()
        response = api.client.get(f"/console/static/{relative}")
        assert response.status_code == 200, relative
        assert response.data == path.read_bytes()
