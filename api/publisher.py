"""Puts job ids on the GPU queue by task name; the API never imports the worker's code."""

from __future__ import annotations

import base64
import json
import time

import redis
from celery import Celery
from kombu.exceptions import OperationalError

import celeryconfig
from celeryconfig import GENERATE_TASK_NAME, PRIORITY_STEPS
from core.errors import StoreUnavailable
from core.settings import Settings

_KOMBU_PRIORITY_SEPARATOR = "\x06\x16"
# kombu keeps delivered, unacknowledged messages here (and their delivery times in the index).
_KOMBU_UNACKED_KEY = "unacked"
_KOMBU_UNACKED_INDEX_KEY = "unacked_index"
_PUBLISH_FAILURES = (OperationalError, redis.ConnectionError, redis.TimeoutError, OSError)


def priority_list_names(queue: str) -> list[str]:
    """The Redis lists that hold the queue's messages, one per priority step."""
    return [queue if step == 0 else f"{queue}{_KOMBU_PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS.values()]


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

    A delivered message still unacknowledged after that long belongs to a worker that died before starting
    the job (this project's workers only take what they can start at once).
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


class JobPublisher:
    """A publishing-only Celery app bound to the configured broker."""

    def __init__(self, settings: Settings) -> None:
        self.queue = settings.gpu_queue
        self.celery = Celery("llm-api")
        celeryconfig.apply_settings(self.celery, settings)

    def publish(self, job_id: str, priority: str = "normal") -> None:
        """Enqueue one generation; raises StoreUnavailable if the broker can't take it."""
        self.publish_many([job_id], priority)

    def publish_many(self, job_ids: list[str], priority: str) -> None:
        """Enqueue generations over one broker connection (a batch's thousands of lines)."""
        try:
            with self.celery.producer_or_acquire() as producer:
                for job_id in job_ids:
                    self.celery.send_task(
                        GENERATE_TASK_NAME,
                        args=[job_id],
                        queue=self.queue,
                        priority=PRIORITY_STEPS[priority],
                        retry=False,
                        producer=producer,
                    )
        except _PUBLISH_FAILURES as error:
            raise StoreUnavailable(f"the queue is unreachable: {error}", retry_after_s=5) from error

    def queue_depth(self, client: redis.Redis) -> int:
        """Messages waiting on the GPU queue, all priorities together."""
        try:
            pipe = client.pipeline(transaction=False)
            for name in priority_list_names(self.queue):
                pipe.llen(name)
            return sum(pipe.execute())
        except (redis.ConnectionError, redis.TimeoutError) as error:
            raise StoreUnavailable(f"the queue is unreachable: {error}", retry_after_s=5) from error
