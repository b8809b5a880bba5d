"""A job's event stream as OpenAI chunks (core/openai/streaming.py), against the test Redis, the job's changes
written as the worker writes them (status changes through the store, text through TokenStreams)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from core.errors import ErrorType
from core.events.follow import JobEvents
from core.events.listener import JobEventListener
from core.events.stream import TokenStreams
from core.jobs.model import Job, JobStatus, new_job_id, utc_now_iso
from core.jobs.records import JobError, JobOutput, JobUsage
from core.jobs.store import JobStore, connect
from core.openai.answers import StreamChunks, sent
from core.openai.protocol import Endpoint
from core.openai.streaming import CompletionStream
from tests.token_writes import as_running_attempt


@pytest.fixture
def store(own_redis) -> JobStore:
    """A Redis of the test's own: on the session's, its reconciler would take these hand-made running jobs (no
    worker runs them) for a dead worker's and put them back on the queue mid-test."""
    return JobStore(connect(own_redis.url), job_ttl_s=3600)


def _job(store) -> Job:
    job = Job(id=new_job_id(), status=JobStatus.QUEUED, created_at=utc_now_iso(), input={"prompt": "x"})
    store.create(job)
    return job


def _follow(store, job: Job, *, wait_s: float = 30, include_usage: bool = True) -> Iterator[dict | None]:
    """The stream's events as the JSON they are sent as (ticks stay None)."""
    chunks = StreamChunks(Endpoint.CHAT_COMPLETIONS, job.id, 0, "demo", include_usage)
    events = JobEvents(store, TokenStreams(store.redis), JobEventListener(store.redis), keepalive_s=15)
    stream = CompletionStream(job.id, job.owner, chunks, events, wait_s)
    return (None if item is None else sent(item) for item in stream)


def _succeed(store, job_id: str, text: str, reason: str = "stop") -> None:
    def change(job: Job) -> None:
        job.output = JobOutput(text=text, finish_reason=reason)
        job.usage = JobUsage(prompt_tokens=2, completion_tokens=3, total_tokens=5)

    store.transition(job_id, JobStatus.SUCCEEDED, change)


def test_text_as_it_comes_then_the_finish_and_the_usage(store):
    job = _job(store)
    streams = TokenStreams(store.redis)
    stream = iter(_follow(store, job))
    assert next(stream)["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    store.transition(job.id, JobStatus.RUNNING)
    # Nothing written yet: the follower ticks (None) while it waits, so its caller can keep the connection alive.
    assert next(stream) is None
    streams.append_texts(as_running_attempt(store, {job.id: "Xin "}))
    assert next(stream)["choices"][0]["delta"] == {"content": "Xin "}
    streams.append_texts(as_running_attempt(store, {job.id: "chào"}))
    assert next(stream)["choices"][0]["delta"] == {"content": "chào"}
    _succeed(store, job.id, "Xin chào", "length")
    finish, usage = list(stream)
    assert finish["choices"][0]["finish_reason"] == "length" and finish["choices"][0]["delta"] == {}
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 5


def test_a_follower_that_comes_late_gets_every_piece_once(store):
    job = _job(store)
    store.transition(job.id, JobStatus.RUNNING)
    TokenStreams(store.redis).append_texts(as_running_attempt(store, {job.id: "Phở "}))
    TokenStreams(store.redis).append_texts(as_running_attempt(store, {job.id: "bò"}))
    _succeed(store, job.id, "Phở bò")
    chunks = list(_follow(store, job, include_usage=False))
    texts = [chunk["choices"][0]["delta"].get("content") for chunk in chunks[1:-1]]
    assert texts == ["Phở ", "bò"] and chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in chunk for chunk in chunks)


def test_a_failed_job_ends_the_stream_with_an_error(store):
    job = _job(store)
    store.transition(job.id, JobStatus.RUNNING)

    def fail(job: Job) -> None:
        job.error = JobError(type=ErrorType.OUT_OF_MEMORY, message="CUDA out of memory")

    store.transition(job.id, JobStatus.FAILED, fail)
    *_, last = list(_follow(store, job))
    assert last == {
        "error": {"message": "CUDA out of memory", "type": "server_error", "param": None, "code": "out_of_memory"}
    }


def test_a_job_requeued_after_text_was_sent_ends_the_stream_saying_so(store):
    job = _job(store)
    stream = iter(_follow(store, job))
    next(stream)
    store.transition(job.id, JobStatus.RUNNING)
    TokenStreams(store.redis).append_texts(as_running_attempt(store, {job.id: "một nửa"}))
    assert next(stream)["choices"][0]["delta"]["content"] == "một nửa"
    store.transition(job.id, JobStatus.QUEUED)  # its worker died: the next attempt starts the text again
    *_, last = [chunk for chunk in stream if chunk is not None]
    assert "back to the queue" in last["error"]["message"]
    assert store.get(job.id).status == JobStatus.QUEUED  # the job itself goes on


def test_a_job_that_outlives_the_wait_ends_the_stream_with_a_timeout_and_goes_on(store):
    job = _job(store)
    chunks = [chunk for chunk in _follow(store, job, wait_s=0.3) if chunk is not None]
    assert chunks[-1]["error"]["code"] == "timeout" and job.id in chunks[-1]["error"]["message"]
    assert store.get(job.id).status == JobStatus.QUEUED


def test_a_job_canceled_while_followed_ends_the_stream(store):
    job = _job(store)
    stream = _follow(store, job)
    threading.Timer(0.3, lambda: store.cancel_queued([job.id])).start()
    *_, last = [chunk for chunk in stream if chunk is not None]
    assert last["error"]["code"] == "canceled"
