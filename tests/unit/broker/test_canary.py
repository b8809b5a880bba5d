"""A worker's own canary queue: named after it, with an exchange of its own, expiring after it."""

from __future__ import annotations

from broker.canary import CANARY_QUEUE_EXPIRES_S, canary_queue


def test_the_canary_queue_is_the_workers_own():
    queue = canary_queue("gpu", "cafe01")
    assert queue.name == queue.routing_key == queue.exchange.name == "gpu.canary.cafe01"
    assert queue.exchange.type == "direct" and queue.expires == CANARY_QUEUE_EXPIRES_S
