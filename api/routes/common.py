"""Helpers every route module uses: the services, the caller, the parsed body, paging, the 202 response."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, jsonify, request

from api.auth import owner_of
from api.services import Services
from core.errors import InvalidInput, MalformedBody

MAX_PAGE_SIZE = 100


def accepted(body: dict, location: str) -> Response:
    """202 Accepted with the stored object and where to poll it."""
    response = jsonify(body)
    response.status_code = 202
    response.headers["Location"] = location
    return response


def services() -> Services:
    """The process's Services, set up by create_app."""
    return current_app.extensions["llm"]


def caller() -> str:
    """The owner id of the current request (raises Unauthorized)."""
    return owner_of(request, services().settings.api_key_values)


def json_body() -> Any:
    """The request's JSON body, whatever its Content-Type; a body that is not JSON is a 400."""
    try:
        body = request.get_json(force=True, silent=True)
    except RecursionError:  # nesting deeper than the parser goes is not JSON we take
        body = None
    if body is None:
        raise MalformedBody("the request body must be valid JSON")
    return body


def page_args() -> tuple[int, int | None]:
    """`limit` (1-100, default 20) and `cursor` from the query string."""
    try:
        limit = int(request.args.get("limit", "20"))
        cursor = int(request.args["cursor"]) if request.args.get("cursor") else None
    except ValueError:
        raise InvalidInput("limit and cursor must be whole numbers", field="limit") from None
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(f"limit: must be between 1 and {MAX_PAGE_SIZE}", field="limit")
    return limit, cursor
