"""A job's events as the chunks of a streamed OpenAI answer: the text as written, then the finish and the usage, or
the error that ends the stream (failed, canceled, requeued after text, too slow, expired); ticks while it waits."""

from __future__ import annotations

import pytest

from core.errors import WAIT_TIMED_OUT, ErrorType
from core.events.follow import JobEvents
from core.events.listener import JobEventListener
from core.events.stream import TokenStreams
from core.jobs.model import Job, JobStatus
from core.openai.answers import StreamChunks, sent
from core.openai.protocol import Endpoint, OpenAIErrorBody
from core.openai.streaming import CompletionStream
from core.redis.keys import JOB_KEY

USAGE = {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}


@pytest.fixture
def events(store, client) -> JobEvents:
    return JobEvents(store, TokenStreams(client), JobEventListener(client), keepalive_s=0.2)


def stream_of(job: Job, events: JobEvents, *, endpoint=Endpoint.CHAT_COMPLETIONS, usage=False, wait_s=10.0):
    chunks = StreamChunks(endpoint, job.id, 1700000000, "demo", include_usage=usage)
    return CompletionStream(job.id, job.owner, chunks, events, wait_s)


def running_with_text(store, client, job: Job, text: str) -> None:
    def take(job: Job) -> None:
        job.attempts += 1

    store.transition(job.id, JobStatus.RUNNING, take)
    if text:
        TokenStreams(client).append_texts({(job.id, 1): text})


def finish(store, job: Job, status: JobStatus, **fields) -> None:
    def record(job: Job) -> None:
        for name, value in fields.items():
            setattr(job, name, value)

    store.transition(job.id, status, record)


def wire(items) -> list:
    """What goes on the wire: each chunk's or error's JSON, and None for a tick."""
    return [None if item is None else sent(item) for item in items]


def test_the_text_then_the_finish_and_the_usage(store, client, new_job, events):
    job = new_job()
    running_with_text(store, client, job, "Hi")
    finish(store, job, JobStatus.SUCCEEDED, output={"text": "Hi", "finish_reason": "length"}, usage=USAGE)
    opening, text, closing, usage = wire(stream_of(job, events, usage=True))
    assert opening["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert text["choices"] == [{"index": 0, "delta": {"content": "Hi"}, "logprobs": None, "finish_reason": None}]
    assert closing["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}]
    assert closing["usage"] is None and usage["choices"] == [] and usage["usage"] == USAGE
    assert {chunk["id"] for chunk in (opening, text, closing, usage)} == {f"chatcmpl-{job.id}"}


def test_text_the_events_missed_is_sent_before_the_finish(store, client, new_job, events):
    job = new_job()
    running_with_text(store, client, job, "Hel")
    finish(store, job, JobStatus.SUCCEEDED, output={"text": "Hello", "finish_reason": "stop"}, usage=USAGE)
    chunks = wire(stream_of(job, events, endpoint=Endpoint.COMPLETIONS))
    assert [chunk["choices"][0]["text"] for chunk in chunks] == ["Hel", "lo", ""]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and "usage" not in chunks[-1]


@pytest.mark.parametrize(
    ("error_type", "openai_type"),
    [(ErrorType.INVALID_INPUT, "invalid_request_error"), (ErrorType.ENGINE_FAILED, "server_error")],
)
def test_a_failed_job_ends_the_stream_with_its_error(store, client, new_job, events, error_type, openai_type):
    job = new_job()
    running_with_text(store, client, job, "")
    finish(store, job, JobStatus.FAILED, error={"type": error_type, "message": "too long for the model"})
    *_, last = stream_of(job, events)
    assert isinstance(last, OpenAIErrorBody)
    assert sent(last) == {
        "error": {"message": "too long for the model", "type": openai_type, "param": None, "code": str(error_type)}
    }


def test_a_canceled_job_ends_the_stream_as_canceled(store, new_job, events):
    job = new_job()
    store.cancel_queued([job.id])
    assert wire(stream_of(job, events, endpoint=Endpoint.COMPLETIONS)) == [
        {
            "error": {
                "message": f"job {job.id} was canceled before it finished",
                "type": "invalid_request_error",
                "param": None,
                "code": "canceled",
            }
        }
    ]


def test_a_job_requeued_after_text_was_sent_ends_the_stream(store, client, new_job, events):
    job = new_job()
    running_with_text(store, client, job, "Hi")
    store.transition(job.id, JobStatus.QUEUED)
    *_, text, last = wire(stream_of(job, events))
    assert text["choices"][0]["delta"] == {"content": "Hi"}
    assert last["error"]["code"] == str(ErrorType.ENGINE_FAILED) and last["error"]["type"] == "server_error"
    assert f"/jobs/{job.id}" in last["error"]["message"]


def test_a_job_that_does_not_finish_in_time_ends_the_stream_with_a_timeout(new_job, events):
    job = new_job()
    assert wire(stream_of(job, events, endpoint=Endpoint.COMPLETIONS, wait_s=0.3)) == [
        {
            "error": {
                "message": f"the job did not finish within 0.3 s; it goes on: poll /jobs/{job.id}",
                "type": "server_error",
                "param": None,
                "code": str(WAIT_TIMED_OUT),
            }
        }
    ]


def test_a_job_that_expires_while_followed_ends_the_stream_as_not_found(new_job, client, events):
    job = new_job()
    items = iter(stream_of(job, events, endpoint=Endpoint.COMPLETIONS, wait_s=30))
    assert next(items) is None  # a tick: the job is still queued
    client.delete(JOB_KEY.format(job_id=job.id))
    assert sent(next(items)) == {
        "error": {"message": f"job {job.id} expired", "type": "server_error", "param": None, "code": "not_found"}
    }


def test_choice_0_streams_and_the_other_choices_follow_whole_under_their_index(store, client, new_job, events):
    job = new_job()
    running_with_text(store, client, job, "Hi")
    choices = [
        {"index": 0, "text": "Hi", "finish_reason": "length", "completion_tokens": 1},
        {"index": 1, "text": "Yo", "finish_reason": "stop", "completion_tokens": 1},
        {"index": 2, "text": "", "finish_reason": "stop", "completion_tokens": 0},
    ]
    output = {"text": "Hi", "finish_reason": "length", "choices": choices}
    finish(store, job, JobStatus.SUCCEEDED, output=output, usage=USAGE)
    chunks = wire(stream_of(job, events, usage=True))
    by_index: dict[int, list] = {}
    for chunk in chunks[:-1]:
        (choice,) = chunk["choices"]
        by_index.setdefault(choice["index"], []).append(choice)
    assert [c["delta"] for c in by_index[1]] == [{"role": "assistant", "content": ""}, {"content": "Yo"}, {}]
    assert [c["finish_reason"] for c in by_index[1]] == [None, None, "stop"]
    assert [c["finish_reason"] for c in by_index[2]] == [None, "stop"]
    assert "".join(c["delta"].get("content", "") for c in by_index[0]) == "Hi"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == USAGE
    text = wire(stream_of(job, events, endpoint=Endpoint.COMPLETIONS))
    assert [(c["choices"][0]["index"], c["choices"][0]["text"]) for c in text] == [
        (0, "Hi"),
        (0, ""),
        (1, "Yo"),
        (1, ""),
        (2, ""),
    ]
