"""The job store's spine, in-process: the status table enforced, a superseded attempt records nothing, a cancel
accepted before the outcome wins, and an owner's listing pages newest first."""

from __future__ import annotations

import pytest

from core.errors import JobNotFound, WrongState
from core.jobs.model import Job, JobStatus, new_job_id, utc_now_iso
from core.jobs.priority import Priority
from core.jobs.store import JobStore, connect
from core.jobs.waits import JobWaits
from core.redis.keys import CANCEL_KEY, JOB_KEY, QUEUED_INDEX_KEY, RUNNING_INDEX_KEY
from core.workers.reservations import WorkerReservations


def start(store, job_id: str):
    def take(job) -> None:
        job.attempts += 1

    return store.transition(job_id, JobStatus.RUNNING, take)


def test_a_change_outside_the_table_is_refused_and_leaves_the_job_as_it_was(new_job, store):
    job = new_job()
    with pytest.raises(WrongState, match="cannot become succeeded"):
        store.transition(job.id, JobStatus.SUCCEEDED)
    assert store.get(job.id).status == JobStatus.QUEUED
    with pytest.raises(JobNotFound):
        store.transition("no-such-job", JobStatus.RUNNING)


def test_the_indexes_follow_the_status(new_job, store, client):
    job = new_job()
    start(store, job.id)
    assert client.zscore(QUEUED_INDEX_KEY, job.id) is None and store.running_job_ids() == [job.id]
    store.transition(job.id, JobStatus.SUCCEEDED)
    assert not client.sismember(RUNNING_INDEX_KEY, job.id)
    assert 3500 < client.ttl(JOB_KEY.format(job_id=job.id)) <= 3600


def test_only_the_current_attempt_may_record_its_outcome(new_job, store):
    job = new_job()
    start(store, job.id)
    store.transition(job.id, JobStatus.QUEUED)  # its worker died: requeued
    start(store, job.id)
    with pytest.raises(WrongState, match="on attempt 2, not 1"):
        store.record_outcome(job.id, 1, lambda job, canceled: JobStatus.SUCCEEDED)
    done = store.record_outcome(job.id, 2, lambda job, canceled: JobStatus.SUCCEEDED)
    assert done.status == JobStatus.SUCCEEDED and done.attempts == 2


def test_a_cancel_accepted_before_the_outcome_is_seen_by_it_and_its_flag_cleared(new_job, store, client):
    job = new_job()
    start(store, job.id)
    assert store.request_cancel_if_running(job.id).status == JobStatus.RUNNING
    assert store.canceled_among([job.id, "other"]) == {job.id}

    def decide(job, canceled: bool) -> JobStatus:
        return JobStatus.CANCELED if canceled else JobStatus.SUCCEEDED

    assert store.record_outcome(job.id, 1, decide).status == JobStatus.CANCELED
    assert not client.exists(CANCEL_KEY.format(job_id=job.id))


def test_cancel_queued_takes_only_the_queued_ones(new_job, store):
    queued, running = new_job(), new_job()
    start(store, running.id)
    assert store.cancel_queued([queued.id, running.id, "missing"]) == 1
    assert store.get(queued.id).output.finish_reason == "canceled"
    assert store.get(running.id).status == JobStatus.RUNNING


def test_an_owners_listing_pages_newest_first_and_filters_by_status(new_job, store):
    jobs = [new_job() for _ in range(5)]
    new_job(owner="owner-b")
    store.cancel_queued([jobs[1].id])
    page, cursor = store.list_for_owner("owner-a", status=None, limit=3, before_sequence=None)
    assert [job.id for job in page] == [job.id for job in reversed(jobs)][:3]
    rest, end = store.list_for_owner("owner-a", status=None, limit=3, before_sequence=cursor)
    assert [job.id for job in rest] == [jobs[1].id, jobs[0].id] and end is None
    canceled, _ = store.list_for_owner("owner-a", status=JobStatus.CANCELED, limit=10, before_sequence=None)
    assert [job.id for job in canceled] == [jobs[1].id]


def test_a_taken_job_put_back_is_taken_again_first(new_job, store):
    first, second = new_job(), new_job()
    assert store.take_next("w1") == first.id
    assert WorkerReservations(store.redis).held_by({"w1"}) == {first.id}
    assert [job.id for job in store.put_back([first.id], "w1")] == [first.id]
    assert WorkerReservations(store.redis).held_by({"w1"}) == set()
    assert store.take_next("w2") == first.id and store.take_next("w2") == second.id
    assert store.take_next("w2") is None


def test_waiting_for_a_finished_job_returns_it_at_once(new_job, store):
    job = new_job()
    store.cancel_queued([job.id])
    assert JobWaits(store).until_terminal(job.id, timeout_s=5).status == JobStatus.CANCELED


@pytest.fixture
def own_store(own_redis) -> JobStore:
    return JobStore(connect(own_redis.url), job_ttl_s=3600)


def lines(count: int, priority: Priority = Priority.BATCH) -> list[Job]:
    created_at = utc_now_iso()
    return [
        Job(
            id=new_job_id(),
            status=JobStatus.QUEUED,
            created_at=created_at,
            input={"prompt": "x"},
            priority=priority,
            owner="o",
        )
        for _ in range(count)
    ]


def test_lines_stored_unlisted_are_queued_but_wait_in_no_line_until_listed(own_store):
    jobs = lines(3)
    pipe = own_store.redis.pipeline(transaction=True)
    own_store.stage_create_unlisted(pipe, jobs)
    pipe.execute()
    ids = [job.id for job in jobs]
    assert own_store.get_many(ids) == jobs
    assert own_store.queued_count("o") == 3
    assert set(own_store.redis.zrange(QUEUED_INDEX_KEY, 0, -1)) == set(ids)
    assert own_store.waiting_in_lines(ids) == {} and own_store.take_next("gpu@a#1") is None

    pipe = own_store.redis.pipeline(transaction=True)
    own_store.stage_into_lines(pipe, jobs)
    pipe.execute()
    assert own_store.waiting_in_lines(ids) == dict.fromkeys(ids, Priority.BATCH)
    assert own_store.take_next("gpu@a#1") == ids[0]


def test_get_many_answers_none_for_a_missing_job(own_store):
    [job] = lines(1)
    own_store.create(job)
    assert own_store.get_many([job.id, "missing"]) == [job, None]
