"""Accepting work: check capacity, store it durably, then publish the job ids."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from broker.publisher import JobPublisher
from core.batch_store import BatchStore
from core.batches import Batch, BatchLine
from core.errors import InvalidInput, QueueFull, StoreUnavailable
from core.jobs import GenerationInput, Job, JobStatus, new_job_id, utc_now_iso
from core.keys import IDEMPOTENCY_KEY
from core.settings import Settings
from core.store import JobStore

log = logging.getLogger("llm.api")

IDEMPOTENCY_TTL_S = 24 * 3600
_RELEASE_IF_OURS = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


def webhook_record(url: str | None, events: list[str]) -> dict | None:
    """The `webhook` field of a new job or batch."""
    return {"url": url, "events": events, "state": {}, "deliveries": []} if url else None


@dataclass
class Services:
    """What the routes need, built once per API process."""

    settings: Settings
    store: JobStore
    publisher: JobPublisher

    @property
    def batches(self) -> BatchStore:
        return BatchStore(self.store)

    def _check_capacity(self, adding: int) -> None:
        depth = self.publisher.queue_depth(self.store.redis)
        if depth + adding > self.settings.max_queue_depth:
            raise QueueFull(
                f"the queue holds {depth} jobs; {adding} more would pass its limit of "
                f"{self.settings.max_queue_depth}; try again later",
                retry_after_s=10,
            )

    def submit(self, params: GenerationInput, owner: str, idempotency_key: str | None = None) -> Job:
        """Store and enqueue one generation job; returns it as `queued` (or the earlier job for a repeated key)."""
        job_id = new_job_id()
        body_hash = hashlib.sha256(params.model_dump_json().encode()).hexdigest()
        with self._idempotency(idempotency_key, body_hash, owner, job_id) as earlier_id:
            if earlier_id is not None:
                return self._wait_stored(lambda: self.store.get(earlier_id))
            self._check_capacity(1)
            job = Job(
                id=job_id,
                status=JobStatus.QUEUED,
                created_at=utc_now_iso(),
                input=params.generation_fields,
                metadata=params.metadata,
                priority=params.priority,
                webhook=webhook_record(params.webhook, params.webhook_events),
                owner=owner,
            )
            self.store.create(job)
            if self.settings.fault_exit_after_store:
                os._exit(9)  # test hook: die between storing and publishing; the reconciler must publish the job
            try:
                self.publisher.publish(job.id, job.priority)
            except StoreUnavailable:
                # Not published means not accepted: take the stored copy back so nothing waits forever.
                try:
                    self.store.delete(job.id, owner)
                except StoreUnavailable:
                    log.error("job %s stored but neither published nor removed", job.id)
                raise
        log.info("job %s queued", job.id)
        return job

    @contextmanager
    def _idempotency(self, key: str | None, body_hash: str, owner: str, new_id: str) -> Iterator[str | None]:
        """Yield the id an earlier request with this key made, or None after claiming the key for `new_id`.

        If this request then fails (queue full, Redis away), the key is released so that a retry can succeed.
        """
        if key is None:
            yield None
            return
        if not 0 < len(key) <= 255:
            raise InvalidInput("Idempotency-Key must have 1 to 255 characters", field="Idempotency-Key")
        redis_key = IDEMPOTENCY_KEY.format(owner=owner, key_hash=hashlib.sha256(key.encode()).hexdigest())
        claim = json.dumps({"id": new_id, "body_hash": body_hash})
        try:
            claimed = self.store.redis.set(redis_key, claim, nx=True, ex=IDEMPOTENCY_TTL_S)
            earlier = None if claimed else json.loads(self.store.redis.get(redis_key) or claim)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            raise StoreUnavailable(f"the job store is unreachable: {error}", retry_after_s=5) from error
        if earlier is not None:
            if earlier["body_hash"] != body_hash:
                raise InvalidInput("this Idempotency-Key was used with a different body", field="Idempotency-Key")
            yield earlier["id"]
            return
        try:
            yield None
        except BaseException:
            with contextlib.suppress(redis.RedisError):
                self.store.redis.eval(_RELEASE_IF_OURS, 1, redis_key, claim)
            raise

    @staticmethod
    def _wait_stored(load):
        """What an earlier request with the same key made; it may still be storing it, so wait a moment."""
        for _ in range(100):
            found = load()
            if found is not None:
                return found
            time.sleep(0.05)
        raise StoreUnavailable("the work of this Idempotency-Key is not stored yet; retry", retry_after_s=1)

    def submit_batch(
        self,
        lines: list[BatchLine],
        owner: str,
        *,
        webhook: str | None,
        metadata: dict[str, str],
        idempotency_key: str | None = None,
        body_hash: str = "",
    ) -> Batch:
        """Store one job per line under a new batch and enqueue them all at the batch priority."""
        batch_id = f"batch_{uuid.uuid4().hex}"
        with self._idempotency(idempotency_key, body_hash, owner, batch_id) as earlier_id:
            if earlier_id is not None:
                return self._wait_stored(lambda: self.batches.get(earlier_id))
            return self._store_and_publish_batch(batch_id, lines, owner, webhook=webhook, metadata=metadata)

    def _store_and_publish_batch(
        self, batch_id: str, lines: list[BatchLine], owner: str, *, webhook: str | None, metadata: dict[str, str]
    ) -> Batch:
        self._check_capacity(len(lines))
        batch = Batch(
            id=batch_id,
            created_at=utc_now_iso(),
            total=len(lines),
            webhook=webhook_record(webhook, ["completed"]),
            metadata=metadata,
            owner=owner,
        )
        jobs = [
            Job(
                id=new_job_id(),
                status=JobStatus.QUEUED,
                created_at=batch.created_at,
                input=line.params.generation_fields,
                metadata=line.params.metadata,
                batch_id=batch.id,
                custom_id=line.custom_id,
                priority="batch",
                owner=owner,
            )
            for line in lines
        ]
        self.batches.create(batch, jobs)
        try:
            self.publisher.publish_many([job.id for job in jobs], "batch")
        except StoreUnavailable:
            # Some lines may be on the queue already: cancel the batch so none of them runs, then say so.
            try:
                self.batches.cancel(batch)
            except StoreUnavailable:
                log.error("batch %s stored but neither fully published nor canceled", batch.id)
            raise
        log.info("batch %s queued with %d jobs", batch.id, len(jobs))
        return batch
