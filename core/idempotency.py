"""Idempotency-Key: a retried submission gets the job or batch the first request made, for 24 hours."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import redis

from core.errors import InvalidInput, StoreUnavailable
from core.keys import IDEMPOTENCY_KEY

IDEMPOTENCY_TTL_S = 24 * 3600
MAX_KEY_CHARS = 255
_RELEASE_IF_OURS = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"

T = TypeVar("T")


class IdempotencyKeys:
    """Claims of Idempotency-Key headers, per owner, in Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    @contextmanager
    def claim(self, key: str | None, body_hash: str, owner: str, new_id: str) -> Iterator[str | None]:
        """Yield the id an earlier request with this key made, or None after claiming the key for `new_id`.

        If this request then fails (queue full, Redis away), the key is released so that a retry can succeed.
        """
        if key is None:
            yield None
            return
        if not 0 < len(key) <= MAX_KEY_CHARS:
            raise InvalidInput(f"Idempotency-Key must have 1 to {MAX_KEY_CHARS} characters", field="Idempotency-Key")
        redis_key = IDEMPOTENCY_KEY.format(owner=owner, key_hash=hashlib.sha256(key.encode()).hexdigest())
        claim = json.dumps({"id": new_id, "body_hash": body_hash})
        try:
            claimed = self.redis.set(redis_key, claim, nx=True, ex=IDEMPOTENCY_TTL_S)
            earlier = None if claimed else json.loads(self.redis.get(redis_key) or claim)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            raise StoreUnavailable(f"the job store is unreachable: {error}", retry_after_s=5) from error
        if earlier is not None:
            if earlier["body_hash"] != body_hash:
                raise InvalidInput("this Idempotency-Key was used with a different body", field="Idempotency-Key")
            yield earlier["id"]
            return
        try:
            yield None
        except BaseException:
            with contextlib.suppress(redis.RedisError):
                self.redis.eval(_RELEASE_IF_OURS, 1, redis_key, claim)
            raise


def wait_until_stored(load: Callable[[], T | None]) -> T:
    """What an earlier request with the same key made; it may still be storing it, so wait a moment."""
    for _ in range(100):
        found = load()
        if found is not None:
            return found
        time.sleep(0.05)
    raise StoreUnavailable("the work of this Idempotency-Key is not stored yet; retry", retry_after_s=1)
