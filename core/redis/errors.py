"""The one Redis error boundary: whatever says "Redis can't serve this now" becomes StoreUnavailable."""

from __future__ import annotations

from contextlib import ContextDecorator

import redis

from core.errors import StoreUnavailable

RETRY_AFTER_S = 5
# Redis is away, or slow past the client's timeout (a loading Redis, BusyLoadingError, is a ConnectionError).
_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError)
# Redis answered but refuses writes for now: full under `noeviction`, a read-only replica, still loading, a
# transaction discarded because one of its commands was refused, a failed snapshot that stops writes, or a master
# short of the replicas its `min-replicas-to-write` asks for (cut off from them, or in a failover).
_CANT_WRITE_NOW = (redis.exceptions.OutOfMemoryError, redis.exceptions.ReadOnlyError, redis.exceptions.ExecAbortError)
_CANT_WRITE_NOW_PREFIXES = ("OOM", "READONLY", "LOADING", "EXECABORT", "MISCONF", "NOREPLICAS")


def store_unavailable_from(error: BaseException) -> StoreUnavailable | None:
    """The StoreUnavailable a Redis error means, or None when it is a real fault (a bug, a wrong type)."""
    if isinstance(error, _UNREACHABLE):
        return StoreUnavailable("the job store is unreachable", detail=str(error), retry_after_s=RETRY_AFTER_S)
    if isinstance(error, _CANT_WRITE_NOW) or (
        isinstance(error, redis.ResponseError) and str(error).startswith(_CANT_WRITE_NOW_PREFIXES)
    ):
        return StoreUnavailable("the job store can't take writes now", detail=str(error), retry_after_s=RETRY_AFTER_S)
    return None


class redis_boundary(ContextDecorator):  # lower case: used like a function, `with redis_boundary():`
    """Raise StoreUnavailable in place of any Redis error that a later retry may get past."""

    def __enter__(self) -> redis_boundary:
        return self

    def __exit__(self, exc_type, error, traceback) -> bool:
        if error is None or isinstance(error, StoreUnavailable):
            return False
        unavailable = store_unavailable_from(error)
        if unavailable is not None:
            raise unavailable from error
        return False
