"""Typed errors: each kind carries its stable type and retry hint, and renders the API's error body without what
must stay in the logs."""

from __future__ import annotations

from core.errors import (
    WAIT_TIMED_OUT,
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


WIRE_VALUES = [
    "invalid_input", "out_of_memory", "device_error", "generation_error", "timeout", "max_attempts",
    "malformed_body", "unauthorized", "not_found", "model_not_found", "wrong_state", "body_too_large", "queue_full",
    "too_many_requests", "forbidden", "store_unavailable", "server_busy", "generation_failed", "method_not_allowed",
    "unsupported_media_type", "unsupported_schema", "http_error", "internal_error",
]  # fmt: skip


def test_the_wire_values_are_unchanged_and_listed_once():
    assert [error_type.value for error_type in ErrorType] == WIRE_VALUES


def test_a_job_past_its_deadline_and_a_wait_that_ran_out_share_one_wire_value():
    assert ErrorType.JOB_TIMED_OUT == WAIT_TIMED_OUT == "timeout"
    assert WaitTimedOut("late", job_id="j").to_dict()["error"]["type"] == "timeout"


def test_an_engine_failure_and_a_failed_wait_keep_their_wire_values():
    assert ErrorType.ENGINE_FAILED == "generation_error"
    assert ErrorType.WAITED_JOB_FAILED == "generation_failed" == GenerationFailed.error_type
    # A waited-for job that failed answers with the job's own error type.
    assert GenerationFailed("boom", job_id="j", error_type=ErrorType.ENGINE_FAILED).to_dict()["error"]["type"] == (
        "generation_error"
    )
