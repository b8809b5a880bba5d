"""Puts job ids on the GPU queue by task name; publishers never import the worker's code."""

from __future__ import annotations

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from broker.app import new_celery_app
from broker.kombu_redis import waiting_message_count
from broker.names import GENERATE_TASK_NAME, priority_step
from core.errors import StoreUnavailable
from core.jobs.priority import Priority
from core.settings import Settings

_PUBLISH_FAILURES = (OperationalError, redis.ConnectionError, redis.TimeoutError, OSError)


class JobPublisher:
    """Publishes generations through a Celery app bound to the configured broker."""

    def __init__(self, settings: Settings, celery_app: Celery | None = None) -> None:
        self.queue = settings.gpu_queue
        # A process that already has a Celery app (the GPU worker) publishes through it; others get their own.
        self.celery = celery_app or new_celery_app("llm-publisher", settings)

    def publish(self, job_id: str, priority: Priority = Priority.NORMAL) -> None:
        """Enqueue one generation; raises StoreUnavailable if the broker can't take it."""
        self.publish_many([job_id], priority)

    def publish_many(self, job_ids: list[str], priority: Priority) -> None:
        """Enqueue generations over one broker connection (a batch's thousands of lines)."""
        try:
            with self.celery.producer_or_acquire() as producer:
                for job_id in job_ids:
                    self.celery.send_task(
                        GENERATE_TASK_NAME,
                        args=[job_id],
                        queue=self.queue,
                        priority=priority_step(priority),
                        retry=False,
                        producer=producer,
                    )
        except _PUBLISH_FAILURES as error:
            raise StoreUnavailable(f"the queue is unreachable: {error}", retry_after_s=5) from error

    def queue_depth(self, client: redis.Redis) -> int:
        """Messages waiting on the GPU queue, all priorities together."""
        try:
            return waiting_message_count(client, self.queue)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            raise StoreUnavailable(f"the queue is unreachable: {error}", retry_after_s=5) from error
