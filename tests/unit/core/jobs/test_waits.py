"""Synchronous waits (core/jobs/waits.py) against a real Redis: woken by the done message, bounded by the timeout,
riding over a Redis restart."""

from __future__ import annotations

import threading
import time

import pytest

from core.errors import JobNotFound
from core.jobs.model import Job, JobStatus, new_job_id, utc_now_iso
from core.jobs.store import JobStore, connect
from core.jobs.waits import RECHECK_S, JobWaits
from core.redis.keys import JOB_KEY
from launcher.redis_server import RedisServer


def new_job() -> Job:
    return Job(id=new_job_id(), status=JobStatus.QUEUED, created_at=utc_now_iso(), input={"prompt": "x"})


def test_waiting_returns_as_soon_as_the_job_finishes(store):
    job = new_job()
    store.create(job)
    store.transition(job.id, JobStatus.RUNNING)
    threading.Timer(0.2, lambda: store.transition(job.id, JobStatus.SUCCEEDED)).start()
    started = time.monotonic()
    finished = JobWaits(store).until_terminal(job.id, timeout_s=10)
    assert finished.status == JobStatus.SUCCEEDED
    assert time.monotonic() - started < 5


def test_waiting_gives_up_at_the_timeout(store):
    job = new_job()
    store.create(job)
    assert JobWaits(store).until_terminal(job.id, timeout_s=0.3).status == JobStatus.QUEUED


def test_a_job_that_expires_while_waited_for_is_not_found(store):
    job = new_job()
    store.create(job)
    store.redis.delete(JOB_KEY.format(job_id=job.id))
    with pytest.raises(JobNotFound) as missing:
        JobWaits(store).until_terminal(job.id, timeout_s=5)
    assert missing.value.job_id == job.id


def test_a_waiter_outlives_a_redis_restart_and_still_wakes_on_the_done_message(tmp_path):
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        store = JobStore(connect(server.url), job_ttl_s=3600)
        job = new_job()
        store.create(job)
        outcome: dict = {}

        def wait() -> None:
            started = time.monotonic()
            outcome["job"] = JobWaits(store).until_terminal(job.id, timeout_s=60)
            outcome["waited_s"] = time.monotonic() - started

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.5)
        server.stop()  # the shared subscription drops; the waiter keeps waiting
        server.start()
        time.sleep(1.5)  # the listener subscribes again
        store.transition(job.id, JobStatus.CANCELED)
        waiter.join(timeout=20)
        assert outcome["job"].status == JobStatus.CANCELED
        # Woken by the message (or the resubscription), not by the 30 s safety re-read.
        assert outcome["waited_s"] < RECHECK_S / 2
    finally:
        server.stop()
