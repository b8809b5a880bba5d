"""Finished jobs as OpenAI answers and the chunks of streamed ones, as the JSON they are sent as."""

from __future__ import annotations

from core.jobs.model import Job, JobStatus, new_job_id, parse_iso
from core.openai.answers import StreamChunks, completion_answer, created_at, finish_reason, sent, usage_of
from core.openai.protocol import Endpoint, error_body

CHAT = Endpoint.CHAT_COMPLETIONS
TEXT = Endpoint.COMPLETIONS


def _job(**fields) -> Job:
    values = {
        "id": new_job_id(),
        "status": JobStatus.SUCCEEDED,
        "created_at": "2025-01-02T03:04:05.678901Z",
        "input": {"prompt": "x"},
        "output": {"text": "Xin chào", "finish_reason": "length"},
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }
    return Job(**{**values, **fields})


def test_a_finished_job_as_openai_answers():
    job = _job()
    created = int(parse_iso(job.created_at).timestamp())
    body = completion_answer(CHAT, [job], "demo").model_dump(mode="json")
    assert body["id"] == f"chatcmpl-{job.id}" and body["object"] == "chat.completion"
    assert body["created"] == created and body["model"] == "demo"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Xin chào", "refusal": None},
            "logprobs": None,
            "finish_reason": "length",
        }
    ]
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    body = completion_answer(TEXT, [_job(output={"text": "t", "finish_reason": "stop"})], "demo").model_dump(
        mode="json"
    )
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    assert body["choices"] == [{"index": 0, "text": "t", "logprobs": None, "finish_reason": "stop"}]


def test_a_job_with_n_choices_answers_each_with_its_index_and_finish_reason():
    choices = [
        {"index": i, "text": f"t{i}", "finish_reason": reason, "completion_tokens": 2}
        for i, reason in enumerate(["stop", "length", "timeout"])
    ]
    job = _job(output={"text": "t0", "finish_reason": "stop", "choices": choices})
    chat = completion_answer(CHAT, [job], "demo").model_dump(mode="json")["choices"]
    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in chat] == [
        (0, "t0", "stop"),
        (1, "t1", "length"),
        (2, "t2", "length"),
    ]
    text = completion_answer(TEXT, [job], "demo").model_dump(mode="json")["choices"]
    assert [(c["index"], c["text"]) for c in text] == [(0, "t0"), (1, "t1"), (2, "t2")]


def test_stream_chunks_in_openai_shapes():
    job = _job()
    chunks = StreamChunks(CHAT, job.id, 1700000000, "demo", include_usage=True)
    built = chunks.opening(), chunks.text("Xin"), chunks.finish("stop"), chunks.usage(usage_of(job))
    opening, text, finish, usage = (sent(chunk) for chunk in built)
    for chunk in (opening, text, finish, usage):
        assert chunk["object"] == "chat.completion.chunk" and chunk["id"] == f"chatcmpl-{job.id}"
        assert chunk["model"] == "demo" and chunk["created"] == 1700000000
    assert opening["choices"][0]["delta"] == {"role": "assistant", "content": ""} and opening["usage"] is None
    assert text["choices"][0]["delta"] == {"content": "Xin"} and text["choices"][0]["finish_reason"] is None
    assert finish["choices"][0]["delta"] == {} and finish["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 7
    plain = StreamChunks(TEXT, job.id, 1700000000, "demo", include_usage=False)
    assert plain.opening() is None and "usage" not in sent(plain.text("a"))
    assert sent(plain.text("a"))["choices"][0] == {"index": 0, "text": "a", "logprobs": None, "finish_reason": None}
    assert sent(plain.finish("length"))["object"] == "text_completion"


def test_an_error_that_ends_a_stream_is_sent_in_openai_shape():
    assert sent(error_body("bad n", "invalid_request_error", param="n")) == {
        "error": {"message": "bad n", "type": "invalid_request_error", "param": "n", "code": None}
    }


def test_the_services_finish_reasons_are_openais():
    assert [finish_reason(reason) for reason in ("stop", "length", "timeout", "canceled", None)] == [
        "stop",
        "length",
        "length",
        "stop",
        "stop",
    ]


def test_created_is_the_jobs_creation_in_whole_unix_seconds():
    assert created_at(_job(created_at="2025-01-02T03:04:05.678901Z")) == 1735787045


def test_a_job_without_output_or_usage_answers_empty_with_zero_counts():
    job = _job(output=None, usage=None)
    assert usage_of(job).model_dump() == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    body = completion_answer(CHAT, [job], "demo").model_dump(mode="json")
    assert body["choices"][0]["message"]["content"] == "" and body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert body["system_fingerprint"] is None


def test_continuous_usage_puts_a_usage_on_every_chunk_and_the_jobs_on_the_closing_one():
    job = _job()
    chunks = StreamChunks(TEXT, job.id, 1700000000, "demo", include_usage=False, continuous_usage=True)
    assert sent(chunks.text("a")) == {
        "id": f"cmpl-{job.id}",
        "object": "text_completion",
        "created": 1700000000,
        "model": "demo",
        "choices": [{"index": 0, "text": "a", "logprobs": None, "finish_reason": None}],
        "system_fingerprint": None,
        "usage": None,
    }
    closing = sent(chunks.finish("timeout", job))
    assert closing["choices"] == [{"index": 0, "text": "", "logprobs": None, "finish_reason": "length"}]
    assert closing["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    # Without continuous usage the closing chunk carries no counts, even given the job.
    assert "usage" not in sent(StreamChunks(TEXT, job.id, 0, "demo", include_usage=False).finish("stop", job))
