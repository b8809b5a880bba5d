"""What the service holds once the soak is quiet, read as a client reads it (HTTP), and what it did, read from
the execution log kept outside Redis."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.soak.calls import call
from tests.soak.history import History

EXECUTION_LINE = re.compile(r"^\S+ (?P<job>[0-9a-f]{32}) attempt=(?P<attempt>\d+) worker=\S+ pid=(?P<pid>\d+)$")
TERMINAL = ("succeeded", "failed", "canceled")


@dataclass(frozen=True)
class Execution:
    job_id: str
    attempt: int
    pid: int


def read_executions(path: Path) -> list[Execution]:
    """One line per execution (the worker writes it as the job starts), in order."""
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        match = EXECUTION_LINE.match(line)
        if match is None:
            raise ValueError(f"an execution log line the soak can't read: {line!r}")
        found.append(Execution(match["job"], int(match["attempt"]), int(match["pid"])))
    return found


class Reader:
    """GETs through the same retrying call as the clients (answers recorded in the same history)."""

    def __init__(self, url: str, history: History) -> None:
        self.url = url
        self.history = history
        self.session = requests.Session()

    def _get(self, route: str, path: str, **params) -> requests.Response:
        answer = call(self.session, self.history, route, "GET", f"{self.url}{path}", repeatable=True, params=params)
        if isinstance(answer, Exception):
            raise RuntimeError(f"GET {path} got no answer: {answer!r}")
        return answer

    def job(self, job_id: str) -> dict | None:
        """The job object, None for a 404 (lost)."""
        answer = self._get("GET /jobs/<id>", f"/jobs/{job_id}")
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        return answer.json()

    def jobs(self, job_ids: list[str]) -> dict[str, dict | None]:
        return {job_id: self.job(job_id) for job_id in job_ids}

    def listed_jobs(self) -> list[dict]:
        """Every job the (anonymous) caller has, through the listing's pages."""
        found, cursor = [], None
        while True:
            params = {"limit": 100} | ({"cursor": cursor} if cursor else {})
            answer = self._get("GET /jobs", "/jobs", **params)
            answer.raise_for_status()
            page = answer.json()
            found += page["data"]
            cursor = page["next_cursor"]
            if not cursor:
                return found

    def batch(self, batch_id: str) -> dict | None:
        answer = self._get("GET /batches/<id>", f"/batches/{batch_id}")
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        return answer.json()

    def batch_results(self, batch_id: str) -> list[dict]:
        answer = self._get("GET /batches/<id>/results", f"/batches/{batch_id}/results")
        answer.raise_for_status()
        return [json.loads(line) for line in answer.text.splitlines() if line.strip()]
