"""Reading kombu's own keys in Redis: the GPU queue's lists, one per priority step."""

from __future__ import annotations

import redis

from broker.names import PRIORITY_STEPS
from core.jobs.priority import Priority

_KOMBU_PRIORITY_SEPARATOR = "\x06\x16"


def priority_list_names(queue: str) -> list[str]:
    """The Redis lists that hold the queue's messages, one per priority step."""
    return list(priority_lists(queue).values())


def priority_lists(queue: str) -> dict[Priority, str]:
    """Each priority (`high`, `normal`, `low`, `batch`) and the Redis list holding its messages on the queue."""
    return {
        priority: queue if step == 0 else f"{queue}{_KOMBU_PRIORITY_SEPARATOR}{step}"
        for priority, step in PRIORITY_STEPS.items()
    }


def waiting_message_count(client: redis.Redis, queue: str) -> int:
    """Messages waiting on the queue, all priorities together."""
    pipe = client.pipeline(transaction=False)
    for name in priority_list_names(queue):
        pipe.llen(name)
    return sum(pipe.execute())
