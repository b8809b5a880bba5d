"""A bound on the synchronous waits one owner has in flight, shared by every API process through Redis."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from core.errors import StoreUnavailable, TooManyRequests
from core.keys import WAIT_SLOTS_KEY
from core.redis_errors import redis_boundary

log = logging.getLogger("llm.api")

# Atomically: drop lapsed slots, then take one if fewer than the limit are held. Each slot carries its own
# lapse time (Redis's clock), so a process killed mid-wait leaves slots that free themselves, one by one, when
# their wait could have lasted no longer; a counter with one TTL would keep them while traffic refreshes it.
_TAKE_SLOT = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])))
return 1
"""
# Slots free themselves this long after the wait's own limit: time to submit the job and write the answer.
SLOT_MARGIN_S = 60
WAIT_RETRY_AFTER_S = 5


class WaitSlots:
    """At most `limit` waits per owner at once; a slot is taken before the job is created, so a refusal
    creates nothing."""

    def __init__(self, client: redis.Redis, *, limit: int, wait_s: float) -> None:
        self.client = client
        self.limit = limit
        self.hold_s = wait_s + SLOT_MARGIN_S
        self._take = client.register_script(_TAKE_SLOT)

    @contextmanager
    def held(self, owner: str) -> Iterator[None]:
        """Hold one of the owner's wait slots for the block; TooManyRequests when all are taken."""
        key = WAIT_SLOTS_KEY.format(owner=owner)
        slot = uuid.uuid4().hex
        with redis_boundary():
            taken = self._take(keys=[key], args=[self.limit, self.hold_s, slot])
        if not taken:
            raise TooManyRequests(
                f"this API key already has {self.limit} synchronous calls waiting; wait for one to finish, or "
                "submit with POST /jobs and poll",
                retry_after_s=WAIT_RETRY_AFTER_S,
            )
        try:
            yield
        finally:
            try:
                with redis_boundary():
                    self.client.zrem(key, slot)
            except StoreUnavailable as error:
                log.warning("wait slot of %s left to lapse on its own: %s", owner, error)

    @redis_boundary()
    def in_flight(self, owner: str) -> int:
        """Slots the owner holds now (lapsed ones included until the next take drops them)."""
        return int(self.client.zcard(WAIT_SLOTS_KEY.format(owner=owner)))
