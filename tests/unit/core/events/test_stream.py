"""A job's event stream in Redis: status entries written by the store's transitions, text deltas appended only by
the running attempt, and the text of the latest attempt read back."""

from __future__ import annotations

import json

import pytest

from core.events.stream import (
    StreamEvent,
    TokenStreams,
    entries_cap,
    event_from_message,
    id_order,
    is_event_id,
    stream_key,
    text_of,
)
from core.jobs.model import JobStatus


def running(store, new_job):
    job = new_job()

    def take(job) -> None:
        job.attempts += 1

    return store.transition(job.id, JobStatus.RUNNING, take)


def test_event_ids_compare_as_numbers_and_only_stream_ids_are_accepted():
    assert id_order("10-2") > id_order("9-99") and id_order("5") == (5, 0)
    assert is_event_id("1700000000000-0") and is_event_id("17")
    assert not is_event_id("1-2-3") and not is_event_id("$") and not is_event_id("9" * 20)
    with pytest.raises(ValueError):
        id_order("abc")


def test_the_cap_leaves_room_for_every_token_of_one_attempt():
    assert entries_cap(100) > 100


def test_a_channel_message_carries_a_token_with_its_id_and_a_status_without_one():
    assert event_from_message(json.dumps(["1-0", "token", "hi"])) == StreamEvent("1-0", "token", {"text": "hi"})
    assert event_from_message(json.dumps([None, "status", "running"])) is None


def test_the_text_is_that_of_the_attempt_after_the_last_requeue():
    events = [
        StreamEvent("1-0", "status", {"status": "running"}),
        StreamEvent("2-0", "token", {"text": "lost "}),
        StreamEvent("3-0", "status", {"status": "queued"}),
        StreamEvent("4-0", "status", {"status": "running"}),
        StreamEvent("5-0", "token", {"text": "kept"}),
        StreamEvent("6-0", "token", {"text": "!"}),
    ]
    assert text_of(events) == "kept!"


def test_the_running_attempt_appends_and_a_superseded_one_does_not(store, new_job, client):
    job = running(store, new_job)
    streams = TokenStreams(client)
    streams.append_texts({(job.id, 1): "Hello", (job.id, 2): "never", ("no-stream-job", 1): "nothing"})
    streams.append_texts({(job.id, 1): ", world", (job.id, 9): ""})
    events = streams.read(job.id)
    assert [event.kind for event in events] == ["status", "token", "token"]
    assert text_of(events) == "Hello, world" and streams.last(job.id) == events[-1]
    assert not client.exists(stream_key("no-stream-job"))
    assert streams.read(job.id, after=events[1].event_id) == events[2:]


def test_appending_goes_on_after_redis_forgot_its_scripts(store, new_job, client):
    job = running(store, new_job)
    streams = TokenStreams(client)
    streams.append_texts({(job.id, 1): "a"})
    client.script_flush()
    streams.append_texts({(job.id, 1): "b"})
    assert text_of(streams.read(job.id)) == "ab"


def test_the_next_attempt_starts_its_text_again(store, new_job, client):
    job = running(store, new_job)
    streams = TokenStreams(client)
    streams.append_texts({(job.id, 1): "first try"})
    store.transition(job.id, JobStatus.QUEUED)
    streams.append_texts({(job.id, 1): " late"})  # the superseded attempt writes nothing now

    def take(job) -> None:
        job.attempts += 1

    store.transition(job.id, JobStatus.RUNNING, take)
    streams.append_texts({(job.id, 2): "second"})
    assert text_of(streams.read(job.id)) == "second"


def test_a_token_entry_carries_its_tokens_logprob_records_when_there_are_some(store, new_job, client):
    job = running(store, new_job)
    streams = TokenStreams(client)
    record = {"token_id": 7, "token": "Hi", "logprob": -0.5, "top": []}
    streams.append_texts({(job.id, 1): ("Hi", [record])})
    streams.append_texts({(job.id, 1): "!"})
    _, with_records, plain = streams.read(job.id)
    assert with_records.data == {"text": "Hi", "logprobs": [record]} and plain.data == {"text": "!"}
    message = json.dumps(["1-0", "token", "Hi", json.dumps([record])])
    assert event_from_message(message) == StreamEvent("1-0", "token", {"text": "Hi", "logprobs": [record]})
