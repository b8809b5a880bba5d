"""Batches in Redis: the batch record, its jobs in input order, and counters kept by every job transition."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import redis

from core.batches.model import Batch
from core.batches.results import BatchResultLine
from core.batches.view import BatchView, batch_view
from core.errors import BatchNotFound
from core.jobs.model import Job, JobStatus, utc_now_iso
from core.jobs.records import WebhookRecord
from core.jobs.store import JobStore
from core.jobs.transition_effects import complete_batch_if_done
from core.owners.index import owned_by, page_newest_first, shed_expired_index_entries
from core.redis.errors import redis_boundary
from core.redis.keys import (
    BATCH_JOBS_KEY,
    BATCH_KEY,
    BATCH_OWNER_INDEX_KEY,
    BATCH_SEQUENCE_KEY,
    BATCH_STATS_KEY,
    OPEN_BATCHES_KEY,
)
from core.redis.transactions import watched_update

WRITE_CHUNK = 1000  # jobs written per transaction at submission
READ_CHUNK = 500  # jobs read per round trip when streaming results or cancelling


class BatchStore:
    """Creates, reads, lists, cancels and completes batches; shares the job store's Redis client and TTL.

    Retention: nothing of a batch expires before it completes; then its record, counters, job list and jobs
    are kept for JOB_TTL.
    """

    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs
        self.redis = jobs.redis
        self.ttl_s = jobs.job_ttl_s

    @redis_boundary()
    def create(self, batch: Batch, jobs: list[Job]) -> None:
        """Store every job and then the batch that lists them (in input order)."""
        jobs_key = BATCH_JOBS_KEY.format(batch_id=batch.id)
        for start in range(0, len(jobs), WRITE_CHUNK):
            chunk = jobs[start : start + WRITE_CHUNK]
            pipe = self.redis.pipeline(transaction=True)
            self.jobs.stage_create_unlisted(pipe, chunk)
            pipe.rpush(jobs_key, *[job.id for job in chunk])
            pipe.execute()
        stats_key = BATCH_STATS_KEY.format(batch_id=batch.id)
        sequence = self.redis.incr(BATCH_SEQUENCE_KEY)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(stats_key, mapping={"total": batch.total, JobStatus.QUEUED.value: batch.total, "finished": 0})
        pipe.set(BATCH_KEY.format(batch_id=batch.id), batch.model_dump_json())
        pipe.zadd(BATCH_OWNER_INDEX_KEY.format(owner=batch.owner), {batch.id: sequence})
        pipe.sadd(OPEN_BATCHES_KEY, batch.id)
        pipe.execute()
        # Only an accepted batch's lines can be taken: a submission that dies before its record is stored leaves
        # lines in no owner's line, which the reconciler cancels.
        for start in range(0, len(jobs), WRITE_CHUNK):
            chunk = jobs[start : start + WRITE_CHUNK]
            pipe = self.redis.pipeline(transaction=True)
            self.jobs.stage_into_lines(pipe, chunk)
            pipe.execute()

    @redis_boundary()
    def get(self, batch_id: str) -> Batch | None:
        """The batch record, or None if it never existed or has expired."""
        raw = self.redis.get(BATCH_KEY.format(batch_id=batch_id))
        return Batch.model_validate_json(raw) if raw else None

    def get_for_owner(self, batch_id: str, owner: str) -> Batch:
        """The batch if this owner may see it; another owner's batch is as unknown as a missing one."""
        return owned_by(self.get(batch_id), owner, BatchNotFound(f"no batch with id {batch_id!r}"))

    @redis_boundary()
    def view(self, batch: Batch) -> BatchView:
        """The batch object the API returns: status, counts by job status, times, tokens so far."""
        return batch_view(batch, self.redis.hgetall(BATCH_STATS_KEY.format(batch_id=batch.id)))

    @redis_boundary()
    def list_for_owner(self, owner: str, *, limit: int, before_sequence: int | None) -> tuple[list[Batch], int | None]:
        """Up to `limit` batches, newest first, older than the cursor; returns them and the next cursor."""
        shed_expired_index_entries(self.redis)
        return page_newest_first(
            self.redis,
            BATCH_OWNER_INDEX_KEY.format(owner=owner),
            self._load_many,
            limit=limit,
            before_sequence=before_sequence,
        )

    def _load_many(self, batch_ids: list[str]) -> list[Batch | None]:
        raws = self.redis.mget([BATCH_KEY.format(batch_id=batch_id) for batch_id in batch_ids])
        return [Batch.model_validate_json(raw) if raw else None for raw in raws]

    def job_ids(self, batch_id: str) -> Iterator[list[str]]:
        """The batch's job ids in input order, a chunk at a time."""
        key = BATCH_JOBS_KEY.format(batch_id=batch_id)
        start = 0
        while True:
            with redis_boundary():
                chunk = self.redis.lrange(key, start, start + READ_CHUNK - 1)
            if not chunk:
                return
            yield chunk
            start += READ_CHUNK

    def jobs_in_order(self, batch_id: str) -> Iterator[tuple[str, Job | None]]:
        """Each job id of the batch in input order with its job (None once expired), read a chunk at a time."""
        for chunk in self.job_ids(batch_id):
            yield from zip(chunk, self.jobs.get_many(chunk), strict=True)

    def result_lines(self, batch_id: str) -> Iterator[str]:
        """One JSON line per input line, in input order; read and sent a chunk at a time, never all at once."""
        for job_id, job in self.jobs_in_order(batch_id):
            yield BatchResultLine.of(job_id, job).jsonl()

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

        with redis_boundary():
            watched_update(self.redis, [key], mark_canceled)
        canceled = 0
        for chunk in self.job_ids(batch.id):
            canceled += self.jobs.cancel_queued(chunk)
        self.complete_if_done(batch.id)
        return canceled

    @redis_boundary()
    def complete_if_done(self, batch_id: str) -> None:
        """Complete the batch if its last job has finished (see core/jobs/transition_effects.py)."""
        complete_batch_if_done(self.redis, batch_id, self.ttl_s, [])

    @redis_boundary()
    def complete_finished_batches(self) -> None:
        """Complete any batch whose last job finished while its completion was cut short (a crash, Redis away)."""
        for batch_id in self.redis.smembers(OPEN_BATCHES_KEY):
            complete_batch_if_done(self.redis, batch_id, self.ttl_s, [])

    @redis_boundary()
    def update_webhook(self, batch_id: str, change: Callable[[WebhookRecord], None]) -> None:
        """Record a delivery attempt on the batch's `webhook` (`change` edits the record in place)."""
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
