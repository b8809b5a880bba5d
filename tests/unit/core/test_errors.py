"""Typed errors: each kind carries its stable type and retry hint, and renders the API's error body without what
must stay in the logs."""

from __future__ import annotations

from core.errors import (
    ErrorType,
    GenerationFailed,
    InvalidInput,
    JobNotFound,
    QueueFull,
    ServerBusy,
    StoreUnavailable,
    TooManyRequests,
    WaitTimedOut,
)


def test_the_body_names_the_type_the_message_and_only_the_fields_that_are_set():
    assert InvalidInput("prompt: too long", field="prompt").to_dict() == {
        "error": {"type": "invalid_input", "message": "prompt: too long", "field": "prompt"}
    }
    assert JobNotFound("no job").to_dict() == {"error": {"type": "not_found", "message": "no job"}}
    assert WaitTimedOut("still running", job_id="j1").to_dict()["error"] == {
        "type": "timeout", "message": "still running", "job_id": "j1"
    }  # fmt: skip


def test_retry_hints_default_per_kind_and_may_be_overridden():
    assert QueueFull("full").retry_after_s == 10 and ServerBusy("busy").retry_after_s == 5
    assert TooManyRequests("slow down").retry_after_s == 1 and InvalidInput("bad").retry_after_s is None
    assert StoreUnavailable("away", retry_after_s=30).retry_after_s == 30


def test_what_redis_said_stays_out_of_the_body():
    error = StoreUnavailable("the job store is unreachable", detail="Error 111 connecting to 10.0.0.5:6379")
    assert "10.0.0.5" in str(error) and "10.0.0.5" not in str(error.to_dict())


def test_a_failed_generation_reports_the_jobs_own_error_type():
    error = GenerationFailed("out of memory", job_id="j1", error_type=ErrorType.OUT_OF_MEMORY)
    assert error.to_dict()["error"]["type"] == "out_of_memory" and error.job_id == "j1"
