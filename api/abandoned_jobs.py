"""The job of a call whose caller left: canceled, so that nobody's work holds a place in the batch.

Synchronous calls (`POST /v1/generate`, OpenAI completions, streamed or not) are answered by a queued job the
request waits for. A caller that gives up (a client timeout, a closed tab) would otherwise leave that job to run
for no one, ahead of the callers still waiting. Two callers keep their jobs: one that sent an `Idempotency-Key`
(it means to come back for the result with the same key) and, with CANCEL_ON_DISCONNECT=false, every caller.
"""

from __future__ import annotations

import logging
import socket
import time

from api.client_connection import DepartureWatch
from api.services import Services
from core.errors import JobNotFound, StoreUnavailable, WrongState
from core.jobs.model import Job

log = logging.getLogger("llm.api")


def cancels_when_caller_leaves(svc: Services, idempotency_key: str | None) -> bool:
    """Whether this call's job is canceled if its caller leaves before the answer."""
    return svc.settings.cancel_on_disconnect and idempotency_key is None


def cancel_abandoned(svc: Services, job_id: str, owner: str, call: str) -> None:
    """Cancel the job of a caller that left; one that has finished meanwhile stays as it is."""
    try:
        svc.cancel_job(job_id, owner)
        log.info("job %s canceled: its %s caller left", job_id, call)
    except (WrongState, JobNotFound):
        pass
    except StoreUnavailable as error:
        log.warning("job %s: its %s caller left, but the cancel failed: %s", job_id, call, error)


def wait_for_caller(svc: Services, owner: str, job: Job, sock: socket.socket | None) -> Job:
    """The job once it is terminal or SYNC_WAIT_SECONDS have passed, canceled if the caller leaves meanwhile
    (`sock` None: it is not, or the server can't tell)."""
    return wait_for_caller_all(svc, owner, [job], sock)[0]


def wait_for_caller_all(svc: Services, owner: str, jobs: list[Job], sock: socket.socket | None) -> list[Job]:
    """The jobs of one call, each once it is terminal or SYNC_WAIT_SECONDS (one wait for all) have passed; every one
    canceled if the caller leaves meanwhile."""
    settings = svc.settings
    deadline = time.monotonic() + settings.sync_wait_seconds

    def cancel_all() -> None:
        for job in jobs:
            cancel_abandoned(svc, job.id, owner, "synchronous")

    with DepartureWatch(sock, cancel_all):
        return [
            svc.waits.until_terminal(
                job.id, max(0.0, deadline - time.monotonic()), outage_s=settings.sync_wait_outage_seconds
            )
            for job in jobs
        ]
