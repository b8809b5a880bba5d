"""The queue each GPU worker reads beside the GPU queue, for the canaries it sends itself (worker/consumer_canary)."""

from __future__ import annotations

from kombu import Exchange, Queue

from broker.names import canary_queue_name

# A dead worker's canary queue (and its binding in Redis) expires this long after its last use.
CANARY_QUEUE_EXPIRES_S = 600.0


def canary_queue(gpu_queue: str, worker_token: str) -> Queue:
    """The worker's own queue, with an exchange of its own, so nothing of it outlives the worker for long."""
    name = canary_queue_name(gpu_queue, worker_token)
    return Queue(name, Exchange(name, type="direct"), routing_key=name, expires=CANARY_QUEUE_EXPIRES_S)
