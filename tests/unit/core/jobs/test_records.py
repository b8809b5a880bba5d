"""The typed parts of a job: validated from the dicts the worker builds, dumped back to the same JSON."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.errors import ErrorType
from core.jobs.model import Job, JobStatus, new_job_id, utc_now_iso
from core.jobs.records import JobError, JobOutput, JobUsage, WebhookRecord, WebhookState

ATTEMPT = {"event": "completed", "webhook_id": "msg_1", "attempt": 1, "at": "2026-01-01T00:00:00Z",
           "status_code": 500, "error": None}  # fmt: skip


def test_a_record_dumps_to_the_json_it_was_built_from():
    record = {"url": "https://h.example/", "events": ["completed"], "state": {"completed": "failed"},
              "deliveries": [ATTEMPT]}  # fmt: skip
    assert WebhookRecord.model_validate(record).model_dump(mode="json") == record
    assert WebhookRecord.model_validate(record).state["completed"] is WebhookState.FAILED


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (JobOutput, {"text": "", "finish_reason": "because"}),
        (JobOutput, {"text": "", "finish_reason": "stop", "extra": 1}),
        (JobError, {"type": "no_such_type", "message": "m"}),
    ],
)
def test_a_value_outside_the_wire_shape_is_refused(model, data):
    with pytest.raises(ValidationError):
        model.model_validate(data)


def test_a_job_given_dicts_by_the_worker_stores_typed_records(new_job, store):
    job = new_job()
    store.transition(job.id, JobStatus.RUNNING)

    def fail(job) -> None:
        job.error = {"type": "out_of_memory", "message": "CUDA out of memory"}

    failed = store.transition(job.id, JobStatus.FAILED, fail)
    assert isinstance(failed.error, JobError) and store.get(job.id).error == failed.error
    assert store.get(job.id).public_view()["error"] == {"type": "out_of_memory", "message": "CUDA out of memory"}


def test_a_record_is_no_dict():
    output = JobOutput(text="xin chào", finish_reason="stop")
    with pytest.raises(TypeError):
        output["text"]  # noqa: B018 - the dict back door is gone
    assert not hasattr(output, "get")


def test_records_dump_to_the_json_the_dicts_had():
    job = Job(id=new_job_id(), status=JobStatus.FAILED, created_at=utc_now_iso(), input={"prompt": "x"})
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


def test_an_output_lists_its_choices_only_when_there_are_several():
    one = JobOutput(text="a", finish_reason="stop")
    assert one.model_dump(mode="json") == {"text": "a", "finish_reason": "stop"}
    choice = {"index": 1, "text": "b", "finish_reason": "length", "completion_tokens": 2}
    several = JobOutput(text="a", finish_reason="stop", choices=[choice])
    assert JobOutput.model_validate_json(several.model_dump_json()).model_dump(mode="json")["choices"] == [choice]
