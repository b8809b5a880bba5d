"""The one Redis error boundary, against real redis-servers that are full, read-only or gone."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from core.batches.model import Batch
from core.batches.store import BatchStore
from core.errors import StoreUnavailable
from core.jobs.model import Job, JobStatus, new_job_id, utc_now_iso
from core.jobs.store import JobStore, connect
from core.webhooks.deliveries import Delivery
from core.webhooks.queue import WebhookQueue
from launcher.redis_server import free_port


def new_job(**fields) -> Job:
    return Job(id=new_job_id(), status=JobStatus.QUEUED, created_at=utc_now_iso(), input={"prompt": "x"}, **fields)


def every_store_write(client: redis.Redis) -> dict[str, Callable[[], None]]:
    """One write of each store (JobStore, BatchStore, WebhookQueue)."""
    store = JobStore(client, job_ttl_s=60)
    batch = Batch(id=f"batch_{new_job_id()}", created_at=utc_now_iso(), total=1)
    delivery = Delivery(id="msg_x", subject_id="job", event="completed", url="http://x", body="{}")
    return {
        "JobStore.create": lambda: store.create(new_job()),
        "BatchStore.create": lambda: BatchStore(store).create(batch, [new_job(batch_id=batch.id)]),
        "WebhookQueue.retry_later": lambda: WebhookQueue(client, ttl_s=60).retry_later(delivery, 1.0),
    }


def test_a_full_redis_under_noeviction_is_store_unavailable_for_every_store(own_redis):
    client = connect(own_redis.url)
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 1)
    try:
        for name, write in every_store_write(client).items():
            with pytest.raises(StoreUnavailable, match="maxmemory"):
                write()
            assert client.dbsize() == 0, name  # the refused transaction left nothing half-written
    finally:
        client.config_set("maxmemory", 0)
    for write in every_store_write(client).values():
        write()  # the same writes succeed once memory is freed


def test_a_read_only_replica_is_store_unavailable_for_every_store(own_redis):
    client = connect(own_redis.url)
    client.replicaof("127.0.0.1", free_port())  # a primary that isn't there: this server refuses writes
    try:
        for write in every_store_write(client).values():
            with pytest.raises(StoreUnavailable, match="read only replica"):
                write()
    finally:
        client.replicaof("NO", "ONE")


def test_an_unreachable_redis_is_store_unavailable_for_every_store(own_redis):
    client = connect(own_redis.url, socket_timeout_s=0.5)
    own_redis.stop()
    for write in every_store_write(client).values():
        with pytest.raises(StoreUnavailable, match="unreachable"):
            write()
    assert JobStore(client, job_ttl_s=60).ping() is False
