"""The Redis job store against a real Redis: transitions are enforced, listings are ordered."""

from __future__ import annotations

import threading
import time

import pytest

from core.errors import JobNotFound, WrongState
from core.jobs.model import ALLOWED_TRANSITIONS, TERMINAL_STATUSES, Job, JobStatus, new_job_id, utc_now_iso
from core.jobs.store import RECHECK_S, JobStore, connect
from core.redis.keys import JOB_KEY
from launcher.redis_server import RedisServer


def new_job(owner: str = "owner-a") -> Job:
    return Job(id=new_job_id(), status=JobStatus.QUEUED, created_at=utc_now_iso(), input={"prompt": "x"}, owner=owner)


def test_terminal_states_have_no_way_out():
    for status in TERMINAL_STATUSES:
        assert ALLOWED_TRANSITIONS[status] == frozenset()


def test_job_round_trips_and_expires_the_ttl_after_it_finishes(store):
    job = new_job()
    store.create(job)
    assert store.get(job.id) == job
    assert store.redis.ttl(JOB_KEY.format(job_id=job.id)) == -1  # accepted work never expires while it waits
    store.transition(job.id, JobStatus.CANCELED)
    ttl = store.redis.ttl(JOB_KEY.format(job_id=job.id))
    assert 3500 < ttl <= 3600


def test_transitions_follow_the_table(store):
    job = new_job()
    store.create(job)
    running = store.transition(job.id, JobStatus.RUNNING, lambda j: setattr(j, "attempts", j.attempts + 1))
    assert running.status == JobStatus.RUNNING and running.attempts == 1
    store.transition(job.id, JobStatus.SUCCEEDED)
    for target in JobStatus:
        with pytest.raises(WrongState):
            store.transition(job.id, target)
    assert store.get(job.id).status == JobStatus.SUCCEEDED


def test_queued_job_cannot_jump_to_succeeded(store):
    job = new_job()
    store.create(job)
    with pytest.raises(WrongState):
        store.transition(job.id, JobStatus.SUCCEEDED)


def test_missing_job_is_not_found(store):
    with pytest.raises(JobNotFound):
        store.transition("missing", JobStatus.RUNNING)
    assert store.get("missing") is None


def test_another_owners_job_is_not_found(store):
    job = new_job(owner="owner-a")
    store.create(job)
    with pytest.raises(JobNotFound):
        store.get_for_owner(job.id, "owner-b")


def test_concurrent_takers_only_one_wins(store):
    job = new_job()
    store.create(job)
    wins, losses = [], []

    def take():
        try:
            store.transition(job.id, JobStatus.RUNNING)
            wins.append(1)
        except WrongState:
            losses.append(1)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1 and len(losses) == 7


def test_listing_skips_expired_jobs_and_filters_by_status(store):
    owner = f"owner-{new_job_id()}"
    jobs = [new_job(owner) for _ in range(4)]
    for job in jobs:
        store.create(job)
    store.redis.delete(JOB_KEY.format(job_id=jobs[1].id))
    store.transition(jobs[2].id, JobStatus.CANCELED)
    listed, cursor = store.list_for_owner(owner, status=None, limit=10, before_sequence=None)
    assert [j.id for j in listed] == [jobs[3].id, jobs[2].id, jobs[0].id] and cursor is None
    canceled, _ = store.list_for_owner(owner, status=JobStatus.CANCELED, limit=10, before_sequence=None)
    assert [j.id for j in canceled] == [jobs[2].id]


def test_waiting_returns_as_soon_as_the_job_finishes(store):
    job = new_job()
    store.create(job)
    store.transition(job.id, JobStatus.RUNNING)
    threading.Timer(0.2, lambda: store.transition(job.id, JobStatus.SUCCEEDED)).start()
    started = time.monotonic()
    finished = store.wait_until_terminal(job.id, timeout_s=10)
    assert finished.status == JobStatus.SUCCEEDED
    assert time.monotonic() - started < 5


def test_waiting_gives_up_at_the_timeout(store):
    job = new_job()
    store.create(job)
    assert store.wait_until_terminal(job.id, timeout_s=0.3).status == JobStatus.QUEUED


def test_a_batch_whose_completion_was_cut_short_is_completed_by_the_sweep(store):
    from core.batches.model import Batch
    from core.batches.store import BatchStore
    from core.redis.keys import BATCH_STATS_KEY, OPEN_BATCHES_KEY

    batches = BatchStore(store)
    batch = Batch(id=f"batch_{new_job_id()}", created_at=utc_now_iso(), total=1)
    job = new_job()
    job.batch_id = batch.id
    batches.create(batch, [job])
    # The last job finished, then the process died before completing the batch.
    store.redis.hset(BATCH_STATS_KEY.format(batch_id=batch.id), mapping={"finished": 1, "succeeded": 1, "queued": 0})
    assert batches.view(batch)["completed_at"] is None
    batches.complete_finished_batches()
    assert batches.view(batch)["completed_at"] is not None
    assert not store.redis.sismember(OPEN_BATCHES_KEY, batch.id)


def test_batch_listing_fills_its_pages_past_expired_batches(store):
    from core.batches.model import Batch
    from core.batches.store import BatchStore
    from core.redis.keys import BATCH_KEY

    owner = f"owner-{new_job_id()}"
    batches = BatchStore(store)
    made = []
    for _ in range(4):
        batch = Batch(id=f"batch_{new_job_id()}", created_at=utc_now_iso(), total=1, owner=owner)
        job = new_job(owner)
        job.batch_id = batch.id
        batches.create(batch, [job])
        made.append(batch)
    store.redis.delete(BATCH_KEY.format(batch_id=made[2].id))
    page, cursor = batches.list_for_owner(owner, limit=2, before_sequence=None)
    assert [b.id for b in page] == [made[3].id, made[1].id] and cursor is not None
    rest, cursor = batches.list_for_owner(owner, limit=2, before_sequence=cursor)
    assert [b.id for b in rest] == [made[0].id] and cursor is None


def test_another_owners_batch_is_a_batch_not_found(store):
    from core.batches.model import Batch
    from core.batches.store import BatchStore
    from core.errors import BatchNotFound

    batches = BatchStore(store)
    batch = Batch(id=f"batch_{new_job_id()}", created_at=utc_now_iso(), total=1, owner="owner-a")
    job = new_job()
    job.batch_id = batch.id
    batches.create(batch, [job])
    for batch_id, owner in ((batch.id, "owner-b"), ("batch_missing", "owner-a")):
        with pytest.raises(BatchNotFound) as missing:
            batches.get_for_owner(batch_id, owner)
        assert missing.value.to_dict() == {"error": {"type": "not_found", "message": f"no batch with id {batch_id!r}"}}


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
            outcome["job"] = store.wait_until_terminal(job.id, timeout_s=60)
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
