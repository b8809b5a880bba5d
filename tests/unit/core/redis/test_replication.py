"""REDIS_MIN_REPLICA_ACKS (core/redis/replication.py): a submission is promised only once replicas hold it, and
refused naming its job when they can't."""

from __future__ import annotations

import pytest

from core.errors import StoreUnavailable
from core.jobs.idempotency import IdempotencyKeys
from core.jobs.store import JobStore
from core.jobs.submission import SubmitJob
from core.redis.clients import redis_client
from core.redis.keys import JOB_KEY
from core.redis.replication import ReplicaAcks
from core.settings import Settings


def sentinel_settings(**values) -> Settings:
    return Settings(_env_file=None, **values)


class NoQueue:
    """A queue that takes every job and holds none."""

    def publish(self, job_ids: list[str], priority: str) -> None:
        pass

    def depth(self) -> int:
        return 0


def submit_with_acks(redis_set, needed: int):
    settings = sentinel_settings(
        redis_sentinels=redis_set.sentinel_addresses, redis_min_replica_acks=needed, redis_replica_ack_timeout_ms=300
    )
    client = redis_client(settings)
    store = JobStore(client, job_ttl_s=60)
    replicas = ReplicaAcks.from_settings(client, settings)
    return store, SubmitJob(settings, store, NoQueue(), IdempotencyKeys(client), replicas=replicas)


def test_a_submission_is_accepted_once_a_replica_holds_it(redis_set):
    store, submit = submit_with_acks(redis_set, 1)
    job = submit({"prompt": "hello"}, "owner")
    replica = redis_set.client(redis_set.replicas[0])
    assert replica.exists(JOB_KEY.format(job_id=job.id)), "WAIT returned before the replica had the job"


def test_a_submission_no_replica_confirms_is_refused_with_its_job_id(redis_set):
    """More replicas asked than exist: 503 (StoreUnavailable, Retry-After) naming the job; a retry with the same
    Idempotency-Key finds that job rather than making a second one."""
    store, submit = submit_with_acks(redis_set, 2)
    with pytest.raises(StoreUnavailable) as refused:
        submit({"prompt": "hello"}, "owner", idempotency_key="k1")
    assert refused.value.job_id and refused.value.retry_after_s
    assert store.get(refused.value.job_id) is not None
    with pytest.raises(StoreUnavailable) as again:
        submit({"prompt": "hello"}, "owner", idempotency_key="k1")
    assert again.value.job_id == refused.value.job_id


def test_no_acks_asked_means_no_wait(redis_set):
    store, submit = submit_with_acks(redis_set, 0)
    assert submit({"prompt": "hello"}, "owner").status == "queued"
