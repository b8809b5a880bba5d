"""The one place where errors become HTTP responses, always as `{"error": {"type", "message", ...}}`."""

from __future__ import annotations

import logging

import redis
from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from core.errors import (
    BodyTooLarge,
    ErrorBody,
    ErrorDetail,
    ErrorType,
    Forbidden,
    GenerationFailed,
    InvalidInput,
    MalformedBody,
    NotFound,
    QueueFull,
    SchemaUnsupported,
    ServerBusy,
    ServiceError,
    StoreUnavailable,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
    WaitTimedOut,
    WrongState,
)
from core.openai.protocol import OpenAIErrorBody, error_body
from core.redis.errors import RETRY_AFTER_S, store_unavailable_from

log = logging.getLogger("llm.api")

# The HTTP status of each typed error (a subclass answers as its nearest listed ancestor).
HTTP_STATUS_OF: dict[type[ServiceError], int] = {
    MalformedBody: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    WrongState: 409,
    BodyTooLarge: 413,
    UnsupportedMediaType: 415,
    InvalidInput: 422,
    SchemaUnsupported: 422,
    TooManyRequests: 429,
    GenerationFailed: 500,
    QueueFull: 503,
    ServerBusy: 503,
    StoreUnavailable: 503,
    WaitTimedOut: 504,
}

_HTTP_ERROR_TYPES = {
    404: ErrorType.NOT_FOUND,
    405: ErrorType.METHOD_NOT_ALLOWED,
    400: ErrorType.MALFORMED_BODY,
    415: ErrorType.UNSUPPORTED_MEDIA_TYPE,
    429: ErrorType.TOO_MANY_REQUESTS,
}


# Routes whose errors take OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, so OpenAI clients
# read them; every other route keeps the service's own shape.
OPENAI_ERROR_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/models", "/v1/files", "/v1/batches")
# On those routes a field the request got wrong is a 400, as OpenAI answers it (its clients raise BadRequestError);
# a schema that can't be enforced stays a 422 (SchemaUnsupported, listed before InvalidInput in its ancestry).
OPENAI_HTTP_STATUS_OF: dict[type[ServiceError], int] = {**HTTP_STATUS_OF, InvalidInput: 400}


def http_status_of(error: ServiceError, statuses: dict[type[ServiceError], int] = HTTP_STATUS_OF) -> int:
    """The status a typed error answers with; an unlisted one is a 500."""
    for kind in type(error).__mro__:
        if kind in statuses:
            return statuses[kind]
    return 500


def speaks_openai(path: str) -> bool:
    """Whether errors on this path take OpenAI's shape."""
    return any(path == prefix or path.startswith(prefix + "/") for prefix in OPENAI_ERROR_PATHS)


def openai_error(status: int, message: str, *, param: str | None = None, code: str | None = None) -> OpenAIErrorBody:
    """An error in OpenAI's shape, typed as OpenAI types its own: by the status."""
    if status >= 500:
        error_type = "server_error"
    elif status == 429:
        error_type = "requests"
    else:
        error_type = "invalid_request_error"
    if status == 401:
        code = "invalid_api_key"
    return error_body(message, error_type, param=param, code=code)


# What a client hears when the store or queue failed under a lower-level error, whose text may name hosts and ports.
_STORE_UNAVAILABLE_MESSAGE = "the job store or queue is unavailable now; retry later"


def service_error_response(error: ServiceError):
    """Render a typed error with its status; a 503 always says when to try again (Retry-After)."""
    if isinstance(error, StoreUnavailable) and (error.detail or error.__cause__ is not None):
        # What Redis or the broker said goes to the log only: connection errors name their host and port.
        log.warning("store unavailable: %s (cause: %r)", error, error.__cause__)
        if error.detail is None:  # a message built from the cause elsewhere may hold the address itself
            error = StoreUnavailable(_STORE_UNAVAILABLE_MESSAGE, retry_after_s=error.retry_after_s, job_id=error.job_id)
    job_id = error.job_id
    if speaks_openai(request.path):
        status = http_status_of(error, OPENAI_HTTP_STATUS_OF)
        message = error.message
        if job_id is not None and job_id not in message:
            message = f"{message} (job {job_id})"
        code = str(error.error_type)
        response = jsonify(openai_error(status, message, param=error.field, code=code))
    else:
        status = http_status_of(error)
        response = jsonify(error.body().answer())
    response.status_code = status
    if job_id is not None:  # the request's job exists whatever went wrong: where to read it
        response.headers["Location"] = f"/jobs/{job_id}"
    retry_after_s = error.retry_after_s
    if retry_after_s is None and response.status_code == 503:
        retry_after_s = RETRY_AFTER_S
    if retry_after_s is not None:
        response.headers["Retry-After"] = str(retry_after_s)
    return response


def register_error_handlers(app: Flask) -> None:
    """Map typed errors, Werkzeug's HTTP errors and anything unexpected to JSON."""

    @app.errorhandler(ServiceError)
    def _service_error(error: ServiceError):
        return service_error_response(error)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(error: RequestEntityTooLarge):
        limit = request.max_content_length
        return service_error_response(BodyTooLarge(f"the request body is larger than {limit} bytes"))

    @app.errorhandler(redis.RedisError)
    def _redis_away(error: redis.RedisError):
        # Stores wrap their calls; this catches the rest, so Redis away or refusing writes (full, read-only,
        # loading) is never a 500.
        unavailable = store_unavailable_from(error)
        if unavailable is None:
            return _unexpected(error)
        return service_error_response(unavailable)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        status = error.code or 500
        error_type = _HTTP_ERROR_TYPES.get(status, ErrorType.HTTP_ERROR)
        if speaks_openai(request.path):
            return jsonify(openai_error(status, error.description or "", code=str(error_type))), status
        return jsonify(ErrorBody(error=ErrorDetail(type=error_type, message=error.description or "")).answer()), status

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unhandled error")
        if speaks_openai(request.path):
            return jsonify(openai_error(500, "internal error", code=str(ErrorType.INTERNAL_ERROR))), 500
        return jsonify(
            ErrorBody(error=ErrorDetail(type=ErrorType.INTERNAL_ERROR, message="internal error")).answer()
        ), 500
