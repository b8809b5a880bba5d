"""A batch's finished lines as OpenAI batch output lines: `id`, `custom_id`, `response` (`status_code`,
`request_id`, `body`) and `error`, for `GET /batches/<id>/results?format=openai` and an OpenAI batch's files."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from core.errors import ErrorType
from core.jobs.model import Job, JobStatus
from core.openai.answers import completion_answer
from core.openai.protocol import Endpoint, error_body

# A line's error when it never got an answer (OpenAI's codes, and one for a result no longer kept).
CANCELLED_CODE = "batch_cancelled"
EXPIRED_CODE = "batch_expired"
RESULT_GONE_CODE = "result_expired"


def endpoint_of(job: Job) -> Endpoint:
    """The OpenAI endpoint a job answers as: a chat (`messages`) or a text completion (`prompt`)."""
    return Endpoint.CHAT_COMPLETIONS if job.input.messages is not None else Endpoint.COMPLETIONS


def output_line(job_id: str, job: Job | None, model_name: str, *, batch_expired: bool = False) -> dict[str, Any] | None:
    """The OpenAI output line of one batch line, or None while it has not finished."""
    line_id = f"batch_req_{job_id}"
    if job is None:
        error = {"code": RESULT_GONE_CODE, "message": "this line's result is no longer kept (JOB_TTL_SECONDS)"}
        return {"id": line_id, "custom_id": None, "response": None, "error": error}
    if not job.status.is_terminal:
        return None
    response: dict[str, Any] | None = None
    error = None
    if job.status == JobStatus.SUCCEEDED:
        body = completion_answer(endpoint_of(job), job, model_name).model_dump(mode="json")
        response = {"status_code": 200, "request_id": job.id, "body": body}
    elif job.status == JobStatus.FAILED:
        # Input the model could not take (its context) is the request's fault; anything else is the server's.
        bad_input = job.error is not None and job.error.type == ErrorType.INVALID_INPUT
        message = job.error.message if job.error is not None else "the generation failed"
        code = str(job.error.type) if job.error is not None else None
        kind = "invalid_request_error" if bad_input else "server_error"
        response = {
            "status_code": 400 if bad_input else 500,
            "request_id": job.id,
            "body": error_body(message, kind, code=code).model_dump(mode="json"),
        }
    elif batch_expired:
        error = {"code": EXPIRED_CODE, "message": "the batch's completion window ended before this line ran"}
    else:
        error = {"code": CANCELLED_CODE, "message": "the line was canceled before it finished"}
    return {"id": line_id, "custom_id": job.custom_id, "response": response, "error": error}


def is_success(line: dict[str, Any]) -> bool:
    """Whether an output line is an answer (OpenAI's output file) rather than a failure (its error file)."""
    return line["response"] is not None and line["response"]["status_code"] == 200


def output_lines(
    jobs: Iterable[tuple[str, Job | None]], model_name: str, *, batch_expired: bool = False
) -> Iterator[str]:
    """JSONL of the finished lines, in input order."""
    for job_id, job in jobs:
        line = output_line(job_id, job, model_name, batch_expired=batch_expired)
        if line is not None:
            yield json.dumps(line, ensure_ascii=False) + "\n"
