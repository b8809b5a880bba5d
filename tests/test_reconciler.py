"""The reconciler's decisions, in-process against a real Redis (the fault suite shows them end to end)."""

from __future__ import annotations

import time

import pytest

from broker.publisher import JobPublisher
from core.jobs.model import Job, JobStatus, new_job_id, utc_now_iso
from core.jobs.store import JobStore, connect
from core.redis.keys import QUEUED_INDEX_KEY
from core.workers.info import WorkerInfo
from core.workers.registry import WorkerRegistry
from ops.reconciler import Reconciler
from tests.conftest import queue_length, unconsumed_queue_name


@pytest.fixture
def redis_url(redis_server) -> str:
    """Database 5 of the test Redis, emptied: the reconciler looks at every job, so it must see only ours."""
    url = redis_server.url.rsplit("/", 1)[0] + "/5"
    connect(url).flushdb()
    return url


@pytest.fixture
def store(redis_url) -> JobStore:
    return JobStore(connect(redis_url), job_ttl_s=3600)


@pytest.fixture
def reconciler(make_settings, store, redis_url, request):
    settings = make_settings(redis_url=redis_url, gpu_queue=unconsumed_queue_name(request), stale_queued_seconds=1)
    return Reconciler(settings, store, JobPublisher(settings))


def stale_queued_job(store, *, in_line: bool = True, **fields) -> Job:
    job = Job(id=new_job_id(), status=JobStatus.QUEUED, created_at=utc_now_iso(), input={"prompt": "x"}, **fields)
    store.create(job)
    store.redis.zadd(QUEUED_INDEX_KEY, {job.id: time.time() - 120})  # queued long ago, and no message anywhere
    if not in_line:
        # As a submission that died midway leaves it (a batch's lines enter their line once its record is stored).
        pipe = store.redis.pipeline()
        store.fair.stage_dequeue(pipe, job.owner, job.priority, [job.id])
        pipe.execute()
    return job


def test_queued_job_without_a_message_is_published_again(reconciler, store, redis_url):
    job = stale_queued_job(store)
    assert job.id in reconciler.republish_jobs_without_messages()
    assert queue_length(redis_url, reconciler.publisher.queue) == 1
    assert store.get(job.id).status == JobStatus.QUEUED
    # Its clock restarted: the next pass leaves it alone while its message waits.
    assert job.id not in reconciler.republish_jobs_without_messages()


def test_line_of_a_batch_that_was_never_accepted_is_canceled_not_run(reconciler, store, redis_url):
    job = stale_queued_job(store, in_line=False, batch_id="batch_never_written", custom_id="a")
    reconciler.republish_jobs_without_messages()
    assert store.get(job.id).status == JobStatus.CANCELED
    assert queue_length(redis_url, reconciler.publisher.queue) == 0


def test_running_job_of_a_dead_worker_goes_back_to_the_queue_then_fails_after_max_attempts(reconciler, store):
    job = stale_queued_job(store)
    for attempt in range(1, reconciler.settings.max_attempts + 1):
        store.transition(job.id, JobStatus.RUNNING, lambda j: setattr(j, "attempts", j.attempts + 1))
        taken = store.get(job.id)
        assert taken.attempts == attempt and taken.worker is None  # a worker no heartbeat vouches for
        assert job.id in reconciler.recover_orphaned_running_jobs()
    final = store.get(job.id)
    assert final.status == JobStatus.FAILED and final.error.type == "max_attempts"


def test_job_taken_by_a_live_worker_stays_with_it_and_one_taken_by_a_dead_worker_goes_back_in_line(
    reconciler, store, redis_url
):
    WorkerRegistry(store.redis).register(WorkerInfo(name="gpu@alive#1"), ttl_s=60)
    taken_by_live = stale_queued_job(store)
    taken_by_dead = stale_queued_job(store)
    assert store.take_next("gpu@alive#1") == taken_by_live.id
    assert store.take_next("gpu@killed#2") == taken_by_dead.id
    assert reconciler.republish_reservations_of_dead_workers() == [taken_by_dead.id]
    assert store.waiting_in_lines([taken_by_live.id, taken_by_dead.id]) == {taken_by_dead.id: "normal"}
    assert taken_by_live.id not in reconciler.republish_jobs_without_messages()
    assert queue_length(redis_url, reconciler.publisher.queue) == 1
    assert reconciler.republish_reservations_of_dead_workers() == []  # the dead worker's note is gone


def test_queued_job_in_no_line_and_held_by_no_worker_goes_back_in_line(reconciler, store, redis_url):
    job = stale_queued_job(store, in_line=False)
    assert reconciler.republish_jobs_without_messages() == [job.id]
    assert store.waiting_in_lines([job.id]) == {job.id: "normal"}
    assert queue_length(redis_url, reconciler.publisher.queue) == 1


def test_messages_are_published_only_for_the_jobs_in_lines_that_lack_one(reconciler, store, redis_url):
    jobs = [stale_queued_job(store) for _ in range(5)]
    reconciler.publisher.publish_many([job.id for job in jobs[:2]], "normal")  # two still have theirs
    assert len(reconciler.republish_jobs_without_messages()) == 3
    assert queue_length(redis_url, reconciler.publisher.queue) == 5


def test_running_job_of_a_dead_worker_is_published_once(reconciler, store, redis_url):
    job = stale_queued_job(store)
    assert store.take_next("gpu@killed#3") == job.id

    def started_on_the_dead_worker(job: Job) -> None:
        job.worker = "gpu@killed#3"
        job.attempts += 1

    store.transition(job.id, JobStatus.RUNNING, started_on_the_dead_worker)
    reconciler.run_once()
    assert store.get(job.id).status == JobStatus.QUEUED
    assert queue_length(redis_url, reconciler.publisher.queue) == 1
