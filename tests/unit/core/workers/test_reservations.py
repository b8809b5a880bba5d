"""Workers' reservations (core/workers/reservations.py) against a real Redis: what a worker holds after a take,
letting go of one, and a dead worker's taken over."""

from __future__ import annotations

import pytest

from core.jobs.model import Job, JobStatus, new_job_id, utc_now_iso
from core.jobs.store import JobStore, connect
from core.workers.reservations import WorkerReservations


@pytest.fixture
def store(own_redis) -> JobStore:
    return JobStore(connect(own_redis.url), job_ttl_s=3600)


def queued(store: JobStore) -> str:
    job = Job(id=new_job_id(), status=JobStatus.QUEUED, created_at=utc_now_iso(), input={"prompt": "x"})
    store.create(job)
    return job.id


def test_a_taken_job_is_held_by_its_worker_until_released(store):
    reservations = WorkerReservations(store.redis)
    job_id = queued(store)
    assert store.take_next("gpu@a#1") == job_id
    assert reservations.held_by({"gpu@a#1"}) == {job_id}
    assert reservations.held_by({"gpu@b#2"}) == set() and reservations.held_by(set()) == set()
    reservations.release("gpu@a#1", job_id)
    assert reservations.held_by({"gpu@a#1"}) == set()


def test_the_reservations_of_gone_workers_are_taken_over_once(store):
    reservations = WorkerReservations(store.redis)
    first, second = queued(store), queued(store)
    assert store.take_next("gpu@dead#1") == first
    assert store.take_next("gpu@live#2") == second
    assert reservations.take_from(lambda name: name == "gpu@dead#1") == [first]
    assert reservations.held_by({"gpu@dead#1"}) == set()
    assert reservations.held_by({"gpu@live#2"}) == {second}
    assert reservations.take_from(lambda name: name == "gpu@dead#1") == []
