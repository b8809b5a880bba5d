"""The webhook schedule in Redis: a job's `completed` event waits for its `started` event without being rewritten."""

from __future__ import annotations

import pytest

from core.jobs.store import connect
from core.redis.keys import WEBHOOK_DELIVERY_KEY, WEBHOOK_DUE_KEY
from core.webhooks.deliveries import EVENT_COMPLETED, EVENT_STARTED, Delivery
from core.webhooks.queue import WebhookQueue, stage_delivery

LEASE_S = 60


@pytest.fixture
def queue(redis_server) -> WebhookQueue:
    """Database 6 of the test Redis, emptied: the session's ops worker, which claims on database 0, never sees it."""
    client = connect(redis_server.url.rsplit("/", 1)[0] + "/6")
    client.flushdb()
    return WebhookQueue(client, ttl_s=3600)


def staged(queue: WebhookQueue, event: str, job_id: str = "job-1", run: int = 1) -> Delivery:
    """A job's delivery raised the way the store raises one: staged in a transaction, due now."""
    delivery = Delivery(id=f"msg_{job_id}_{event}_{run}", subject_id=job_id, event=event,
                        url="http://127.0.0.1:9/hook", body='{"snapshot": 1}')  # fmt: skip
    pipe = queue.redis.pipeline(transaction=True)
    stage_delivery(pipe, delivery, queue.ttl_s)
    pipe.execute()
    return delivery


def is_scheduled(queue: WebhookQueue, delivery: Delivery) -> bool:
    return queue.redis.zscore(WEBHOOK_DUE_KEY, delivery.id) is not None


def test_completed_is_parked_untouched_and_due_once_started_finishes(queue):
    started, completed = staged(queue, EVENT_STARTED), staged(queue, EVENT_COMPLETED)
    assert set(queue.claim_due(10, LEASE_S)) == {started.id, completed.id}
    record_key = WEBHOOK_DELIVERY_KEY.format(delivery_id=completed.id)
    record_before, ttl_before = queue.redis.get(record_key), queue.redis.ttl(record_key)

    assert queue.park_behind_started(completed)
    assert not is_scheduled(queue, completed)
    queue.retry_later(started, 0)  # `started` fails and is retried: the parked event stays off the schedule
    assert queue.claim_due(10, LEASE_S) == [started.id]
    assert queue.redis.get(record_key) == record_before and queue.redis.ttl(record_key) <= ttl_before

    queue.finish(started)
    assert queue.claim_due(10, LEASE_S) == [completed.id]
    assert queue.get(started.id) is None and queue.get(completed.id) == completed


def test_completed_goes_ahead_when_started_already_finished_or_was_never_asked_for(queue):
    started = staged(queue, EVENT_STARTED)
    queue.claim_due(10, LEASE_S)
    queue.finish(started)
    completed = staged(queue, EVENT_COMPLETED)
    assert not queue.park_behind_started(completed)
    alone = staged(queue, EVENT_COMPLETED, job_id="job-2")
    assert not queue.park_behind_started(alone)
    assert is_scheduled(queue, completed) and is_scheduled(queue, alone)


def test_a_job_run_twice_releases_completed_after_both_started_events(queue):
    first, second = staged(queue, EVENT_STARTED), staged(queue, EVENT_STARTED, run=2)
    completed = staged(queue, EVENT_COMPLETED)
    assert queue.park_behind_started(completed)
    queue.finish(first)
    assert not is_scheduled(queue, completed)
    queue.finish(second)
    assert is_scheduled(queue, completed)


def test_a_started_event_releases_only_its_own_job(queue):
    started_a, started_b = (staged(queue, EVENT_STARTED, job_id=job_id) for job_id in ("job-a", "job-b"))
    completed_a, completed_b = (staged(queue, EVENT_COMPLETED, job_id=job_id) for job_id in ("job-a", "job-b"))
    assert queue.park_behind_started(completed_a) and queue.park_behind_started(completed_b)
    queue.finish(started_a)
    assert is_scheduled(queue, completed_a) and not is_scheduled(queue, completed_b)
    assert is_scheduled(queue, started_b)
