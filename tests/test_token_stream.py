"""A job's event stream against a real Redis: status entries staged by its transitions, token deltas appended for
many jobs at once, replay and resume by id, the cap, expiry with the job, and each entry published as it is added."""

from __future__ import annotations

import time

import pytest

from core.batches.model import Batch
from core.batches.store import BatchStore
from core.events.stream import (
    START,
    StreamEvent,
    TokenStreams,
    channel_of,
    event_from_message,
    id_order,
    stream_key,
    text_of,
)
from core.jobs.model import Job, JobStatus, new_job_id, utc_now_iso
from core.jobs.store import JobStore, connect
from core.redis.keys import JOB_KEY
from tests.token_writes import as_running_attempt


@pytest.fixture
def store(own_redis) -> JobStore:
    """A Redis of the test's own: on the session's, its reconciler would take these hand-made running jobs (no
    worker runs them) for a dead worker's and put them back on the queue mid-test."""
    return JobStore(connect(own_redis.url), job_ttl_s=3600)


def new_job(**fields) -> Job:
    return Job(id=new_job_id(), status=JobStatus.QUEUED, created_at=utc_now_iso(), input={"prompt": "x"}, **fields)


def started(job: Job) -> None:
    job.attempts += 1


def test_transitions_and_deltas_replay_in_order_and_resume_after_any_id(store):
    streams = TokenStreams(store.redis)
    job, other = new_job(), new_job()
    store.create(job)
    store.create(other)
    assert streams.read(job.id) == []  # a queued job has no entry before its first change
    store.transition(job.id, JobStatus.RUNNING, started)
    store.transition(other.id, JobStatus.RUNNING, started)
    streams.append_texts(as_running_attempt(store, {job.id: "Xin ", other.id: "Hello"}))
    streams.append_texts(as_running_attempt(store, {job.id: "chào đ"}))
    streams.append_texts(as_running_attempt(store, {job.id: "ời", other.id: ""}))
    store.transition(job.id, JobStatus.SUCCEEDED)

    events = streams.read(job.id)
    assert [(e.kind, e.data) for e in events] == [
        ("status", {"status": "running"}),
        ("token", {"text": "Xin "}),
        ("token", {"text": "chào đ"}),
        ("token", {"text": "ời"}),
        ("status", {"status": "succeeded"}),
    ]
    assert [id_order(e.event_id) for e in events] == sorted(id_order(e.event_id) for e in events)
    assert text_of(events) == "Xin chào đời"
    for index, event in enumerate(events):
        assert streams.read(job.id, after=event.event_id) == events[index + 1 :]  # no gap, no repeat
    assert streams.read(job.id, count=2) == events[:2]
    assert [e.data for e in streams.read(other.id)] == [{"status": "running"}, {"text": "Hello"}]

    # The stream expires with the job, on the same clock; a running job's stream has no expiry.
    assert 3500 < store.redis.ttl(stream_key(job.id)) <= store.redis.ttl(JOB_KEY.format(job_id=job.id)) + 1
    assert store.redis.ttl(stream_key(other.id)) == -1


def test_a_token_never_recreates_a_missing_stream_and_every_change_is_published(store):
    streams = TokenStreams(store.redis)
    job, never_started = new_job(), new_job()
    store.create(job)
    store.create(never_started)
    pubsub = store.redis.pubsub()
    pubsub.psubscribe(channel_of("*"))
    assert pubsub.get_message(timeout=2)["type"] == "psubscribe"

    store.transition(job.id, JobStatus.RUNNING, started)
    streams.append_texts(as_running_attempt(store, {job.id: "ạ", never_started.id: "lost"}))
    store.transition(job.id, JobStatus.QUEUED, lambda j: setattr(j, "attempts", j.attempts - 1))
    store.transition(never_started.id, JobStatus.CANCELED)
    published = []
    while len(published) < 4:
        message = pubsub.get_message(timeout=2)
        assert message is not None, published
        published.append((message["channel"], event_from_message(message["data"])))
    pubsub.close()

    entries = streams.read(job.id)
    # A token comes with its entry; a status change only says that there is one to read (its id is not known).
    assert published == [
        (channel_of(job.id), None),
        (channel_of(job.id), entries[1]),
        (channel_of(job.id), None),
        (channel_of(never_started.id), None),
    ]
    assert [e.data for e in entries] == [{"status": "running"}, {"text": "ạ"}, {"status": "queued"}]
    assert text_of(entries) == ""  # back on the queue: the attempt's text is void
    assert not store.redis.exists(stream_key(never_started.id))  # canceled while queued: no stream started
    store.redis.delete(stream_key(job.id))
    streams.append_texts(as_running_attempt(store, {job.id: "late"}))  # e.g. after the job expired
    assert not store.redis.exists(stream_key(job.id))
    store.redis.script_flush()
    store.transition(job.id, JobStatus.RUNNING, started)
    streams.append_texts(as_running_attempt(store, {job.id: "again"}))  # the script is loaded again after Redis lost it
    assert text_of(streams.read(job.id)) == "again"


def test_the_cap_keeps_at_least_what_one_attempt_writes(store):
    cap = 200
    streams = TokenStreams(store.redis, max_entries=cap)
    job = new_job()
    store.create(job)
    store.transition(job.id, JobStatus.RUNNING, started)
    for index in range(3 * cap):
        streams.append_texts(as_running_attempt(store, {job.id: f"{index} "}))
    events = streams.read(job.id, count=10 * cap)
    assert cap <= len(events) < 3 * cap  # trimmed, oldest first, never below the cap
    assert events[-1].data == {"text": f"{3 * cap - 1} "}


def test_a_batch_jobs_stream_expires_when_its_batch_completes(store):
    batch = Batch(id=f"batch_{new_job_id()}", created_at=utc_now_iso(), total=2)
    first, second = new_job(batch_id=batch.id), new_job(batch_id=batch.id)
    BatchStore(store).create(batch, [first, second])
    for job in (first, second):
        store.transition(job.id, JobStatus.RUNNING, started)
    store.transition(first.id, JobStatus.SUCCEEDED)
    assert store.redis.ttl(stream_key(first.id)) == -1  # the batch is still open: kept like the job itself
    store.transition(second.id, JobStatus.FAILED)
    for job in (first, second):
        assert 0 < store.redis.ttl(stream_key(job.id)) <= 3600


def test_blocking_read_wakes_on_a_new_entry(store):
    streams = TokenStreams(store.redis)
    job = new_job()
    store.create(job)
    store.transition(job.id, JobStatus.RUNNING, started)
    last = streams.read(job.id)[-1].event_id
    begun = time.monotonic()
    assert streams.read(job.id, after=last, block_ms=100) == []
    assert time.monotonic() - begun >= 0.09
    streams.append_texts(as_running_attempt(store, {job.id: "x"}))
    assert [e.data for e in streams.read(job.id, after=last, block_ms=100)] == [{"text": "x"}]
    assert streams.read(job.id, after=START)[0] == StreamEvent(last, "status", {"status": "running"})


def test_a_superseded_attempt_adds_no_text_after_its_job_was_requeued(store):
    """A worker paused past its heartbeat wakes up still running attempt 1, after the reconciler requeued the job
    and while (or before) attempt 2 runs: its text must not join attempt 2's."""
    streams = TokenStreams(store.redis)
    job = new_job()
    store.create(job)
    store.transition(job.id, JobStatus.RUNNING, started)  # attempt 1; its worker pauses before writing anything
    store.transition(job.id, JobStatus.QUEUED, attempt=1)  # requeued by the reconciler
    streams.append_texts({(job.id, 1): "stale "})  # the paused worker wakes: refused, nothing runs now
    store.transition(job.id, JobStatus.RUNNING, started)  # attempt 2
    streams.append_texts({(job.id, 1): "still stale ", (job.id, 2): "fresh"})
    assert text_of(streams.read(job.id)) == "fresh"
    assert [e.data for e in streams.read(job.id) if e.kind == "token"] == [{"text": "fresh"}]
