"""The reconciler: jobs of dead workers back in line, lost messages published again."""

from __future__ import annotations

import time

from core.jobs.model import Job, JobStatus, new_job_id, utc_now_iso
from core.workers.info import WorkerInfo
from core.workers.registry import WorkerRegistry
from core.workers.reservations import WorkerReservations
from ops.reconciler import Reconciler
from tests.unit.ops.conftest import RecordingPublisher


def queued_job(store, priority: str = "normal") -> str:
    job = Job(id=new_job_id(), status=JobStatus.QUEUED, created_at=utc_now_iso(), input={"prompt": "x"},
              priority=priority)  # fmt: skip
    store.create(job)
    return job.id


def running_on(store, worker: str, attempts: int = 1) -> str:
    job_id = queued_job(store)
    store.take_next(worker)

    def start(job) -> None:
        job.worker, job.attempts, job.started_at = worker, attempts, utc_now_iso()

    store.transition(job_id, JobStatus.RUNNING, start)
    WorkerReservations(store.redis).release(worker, job_id)
    return job_id


def test_a_dead_workers_running_job_goes_back_on_the_queue(make_settings, own_store):
    publisher = RecordingPublisher()
    reconciler = Reconciler(make_settings(), own_store, publisher)
    job_id = running_on(own_store, "gone@host")
    assert reconciler.recover_orphaned_running_jobs() == [job_id]
    job = own_store.get(job_id)
    assert job.status == JobStatus.QUEUED and job.worker is None and publisher.published == [(job_id, "normal")]


def test_a_live_workers_job_is_left_alone(make_settings, own_store):
    reconciler = Reconciler(make_settings(), own_store, RecordingPublisher())
    WorkerRegistry(own_store.redis).register(WorkerInfo(name="alive@host"), ttl_s=30)
    job_id = running_on(own_store, "alive@host")
    assert reconciler.recover_orphaned_running_jobs() == []
    assert own_store.get(job_id).status == JobStatus.RUNNING


def test_a_job_whose_worker_died_on_every_attempt_fails_and_a_canceled_one_is_canceled(make_settings, own_store):
    reconciler = Reconciler(make_settings(max_attempts=2), own_store, RecordingPublisher())
    exhausted = running_on(own_store, "gone@host", attempts=2)
    canceling = running_on(own_store, "gone@host")
    own_store.request_cancel_if_running(canceling)
    reconciler.recover_orphaned_running_jobs()
    failed = own_store.get(exhausted)
    assert failed.status == JobStatus.FAILED and failed.error.type == "max_attempts"
    assert own_store.get(canceling).status == JobStatus.CANCELED


def test_stale_queued_jobs_without_a_message_are_published_again(make_settings, own_store):
    publisher = RecordingPublisher(waiting=0)
    # Long enough that the second pass, on a loaded machine, still comes before the restarted clock runs out.
    reconciler = Reconciler(make_settings(stale_queued_seconds=0.5), own_store, publisher)
    job_id = queued_job(own_store, "low")
    time.sleep(0.6)
    assert reconciler.republish_jobs_without_messages() == [job_id]
    assert publisher.published == [(job_id, "low")]
    publisher.published.clear()
    assert reconciler.republish_jobs_without_messages() == []  # its clock started again


def test_a_job_reserved_by_a_dead_worker_goes_back_in_line(make_settings, own_store):
    publisher = RecordingPublisher()
    reconciler = Reconciler(make_settings(), own_store, publisher)
    job_id = queued_job(own_store)
    assert own_store.take_next("gone@host") == job_id
    assert reconciler.republish_reservations_of_dead_workers() == [job_id]
    assert own_store.take_next("other@host") == job_id
