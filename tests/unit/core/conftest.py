"""Fixtures of core's unit tests: a Redis database of their own, emptied per test, and the use cases wired to it.

Nothing here starts a worker or an HTTP server: the use cases are called in-process, their queue is a list in
memory, and what they leave is read back from Redis.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import redis

from core.batches.lines import read_batch_body
from core.batches.model import Batch
from core.batches.store import BatchStore
from core.batches.submission import SubmitBatch
from core.jobs.idempotency import IdempotencyKeys
from core.jobs.model import Job
from core.jobs.store import JobStore, connect
from core.jobs.submission import SubmitJob
from core.settings import Settings
from tests.conftest import WEBHOOK_SECRET

# A database of the session's Redis that no worker, ops worker or end-to-end test uses: each unit test empties it.
UNIT_DB = 9


class ListQueue:
    """The broker's queue as a list: what was published, and a switch that makes publishing fail."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []
        self.failure: Exception | None = None

    def publish(self, job_ids: list[str], priority: str) -> None:
        if self.failure is not None:
            raise self.failure
        self.published.extend((job_id, priority) for job_id in job_ids)

    def depth(self) -> int:
        return len(self.published)


@pytest.fixture
def redis_url(redis_server) -> str:
    """The unit tests' database of the session Redis, empty."""
    url = redis_server.url.rsplit("/", 1)[0] + f"/{UNIT_DB}"
    connect(url).flushdb()
    return url


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    """A client of that database, as the stores build theirs."""
    return connect(redis_url)


@pytest.fixture
def store(client: redis.Redis) -> JobStore:
    """A job store on the unit database."""
    return JobStore(client, job_ttl_s=3600)


@pytest.fixture
def batches(store: JobStore) -> BatchStore:
    return BatchStore(store)


@pytest.fixture
def queue() -> ListQueue:
    return ListQueue()


@pytest.fixture
def settings(make_settings, redis_url: str) -> Settings:
    """Settings that can sign webhooks to loopback receivers, pointing at the unit database."""
    return make_settings(redis_url=redis_url, webhook_secret=WEBHOOK_SECRET, webhook_allow_private=True)


@pytest.fixture
def submit(settings: Settings, store: JobStore, queue: ListQueue) -> SubmitJob:
    return SubmitJob(settings, store, queue, IdempotencyKeys(store.redis))


@pytest.fixture
def submit_batch(settings: Settings, batches: BatchStore, queue: ListQueue) -> Callable[..., Batch]:
    """Submit a batch of these request bodies (JSON lines), as `POST /batches` does."""
    use_case = SubmitBatch(settings, batches, queue, IdempotencyKeys(batches.redis))

    def run(lines: list[dict[str, Any]], owner: str = "owner-a", *, webhook: str | None = None) -> Batch:
        data = "\n".join(json.dumps({"custom_id": str(n), "body": line}) for n, line in enumerate(lines)).encode()
        return use_case(read_batch_body([data], webhook), owner)

    return run


@pytest.fixture
def new_job(submit: SubmitJob) -> Callable[..., Job]:
    """A queued job, submitted the way `POST /jobs` does: `new_job(owner=..., **body fields)`."""

    def make(owner: str = "owner-a", **body: Any) -> Job:
        return submit({"prompt": "x", "max_tokens": 4} | body, owner)

    return make
