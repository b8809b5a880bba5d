"""Per-owner slots that lapse on their own, counted in Redis so every API process shares the bound."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import redis

from core.errors import StoreUnavailable, TooManyRequests
from core.limits.long_requests import LongRequests
from core.redis.errors import redis_boundary

log = logging.getLogger("llm.api")

# Atomically: drop lapsed slots, then take one if fewer than the limit are held. Each slot carries its own
# lapse time (Redis's clock), so a process killed mid-request leaves slots that free themselves, one by one, when
# their request could have lasted no longer; a counter with one TTL would keep them while traffic refreshes it.
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
# Slots free themselves this long after their request's own limit: time to set it up and write the answer.
SLOT_MARGIN_S = 60
SLOTS_RETRY_AFTER_S = 5


class OwnerSlots:
    """At most `limit` requests of one kind per owner at once, each also holding one of the process's places
    for long-lived requests when `process` is given; a slot lapses `hold_s` after it was taken."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        key: str,
        limit: int,
        hold_s: float,
        refusal: str,
        process: LongRequests | None = None,
    ) -> None:
        self.client = client
        self.key = key  # a template with {owner}
        self.limit = limit
        self.hold_s = hold_s
        self.refusal = refusal  # the 429's message, naming the limit
        self.process = process
        self._take = client.register_script(_TAKE_SLOT)

    @contextmanager
    def held(self, owner: str) -> Iterator[None]:
        """Hold one of the owner's slots for the block: ServerBusy when the process has no place left (checked
        first, without a Redis call), TooManyRequests when the owner's slots are all taken."""
        with ExitStack() as stack:
            if self.process is not None:
                stack.enter_context(self.process.held())
            key = self.key.format(owner=owner)
            slot = uuid.uuid4().hex
            with redis_boundary():
                taken = self._take(keys=[key], args=[self.limit, self.hold_s, slot])
            if not taken:
                raise TooManyRequests(self.refusal, retry_after_s=SLOTS_RETRY_AFTER_S)
            try:
                yield
            finally:
                try:
                    with redis_boundary():
                        self.client.zrem(key, slot)
                except StoreUnavailable as error:
                    log.warning("slot of %s (%s) left to lapse on its own: %s", owner, self.key, error)

    @redis_boundary()
    def in_flight(self, owner: str) -> int:
        """Slots the owner holds now (lapsed ones included until the next take drops them)."""
        return int(self.client.zcard(self.key.format(owner=owner)))
