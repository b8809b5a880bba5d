"""The jobs a GPU worker runs right now: their deadlines, and their cancel flags read from Redis for all at once."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from core.errors import StoreUnavailable
from core.jobs.store import JobStore

log = logging.getLogger("llm.worker")

# How stale a "was it canceled?" answer may be; cancels must land within a second.
CANCEL_POLL_S = 0.25


@dataclass
class _Entry:
    deadline: float  # time.monotonic() after which the job has run too long
    canceled: bool = False


class RunningJobs:
    """A locked registry shared by the job threads, the cancel poller and the hung-engine watchdog.

    One pipelined Redis call per tick answers for every running job, and a job's own check reads only memory:
    a Redis outage slows nobody's deadline or shutdown.
    """

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._jobs: dict[str, _Entry] = {}
        self._emptied = threading.Condition(self._lock)

    def add(self, job_id: str, deadline: float) -> None:
        with self._lock:
            self._jobs[job_id] = _Entry(deadline)

    def remove(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)
            if not self._jobs:
                self._emptied.notify_all()

    def count(self) -> int:
        """How many jobs run now (the batch's occupancy, reported in the heartbeat)."""
        with self._lock:
            return len(self._jobs)

    def canceled(self, job_id: str) -> bool:
        """Whether a cancel of this job was seen at the last poll."""
        with self._lock:
            entry = self._jobs.get(job_id)
            return entry is not None and entry.canceled

    def overdue(self, grace_s: float) -> list[str]:
        """Jobs still running `grace_s` past their deadline."""
        now = time.monotonic()
        with self._lock:
            return [job_id for job_id, entry in self._jobs.items() if now > entry.deadline + grace_s]

    def wait_until_empty(self, timeout_s: float) -> bool:
        """Block until no job is registered (all handed back or recorded); False on timeout."""
        with self._lock:
            return self._emptied.wait_for(lambda: not self._jobs, timeout=timeout_s)

    def poll_cancels(self) -> None:
        """One round trip: mark every running job whose cancel flag is set."""
        with self._lock:
            job_ids = [job_id for job_id, entry in self._jobs.items() if not entry.canceled]
        if not job_ids:
            return
        try:
            flagged = self.store.canceled_among(job_ids)
        except StoreUnavailable:
            return  # Redis away for a moment: keep generating, ask again next tick
        with self._lock:
            for job_id in flagged:
                if job_id in self._jobs:
                    self._jobs[job_id].canceled = True

    def poll_cancels_until(self, stop: threading.Event) -> None:
        """The poller thread's loop."""
        while not stop.wait(CANCEL_POLL_S):
            try:
                self.poll_cancels()
            except Exception:  # noqa: BLE001 - the poller must outlive any one bad answer
                log.exception("cancel poll failed")
