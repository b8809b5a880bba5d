"""A batch's finished lines as OpenAI batch output lines: answers, failures with their status codes, lines never
run (canceled, expired), results no longer kept; unfinished lines are not written."""

from __future__ import annotations

import json

from core.errors import ErrorType
from core.jobs.model import Job, JobStatus
from core.openai.batch_output import endpoint_of, output_line, output_lines
from core.openai.protocol import Endpoint

USAGE = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def job(status: JobStatus = JobStatus.SUCCEEDED, **fields) -> Job:
    values = {
        "id": "0123456789abcdef0123456789abcdef",
        "status": status,
        "created_at": "2025-01-02T03:04:05Z",
        "input": {"messages": [{"role": "user", "content": "hi"}]},
        "custom_id": "line-1",
    }
    return Job(**(values | fields))


def test_a_line_answers_as_the_endpoint_its_input_names():
    assert endpoint_of(job()) is Endpoint.CHAT_COMPLETIONS
    assert endpoint_of(job(input={"prompt": "x"})) is Endpoint.COMPLETIONS


def test_a_succeeded_line_carries_its_answer_with_status_200():
    done = job(output={"text": "Hello", "finish_reason": "stop"}, usage=USAGE)
    answer = output_line(done.id, done, "demo")
    assert answer.is_success
    line = answer.model_dump(mode="json")
    assert line["id"] == f"batch_req_{done.id}" and line["custom_id"] == "line-1" and line["error"] is None
    assert line["response"]["status_code"] == 200 and line["response"]["request_id"] == done.id
    body = line["response"]["body"]
    assert body["id"] == f"chatcmpl-{done.id}" and body["object"] == "chat.completion" and body["model"] == "demo"
    assert body["choices"][0]["message"]["content"] == "Hello" and body["usage"] == USAGE


def test_a_failed_line_is_a_400_when_its_input_was_at_fault_and_a_500_otherwise():
    bad = job(JobStatus.FAILED, error={"type": ErrorType.INVALID_INPUT, "message": "too long"})
    refused = output_line(bad.id, bad, "demo")
    assert not refused.is_success
    line = refused.model_dump(mode="json")
    assert line["response"] == {
        "status_code": 400,
        "request_id": bad.id,
        "body": {
            "error": {"message": "too long", "type": "invalid_request_error", "param": None, "code": "invalid_input"}
        },
    }
    assert line["error"] is None
    broken = job(JobStatus.FAILED, error={"type": ErrorType.ENGINE_FAILED, "message": "boom"})
    response = output_line(broken.id, broken, "demo").model_dump(mode="json")["response"]
    assert response["status_code"] == 500 and response["body"]["error"]["type"] == "server_error"
    assert response["body"]["error"]["code"] == str(ErrorType.ENGINE_FAILED)


def test_a_line_that_never_ran_says_whether_it_was_canceled_or_its_window_ended():
    canceled = job(JobStatus.CANCELED)
    assert output_line(canceled.id, canceled, "demo").model_dump(mode="json") == {
        "id": f"batch_req_{canceled.id}",
        "custom_id": "line-1",
        "response": None,
        "error": {"code": "batch_cancelled", "message": "the line was canceled before it finished"},
    }
    expired = output_line(canceled.id, canceled, "demo", batch_expired=True)
    assert expired.error.code == "batch_expired" and not expired.is_success


def test_a_result_no_longer_kept_says_so_and_an_unfinished_line_is_not_written():
    assert output_line("gone", None, "demo").model_dump(mode="json") == {
        "id": "batch_req_gone",
        "custom_id": None,
        "response": None,
        "error": {"code": "result_expired", "message": "this line's result is no longer kept (JOB_TTL_SECONDS)"},
    }
    assert output_line("q", job(JobStatus.QUEUED), "demo") is None
    assert output_line("r", job(JobStatus.RUNNING), "demo") is None


def test_output_lines_are_jsonl_in_input_order_without_the_unfinished():
    done = job(input={"prompt": "x"}, output={"text": "Xin chào", "finish_reason": "length"}, usage=USAGE)
    queued = job(JobStatus.QUEUED, id="f" * 32)
    text = "".join(output_lines([(done.id, done), (queued.id, queued), ("gone", None)], "demo"))
    assert text.endswith("\n") and "Xin chào" in text  # not escaped
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["id"] for line in lines] == [f"batch_req_{done.id}", "batch_req_gone"]
    assert lines[0]["response"]["body"]["object"] == "text_completion"
    assert lines[0]["response"]["body"]["choices"][0]["finish_reason"] == "length"


def test_a_line_with_n_choices_answers_every_choice():
    choices = [{"index": i, "text": f"t{i}", "finish_reason": "stop", "completion_tokens": 2} for i in range(2)]
    done = job(output={"text": "t0", "finish_reason": "stop", "choices": choices}, usage=USAGE)
    body = output_line(done.id, done, "demo").model_dump(mode="json")["response"]["body"]
    assert [(c["index"], c["message"]["content"]) for c in body["choices"]] == [(0, "t0"), (1, "t1")]
