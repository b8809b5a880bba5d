"""The reconciler's decisions, in-process against a real Redis (the fault suite shows them end to end)."""

from __future__ import annotations

import time

import pytest

from broker.publisher import JobPublisher
from core.jobs import Job, JobStatus, new_job_id, utc_now_iso
from core.keys import QUEUED_INDEX_KEY
from core.store import JobStore, connect
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


def stale_queued_job(store, **fields) -> Job:
    job = Job(id=new_job_id(), status=JobStatus.QUEUED, created_at=utc_now_iso(), input={"prompt": "x"}, **fields)
    store.create(job)
    store.redis.zadd(QUEUED_INDEX_KEY, {job.id: time.time() - 120})  # queued long ago, and no message anywhere
    return job


def test_queued_job_without_a_message_is_published_again(reconciler, store, redis_url):
    job = stale_queued_job(store)
    assert job.id in reconciler.republish_jobs_without_messages()
    assert queue_length(redis_url, reconciler.publisher.queue) == 1
    assert store.get(job.id).status == JobStatus.QUEUED
    # Its clock restarted: the next pass leaves it alone while its message waits.
    assert job.id not in reconciler.republish_jobs_without_messages()


def test_line_of_a_batch_that_was_never_accepted_is_canceled_not_run(reconciler, store, redis_url):
    job = stale_queued_job(store, batch_id="batch_never_written", custom_id="a")
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
    assert final.status == JobStatus.FAILED and final.error["type"] == "max_attempts"


def test_job_waiting_on_a_live_worker_keeps_its_message_and_one_on_a_dead_worker_is_published_again(
    reconciler, store, redis_url
):
    store.register_worker("gpu@alive#1", {"name": "gpu@alive#1"}, ttl_s=60)
    waiting_on_live = stale_queued_job(store)
    waiting_on_dead = stale_queued_job(store)
    store.reserve("gpu@alive#1", waiting_on_live.id)
    store.reserve("gpu@killed#2", waiting_on_dead.id)
    assert reconciler.republish_reservations_of_dead_workers() == [waiting_on_dead.id]
    assert waiting_on_live.id not in reconciler.republish_jobs_without_messages()
    assert queue_length(redis_url, reconciler.publisher.queue) == 1
    assert reconciler.republish_reservations_of_dead_workers() == []  # the dead worker's note is gone
