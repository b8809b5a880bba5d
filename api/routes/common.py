"""Helpers every route module uses: the services, the caller, the parsed body."""

from __future__ import annotations

from typing import Any

from flask import current_app, request

from api.auth import owner_of
from api.submission import Services
from core.callback_urls import check_callback_url
from core.errors import InvalidInput, MalformedBody
from core.jobs import GenerationInput, parse_generation_input


def services() -> Services:
    """The process's Services, set up by create_app."""
    return current_app.extensions["llm"]


def caller() -> str:
    """The owner id of the current request (raises Unauthorized)."""
    return owner_of(request, services().settings.api_keys)


def json_body() -> Any:
    """The request's JSON body, whatever its Content-Type; a body that is not JSON is a 400."""
    body = request.get_json(force=True, silent=True)
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
        if settings.webhook_secret is None:
            raise InvalidInput("webhook: this server has no WEBHOOK_SECRET, so it can't send webhooks", field="webhook")
        check_callback_url(params.webhook, allow_private=settings.webhook_allow_private)
    return params
