"""The one place where errors become HTTP responses, always as `{"error": {"type", "message", ...}}`."""

from __future__ import annotations

import logging

import redis
from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from core.errors import (
    BodyTooLarge,
    GenerationFailed,
    InvalidInput,
    JobNotFound,
    MalformedBody,
    QueueFull,
    ServiceError,
    StoreUnavailable,
    Unauthorized,
    WaitTimedOut,
    WrongState,
)

log = logging.getLogger("llm.api")

# The HTTP status of each typed error (a subclass answers as its nearest listed ancestor).
HTTP_STATUS_OF: dict[type[ServiceError], int] = {
    MalformedBody: 400,
    Unauthorized: 401,
    JobNotFound: 404,
    WrongState: 409,
    BodyTooLarge: 413,
    InvalidInput: 422,
    GenerationFailed: 500,
    QueueFull: 503,
    StoreUnavailable: 503,
    WaitTimedOut: 504,
}

_HTTP_ERROR_TYPES = {
    404: "not_found",
    405: "method_not_allowed",
    400: "malformed_body",
    415: "unsupported_media_type",
}


def http_status_of(error: ServiceError) -> int:
    """The status a typed error answers with; an unlisted one is a 500."""
    for kind in type(error).__mro__:
        if kind in HTTP_STATUS_OF:
            return HTTP_STATUS_OF[kind]
    return 500


def service_error_response(error: ServiceError):
    """Render a typed error with its status (and Retry-After where it has one)."""
    response = jsonify(error.to_dict())
    response.status_code = http_status_of(error)
    if error.retry_after_s is not None:
        response.headers["Retry-After"] = str(error.retry_after_s)
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

    @app.errorhandler(redis.ConnectionError)
    @app.errorhandler(redis.TimeoutError)
    def _redis_away(error: redis.RedisError):
        # Stores wrap what they expect; this catches the rest, so Redis being away is never a 500.
        return service_error_response(StoreUnavailable(f"the job store is unreachable: {error}", retry_after_s=5))

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        status = error.code or 500
        body = {"error": {"type": _HTTP_ERROR_TYPES.get(status, "http_error"), "message": error.description}}
        return jsonify(body), status

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unhandled error")
        return jsonify({"error": {"type": "internal_error", "message": "internal error"}}), 500
