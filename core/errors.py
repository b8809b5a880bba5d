"""Typed errors shared by the API and the worker; the API maps them to HTTP statuses in api/errors.py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum

from pydantic import BaseModel, Field, ValidationError


class ErrorType(StrEnum):
    """Every `error.type` this service reports: a failed job's reason, or an API error's kind."""

    # The names say what happened; the values are the strings clients match on, so they never change.

    # Why a job failed (the job object's `error.type`).
    INVALID_INPUT = "invalid_input"
    OUT_OF_MEMORY = "out_of_memory"
    DEVICE_ERROR = "device_error"
    ENGINE_FAILED = "generation_error"  # the engine raised while generating
    JOB_TIMED_OUT = "timeout"  # the job ran past JOB_TIMEOUT_SECONDS
    MAX_ATTEMPTS = "max_attempts"
    # What went wrong with a request.
    MALFORMED_BODY = "malformed_body"
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not_found"
    MODEL_NOT_FOUND = "model_not_found"
    WRONG_STATE = "wrong_state"
    BODY_TOO_LARGE = "body_too_large"
    QUEUE_FULL = "queue_full"
    TOO_MANY_REQUESTS = "too_many_requests"
    FORBIDDEN = "forbidden"
    STORE_UNAVAILABLE = "store_unavailable"
    SERVER_BUSY = "server_busy"
    # A waited-for job failed: the default of GenerationFailed, which reports the job's own `error.type` instead.
    WAITED_JOB_FAILED = "generation_failed"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    # A response_format schema the service can't enforce (it would not compile into a grammar).
    UNSUPPORTED_SCHEMA = "unsupported_schema"
    HTTP_ERROR = "http_error"
    INTERNAL_ERROR = "internal_error"


# A synchronous call (or a stream) outlived its wait while its job goes on. Clients have always read it as "timeout",
# the string of a job past its deadline; it is a name of its own here, not a member (the enum lists each string once).
WAIT_TIMED_OUT = ErrorType.JOB_TIMED_OUT


# The error answer's shape: ServiceError.body() builds it and the OpenAPI document shows it.
class BatchLineError(BaseModel):
    line: int = Field(description="The 1-based number of the bad line.")
    message: str = Field(description="What is wrong with it.")


class ErrorDetail(BaseModel):
    type: str = Field(
        description="Stable kind of error: malformed_body (400), unauthorized (401), not_found (404), "
        "method_not_allowed (405), wrong_state (409), body_too_large (413), unsupported_media_type (415), "
        "invalid_input (422), unsupported_schema (422), queue_full and store_unavailable (503), timeout (504); a "
        "failed generation answers 500 with the job's own error type.",
        examples=["invalid_input"],
    )
    message: str = Field(description="What went wrong, for people.", examples=["max_tokens: must be at most 4096"])
    field: str | None = Field(
        None,
        description="The request field at fault, dotted as in `messages.0.content`; absent when no one field is.",
        examples=["max_tokens"],
    )
    job_id: str | None = Field(
        None, description="Whenever the request's job was stored (504, 503, a failed generation): the job to poll."
    )
    lines: list[BatchLineError] | None = Field(None, description="On a refused batch: each bad line and why.")


class ErrorBody(BaseModel):
    """Every error answer."""

    error: ErrorDetail

    def answer(self) -> dict:
        """The JSON sent: a field that does not apply is absent, never null."""
        return self.model_dump(mode="json", exclude_none=True)


class ServiceError(Exception):
    """Base class: every error knows its stable `type` string and renders the API's JSON error body."""

    error_type: str = ErrorType.INTERNAL_ERROR
    default_retry_after_s: int | None = None

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        retry_after_s: int | None = None,
        job_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.retry_after_s = retry_after_s if retry_after_s is not None else self.default_retry_after_s
        # Set once a job was stored for the request: a caller told to retry must be able to find it.
        self.job_id = job_id

    def body(self) -> ErrorBody:
        """The error answer: `{"error": {"type", "message", "field"?, "job_id"?}}`."""
        detail = ErrorDetail(
            type=str(self.error_type), message=self.message, field=self.field or None, job_id=self.job_id or None
        )
        return ErrorBody(error=detail)

    def to_dict(self) -> dict:
        """The error answer as JSON data: what is not set is absent, never null."""
        return self.body().answer()


class InvalidInput(ServiceError):
    error_type = ErrorType.INVALID_INPUT


class SchemaUnsupported(InvalidInput):
    """A `response_format` schema that can't be compiled into a grammar, so its output could not be guaranteed."""

    error_type = ErrorType.UNSUPPORTED_SCHEMA


# A field the request model does not have, in this server's words rather than pydantic's.
UNSUPPORTED_FIELD = {"extra_forbidden": "this field is not supported by this server"}


def invalid_input_from(
    error: ValidationError,
    *,
    renamed: Mapping[str, str] | None = None,
    type_messages: Mapping[str, str] | None = None,
    field_messages: Mapping[str, str] | None = None,
    told_first: Sequence[str] = (),
) -> InvalidInput:
    """The problem pydantic found (the first one) as InvalidInput, naming the field as the request named it.

    `renamed`: fields the request calls otherwise; `type_messages` and `field_messages`: this service's words in
    place of pydantic's, by error type (`extra_forbidden`) or by field; `told_first`: when several fields are wrong,
    which problem is told, by field or `field/error type` (the others keep pydantic's order after them).
    """
    problems = error.errors()

    def rank(problem: Mapping) -> int:
        field = ".".join(str(part) for part in problem["loc"])
        keys = (field, f"{field}/{problem['type']}")
        return next((at for at, key in enumerate(told_first) if key in keys), len(told_first))

    first = min(problems, key=rank) if told_first else problems[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    if field is not None and renamed:
        field = renamed.get(field, field)
    message = first["msg"].removeprefix("Value error, ")
    if type_messages and first["type"] in type_messages:
        message = type_messages[first["type"]]
    elif field_messages and field in field_messages:
        message = field_messages[field]
    return InvalidInput(f"{field}: {message}" if field else message, field=field)


class MalformedBody(ServiceError):
    error_type = ErrorType.MALFORMED_BODY


class Unauthorized(ServiceError):
    error_type = ErrorType.UNAUTHORIZED


class NotFound(ServiceError):
    """Something the caller named does not exist (or is another owner's, which reads the same)."""

    error_type = ErrorType.NOT_FOUND


class JobNotFound(NotFound):
    pass


class BatchNotFound(NotFound):
    pass


class FileNotFound(NotFound):
    pass


class ModelNotFound(NotFound):
    """A model other than the served one was asked for by name (OpenAI's `GET /v1/models/<id>`)."""

    error_type = ErrorType.MODEL_NOT_FOUND


class WrongState(ServiceError):
    error_type = ErrorType.WRONG_STATE


class BodyTooLarge(ServiceError):
    error_type = ErrorType.BODY_TOO_LARGE


class Forbidden(ServiceError):
    """The caller is known but may not ask for this (e.g. `priority: high` without being allowed it)."""

    error_type = ErrorType.FORBIDDEN


class TooManyRequests(ServiceError):
    """This caller is over one of its own limits (rate, waits in flight, queued jobs); others are unaffected."""

    error_type = ErrorType.TOO_MANY_REQUESTS
    default_retry_after_s = 1


class UnsupportedMediaType(ServiceError):
    """The body's Content-Type is not one the endpoint reads (a form or text/plain is never taken as JSON)."""

    error_type = ErrorType.UNSUPPORTED_MEDIA_TYPE


class QueueFull(ServiceError):
    error_type = ErrorType.QUEUE_FULL
    default_retry_after_s = 10


class ServerBusy(ServiceError):
    """This API process serves all the long-lived requests it may; its other connections stay for short calls."""

    error_type = ErrorType.SERVER_BUSY
    default_retry_after_s = 5


class StoreUnavailable(ServiceError):
    """Redis can't be reached or can't take a write now; the same call may succeed a few seconds later."""

    error_type = ErrorType.STORE_UNAVAILABLE
    default_retry_after_s = 5

    def __init__(
        self, message: str, *, detail: str | None = None, retry_after_s: int | None = None, job_id: str | None = None
    ) -> None:
        super().__init__(message, retry_after_s=retry_after_s, job_id=job_id)
        # What Redis said (it may name hosts and ports): in logs and str(), never in the client's error body.
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.message}: {self.detail}" if self.detail else self.message


class WaitTimedOut(ServiceError):
    """A synchronous call outlived its wait; the job itself goes on and stays pollable."""

    error_type = WAIT_TIMED_OUT

    def __init__(self, message: str, *, job_id: str) -> None:
        super().__init__(message, job_id=job_id)


class GenerationFailed(ServiceError):
    """The job ran and failed (engine error, out of memory): the server's fault, not the input's."""

    error_type = ErrorType.WAITED_JOB_FAILED

    def __init__(self, message: str, *, job_id: str, error_type: str) -> None:
        super().__init__(message, job_id=job_id)
        self.error_type = error_type
