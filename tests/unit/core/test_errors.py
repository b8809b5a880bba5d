"""Error types (core/errors.py): each Python name means one thing, and the wire strings stay as they were."""

from __future__ import annotations

from core.errors import WAIT_TIMED_OUT, ErrorType, GenerationFailed, WaitTimedOut

WIRE_VALUES = [
    "invalid_input", "out_of_memory", "device_error", "generation_error", "timeout", "max_attempts",
    "malformed_body", "unauthorized", "not_found", "model_not_found", "wrong_state", "body_too_large", "queue_full",
    "too_many_requests", "forbidden", "store_unavailable", "server_busy", "generation_failed", "method_not_allowed",
    "unsupported_media_type", "http_error", "internal_error",
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
