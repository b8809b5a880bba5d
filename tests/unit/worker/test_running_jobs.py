"""The registry of running jobs: deadlines, and cancel flags read from Redis for all at once."""

from __future__ import annotations

import time

from core.jobs.model import Job, JobStatus, new_job_id, utc_now_iso
from worker.running_jobs import RunningJobs


def running_job(store) -> str:
    job = Job(id=new_job_id(), status=JobStatus.QUEUED, created_at=utc_now_iso(), input={"prompt": "x"})
    store.create(job)
    store.transition(job.id, JobStatus.RUNNING)
    return job.id


def test_a_cancel_flag_is_seen_at_the_next_poll_for_that_job_only(own_store):
    running = RunningJobs(own_store)
    canceled, other = running_job(own_store), running_job(own_store)
    for job_id in (canceled, other):
        running.add(job_id, time.monotonic() + 60)
    own_store.request_cancel_if_running(canceled)
    assert not running.canceled(canceled)
    running.poll_cancels()
    assert running.canceled(canceled) and not running.canceled(other)


def test_overdue_jobs_and_waiting_until_empty(own_store):
    running = RunningJobs(own_store)
    running.add("late", time.monotonic() - 10)
    running.add("fine", time.monotonic() + 60)
    assert running.overdue(5) == ["late"] and running.overdue(20) == []
    assert not running.wait_until_empty(0.05)
    running.remove("late")
    running.remove("fine")
    assert running.wait_until_empty(0.05) and running.count() == 0
