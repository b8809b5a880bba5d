"""The Redis job store: the one source of truth about jobs and live workers (key names: core/keys.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.batch_store import BatchStore, stage_batch_counts
from core.errors import JobNotFound, StoreUnavailable, WrongState
from core.jobs import ALLOWED_TRANSITIONS, Job, JobStatus, utc_now_iso
from core.keys import (
    CANCEL_KEY,
    JOB_DONE_CHANNEL,
    JOB_KEY,
    JOB_SEQUENCE_KEY,
    OWNER_INDEX_KEY,
    QUEUED_INDEX_KEY,
    RUNNING_INDEX_KEY,
    WORKER_KEY,
    WORKER_KEY_PATTERN,
)
from core.redis_transactions import watched_update
from core.webhook_queue import stage_delivery
from core.webhooks import STATE_PENDING, event_for_status, new_delivery_for

_REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)


def connect(url: str, *, socket_timeout_s: float = 2.0) -> redis.Redis:
    """A Redis client whose calls fail fast instead of hanging when Redis is away."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=socket_timeout_s,
        health_check_interval=30,
        # One quick retry rides over a dropped connection; more would hold callers past their 2 s answer.
        retry=Retry(NoBackoff(), 1),
    )


@contextmanager
def _redis_errors() -> Iterator[None]:
    try:
        yield
    except _REDIS_DOWN as error:
        raise StoreUnavailable(f"the job store is unreachable: {error}", retry_after_s=5) from error


class JobStore:
    """Reads and writes jobs; every status change goes through `transition`, which enforces the table."""

    def __init__(self, client: redis.Redis, *, job_ttl_s: int) -> None:
        self.redis = client
        self.job_ttl_s = job_ttl_s

    def ping(self) -> bool:
        """True when Redis answers."""
        try:
            return bool(self.redis.ping())
        except _REDIS_DOWN:
            return False

    def create(self, job: Job) -> None:
        """Store a new job durably and add it to its owner's listing."""
        with _redis_errors():
            sequence = self.redis.incr(JOB_SEQUENCE_KEY)
            index_key = OWNER_INDEX_KEY.format(owner=job.owner)
            pipe = self.redis.pipeline(transaction=True)
            pipe.set(JOB_KEY.format(job_id=job.id), job.model_dump_json(), ex=self.job_ttl_s)
            pipe.zadd(QUEUED_INDEX_KEY, {job.id: time.time()})
            pipe.zadd(index_key, {job.id: sequence})
            pipe.expire(index_key, self.job_ttl_s)
            pipe.execute()

    def delete(self, job_id: str, owner: str) -> None:
        """Remove a job that was never accepted (its publishing failed)."""
        with _redis_errors():
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(JOB_KEY.format(job_id=job_id))
            pipe.zrem(QUEUED_INDEX_KEY, job_id)
            pipe.zrem(OWNER_INDEX_KEY.format(owner=owner), job_id)
            pipe.execute()

    def get(self, job_id: str) -> Job | None:
        """The job, or None if it never existed or has expired."""
        with _redis_errors():
            raw = self.redis.get(JOB_KEY.format(job_id=job_id))
        return Job.model_validate_json(raw) if raw else None

    def get_for_owner(self, job_id: str, owner: str) -> Job:
        """The job if this owner may see it; another owner's job is as unknown as a missing one."""
        job = self.get(job_id)
        if job is None or job.owner != owner:
            raise JobNotFound(f"no job with id {job_id!r}")
        return job

    def transition(
        self,
        job_id: str,
        to_status: JobStatus,
        change: Callable[[Job], None] | None = None,
        *,
        attempt: int | None = None,
    ) -> Job:
        """Atomically move a job to `to_status` (if the table allows) and apply `change` to it.

        With `attempt`, only that attempt of the job may do it: a superseded execution records nothing.
        """
        key = JOB_KEY.format(job_id=job_id)

        def step(pipe: redis.client.Pipeline) -> Job:
            raw = pipe.get(key)
            if raw is None:
                raise JobNotFound(f"no job with id {job_id!r}")
            job = Job.model_validate_json(raw)
            if to_status not in ALLOWED_TRANSITIONS[job.status]:
                raise WrongState(f"job {job_id} is {job.status.value}; it cannot become {to_status.value}")
            if attempt is not None and job.attempts != attempt:
                raise WrongState(f"job {job_id} is on attempt {job.attempts}, not {attempt}")
            from_status, job.status = job.status, to_status
            if change is not None:
                change(job)
            pipe.multi()
            self._stage_write(pipe, job, from_status)
            return job

        with _redis_errors():
            job = watched_update(self.redis, [key], step)
        self._after_write([job])
        return job

    def _stage_write(self, pipe: redis.client.Pipeline, job: Job, from_status: JobStatus) -> None:
        """Queue, in one transaction, a changed job and everything its change raises."""
        delivery = self._webhook_delivery(job)  # first: it notes the event as pending on the job we write
        pipe.set(JOB_KEY.format(job_id=job.id), job.model_dump_json(), ex=self.job_ttl_s)
        if from_status == JobStatus.QUEUED:
            pipe.zrem(QUEUED_INDEX_KEY, job.id)
        if from_status == JobStatus.RUNNING:
            pipe.srem(RUNNING_INDEX_KEY, job.id)
        if job.status == JobStatus.QUEUED:
            pipe.zadd(QUEUED_INDEX_KEY, {job.id: time.time()})
        elif job.status == JobStatus.RUNNING:
            pipe.sadd(RUNNING_INDEX_KEY, job.id)
        if job.status.is_terminal:
            pipe.delete(CANCEL_KEY.format(job_id=job.id))
        if delivery is not None:
            stage_delivery(pipe, delivery, self.job_ttl_s)
        if job.batch_id is not None:
            stage_batch_counts(pipe, job, from_status, self.job_ttl_s)
        if job.status.is_terminal:
            pipe.publish(JOB_DONE_CHANNEL.format(job_id=job.id), job.status.value)

    def _after_write(self, jobs: list[Job]) -> None:
        """What may follow a committed change: a batch whose last job just finished is completed."""
        for batch_id in {job.batch_id for job in jobs if job.batch_id and job.status.is_terminal}:
            BatchStore(self).complete_if_done(batch_id)

    def cancel_queued(self, job_ids: list[str]) -> int:
        """Cancel, in one transaction, those of these jobs that are still queued; returns how many were."""
        keys = [JOB_KEY.format(job_id=job_id) for job_id in job_ids]

        def step(pipe: redis.client.Pipeline) -> list[Job]:
            changed = []
            for raw in pipe.mget(keys):
                job = Job.model_validate_json(raw) if raw else None
                if job is not None and job.status == JobStatus.QUEUED:
                    job.status = JobStatus.CANCELED
                    job.completed_at = utc_now_iso()
                    job.output = {"text": "", "finish_reason": "canceled"}
                    changed.append(job)
            pipe.multi()
            for job in changed:
                self._stage_write(pipe, job, JobStatus.QUEUED)
            return changed

        with _redis_errors():
            changed = watched_update(self.redis, keys, step)  # a worker may take one meanwhile: then look again
        self._after_write(changed)
        return len(changed)

    @staticmethod
    def _webhook_delivery(job: Job):
        """The webhook event this (just changed) job raises, noting it as pending on the job."""
        event = event_for_status(job.status.value)
        if job.webhook is None or event is None or event not in job.webhook["events"]:
            return None
        job.webhook["state"][event] = STATE_PENDING
        return new_delivery_for(job, event)

    def update_webhook(self, job_id: str, change: Callable[[dict], None]) -> None:
        """Change the job's `webhook` record (delivery attempts) without touching its status."""
        key = JOB_KEY.format(job_id=job_id)

        def step(pipe: redis.client.Pipeline) -> None:
            raw = pipe.get(key)
            job = Job.model_validate_json(raw) if raw else None
            if job is None or job.webhook is None:
                return  # expired: nothing left to record on
            change(job.webhook)
            pipe.multi()
            pipe.set(key, job.model_dump_json(), keepttl=True)

        with _redis_errors():
            watched_update(self.redis, [key], step)

    def list_for_owner(
        self, owner: str, *, status: JobStatus | None, limit: int, before_sequence: int | None
    ) -> tuple[list[Job], int | None]:
        """Up to `limit` jobs, newest first, older than the cursor; returns them and the next cursor."""
        index_key = OWNER_INDEX_KEY.format(owner=owner)
        upper: float | str = f"({before_sequence}" if before_sequence is not None else "+inf"
        found: list[Job] = []
        page_size = max(limit, 50)
        with _redis_errors():
            while len(found) < limit:
                rows = self.redis.zrevrangebyscore(index_key, upper, "-inf", start=0, num=page_size, withscores=True)
                if not rows:
                    return found, None
                raws = self.redis.mget([JOB_KEY.format(job_id=job_id) for job_id, _ in rows])
                for (job_id, sequence), raw in zip(rows, raws, strict=True):
                    upper = f"({int(sequence)}"
                    if raw is None:
                        self.redis.zrem(index_key, job_id)  # expired: tidy the index as we pass
                        continue
                    job = Job.model_validate_json(raw)
                    if status is None or job.status == status:
                        found.append(job)
                        if len(found) == limit:
                            return found, int(sequence)
        return found, None

    def wait_until_terminal(self, job_id: str, timeout_s: float) -> Job:
        """Block until the job is terminal or the timeout passes; returns the job as it then is."""
        deadline = time.monotonic() + timeout_s
        with _redis_errors():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(JOB_DONE_CHANNEL.format(job_id=job_id))
                while True:
                    # Read after subscribing so a completion between the two is never missed.
                    job = self.get(job_id)
                    if job is None:
                        raise JobNotFound(f"job {job_id} expired while waiting")
                    remaining = deadline - time.monotonic()
                    if job.status.is_terminal or remaining <= 0:
                        return job
                    pubsub.get_message(timeout=min(remaining, 1.0))
            finally:
                pubsub.close()

    def request_cancel(self, job_id: str) -> None:
        """Ask the worker running this job to stop it between two decoding steps."""
        with _redis_errors():
            self.redis.set(CANCEL_KEY.format(job_id=job_id), "1", ex=self.job_ttl_s)

    def cancel_requested(self, job_id: str) -> bool:
        with _redis_errors():
            return bool(self.redis.exists(CANCEL_KEY.format(job_id=job_id)))

    def running_job_ids(self) -> list[str]:
        """Every job the store believes is running somewhere."""
        with _redis_errors():
            return list(self.redis.smembers(RUNNING_INDEX_KEY))

    def queued_since_before(self, moment_s: float, limit: int = 10_000) -> list[str]:
        """Jobs queued (or requeued) before `moment_s` and still queued."""
        with _redis_errors():
            return list(self.redis.zrangebyscore(QUEUED_INDEX_KEY, "-inf", moment_s, start=0, num=limit))

    def touch_queued(self, job_ids: list[str]) -> None:
        """Restart the queued clock of jobs just republished, so they are not republished again at once."""
        if job_ids:
            with _redis_errors():
                self.redis.zadd(QUEUED_INDEX_KEY, dict.fromkeys(job_ids, time.time()), xx=True)

    def forget_index_entries(self, job_ids: list[str]) -> None:
        """Drop index entries whose jobs have expired."""
        if job_ids:
            with _redis_errors():
                pipe = self.redis.pipeline(transaction=False)
                pipe.srem(RUNNING_INDEX_KEY, *job_ids)
                pipe.zrem(QUEUED_INDEX_KEY, *job_ids)
                pipe.execute()

    def register_worker(self, name: str, info: dict[str, Any], ttl_s: float) -> None:
        """Announce (or refresh) a live worker that has its model loaded."""
        with _redis_errors():
            self.redis.set(WORKER_KEY.format(name=name), json.dumps(info), px=int(ttl_s * 1000))

    def unregister_worker(self, name: str) -> None:
        """Withdraw a worker that is shutting down."""
        with _redis_errors():
            self.redis.delete(WORKER_KEY.format(name=name))

    def live_workers(self) -> list[dict[str, Any]]:
        """The workers whose heartbeat has not expired."""
        with _redis_errors():
            keys = list(self.redis.scan_iter(match=WORKER_KEY_PATTERN, count=100))
            raws = self.redis.mget(keys) if keys else []
        return [json.loads(raw) for raw in raws if raw]

    def request_cancel_if_running(self, job_id: str) -> Job | None:
        """In one watched transaction: set the cancel flag only if the job is running; returns the job as read."""
        key = JOB_KEY.format(job_id=job_id)

        def step(pipe: redis.client.Pipeline) -> Job | None:
            raw = pipe.get(key)
            job = Job.model_validate_json(raw) if raw else None
            if job is not None and job.status == JobStatus.RUNNING:
                pipe.multi()
                pipe.set(CANCEL_KEY.format(job_id=job_id), "1", ex=self.job_ttl_s)
            return job

        with _redis_errors():
            return watched_update(self.redis, [key], step)  # a worker finishing meanwhile: read it again
