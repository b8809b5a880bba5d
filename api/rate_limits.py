"""The per-key request rate (RATE_LIMIT), counted in the service's Redis so every API process shares it."""

from __future__ import annotations

import math
import time

from flask import Flask, request
from flask_limiter import Limiter, RequestLimit

from api.routes import console, health
from api.routes.common import caller
from api.services import POOL_WAIT_S
from core.errors import TooManyRequests, Unauthorized
from core.redis.clients import redis_pool
from core.redis.keys import RATE_LIMIT_KEY_PREFIX
from core.settings import Settings


def _rate_key() -> str:
    """The caller's owner id; a caller with no valid key is counted by address (its request then gets 401)."""
    try:
        return caller()
    except Unauthorized:
        return f"unauthenticated:{request.remote_addr}"


def _refuse(breached: RequestLimit) -> None:
    """Answer a breach as the API's own 429 (JSON error body, Retry-After until the window lets one through)."""
    retry_after_s = max(1, math.ceil(breached.reset_at - time.time()))
    raise TooManyRequests(
        f"this API key is over its request rate (RATE_LIMIT: {breached.limit}); try again in {retry_after_s} s",
        retry_after_s=retry_after_s,
    )


def install_rate_limit(app: Flask, settings: Settings) -> Limiter | None:
    """Count every request but the probes and the console's files against the caller's rate; None when off."""
    if not settings.rate_limit:
        return None
    # Its own pool, as large as the main client's: at redis-py's default cap (100) a burst of requests was
    # answered 503 while Redis was fine; past the cap a request waits for a connection instead.
    # It fails as fast as the job store does when Redis is away (a 503, like every other Redis error); through the
    # sentinels when REDIS_SENTINELS are set.
    pool = redis_pool(settings, max_connections=settings.api_worker_connections, pool_timeout_s=POOL_WAIT_S)
    limiter = Limiter(
        _rate_key,
        app=app,
        # One budget per key across every route, rather than one per route.
        application_limits=[settings.rate_limit],
        storage_uri=settings.effective_redis_url,
        storage_options={"connection_pool": pool},
        strategy="sliding-window-counter",
        key_prefix=RATE_LIMIT_KEY_PREFIX,
        on_breach=_refuse,
    )
    limiter.exempt(health.bp)
    # The console's page and scripts are files, not work: loading them spends none of the key's budget.
    limiter.exempt(console.bp)
    return limiter
