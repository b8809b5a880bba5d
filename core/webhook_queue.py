"""Due webhook deliveries, kept in Redis by due time (never as long Celery countdowns, which get redelivered)."""

from __future__ import annotations

import time

import redis

from core.keys import WEBHOOK_DELIVERY_KEY, WEBHOOK_DUE_KEY
from core.redis_errors import redis_boundary
from core.webhooks import Delivery

# Take the due deliveries and push their due time past a lease in one step: two senders never take the same
# one, and a sender that dies mid-attempt leaves it due again once the lease runs out.
_CLAIM_DUE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[3], id) end
return ids
"""


def stage_delivery(pipe: redis.client.Pipeline, delivery: Delivery, ttl_s: int) -> None:
    """Add a new delivery, due now, to a transaction: the event exists exactly when the change that raised it does."""
    key = WEBHOOK_DELIVERY_KEY.format(delivery_id=delivery.id)
    pipe.set(key, delivery.model_dump_json(), ex=ttl_s)
    pipe.zadd(WEBHOOK_DUE_KEY, {delivery.id: time.time()})


class WebhookQueue:
    """The deliveries waiting for their next attempt."""

    def __init__(self, client: redis.Redis, *, ttl_s: int) -> None:
        self.redis = client
        self.ttl_s = ttl_s
        self._claim = client.register_script(_CLAIM_DUE)

    @redis_boundary()
    def claim_due(self, limit: int, lease_s: float) -> list[str]:
        """Up to `limit` delivery ids whose attempt is due now, leased to the caller for `lease_s`."""
        now = time.time()
        return list(self._claim(keys=[WEBHOOK_DUE_KEY], args=[now, limit, now + lease_s]))

    @redis_boundary()
    def get(self, delivery_id: str) -> Delivery | None:
        raw = self.redis.get(WEBHOOK_DELIVERY_KEY.format(delivery_id=delivery_id))
        return Delivery.model_validate_json(raw) if raw else None

    @redis_boundary()
    def retry_later(self, delivery: Delivery, delay_s: float) -> None:
        """Store the attempt count and make the delivery due again after `delay_s`."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(WEBHOOK_DELIVERY_KEY.format(delivery_id=delivery.id), delivery.model_dump_json(), ex=self.ttl_s)
        pipe.zadd(WEBHOOK_DUE_KEY, {delivery.id: time.time() + delay_s})
        pipe.execute()

    @redis_boundary()
    def finish(self, delivery_id: str) -> None:
        """The delivery ended (delivered, gone, refused or out of attempts): forget it."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(WEBHOOK_DUE_KEY, delivery_id)
        pipe.delete(WEBHOOK_DELIVERY_KEY.format(delivery_id=delivery_id))
        pipe.execute()

    @redis_boundary()
    def drop_missing(self, delivery_id: str) -> None:
        """A due id whose record expired: take it off the schedule."""
        self.redis.zrem(WEBHOOK_DUE_KEY, delivery_id)
