"""Helpers every route module uses: the services, the caller, the parsed body."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, jsonify, request

from api.auth import owner_of
from api.submission import Services
from core.callback_urls import check_callback_url
from core.errors import InvalidInput, MalformedBody
from core.jobs import GenerationInput, parse_generation_input

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
    return owner_of(request, services().settings.api_keys)


def json_body() -> Any:
    """The request's JSON body, whatever its Content-Type; a body that is not JSON is a 400."""
    try:
        body = request.get_json(force=True, silent=True)
    except RecursionError:  # nesting deeper than the parser goes is not JSON we take
        body = None
    if body is None:
        raise MalformedBody("the request body must be valid JSON")
    return body


def generation_input(body: Any) -> GenerationInput:
    """Validate a generation body against this deployment's limits."""
    settings = services().settings
    params = parse_generation_input(
        body, max_tokens_limit=settings.max_tokens_limit, max_prompt_chars=settings.max_prompt_chars
    )
    if params.webhook is not None:
        check_webhook_url(params.webhook)
    return params


def check_webhook_url(url: str) -> None:
    """Refuse (422) a callback this server can't sign or must not call."""
    settings = services().settings
    if settings.webhook_secret is None:
        raise InvalidInput("webhook: this server has no WEBHOOK_SECRET, so it can't send webhooks", field="webhook")
    check_callback_url(url, allow_private=settings.webhook_allow_private)


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
