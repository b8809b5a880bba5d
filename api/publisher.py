"""Puts job ids on the GPU queue by task name; the API never imports the worker's code."""

from __future__ import annotations

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from core.errors import StoreUnavailable
from core.settings import Settings

GENERATE_TASK_NAME = "llm.generate"
# kombu emulates priorities on Redis with one list per step, and takes from the lowest number first.
PRIORITY_STEPS = {"high": 0, "normal": 3, "low": 6, "batch": 9}
_KOMBU_PRIORITY_SEPARATOR = "\x06\x16"
_PUBLISH_FAILURES = (OperationalError, redis.ConnectionError, redis.TimeoutError, OSError)


def priority_list_names(queue: str) -> list[str]:
    """The Redis lists that hold the queue's messages, one per priority step."""
    return [queue if step == 0 else f"{queue}{_KOMBU_PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS.values()]


class JobPublisher:
    """A publishing-only Celery app bound to the configured broker."""

    def __init__(self, settings: Settings) -> None:
        self.queue = settings.gpu_queue
        self.celery = Celery("llm-api")
        self.celery.config_from_object("celeryconfig")
        self.celery.conf.broker_url = settings.effective_redis_url

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
