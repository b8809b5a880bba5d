"""Canceling a job or a batch: decided and recorded atomically, so a finished job is never reported as stopping."""

from __future__ import annotations

from dataclasses import dataclass

from core.batches.model import BatchStatus
from core.batches.store import BatchStore
from core.batches.view import BatchCancellation
from core.errors import JobNotFound, WrongState
from core.jobs.model import Job, JobStatus
from core.jobs.store import JobStore

# A job may bounce between queued and running (a dead worker's job is requeued): look again, a few times.
_MAX_LOOKS = 5


@dataclass(frozen=True)
class JobCancellation:
    """What a cancel did: `stopping` means the job is running and will stop soon; otherwise it is canceled now."""

    job: Job
    stopping: bool


class CancelJob:
    """Queued: canceled at once, never runs. Running: asked to stop. Finished: WrongState."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    def __call__(self, job_id: str, owner: str) -> JobCancellation:
        """Cancel the caller's job; raises JobNotFound or WrongState."""
        job = self.store.get_for_owner(job_id, owner)
        for _ in range(_MAX_LOOKS):
            if job.status == JobStatus.QUEUED and self.store.cancel_queued([job_id]):
                return JobCancellation(self.store.get_for_owner(job_id, owner), stopping=False)
            # The status is read and the flag set in one watched transaction: a job that finishes meanwhile is
            # read again, and then it is finished (WrongState) rather than falsely stopping.
            found = self.store.request_cancel_if_running(job_id)
            if found is None:
                raise JobNotFound(f"no job with id {job_id!r}")
            job = found
            if job.status == JobStatus.RUNNING:
                return JobCancellation(job, stopping=True)
            if job.status.is_terminal:
                break
        raise WrongState(f"job {job_id} is {job.status.value}: there is nothing to cancel")


class CancelBatch:
    """Queued jobs of the batch are canceled and never run; running ones finish."""

    def __init__(self, batches: BatchStore) -> None:
        self.batches = batches

    def __call__(self, batch_id: str, owner: str) -> BatchCancellation:
        """Cancel the caller's batch; a completed batch can't be canceled (WrongState)."""
        batch = self.batches.get_for_owner(batch_id, owner)
        if batch.cancel_requested_at is None and self.batches.view(batch).status == BatchStatus.COMPLETED:
            raise WrongState(f"batch {batch_id} is completed; there is nothing left to cancel")
        canceled = self.batches.cancel(batch)
        return BatchCancellation(**dict(self.batches.view(batch)), canceled_now=canceled)
