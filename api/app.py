"""The Flask app factory."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider
from pydantic import BaseModel

from api.edge_guard import install_edge_guard
from api.errors import register_error_handlers
from api.openapi import register_docs
from api.rate_limits import install_rate_limit
from api.routes import batches, console, events, generate, health, jobs, metrics, openai, openai_batches
from api.services import Services, api_redis_client
from core.jobs.store import JobStore
from core.jobs.submission import JobQueue
from core.settings import Settings, get_settings, open_api_warning

log = logging.getLogger("llm.api")


class JsonProvider(DefaultJSONProvider):
    """Flask's JSON, which also writes the job's typed records (pydantic models) as the JSON they dump to."""

    sort_keys = False
    ensure_ascii = False

    @staticmethod
    def default(value: Any) -> Any:
        if isinstance(value, BaseModel):
            return value.model_dump(mode="json")
        return DefaultJSONProvider.default(value)


def create_app(settings: Settings | None = None, *, queue: JobQueue | None = None) -> Flask:
    """Build the API for these settings (the environment's when none are given) and queue (the broker's)."""
    settings = settings or get_settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json = JsonProvider(app)
    client = api_redis_client(settings)
    store = JobStore(client, job_ttl_s=settings.job_ttl_seconds, queue=settings.gpu_queue)
    app.extensions["llm"] = Services.build(settings, store, queue)
    register_error_handlers(app)
    # Before the rate limit: a request from a Host or origin the API does not serve spends no key's budget.
    install_edge_guard(app, settings)
    for module in (jobs, events, batches, generate, health, metrics, openai, openai_batches, console):
        app.register_blueprint(module.bp)
    install_rate_limit(app, settings)
    register_docs(app)
    if not settings.api_keys:
        log.warning(open_api_warning(settings))
    return app
