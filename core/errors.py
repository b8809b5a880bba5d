"""Typed errors shared by the API and the worker; the API maps them to HTTP statuses in api/errors.py."""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: every error knows its stable `type` string and renders the API's JSON error body."""

    error_type = "internal_error"

    def __init__(self, message: str, *, field: str | None = None, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.retry_after_s = retry_after_s

    def to_dict(self) -> dict:
        """The JSON error body: `{"error": {"type", "message", "field"?}}`."""
        body: dict = {"type": self.error_type, "message": self.message}
        if self.field:
            body["field"] = self.field
        return {"error": body}


class InvalidInput(ServiceError):
    error_type = "invalid_input"


class MalformedBody(ServiceError):
    error_type = "malformed_body"


class Unauthorized(ServiceError):
    error_type = "unauthorized"


class JobNotFound(ServiceError):
    error_type = "not_found"


class WrongState(ServiceError):
    error_type = "wrong_state"


class BodyTooLarge(ServiceError):
    error_type = "body_too_large"


class QueueFull(ServiceError):
    error_type = "queue_full"


class StoreUnavailable(ServiceError):
    error_type = "store_unavailable"


class WaitTimedOut(ServiceError):
    """A synchronous call outlived its wait; the job itself goes on and stays pollable."""

    error_type = "timeout"

    def __init__(self, message: str, *, job_id: str) -> None:
        super().__init__(message)
        self.job_id = job_id

    def to_dict(self) -> dict:
        body = super().to_dict()
        body["error"]["job_id"] = self.job_id
        return body


class GenerationFailed(ServiceError):
    """The job ran and failed (engine error, out of memory): the server's fault, not the input's."""

    error_type = "generation_failed"

    def __init__(self, message: str, *, job_id: str, error_type: str) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.error_type = error_type

    def to_dict(self) -> dict:
        body = super().to_dict()
        body["error"]["job_id"] = self.job_id
        return body
