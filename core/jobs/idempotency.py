"""Idempotency-Key: a retried submission gets the job or batch the first request made, for 24 hours.

A claim names the id its request is about to store. If that request dies before storing anything, the claim
would block the key for a day; so a claim whose id is still not stored after IDEMPOTENCY_STALE_SECONDS is taken
over by the next request with the same key and body, which then makes the work itself.
"""

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
from core.redis.errors import redis_boundary
from core.redis.keys import IDEMPOTENCY_KEY

IDEMPOTENCY_TTL_S = 24 * 3600
MAX_KEY_CHARS = 255
# How long a repeat waits for an earlier request that is still storing its work, and how often it looks.
EARLIER_WAIT_S = 5.0
POLL_S = 0.05
_RELEASE_IF_OURS = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
# Replace the claim only if it is still the stale one we read: two takers can't both win.
_TAKE_OVER_IF_UNCHANGED = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) and 1 end return 0"
)

T = TypeVar("T")


class IdempotencyKeys:
    """Claims of Idempotency-Key headers, per owner, in Redis."""

    def __init__(self, client: redis.Redis, *, stale_after_s: float = 10.0) -> None:
        self.redis = client
        self.stale_after_s = stale_after_s

    @contextmanager
    def claim(
        self, key: str | None, body_hash: str, owner: str, new_id: str, load: Callable[[str], T | None]
    ) -> Iterator[T | None]:
        """Yield what an earlier request with this key stored (`load` of its id), or None once this one holds the key.

        If this request then fails (queue full, Redis away), the key is released so that a retry can succeed.
        """
        if key is None:
            yield None
            return
        if not 0 < len(key) <= MAX_KEY_CHARS:
            raise InvalidInput(f"Idempotency-Key must have 1 to {MAX_KEY_CHARS} characters", field="Idempotency-Key")
        redis_key = IDEMPOTENCY_KEY.format(owner=owner, key_hash=hashlib.sha256(key.encode()).hexdigest())
        claim = json.dumps({"id": new_id, "body_hash": body_hash, "at": time.time()})
        earlier = self._claim_or_find(redis_key, claim, body_hash, load)
        if earlier is not None:
            yield earlier
            return
        try:
            yield None
        except BaseException:
            with contextlib.suppress(redis.RedisError):
                self.redis.eval(_RELEASE_IF_OURS, 1, redis_key, claim)
            raise

    @redis_boundary()
    def _claim_or_find(self, redis_key: str, claim: str, body_hash: str, load: Callable[[str], T | None]) -> T | None:
        """None once `claim` holds the key (new, or taken over from a stale one); else what the earlier one stored."""
        deadline = time.monotonic() + EARLIER_WAIT_S
        while True:
            if self.redis.set(redis_key, claim, nx=True, ex=IDEMPOTENCY_TTL_S):
                return None
            raw = self.redis.get(redis_key)
            if raw is None:
                continue  # released or expired just now: claim it afresh
            earlier = json.loads(raw)
            if earlier["body_hash"] != body_hash:
                raise InvalidInput("this Idempotency-Key was used with a different body", field="Idempotency-Key")
            found = load(earlier["id"])
            if found is not None:
                return found
            # Claims written before claims carried a time count as old.
            if time.time() - earlier.get("at", 0) >= self.stale_after_s:
                if self.redis.eval(_TAKE_OVER_IF_UNCHANGED, 1, redis_key, raw, claim, IDEMPOTENCY_TTL_S):
                    return None
                continue  # someone else changed the claim first: look again
            if time.monotonic() >= deadline:
                raise StoreUnavailable("the work of this Idempotency-Key is not stored yet; retry", retry_after_s=1)
            time.sleep(POLL_S)
