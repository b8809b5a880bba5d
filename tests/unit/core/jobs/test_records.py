"""A job's typed records (core/jobs/records.py): read by attribute only, and stored as the JSON the dicts had."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.errors import ErrorType
from core.jobs.model import Job, JobStatus, new_job_id, utc_now_iso
from core.jobs.records import JobError, JobOutput, JobUsage


def test_a_record_is_no_dict():
    output = JobOutput(text="xin chào", finish_reason="stop")
    with pytest.raises(TypeError):
        output["text"]  # noqa: B018 - the dict back door is gone
    assert not hasattr(output, "get")


def test_records_dump_to_the_json_the_dicts_had():
    job = Job(id=new_job_id(), status=JobStatus.FAILED, created_at=utc_now_iso(), input={})
    job.output = JobOutput(text="", finish_reason="timeout")
    job.usage = JobUsage(prompt_tokens=2, completion_tokens=3, total_tokens=5)
    job.error = JobError(type=ErrorType.JOB_TIMED_OUT, message="late")
    dumped = job.model_dump(mode="json", include={"output", "usage", "error"})
    assert dumped == {
        "output": {"text": "", "finish_reason": "timeout"},
        "usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5},
        "error": {"type": "timeout", "message": "late"},
    }


def test_a_record_refuses_a_field_it_does_not_declare():
    with pytest.raises(ValidationError):
        JobError(type=ErrorType.ENGINE_FAILED, message="x", code=1)
