"""The job store's staging of a batch's lines (core/jobs/store.py), which the batch store writes through."""

from __future__ import annotations

import pytest

from core.jobs.model import Job, JobStatus, new_job_id, utc_now_iso
from core.jobs.priority import Priority
from core.jobs.store import JobStore, connect
from core.redis.keys import QUEUED_INDEX_KEY


@pytest.fixture
def store(own_redis) -> JobStore:
    return JobStore(connect(own_redis.url), job_ttl_s=3600)


def lines(count: int, priority: Priority = Priority.BATCH) -> list[Job]:
    created_at = utc_now_iso()
    return [
        Job(id=new_job_id(), status=JobStatus.QUEUED, created_at=created_at, input={}, priority=priority, owner="o")
        for _ in range(count)
    ]


def test_lines_stored_unlisted_are_queued_but_wait_in_no_line_until_listed(store):
    jobs = lines(3)
    pipe = store.redis.pipeline(transaction=True)
    store.stage_create_unlisted(pipe, jobs)
    pipe.execute()
    ids = [job.id for job in jobs]
    assert store.get_many(ids) == jobs
    assert store.queued_count("o") == 3
    assert set(store.redis.zrange(QUEUED_INDEX_KEY, 0, -1)) == set(ids)
    assert store.waiting_in_lines(ids) == {} and store.take_next("gpu@a#1") is None

    pipe = store.redis.pipeline(transaction=True)
    store.stage_into_lines(pipe, jobs)
    pipe.execute()
    assert store.waiting_in_lines(ids) == dict.fromkeys(ids, Priority.BATCH)
    assert store.take_next("gpu@a#1") == ids[0]


def test_get_many_answers_none_for_a_missing_job(store):
    [job] = lines(1)
    store.create(job)
    assert store.get_many([job.id, "missing"]) == [job, None]
