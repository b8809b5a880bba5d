"""Batches in Redis: the batch record, its jobs in input order, and counters kept by every job transition."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import redis

from core.batches import Batch, BatchStatus
from core.errors import JobNotFound
from core.jobs import Job, JobStatus, utc_now_iso
from core.keys import (
    BATCH_JOBS_KEY,
    BATCH_KEY,
    BATCH_OWNER_INDEX_KEY,
    BATCH_SEQUENCE_KEY,
    BATCH_STATS_KEY,
    JOB_KEY,
    OPEN_BATCHES_KEY,
    QUEUED_INDEX_KEY,
)
from core.redis_transactions import watched_update
from core.webhook_queue import stage_delivery
from core.webhooks import EVENT_COMPLETED, STATE_PENDING, new_batch_delivery

if TYPE_CHECKING:
    from core.store import JobStore

WRITE_CHUNK = 1000  # jobs written per transaction at submission
READ_CHUNK = 500  # jobs read per round trip when streaming results or cancelling


def stage_batch_counts(pipe: redis.client.Pipeline, job: Job, from_status: JobStatus, ttl_s: int) -> None:
    """Add to a job's transition the batch counters it moves (same transaction, so they never drift)."""
    key = BATCH_STATS_KEY.format(batch_id=job.batch_id)
    pipe.hincrby(key, from_status.value, -1)
    pipe.hincrby(key, job.status.value, 1)
    if job.status == JobStatus.RUNNING:
        pipe.hsetnx(key, "started_at", job.started_at or utc_now_iso())
    if job.status.is_terminal:
        pipe.hincrby(key, "finished", 1)
    if job.status == JobStatus.SUCCEEDED and job.usage:
        pipe.hincrby(key, "completion_tokens", job.usage.get("completion_tokens", 0))
        pipe.hincrby(key, "prompt_tokens", job.usage.get("prompt_tokens", 0))
    pipe.expire(key, ttl_s)  # it lives as long as its jobs, even one the batch record never joined


class BatchStore:
    """Creates, reads, lists, cancels and completes batches; shares the job store's Redis client and TTL."""

    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs
        self.redis = jobs.redis
        self.ttl_s = jobs.job_ttl_s

    def create(self, batch: Batch, jobs: list[Job]) -> None:
        """Store every job and then the batch that lists them (in input order)."""
        jobs_key = BATCH_JOBS_KEY.format(batch_id=batch.id)
        for start in range(0, len(jobs), WRITE_CHUNK):
            chunk = jobs[start : start + WRITE_CHUNK]
            pipe = self.redis.pipeline(transaction=True)
            for job in chunk:
                pipe.set(JOB_KEY.format(job_id=job.id), job.model_dump_json(), ex=self.ttl_s)
            pipe.zadd(QUEUED_INDEX_KEY, dict.fromkeys((job.id for job in chunk), time.time()))
            pipe.rpush(jobs_key, *[job.id for job in chunk])
            pipe.expire(jobs_key, self.ttl_s)
            pipe.execute()
        stats_key = BATCH_STATS_KEY.format(batch_id=batch.id)
        index_key = BATCH_OWNER_INDEX_KEY.format(owner=batch.owner)
        sequence = self.redis.incr(BATCH_SEQUENCE_KEY)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(stats_key, mapping={"total": batch.total, JobStatus.QUEUED.value: batch.total, "finished": 0})
        pipe.expire(stats_key, self.ttl_s)
        pipe.set(BATCH_KEY.format(batch_id=batch.id), batch.model_dump_json(), ex=self.ttl_s)
        pipe.zadd(index_key, {batch.id: sequence})
        pipe.expire(index_key, self.ttl_s)
        pipe.sadd(OPEN_BATCHES_KEY, batch.id)
        pipe.execute()

    def get(self, batch_id: str) -> Batch | None:
        raw = self.redis.get(BATCH_KEY.format(batch_id=batch_id))
        return Batch.model_validate_json(raw) if raw else None

    def get_for_owner(self, batch_id: str, owner: str) -> Batch:
        """The batch if this owner may see it; another owner's batch is as unknown as a missing one."""
        batch = self.get(batch_id)
        if batch is None or batch.owner != owner:
            raise JobNotFound(f"no batch with id {batch_id!r}")
        return batch

    def view(self, batch: Batch) -> dict[str, Any]:
        """The batch object the API returns: status, counts by job status, times, tokens so far."""
        stats = self.redis.hgetall(BATCH_STATS_KEY.format(batch_id=batch.id))
        finished = int(stats.get("finished", 0))
        if batch.cancel_requested_at:
            status = BatchStatus.CANCELED
        elif finished >= batch.total:
            status = BatchStatus.COMPLETED
        elif stats.get("started_at"):
            status = BatchStatus.RUNNING
        else:
            status = BatchStatus.QUEUED
        return {
            "id": batch.id,
            "status": status.value,
            "created_at": batch.created_at,
            "started_at": stats.get("started_at"),
            "completed_at": stats.get("completed_at"),
            "cancel_requested_at": batch.cancel_requested_at,
            "total": batch.total,
            "counts": {s.value: int(stats.get(s.value, 0)) for s in JobStatus},
            "usage": {
                "prompt_tokens": int(stats.get("prompt_tokens", 0)),
                "completion_tokens": int(stats.get("completion_tokens", 0)),
            },
            "webhook": batch.webhook,
            "metadata": batch.metadata,
        }

    def list_for_owner(self, owner: str, *, limit: int, before_sequence: int | None) -> tuple[list[Batch], int | None]:
        """Up to `limit` batches, newest first, older than the cursor; returns them and the next cursor."""
        upper = f"({before_sequence}" if before_sequence is not None else "+inf"
        rows = self.redis.zrevrangebyscore(
            BATCH_OWNER_INDEX_KEY.format(owner=owner), upper, "-inf", start=0, num=limit, withscores=True
        )
        batches = [b for b in (self.get(batch_id) for batch_id, _ in rows) if b is not None]
        return batches, (int(rows[-1][1]) if len(rows) == limit else None)

    def job_ids(self, batch_id: str) -> Iterator[list[str]]:
        """The batch's job ids in input order, a chunk at a time."""
        key = BATCH_JOBS_KEY.format(batch_id=batch_id)
        start = 0
        while chunk := self.redis.lrange(key, start, start + READ_CHUNK - 1):
            yield chunk
            start += READ_CHUNK

    def result_lines(self, batch_id: str) -> Iterator[str]:
        """One JSON line per input line, in input order; read and sent a chunk at a time, never all at once."""
        for chunk in self.job_ids(batch_id):
            raws = self.redis.mget([JOB_KEY.format(job_id=job_id) for job_id in chunk])
            for job_id, raw in zip(chunk, raws, strict=True):
                if raw is None:
                    line = {"custom_id": None, "job_id": job_id, "status": "expired"}
                else:
                    job = Job.model_validate_json(raw)
                    line = {
                        "custom_id": job.custom_id,
                        "job_id": job.id,
                        "status": job.status.value,
                        "output": job.output,
                        "error": job.error,
                        "usage": job.usage,
                    }
                yield json.dumps(line, ensure_ascii=False) + "\n"

    def cancel(self, batch: Batch) -> int:
        """Cancel every queued job of the batch (running ones finish); returns how many were canceled."""
        key = BATCH_KEY.format(batch_id=batch.id)

        def mark_canceled(pipe: redis.client.Pipeline) -> None:
            raw = pipe.get(key)
            current = Batch.model_validate_json(raw) if raw else None
            if current is None or current.cancel_requested_at is not None:
                return
            current.cancel_requested_at = batch.cancel_requested_at = utc_now_iso()
            pipe.multi()
            pipe.set(key, current.model_dump_json(), keepttl=True)

        watched_update(self.redis, [key], mark_canceled)
        canceled = 0
        for chunk in self.job_ids(batch.id):
            canceled += self.jobs.cancel_queued(chunk)
        self.complete_if_done(batch.id)
        return canceled

    def complete_if_done(self, batch_id: str) -> None:
        """Once every job is finished: note the time and raise `batch.completed` (if a webhook waits), together
        and once, whoever calls it first (the last job's worker, a cancel, or the reconciler's sweep)."""
        stats_key = BATCH_STATS_KEY.format(batch_id=batch_id)
        batch_key = BATCH_KEY.format(batch_id=batch_id)

        def complete(pipe: redis.client.Pipeline) -> None:
            finished, total, completed_at = pipe.hmget(stats_key, ["finished", "total", "completed_at"])
            raw = pipe.get(batch_key)
            if total is None or raw is None or completed_at is not None:
                pipe.multi()
                pipe.srem(OPEN_BATCHES_KEY, batch_id)  # expired or already completed
                return
            if int(finished or 0) < int(total):
                return
            now = utc_now_iso()
            batch = Batch.model_validate_json(raw)
            pipe.multi()
            pipe.hset(stats_key, "completed_at", now)
            pipe.srem(OPEN_BATCHES_KEY, batch_id)
            if batch.webhook is not None:
                batch.webhook["state"][EVENT_COMPLETED] = STATE_PENDING
                view = self.view(batch) | {"completed_at": now, "status": self._status_once_done(batch)}
                pipe.set(batch_key, batch.model_dump_json(), keepttl=True)
                stage_delivery(pipe, new_batch_delivery(view, batch.webhook["url"], now), self.ttl_s)

        watched_update(self.redis, [stats_key, batch_key], complete)

    @staticmethod
    def _status_once_done(batch: Batch) -> str:
        return (BatchStatus.CANCELED if batch.cancel_requested_at else BatchStatus.COMPLETED).value

    def complete_finished_batches(self) -> None:
        """Complete any batch whose last job finished while its completion was cut short (a crash, Redis away)."""
        for batch_id in self.redis.smembers(OPEN_BATCHES_KEY):
            self.complete_if_done(batch_id)

    def update_webhook(self, batch_id: str, change: Callable[[dict], None]) -> None:
        """Record a delivery attempt on the batch's `webhook`."""
        key = BATCH_KEY.format(batch_id=batch_id)

        def step(pipe: redis.client.Pipeline) -> None:
            raw = pipe.get(key)
            batch = Batch.model_validate_json(raw) if raw else None
            if batch is None or batch.webhook is None:
                return
            change(batch.webhook)
            pipe.multi()
            pipe.set(key, batch.model_dump_json(), keepttl=True)

        watched_update(self.redis, [key], step)
