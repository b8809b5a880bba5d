"""Reading kombu's own keys in Redis: the GPU queue's lists and the messages delivered but not yet acknowledged."""

from __future__ import annotations

import base64
import json
import time

import redis

from broker.names import PRIORITY_STEPS

_KOMBU_PRIORITY_SEPARATOR = "\x06\x16"
# kombu keeps delivered, unacknowledged messages here (and their delivery times in the index).
_KOMBU_UNACKED_KEY = "unacked"
_KOMBU_UNACKED_INDEX_KEY = "unacked_index"


def priority_list_names(queue: str) -> list[str]:
    """The Redis lists that hold the queue's messages, one per priority step."""
    return list(priority_lists(queue).values())


def priority_lists(queue: str) -> dict[str, str]:
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


def _job_id_of(raw_message: str | bytes) -> str | None:
    """The job id a kombu message carries (protocol 2: the body is base64 JSON of [args, kwargs, embed])."""
    try:
        message = json.loads(raw_message)
        if isinstance(message, list):  # unacked entries are [message, exchange, routing_key]
            message = message[0]
        args = json.loads(base64.b64decode(message["body"]))[0]
        return str(args[0])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def job_ids_with_live_messages(client: redis.Redis, queue: str, unacked_fresh_s: float) -> set[str]:
    """Job ids that have a message waiting on the queue, or delivered less than `unacked_fresh_s` ago.

    A delivered message still unacknowledged after that long belongs to a worker that died before starting the
    job, or to a live one whose job waits for a place (the caller also counts those: the store notes them).
    """
    ids: set[str] = set()
    for name in priority_list_names(queue):
        start = 0
        while chunk := client.lrange(name, start, start + 999):
            ids.update(filter(None, map(_job_id_of, chunk)))
            start += 1000
    fresh_tags = client.zrangebyscore(_KOMBU_UNACKED_INDEX_KEY, time.time() - unacked_fresh_s, "+inf")
    if fresh_tags:
        ids.update(filter(None, map(_job_id_of, filter(None, client.hmget(_KOMBU_UNACKED_KEY, fresh_tags)))))
    return ids
