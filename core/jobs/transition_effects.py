"""What a job's status change sets off, for both stores: staged in the change's own transaction (webhook
outbox, batch counters, index expiry, the done message, the status entry of its event stream, the service's
metrics), or run once it is committed (completing its batch)."""

from __future__ import annotations

import redis

from core.batches.model import Batch, BatchStatus
from core.batches.view import batch_view
from core.events.stream import stage_expiry, stage_status
from core.jobs.model import Job, JobStatus, utc_now_iso
from core.jobs.records import WebhookState
from core.metrics.service import stage_job_finished
from core.owners.index import stage_index_expiry
from core.redis.keys import (
    BATCH_JOBS_KEY,
    BATCH_KEY,
    BATCH_OWNER_INDEX_KEY,
    BATCH_STATS_KEY,
    JOB_DONE_CHANNEL,
    JOB_KEY,
    OPEN_BATCHES_KEY,
    OWNER_INDEX_KEY,
    QUEUED_PER_OWNER_KEY,
)
from core.redis.transactions import watched_update
from core.webhooks.deliveries import EVENT_COMPLETED, event_for_status, new_batch_delivery, new_delivery_for
from core.webhooks.queue import stage_delivery

EXPIRE_CHUNK = 1000  # job keys given their expiry per round trip when a batch completes


def stage_transition_effects(pipe: redis.client.Pipeline, job: Job, from_status: JobStatus, ttl_s: int) -> None:
    """Queue, in the transaction that writes the changed job, everything its change raises.

    Call it before the job is written: it notes a raised webhook event as pending on the job.
    """
    delivery = _webhook_delivery(job)
    if delivery is not None:
        stage_delivery(pipe, delivery, ttl_s)
    # A job canceled while queued has no text: its followers are told, but its stream is not started for it.
    stage_status(
        pipe,
        job.id,
        job.status.value,
        attempt=job.attempts,
        entry=from_status != JobStatus.QUEUED or job.status != JobStatus.CANCELED,
    )
    if job.batch_id is not None:
        _stage_batch_counts(pipe, job, from_status)
    elif job.status.is_terminal:
        stage_index_expiry(pipe, OWNER_INDEX_KEY.format(owner=job.owner), job.id, ttl_s)
        stage_expiry(pipe, job.id, ttl_s)  # a batch's job keeps its stream as long as the job: until the batch ends
    if from_status == JobStatus.QUEUED and job.status != JobStatus.QUEUED:
        stage_queued_count(pipe, job.owner, -1)
    elif job.status == JobStatus.QUEUED and from_status != JobStatus.QUEUED:
        stage_queued_count(pipe, job.owner, 1)
    if job.status.is_terminal:
        pipe.publish(JOB_DONE_CHANNEL.format(job_id=job.id), job.status.value)
        stage_job_finished(pipe, job)


def stage_queued_count(pipe: redis.client.Pipeline, owner: str, change: int) -> None:
    """Move the owner's count of queued jobs, in the transaction that queues or unqueues them (so it never
    drifts from the jobs themselves)."""
    pipe.hincrby(QUEUED_PER_OWNER_KEY, owner, change)


def _webhook_delivery(job: Job):
    """The webhook event this (just changed) job raises, noting it as pending on the job."""
    event = event_for_status(job.status.value)
    if job.webhook is None or event is None or event not in job.webhook.events:
        return None
    job.webhook.state[event] = WebhookState.PENDING
    return new_delivery_for(job, event)


def _stage_batch_counts(pipe: redis.client.Pipeline, job: Job, from_status: JobStatus) -> None:
    """The batch counters a job's transition moves (same transaction, so they never drift)."""
    key = BATCH_STATS_KEY.format(batch_id=job.batch_id)
    pipe.hincrby(key, from_status.value, -1)
    pipe.hincrby(key, job.status.value, 1)
    if job.status == JobStatus.RUNNING:
        pipe.hsetnx(key, "started_at", job.started_at or utc_now_iso())
    if job.status.is_terminal:
        pipe.hincrby(key, "finished", 1)
    if job.status == JobStatus.SUCCEEDED and job.usage:
        pipe.hincrby(key, "completion_tokens", job.usage.completion_tokens)
        pipe.hincrby(key, "prompt_tokens", job.usage.prompt_tokens)


def complete_batch_if_done(client: redis.Redis, batch_id: str, ttl_s: int, just_finished: list[str]) -> None:
    """Once every job of the batch is finished: note the time, raise `batch.completed` (if a webhook waits) and
    start the batch's expiry clock (record, counters, job list and every job), together and once, whoever calls
    it first (the last job's worker, a cancel, or the reconciler's sweep).

    `just_finished`: the batch's jobs that the caller's committed change made terminal.
    """
    stats_key = BATCH_STATS_KEY.format(batch_id=batch_id)
    batch_key = BATCH_KEY.format(batch_id=batch_id)
    jobs_key = BATCH_JOBS_KEY.format(batch_id=batch_id)

    def complete(pipe: redis.client.Pipeline) -> bool:
        """True when the batch is completed but its jobs' expiry clocks may not be set yet."""
        stats = pipe.hgetall(stats_key)
        raw = pipe.get(batch_key)
        if raw is None:
            # No batch record: its submission died midway (it was never accepted), or it expired long ago.
            # Its lines are canceled one by one; each expires from then on, with the leftovers of the submission.
            pipe.multi()
            pipe.srem(OPEN_BATCHES_KEY, batch_id)
            for job_id in just_finished:
                pipe.expire(JOB_KEY.format(job_id=job_id), ttl_s)
                stage_expiry(pipe, job_id, ttl_s)
            pipe.expire(stats_key, ttl_s)
            pipe.expire(jobs_key, ttl_s)
            return False
        if stats.get("completed_at") is not None:
            return bool(pipe.sismember(OPEN_BATCHES_KEY, batch_id))  # a completion cut short: finish it
        if "total" not in stats or int(stats.get("finished", 0)) < int(stats["total"]):
            return False
        now = utc_now_iso()
        batch = Batch.model_validate_json(raw)
        pipe.multi()
        pipe.hset(stats_key, "completed_at", now)
        if batch.webhook is not None:
            batch.webhook.state[EVENT_COMPLETED] = WebhookState.PENDING
            view = batch_view(batch, stats).model_copy(update={"completed_at": now, "status": _status_once_done(batch)})
            pipe.set(batch_key, batch.model_dump_json(), keepttl=True)
            stage_delivery(pipe, new_batch_delivery(view, batch.webhook.url, now), ttl_s)
        for key in (batch_key, stats_key, jobs_key):
            pipe.expire(key, ttl_s)
        stage_index_expiry(pipe, BATCH_OWNER_INDEX_KEY.format(owner=batch.owner), batch_id, ttl_s)
        return True

    if watched_update(client, [stats_key, batch_key], complete):
        # The batch stays open until every job has its clock: a crash midway is finished by the sweep.
        _expire_jobs_of(client, jobs_key, ttl_s)
        client.srem(OPEN_BATCHES_KEY, batch_id)


def _status_once_done(batch: Batch) -> BatchStatus:
    return BatchStatus.CANCELED if batch.cancel_requested_at else BatchStatus.COMPLETED


def _expire_jobs_of(client: redis.Redis, jobs_key: str, ttl_s: int) -> None:
    """Start the expiry clock of every job in a batch's job list (and of its event stream), so its results last as
    long as the batch."""
    start = 0
    while chunk := client.lrange(jobs_key, start, start + EXPIRE_CHUNK - 1):
        pipe = client.pipeline(transaction=False)
        for job_id in chunk:
            pipe.expire(JOB_KEY.format(job_id=job_id), ttl_s)
            stage_expiry(pipe, job_id, ttl_s)
        pipe.execute()
        start += EXPIRE_CHUNK
