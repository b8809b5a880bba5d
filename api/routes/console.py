"""The web console: one page and its scripts and styles, all served by the app itself (no CDN, no build step).

The console reads and writes only through the JSON API (with the key the browser holds), so it needs no route of
its own beyond these files; they are public, like /docs, and what they show depends on the key.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_from_directory

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
STATIC_URL_PATH = "/console/static"

bp = Blueprint(
    "console",
    __name__,
    static_folder=str(CONSOLE_DIR / "static"),
    static_url_path=STATIC_URL_PATH,
)

# Scripts, styles and data come from this origin only: an asset from elsewhere would break offline, and a job's text
# shown on the page can never run as script.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@bp.after_request
def _console_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    # A new release's page and scripts are picked up at once (they are small; the browser revalidates them).
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/")
@bp.get("/console")
def console_page():
    """The console's page; its views (prompt, jobs, batches, charts) are drawn by its scripts."""
    response = send_from_directory(CONSOLE_DIR, "index.html", mimetype="text/html")
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    return response
