"""One HTTP call as a soak client makes it: every answer recorded, retried on 503 and lost connections when the
call may be repeated (it carries an Idempotency-Key, or it only reads), and judged: a 5xx is allowed only as the
service documents it."""

from __future__ import annotations

import random
import time

import requests

from tests.soak.history import History

# How long a client keeps retrying one call through an outage (a Redis restart takes a few seconds).
RETRY_WINDOW_S = 90.0
MAX_RETRY_WAIT_S = 2.0
# The failures a synchronous call may answer 500 with, naming the job's own outcome (docs/api.md, "Why a job failed").
JOB_FAILURE_TYPES = {"max_attempts", "timeout", "out_of_memory", "generation_error"}
REQUEST_TIMEOUT_S = 180.0  # above SYNC_WAIT_SECONDS: the service ends a wait, not the client


def error_of(response: requests.Response) -> dict | None:
    """The `error` object of a JSON error answer; None when the body is not JSON (an HTML error page)."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    return error if isinstance(error, dict) else {}


def judge(history: History, route: str, response: requests.Response) -> None:
    """Record the answer; note it as bad when it breaks the service's promises about errors."""
    status = response.status_code
    detail = None
    if status >= 400:
        error = error_of(response)
        if error is None:
            detail = {"why": "an error answer that is not JSON", "body": response.text[:300]}
        elif status == 503 and not response.headers.get("Retry-After"):
            detail = {"why": "503 without Retry-After", "error": error}
        elif status == 504 and not (error.get("job_id") or "job" in str(error.get("message", ""))):
            detail = {"why": "504 that names no job", "error": error}
        elif status == 500 and not {error.get("type"), error.get("code")} & JOB_FAILURE_TYPES:
            detail = {"why": "500 that is not a job's failure", "error": error}
        elif status > 504 or status in (501, 502):
            detail = {"why": "unexpected 5xx", "error": error}
    history.answered(route, status, detail)


def call(
    session: requests.Session,
    history: History,
    route: str,
    method: str,
    url: str,
    *,
    repeatable: bool,
    stream: bool = False,
    **kwargs,
) -> requests.Response | Exception:
    """Send; when `repeatable`, send again after a 503 or a lost connection until RETRY_WINDOW_S has passed.

    Returns the last answer, or the exception of the last try that got none.
    """
    deadline = time.monotonic() + RETRY_WINDOW_S
    while True:
        try:
            response = session.request(method, url, timeout=REQUEST_TIMEOUT_S, stream=stream, **kwargs)
        except requests.RequestException as error:
            history.connection_error(route)
            last: requests.Response | Exception = error
            wait_s = 0.5
        else:
            judge(history, route, response)
            if response.status_code != 503:
                return response
            last = response
            wait_s = min(float(response.headers.get("Retry-After") or 1), MAX_RETRY_WAIT_S)
        if not repeatable or time.monotonic() > deadline:
            return last
        history.retried(route)
        time.sleep(wait_s * random.uniform(0.5, 1.5))


def outcome_of(answer: requests.Response | Exception) -> str:
    """An HTTP status, or the name of the exception that stood for an answer."""
    return str(answer.status_code) if isinstance(answer, requests.Response) else type(answer).__name__
