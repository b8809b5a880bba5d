"""A batch's native result lines: a job's status, output, error and usage; a job no longer kept only says so."""

from __future__ import annotations

import json

from core.batches.results import BatchResultLine
from core.errors import ErrorType
from core.jobs.model import Job, JobStatus

USAGE = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def job(status: JobStatus = JobStatus.SUCCEEDED, **fields) -> Job:
    values = {
        "id": "0123456789abcdef0123456789abcdef",
        "status": status,
        "created_at": "2025-01-02T03:04:05Z",
        "input": {"prompt": "hi"},
        "custom_id": "line-1",
    }
    return Job(**(values | fields))


def test_a_finished_job_carries_its_output_error_and_usage_even_when_null():
    done = job(output={"text": "Xin chào", "finish_reason": "stop"}, usage=USAGE)
    line = BatchResultLine.of(done.id, done)
    assert line.jsonl() == (
        '{"custom_id": "line-1", "job_id": "0123456789abcdef0123456789abcdef", "status": "succeeded", '
        '"output": {"text": "Xin chào", "finish_reason": "stop"}, "error": null, '
        '"usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}\n'
    )
    failed = job(JobStatus.FAILED, error={"type": ErrorType.ENGINE_FAILED, "message": "boom"})
    assert json.loads(BatchResultLine.of(failed.id, failed).jsonl())["error"] == {
        "type": str(ErrorType.ENGINE_FAILED),
        "message": "boom",
    }


def test_a_job_no_longer_kept_is_marked_expired_without_output_error_or_usage():
    assert json.loads(BatchResultLine.of("gone", None).jsonl()) == {
        "custom_id": None,
        "job_id": "gone",
        "status": "expired",
    }
