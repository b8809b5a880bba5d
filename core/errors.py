"""Typed errors shared by the API and the worker; the API maps them to HTTP in one place."""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: every error knows its HTTP status and its stable `type` string."""

    http_status = 500
    error_type = "internal_error"

    def __init__(self, message: str, *, field: str | None = None, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.retry_after_s = retry_after_s

    def to_dict(self) -> dict:
        """The JSON error body of the contract."""
        body: dict = {"type": self.error_type, "message": self.message}
        if self.field:
            body["field"] = self.field
        return {"error": body}


class InvalidInput(ServiceError):
    http_status = 422
    error_type = "invalid_input"


class MalformedBody(ServiceError):
    http_status = 400
    error_type = "malformed_body"


class Unauthorized(ServiceError):
    http_status = 401
    error_type = "unauthorized"


class JobNotFound(ServiceError):
    http_status = 404
    error_type = "not_found"


class WrongState(ServiceError):
    http_status = 409
    error_type = "wrong_state"


class BodyTooLarge(ServiceError):
    http_status = 413
    error_type = "body_too_large"


class QueueFull(ServiceError):
    http_status = 503
    error_type = "queue_full"


class StoreUnavailable(ServiceError):
    http_status = 503
    error_type = "store_unavailable"


class WaitTimedOut(ServiceError):
    """A synchronous call outlived its wait; the job itself goes on and stays pollable."""

    http_status = 504
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

    http_status = 500
    error_type = "generation_failed"

    def __init__(self, message: str, *, job_id: str, error_type: str) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.error_type = error_type

    def to_dict(self) -> dict:
        body = super().to_dict()
        body["error"]["job_id"] = self.job_id
        return body
