"""Every Redis connection of the service is built here: to one URL, or to the master a Sentinel set names.

A Sentinel-backed pool asks the sentinels for the master's address whenever it opens a connection; a connection
that fails (the old master died) or is refused as read-only (the old master came back as a replica) is dropped, so
the next command reaches the new master without anything else in the process knowing there was a failover.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.connection import SSLConnection, parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from core.settings import Settings

# A sentinel that doesn't answer within this long is skipped for the next one: asking three must stay well inside
# a caller's 2 s answer even when one sentinel's host is cut off.
SENTINEL_SOCKET_TIMEOUT_S = 0.5
# One client's connection options beside the address: what `redis.connection.parse_url` reads from a URL.
_ADDRESS_FIELDS = ("host", "port", "path", "unix_socket_path")


def _client_options(socket_timeout_s: float) -> dict[str, Any]:
    """Options every client of the service uses: fail fast instead of hanging when Redis is away."""
    return dict(
        decode_responses=True,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=socket_timeout_s,
        health_check_interval=30,
        # One quick retry rides over a dropped connection; more would hold callers past their 2 s answer.
        retry=Retry(NoBackoff(), 1),
    )


def connect(
    url: str,
    *,
    socket_timeout_s: float = 2.0,
    max_connections: int | None = None,
    pool_timeout_s: float | None = None,
) -> redis.Redis:
    """A client of the Redis at `url` whose calls fail fast instead of hanging when Redis is away.

    With `max_connections`, it never opens more: a caller beyond them waits for one, up to `pool_timeout_s`
    (the socket timeout when not given).
    """
    options = _client_options(socket_timeout_s)
    if max_connections is None:
        return redis.Redis.from_url(url, **options)
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=socket_timeout_s if pool_timeout_s is None else pool_timeout_s,
        **options,
    )
    return redis.Redis(connection_pool=pool)


class BlockingSentinelConnectionPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """The master's pool through the sentinels that, like BlockingConnectionPool, makes a caller beyond its
    connections wait for one rather than fail."""


def redis_client(
    settings: Settings, *, max_connections: int | None = None, pool_timeout_s: float | None = None
) -> redis.Redis:
    """A client of the service's Redis master: REDIS_URL's, or the one REDIS_SENTINELS name now."""
    socket_timeout_s = settings.redis_socket_timeout_seconds
    if not settings.uses_sentinel:
        return connect(
            settings.effective_redis_url,
            socket_timeout_s=socket_timeout_s,
            max_connections=max_connections,
            pool_timeout_s=pool_timeout_s,
        )
    pool = redis_pool(
        settings,
        max_connections=max_connections,
        pool_timeout_s=pool_timeout_s,
        **_client_options(socket_timeout_s),
    )
    return redis.Redis(connection_pool=pool)


def redis_pool(
    settings: Settings, *, max_connections: int | None, pool_timeout_s: float | None, **options: Any
) -> redis.ConnectionPool:
    """A connection pool to the master (for libraries that take a pool); callers past `max_connections` wait."""
    timeout_s = settings.redis_socket_timeout_seconds if pool_timeout_s is None else pool_timeout_s
    options.setdefault("socket_timeout", settings.redis_socket_timeout_seconds)
    options.setdefault("socket_connect_timeout", settings.redis_socket_timeout_seconds)
    limits = {} if max_connections is None else {"max_connections": max_connections}
    if not settings.uses_sentinel:
        url = settings.effective_redis_url
        return redis.BlockingConnectionPool.from_url(url, timeout=timeout_s, **limits, **options)
    sentinel = sentinel_manager(settings)
    master_options = {**sentinel.connection_kwargs, **options, "is_master": True}
    pool_class = BlockingSentinelConnectionPool if max_connections is not None else SentinelConnectionPool
    if pool_class is BlockingSentinelConnectionPool:
        master_options["timeout"] = timeout_s
    return pool_class(settings.redis_sentinel_master, sentinel, **limits, **master_options)


def master_connection_options(settings: Settings) -> dict[str, Any]:
    """What a connection to the master needs beside its address: REDIS_URL's user, password, database and TLS."""
    parsed = parse_url(settings.effective_redis_url)
    options = {key: value for key, value in parsed.items() if key not in _ADDRESS_FIELDS}
    if options.pop("connection_class", None) is SSLConnection:
        options["ssl"] = True
    return options


def sentinel_options(settings: Settings) -> dict[str, Any]:
    """How to talk to the sentinels themselves: their password, TLS as for the master, short timeouts."""
    options: dict[str, Any] = {
        "socket_timeout": SENTINEL_SOCKET_TIMEOUT_S,
        "socket_connect_timeout": SENTINEL_SOCKET_TIMEOUT_S,
    }
    if settings.redis_sentinel_password is not None:
        options["password"] = settings.redis_sentinel_password.get_secret_value()
    if settings.effective_redis_url.startswith("rediss://"):
        # The same TLS as the master's: REDIS_URL's query (ssl_ca_certs=..., ssl_cert_reqs=...) applies to both.
        master = master_connection_options(settings)
        options.update({key: value for key, value in master.items() if key.startswith("ssl")})
    return options


def sentinel_manager(settings: Settings) -> Sentinel:
    """The Sentinel set of REDIS_SENTINELS, whose pools connect to the master with REDIS_URL's credentials."""
    return Sentinel(
        settings.redis_sentinels,
        sentinel_kwargs=sentinel_options(settings),
        **master_connection_options(settings),
    )
