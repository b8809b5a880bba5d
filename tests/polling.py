"""The one way tests wait: poll a reading until it is what the test needs, or fail saying what never came."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import requests

T = TypeVar("T")

TERMINAL_STATUSES = ("succeeded", "failed", "canceled")


def poll_until(read: Callable[[], T], done: Callable[[T], bool], timeout_s: float, what: str, interval_s=0.05) -> T:
    """Call `read()` until `done` holds for its value and return that value; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; last seen: {value!r}")
        time.sleep(interval_s)


def is_terminal(job: dict) -> bool:
    """The job (as the API returns it) has finished: succeeded, failed or canceled."""
    return job["status"] in TERMINAL_STATUSES


def get_job(base_url: str, job_id: str) -> dict:
    """GET /jobs/<id>, as a client would."""
    return requests.get(f"{base_url}/jobs/{job_id}", timeout=5).json()


def wait_for_job(base_url: str, job_id: str, done: Callable[[dict], bool], timeout_s: float = 20) -> dict:
    """Poll GET /jobs/<id> until `done(job)`."""
    return poll_until(lambda: get_job(base_url, job_id), done, timeout_s, f"job {job_id}")


def wait_for_terminal(base_url: str, job_id: str, timeout_s: float = 60) -> dict:
    """Poll GET /jobs/<id> until the job is finished."""
    return wait_for_job(base_url, job_id, is_terminal, timeout_s)


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.05) -> float:
    """Poll until `predicate()` is true; returns the seconds it took."""
    started = time.monotonic()
    poll_until(predicate, bool, timeout_s, what, interval_s=poll_s)
    return time.monotonic() - started
