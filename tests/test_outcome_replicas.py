"""The GPU worker's outcome and the replicas: an outcome a failover lost is recorded again, one outcome per job."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from core.errors import StoreUnavailable, WrongState
from core.jobs.model import Job, JobStatus, new_job_id, utc_now_iso
from core.redis.keys import JOB_KEY
from worker.runner import _record_durably


class LosingReplicas:
    """Replicas that never got the first outcome: the master that had it is replaced by one where the job still
    runs (its record as it was before the outcome), then every later outcome is confirmed."""

    def __init__(self, store, running: Job) -> None:
        self.store, self.running, self.calls = store, running, 0

    def confirm(self, job_id: str | None = None) -> None:
        self.calls += 1
        if self.calls == 1:
            self.store.redis.set(JOB_KEY.format(job_id=job_id), self.running.model_dump_json())
            raise StoreUnavailable("the job store could not copy this write to a replica in time", job_id=job_id)


def running_job(store) -> Job:
    job = Job(id=new_job_id(), status=JobStatus.QUEUED, created_at=utc_now_iso(), input={"prompt": "x"}, owner="o")
    store.create(job)

    def start(job: Job) -> None:
        job.attempts, job.worker, job.started_at = 1, "gpu@test", utc_now_iso()

    return store.transition(job.id, JobStatus.RUNNING, start)


def succeed(job: Job, cancel_requested: bool) -> JobStatus:
    job.output = {"text": "done", "finish_reason": "length"}
    return JobStatus.SUCCEEDED


def test_an_outcome_lost_in_a_failover_is_recorded_again(store):
    running = running_job(store)
    replicas = LosingReplicas(store, running)
    runtime = SimpleNamespace(store=store, replicas=replicas, worker_name="gpu@test", stopping=threading.Event())
    recorded = _record_durably(runtime, running, succeed)
    assert replicas.calls == 2 and recorded.status == JobStatus.SUCCEEDED
    assert store.get(running.id).status == JobStatus.SUCCEEDED and store.get(running.id).attempts == 1


def test_an_outcome_already_there_is_only_confirmed_again(store):
    running = running_job(store)

    class SlowReplicas:
        calls = 0

        def confirm(self, job_id=None):
            self.calls += 1
            if self.calls == 1:
                raise StoreUnavailable("not yet on a replica", job_id=job_id)

    runtime = SimpleNamespace(store=store, replicas=SlowReplicas(), worker_name="gpu@test", stopping=threading.Event())
    assert _record_durably(runtime, running, succeed).status == JobStatus.SUCCEEDED
    assert runtime.replicas.calls == 2


def test_a_job_another_execution_owns_is_left_alone(store):
    running = running_job(store)
    store.transition(running.id, JobStatus.CANCELED)
    runtime = SimpleNamespace(store=store, replicas=None, worker_name="gpu@test", stopping=threading.Event())
    with pytest.raises(WrongState):
        _record_durably(runtime, running, succeed)
