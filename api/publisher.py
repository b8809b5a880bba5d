"""Puts job ids on the GPU queue by task name; the API never imports the worker's code."""

from __future__ import annotations

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from core.errors import StoreUnavailable
from core.settings import Settings

GENERATE_TASK_NAME = "llm.generate"


class JobPublisher:
    """A publishing-only Celery app bound to the configured broker."""

    def __init__(self, settings: Settings) -> None:
        self.queue = settings.gpu_queue
        self.celery = Celery("llm-api")
        self.celery.config_from_object("celeryconfig")
        self.celery.conf.broker_url = settings.effective_redis_url

    def publish(self, job_id: str) -> None:
        """Enqueue one generation; raises StoreUnavailable if the broker can't take it."""
        try:
            self.celery.send_task(GENERATE_TASK_NAME, args=[job_id], queue=self.queue, retry=False)
        except (OperationalError, redis.ConnectionError, redis.TimeoutError, OSError) as error:
            raise StoreUnavailable(f"the queue is unreachable: {error}", retry_after_s=5) from error

    def queue_depth(self, client: redis.Redis) -> int:
        """Messages waiting on the GPU queue (kombu keeps a Redis list named after the queue)."""
        try:
            return int(client.llen(self.queue))
        except (redis.ConnectionError, redis.TimeoutError) as error:
            raise StoreUnavailable(f"the queue is unreachable: {error}", retry_after_s=5) from error
