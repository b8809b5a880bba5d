"""A batch's finished lines as OpenAI batch output lines (`OpenAIBatchOutputLine`: `id`, `custom_id`, `response`
with `status_code`, `request_id` and `body`, and `error`), for `GET /batches/<id>/results?format=openai` and an
OpenAI batch's files."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from core.errors import ErrorType
from core.jobs.model import Job, JobStatus
from core.openai.answers import completion_answer
from core.openai.batch_protocol import OpenAIBatchLineResponse, OpenAIBatchOutputError, OpenAIBatchOutputLine
from core.openai.protocol import Endpoint, error_body

# A line's error when it never got an answer (OpenAI's codes, and one for a result no longer kept).
CANCELLED_CODE = "batch_cancelled"
EXPIRED_CODE = "batch_expired"
RESULT_GONE_CODE = "result_expired"


def endpoint_of(job: Job) -> Endpoint:
    """The OpenAI endpoint a job answers as: a chat (`messages`) or a text completion (`prompt`)."""
    return Endpoint.CHAT_COMPLETIONS if job.input.messages is not None else Endpoint.COMPLETIONS


def output_line(
    job_id: str, job: Job | None, model_name: str, *, batch_expired: bool = False
) -> OpenAIBatchOutputLine | None:
    """The OpenAI output line of one batch line, or None while it has not finished."""
    line_id = f"batch_req_{job_id}"
    if job is None:
        error = OpenAIBatchOutputError(
            code=RESULT_GONE_CODE, message="this line's result is no longer kept (JOB_TTL_SECONDS)"
        )
        return OpenAIBatchOutputLine(id=line_id, custom_id=None, response=None, error=error)
    if not job.status.is_terminal:
        return None
    response: OpenAIBatchLineResponse | None = None
    error = None
    if job.status == JobStatus.SUCCEEDED:
        body = completion_answer(endpoint_of(job), [job], model_name)
        response = OpenAIBatchLineResponse(status_code=200, request_id=job.id, body=body)
    elif job.status == JobStatus.FAILED:
        # Input the model could not take (its context) is the request's fault; anything else is the server's.
        bad_input = job.error is not None and job.error.type == ErrorType.INVALID_INPUT
        message = job.error.message if job.error is not None else "the generation failed"
        code = str(job.error.type) if job.error is not None else None
        kind = "invalid_request_error" if bad_input else "server_error"
        response = OpenAIBatchLineResponse(
            status_code=400 if bad_input else 500, request_id=job.id, body=error_body(message, kind, code=code)
        )
    elif batch_expired:
        error = OpenAIBatchOutputError(
            code=EXPIRED_CODE, message="the batch's completion window ended before this line ran"
        )
    else:
        error = OpenAIBatchOutputError(code=CANCELLED_CODE, message="the line was canceled before it finished")
    return OpenAIBatchOutputLine(id=line_id, custom_id=job.custom_id, response=response, error=error)


def output_lines(
    jobs: Iterable[tuple[str, Job | None]], model_name: str, *, batch_expired: bool = False
) -> Iterator[str]:
    """JSONL of the finished lines, in input order."""
    for job_id, job in jobs:
        line = output_line(job_id, job, model_name, batch_expired=batch_expired)
        if line is not None:
            yield line.jsonl()
