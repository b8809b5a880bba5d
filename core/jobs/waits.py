"""Synchronous waits: block until a job is terminal, woken by its done message, riding over a Redis restart."""

from __future__ import annotations

import logging
import time

from core.errors import JobNotFound, StoreUnavailable
from core.jobs.done_listener import CompletionListener
from core.jobs.model import Job
from core.jobs.store import JobStore

log = logging.getLogger("llm.store")

# A synchronous waiter re-reads its job at least this often even if no done message came (a safety net only).
RECHECK_S = 30.0
# While Redis is away, a waiter re-reads its job after this pause, doubled after each failure up to the cap.
OUTAGE_FIRST_RETRY_S = 0.1
OUTAGE_MAX_RETRY_S = 1.0
# How long a waiter rides out an outage unless told otherwise (SYNC_WAIT_OUTAGE_SECONDS for the API's waits).
OUTAGE_RIDDEN_S = 10.0


class JobWaits:
    """The waits of one process: they share one subscription to the done messages, opened at the first wait."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self._completion_listener: CompletionListener | None = None

    def until_terminal(self, job_id: str, timeout_s: float, *, outage_s: float = OUTAGE_RIDDEN_S) -> Job:
        """Block until the job is terminal or the timeout passes; returns the job as it then is.

        It sleeps until the job's done message wakes it, re-reading the job only then, or every RECHECK_S at most
        in case Redis went away and came back meanwhile. A read that fails is retried, backing off, for up to
        `outage_s` (a Redis restart); past that the StoreUnavailable raised names the job, which exists and goes on.
        """
        deadline = time.monotonic() + timeout_s
        with self._completions().watching(job_id) as woken:
            while True:
                # Registered before reading: a completion between the read and the wait still wakes us.
                woken.clear()
                job = self._read_through_outage(job_id, outage_s)
                if job is None:
                    raise JobNotFound(f"job {job_id} expired while waiting", job_id=job_id)
                remaining = deadline - time.monotonic()
                if job.status.is_terminal or remaining <= 0:
                    return job
                woken.wait(min(remaining, RECHECK_S))

    def _read_through_outage(self, job_id: str, outage_s: float) -> Job | None:
        give_up_at = time.monotonic() + outage_s
        pause_s = OUTAGE_FIRST_RETRY_S
        while True:
            try:
                return self.store.get(job_id)
            except StoreUnavailable as error:
                if time.monotonic() + pause_s > give_up_at:
                    raise StoreUnavailable(
                        f"the job store is unavailable now; job {job_id} was accepted and goes on: "
                        f"read it at /jobs/{job_id} later",
                        detail=error.detail or str(error),
                        retry_after_s=error.retry_after_s,
                        job_id=job_id,
                    ) from error
                log.warning("job %s: waiting through a store outage (%s)", job_id, error)
                time.sleep(pause_s)
                pause_s = min(pause_s * 2, OUTAGE_MAX_RETRY_S)

    def _completions(self) -> CompletionListener:
        if self._completion_listener is None:
            self._completion_listener = CompletionListener(self.store.redis)
        return self._completion_listener
