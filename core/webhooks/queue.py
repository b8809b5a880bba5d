"""Due webhook deliveries, kept in Redis by due time (never as long Celery countdowns, which get redelivered)."""

from __future__ import annotations

import time

import redis

from core.redis.errors import redis_boundary
from core.redis.keys import WEBHOOK_DELIVERY_KEY, WEBHOOK_DUE_KEY, WEBHOOK_PARKED_KEY, WEBHOOK_STARTED_OPEN_KEY
from core.webhooks.deliveries import EVENT_STARTED, Delivery

# Take the due deliveries and push their due time past a lease in one step: two senders never take the same
# one, and a sender that dies mid-attempt leaves it due again once the lease runs out.
_CLAIM_DUE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[3], id) end
return ids
"""

# A job's `completed` event leaves the schedule, untouched, while one of the job's `started` events is not finished.
# The check and the move are one step, so a `started` event that finishes meanwhile can't leave it parked forever.
_PARK_BEHIND_STARTED = """
if redis.call('SCARD', KEYS[2]) == 0 then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[2]))
return 1
"""

# A job's `started` event is done with: forget it, and once none of the job's is left, its parked events are due.
_FINISH_STARTED = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
if redis.call('SCARD', KEYS[3]) > 0 then return 0 end
local parked = redis.call('SMEMBERS', KEYS[4])
for _, id in ipairs(parked) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
redis.call('DEL', KEYS[4])
return #parked
"""


def _opens_job_start(delivery: Delivery) -> bool:
    return delivery.subject == "job" and delivery.event == EVENT_STARTED


def stage_delivery(pipe: redis.client.Pipeline, delivery: Delivery, ttl_s: int) -> None:
    """Add a new delivery, due now, to a transaction: the event exists exactly when the change that raised it does."""
    key = WEBHOOK_DELIVERY_KEY.format(delivery_id=delivery.id)
    pipe.set(key, delivery.model_dump_json(), ex=ttl_s)
    pipe.zadd(WEBHOOK_DUE_KEY, {delivery.id: time.time()})
    if _opens_job_start(delivery):
        open_key = WEBHOOK_STARTED_OPEN_KEY.format(job_id=delivery.subject_id)
        pipe.sadd(open_key, delivery.id)
        pipe.expire(open_key, ttl_s)


class WebhookQueue:
    """The deliveries waiting for their next attempt."""

    def __init__(self, client: redis.Redis, *, ttl_s: int) -> None:
        self.redis = client
        self.ttl_s = ttl_s
        self._claim = client.register_script(_CLAIM_DUE)
        self._park = client.register_script(_PARK_BEHIND_STARTED)
        self._finish_started = client.register_script(_FINISH_STARTED)

    @redis_boundary()
    def claim_due(self, limit: int, lease_s: float) -> list[str]:
        """Up to `limit` delivery ids whose attempt is due now, leased to the caller for `lease_s`."""
        now = time.time()
        return list(self._claim(keys=[WEBHOOK_DUE_KEY], args=[now, limit, now + lease_s]))

    @redis_boundary()
    def get(self, delivery_id: str) -> Delivery | None:
        """The stored delivery with this id, or None once it expired or finished."""
        raw = self.redis.get(WEBHOOK_DELIVERY_KEY.format(delivery_id=delivery_id))
        return Delivery.model_validate_json(raw) if raw else None

    @redis_boundary()
    def park_behind_started(self, delivery: Delivery) -> bool:
        """Take the delivery off the schedule while its job's `started` event is unfinished; False if none is."""
        job_id = delivery.subject_id
        open_key, parked_key = WEBHOOK_STARTED_OPEN_KEY.format(job_id=job_id), WEBHOOK_PARKED_KEY.format(job_id=job_id)
        return bool(self._park(keys=[WEBHOOK_DUE_KEY, open_key, parked_key], args=[delivery.id, self.ttl_s]))

    @redis_boundary()
    def retry_later(self, delivery: Delivery, delay_s: float) -> None:
        """Store the attempt count and make the delivery due again after `delay_s`."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(WEBHOOK_DELIVERY_KEY.format(delivery_id=delivery.id), delivery.model_dump_json(), ex=self.ttl_s)
        pipe.zadd(WEBHOOK_DUE_KEY, {delivery.id: time.time() + delay_s})
        pipe.execute()

    @redis_boundary()
    def finish(self, delivery: Delivery) -> None:
        """The delivery ended (delivered, gone, refused or out of attempts): forget it, release what waited on it."""
        delivery_key = WEBHOOK_DELIVERY_KEY.format(delivery_id=delivery.id)
        if _opens_job_start(delivery):
            job_id = delivery.subject_id
            keys = [
                WEBHOOK_DUE_KEY, delivery_key,
                WEBHOOK_STARTED_OPEN_KEY.format(job_id=job_id), WEBHOOK_PARKED_KEY.format(job_id=job_id),
            ]  # fmt: skip
            self._finish_started(keys=keys, args=[delivery.id, time.time()])
            return
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(WEBHOOK_DUE_KEY, delivery.id)
        pipe.delete(delivery_key)
        pipe.execute()

    @redis_boundary()
    def drop_missing(self, delivery_id: str) -> None:
        """A due id whose record expired: take it off the schedule."""
        self.redis.zrem(WEBHOOK_DUE_KEY, delivery_id)
