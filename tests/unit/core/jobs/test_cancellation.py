"""The cancel use case against a real Redis: what it answers for each state, and the flag it leaves."""

from __future__ import annotations

import pytest

from core.errors import JobNotFound, WrongState
from core.jobs.cancellation import CancelJob
from core.jobs.model import JobStatus
from core.redis.keys import CANCEL_KEY


def stored_in(store, new_job, status: JobStatus):
    job = new_job()
    if status != JobStatus.QUEUED:
        store.transition(job.id, JobStatus.RUNNING)
    if status.is_terminal:
        store.transition(job.id, status)
    return job


def flag_set(store, job_id: str) -> bool:
    return bool(store.redis.exists(CANCEL_KEY.format(job_id=job_id)))


def test_queued_job_is_canceled_at_once_without_a_flag(store, new_job):
    job = stored_in(store, new_job, JobStatus.QUEUED)
    result = CancelJob(store)(job.id, job.owner)
    assert not result.stopping and result.job.status == JobStatus.CANCELED
    assert result.job.output.model_dump() == {"text": "", "finish_reason": "canceled"}
    assert not flag_set(store, job.id)


def test_running_job_is_asked_to_stop(store, new_job):
    job = stored_in(store, new_job, JobStatus.RUNNING)
    result = CancelJob(store)(job.id, job.owner)
    assert result.stopping and result.job.status == JobStatus.RUNNING
    assert flag_set(store, job.id)
    # Its end clears the flag, and from then on a cancel is refused.
    store.transition(job.id, JobStatus.CANCELED)
    assert not flag_set(store, job.id)
    with pytest.raises(WrongState):
        CancelJob(store)(job.id, job.owner)


@pytest.mark.parametrize("status", [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED])
def test_finished_job_is_refused_and_gets_no_flag(store, new_job, status):
    job = stored_in(store, new_job, status)
    with pytest.raises(WrongState, match=f"is {status.value}:"):
        CancelJob(store)(job.id, job.owner)
    assert not flag_set(store, job.id)


def test_another_owners_job_is_unknown(store, new_job):
    job = stored_in(store, new_job, JobStatus.RUNNING)
    with pytest.raises(JobNotFound):
        CancelJob(store)(job.id, "someone-else")
    assert not flag_set(store, job.id)
