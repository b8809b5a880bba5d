"""The Redis job store: the one source of truth about jobs (key names: core/redis/keys.py).

Live workers are in core/workers/registry.py, synchronous waits in core/jobs/waits.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis

from core.errors import JobNotFound, StoreUnavailable, WrongState
from core.jobs.fair_queue import FairQueue
from core.jobs.model import ALLOWED_TRANSITIONS, Job, JobStatus, utc_now_iso
from core.jobs.priority import Priority
from core.jobs.records import JobOutput, WebhookRecord
from core.jobs.transition_effects import complete_batch_if_done, stage_queued_count, stage_transition_effects
from core.owners.index import owned_by, page_newest_first, shed_expired_index_entries
from core.redis.clients import connect  # noqa: F401 - where the tests and benches get it
from core.redis.errors import redis_boundary
from core.redis.keys import (
    CANCEL_KEY,
    JOB_KEY,
    JOB_SEQUENCE_KEY,
    OWNER_INDEX_KEY,
    QUEUED_INDEX_KEY,
    QUEUED_PER_OWNER_KEY,
    RUNNING_INDEX_KEY,
    WORKER_RESERVED_KEY,
)
from core.redis.transactions import watched_update

log = logging.getLogger("llm.store")

# The GPU queue's name when a store is built without one (the GPU_QUEUE setting's default).
DEFAULT_QUEUE = "gpu"


def turns_of(jobs: list[Job]) -> dict[str, int]:
    """The turns each job's take spends in its owner's line: one per row it takes in the batch (its choices)."""
    return {job.id: job.input.choice_count for job in jobs}


class JobStore:
    """Reads and writes jobs; every status change goes through `transition`, which enforces the table.

    Retention: a job never expires while it is queued or running; its JOB_TTL clock starts when it becomes
    terminal (a batch's job: when its batch completes).
    """

    def __init__(self, client: redis.Redis, *, job_ttl_s: int, queue: str = DEFAULT_QUEUE) -> None:
        self.redis = client
        self.job_ttl_s = job_ttl_s
        # Queued jobs wait in their owner's line of this GPU queue until a worker takes one.
        self.fair = FairQueue(client, queue)

    def ping(self) -> bool:
        """True when Redis answers."""
        try:
            with redis_boundary():
                return bool(self.redis.ping())
        except StoreUnavailable:
            return False

    @redis_boundary()
    def create(self, job: Job) -> None:
        """Store a new job durably and add it to its owner's listing."""
        sequence = self.redis.incr(JOB_SEQUENCE_KEY)
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(JOB_KEY.format(job_id=job.id), job.model_dump_json())
        pipe.zadd(QUEUED_INDEX_KEY, {job.id: time.time()})
        pipe.zadd(OWNER_INDEX_KEY.format(owner=job.owner), {job.id: sequence})
        stage_queued_count(pipe, job.owner, 1)
        self.fair.stage_enqueue(pipe, job.owner, job.priority, [job.id], turns=turns_of([job]))
        pipe.execute()

    @redis_boundary()
    def delete(self, job: Job) -> None:
        """Remove a queued job that was never accepted (its publishing failed)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(JOB_KEY.format(job_id=job.id))
        pipe.zrem(QUEUED_INDEX_KEY, job.id)
        pipe.zrem(OWNER_INDEX_KEY.format(owner=job.owner), job.id)
        stage_queued_count(pipe, job.owner, -1)
        self.fair.stage_dequeue(pipe, job.owner, job.priority, [job.id])
        pipe.execute()

    def stage_create_unlisted(self, pipe: redis.client.Pipeline, jobs: list[Job]) -> None:
        """Queue, in the caller's transaction, new queued jobs (a batch's lines) that wait in no owner's line yet,
        so no worker takes one before the caller has accepted them all; `stage_into_lines` lists them then."""
        if not jobs:
            return
        for job in jobs:
            pipe.set(JOB_KEY.format(job_id=job.id), job.model_dump_json())
        pipe.zadd(QUEUED_INDEX_KEY, dict.fromkeys((job.id for job in jobs), time.time()))
        for owner in sorted({job.owner for job in jobs}):
            stage_queued_count(pipe, owner, sum(1 for job in jobs if job.owner == owner))

    def stage_into_lines(self, pipe: redis.client.Pipeline, jobs: list[Job]) -> None:
        """Queue, in the caller's transaction, these queued jobs at the end of their owners' lines."""
        for owner, priority in sorted({(job.owner, job.priority) for job in jobs}):
            same = [job for job in jobs if job.owner == owner and job.priority == priority]
            self.fair.stage_enqueue(pipe, owner, priority, [job.id for job in same], turns=turns_of(same))

    @redis_boundary()
    def queued_count(self, owner: str) -> int:
        """How many of this owner's jobs (batch lines included) are queued now."""
        return max(0, int(self.redis.hget(QUEUED_PER_OWNER_KEY, owner) or 0))

    @redis_boundary()
    def get(self, job_id: str) -> Job | None:
        """The job, or None if it never existed or has expired."""
        raw = self.redis.get(JOB_KEY.format(job_id=job_id))
        return Job.model_validate_json(raw) if raw else None

    def get_for_owner(self, job_id: str, owner: str) -> Job:
        """The job if this owner may see it; another owner's job is as unknown as a missing one."""
        return owned_by(self.get(job_id), owner, JobNotFound(f"no job with id {job_id!r}"))

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

        with redis_boundary():
            job = watched_update(self.redis, [key], step)
        self._after_write([job])
        return job

    def record_outcome(self, job_id: str, attempt: int, decide: Callable[[Job, bool], JobStatus]) -> Job:
        """Finish a running attempt with the status `decide(job, cancel_requested)` picks (and fills in).

        The cancel flag is read inside the same watched transaction: a cancel the API accepted (202) between the
        last check and this write is seen here, so the job ends `canceled`, never `succeeded` after a 202.
        """
        key, cancel_key = JOB_KEY.format(job_id=job_id), CANCEL_KEY.format(job_id=job_id)

        def step(pipe: redis.client.Pipeline) -> Job:
            raw = pipe.get(key)
            if raw is None:
                raise JobNotFound(f"no job with id {job_id!r}")
            job = Job.model_validate_json(raw)
            if job.attempts != attempt or job.status != JobStatus.RUNNING:
                raise WrongState(f"job {job_id} is {job.status.value} on attempt {job.attempts}, not {attempt}")
            from_status = job.status
            job.status = decide(job, bool(pipe.exists(cancel_key)))
            if job.status not in ALLOWED_TRANSITIONS[from_status]:
                raise WrongState(f"job {job_id} is {from_status.value}; it cannot become {job.status.value}")
            pipe.multi()
            self._stage_write(pipe, job, from_status)
            return job

        with redis_boundary():
            job = watched_update(self.redis, [key, cancel_key], step)
        self._after_write([job])
        return job

    @redis_boundary()
    def canceled_among(self, job_ids: list[str]) -> set[str]:
        """Which of these jobs have a pending cancel: one round trip, however many jobs."""
        if not job_ids:
            return set()
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.exists(CANCEL_KEY.format(job_id=job_id))
        return {job_id for job_id, flagged in zip(job_ids, pipe.execute(), strict=True) if flagged}

    def _stage_write(self, pipe: redis.client.Pipeline, job: Job, from_status: JobStatus) -> None:
        """Queue, in one transaction, a changed job, its indexes and everything its change raises."""
        stage_transition_effects(pipe, job, from_status, self.job_ttl_s)  # first: it may note a webhook event
        key = JOB_KEY.format(job_id=job.id)
        if job.status.is_terminal and job.batch_id is None:
            pipe.set(key, job.model_dump_json(), ex=self.job_ttl_s)
        else:
            # Accepted work never expires; a batch's finished job waits for its batch to complete.
            pipe.set(key, job.model_dump_json())
        if from_status == JobStatus.QUEUED:
            pipe.zrem(QUEUED_INDEX_KEY, job.id)
            self.fair.stage_dequeue(pipe, job.owner, job.priority, [job.id])
        if from_status == JobStatus.RUNNING:
            pipe.srem(RUNNING_INDEX_KEY, job.id)
        if job.status == JobStatus.QUEUED:
            pipe.zadd(QUEUED_INDEX_KEY, {job.id: time.time()})
            # Handed back (its worker stopped or died): it goes again before its owner's later jobs.
            self.fair.stage_enqueue(pipe, job.owner, job.priority, [job.id], front=True, turns=turns_of([job]))
        elif job.status == JobStatus.RUNNING:
            pipe.sadd(RUNNING_INDEX_KEY, job.id)
            if job.worker is not None:
                # From here the running index speaks for it: a reservation kept too would have a dead worker's
                # job requeued by one pass and published again by the next.
                pipe.srem(WORKER_RESERVED_KEY.format(name=job.worker), job.id)
        if job.status.is_terminal:
            pipe.delete(CANCEL_KEY.format(job_id=job.id))

    def _after_write(self, jobs: list[Job]) -> None:
        """What follows a committed change: a batch whose last job just finished is completed, and listings
        shed expired entries. The change stands whatever happens here; the reconciler's sweep and the next
        write finish what Redis refused now."""
        finished = [job for job in jobs if job.status.is_terminal]
        if not finished:
            return
        by_batch: dict[str, list[str]] = {}
        for job in finished:
            if job.batch_id is not None:
                by_batch.setdefault(job.batch_id, []).append(job.id)
        try:
            with redis_boundary():
                for batch_id, job_ids in by_batch.items():
                    complete_batch_if_done(self.redis, batch_id, self.job_ttl_s, job_ids)
                shed_expired_index_entries(self.redis)
        except StoreUnavailable as error:
            log.warning("follow-up of a committed change left to the next sweep: %s", error)

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
                    job.output = JobOutput(text="", finish_reason="canceled")
                    changed.append(job)
            pipe.multi()
            for job in changed:
                self._stage_write(pipe, job, JobStatus.QUEUED)
            return changed

        with redis_boundary():
            changed = watched_update(self.redis, keys, step)  # a worker may take one meanwhile: then look again
        self._after_write(changed)
        return len(changed)

    @redis_boundary()
    def update_webhook(self, job_id: str, change: Callable[[WebhookRecord], None]) -> None:
        """Change the job's `webhook` record (delivery attempts) without touching its status or its expiry;
        `change` edits the record in place."""
        key = JOB_KEY.format(job_id=job_id)

        def step(pipe: redis.client.Pipeline) -> None:
            raw = pipe.get(key)
            job = Job.model_validate_json(raw) if raw else None
            if job is None or job.webhook is None:
                return  # expired: nothing left to record on
            change(job.webhook)
            pipe.multi()
            pipe.set(key, job.model_dump_json(), keepttl=True)

        watched_update(self.redis, [key], step)

    @redis_boundary()
    def list_for_owner(
        self, owner: str, *, status: JobStatus | None, limit: int, before_sequence: int | None
    ) -> tuple[list[Job], int | None]:
        """Up to `limit` jobs, newest first, older than the cursor; returns them and the next cursor."""
        shed_expired_index_entries(self.redis)
        return page_newest_first(
            self.redis,
            OWNER_INDEX_KEY.format(owner=owner),
            self._load_many,
            limit=limit,
            before_sequence=before_sequence,
            keep=lambda job: status is None or job.status == status,
        )

    @redis_boundary()
    def get_many(self, job_ids: list[str]) -> list[Job | None]:
        """These jobs in one round trip, in order; None for one that never existed or has expired."""
        return self._load_many(job_ids)

    def _load_many(self, job_ids: list[str]) -> list[Job | None]:
        raws = self.redis.mget([JOB_KEY.format(job_id=job_id) for job_id in job_ids])
        return [Job.model_validate_json(raw) if raw else None for raw in raws]

    @redis_boundary()
    def cancel_requested(self, job_id: str) -> bool:
        """True while a cancel of this (running) job is pending."""
        return bool(self.redis.exists(CANCEL_KEY.format(job_id=job_id)))

    @redis_boundary()
    def running_job_ids(self) -> list[str]:
        """Every job the store believes is running somewhere."""
        return list(self.redis.smembers(RUNNING_INDEX_KEY))

    @redis_boundary()
    def queued_since_before(self, moment_s: float, limit: int = 10_000) -> list[str]:
        """Jobs queued (or requeued) before `moment_s` and still queued."""
        return list(self.redis.zrangebyscore(QUEUED_INDEX_KEY, "-inf", moment_s, start=0, num=limit))

    @redis_boundary()
    def touch_queued(self, job_ids: list[str]) -> None:
        """Restart the queued clock of jobs just republished, so they are not republished again at once."""
        if job_ids:
            self.redis.zadd(QUEUED_INDEX_KEY, dict.fromkeys(job_ids, time.time()), xx=True)

    @redis_boundary()
    def forget_index_entries(self, job_ids: list[str]) -> None:
        """Drop index entries whose jobs have expired."""
        if job_ids:
            pipe = self.redis.pipeline(transaction=False)
            pipe.srem(RUNNING_INDEX_KEY, *job_ids)
            pipe.zrem(QUEUED_INDEX_KEY, *job_ids)
            pipe.execute()

    @redis_boundary()
    def take_next(self, worker: str) -> str | None:
        """The queued job this worker runs next (by priority, then owners' turns), reserved for it while it waits
        for a place in the engine; None when no job waits."""
        return self.fair.take(worker)

    def put_back(self, job_ids: list[str], worker: str | None = None) -> list[Job]:
        """Return taken jobs that never started (their worker stops, dies, or lost them) to the front of their
        owners' lines, in one watched transaction per job (a job that started or ended meanwhile stays as it is),
        and drop `worker`'s reservation of them. Returns the jobs put back."""
        put_back = []
        for job_id in job_ids:
            key = JOB_KEY.format(job_id=job_id)

            def step(pipe: redis.client.Pipeline, job_id: str = job_id, key: str = key) -> Job | None:
                raw = pipe.get(key)
                job = Job.model_validate_json(raw) if raw else None
                # Already back in a line (the reconciler requeued it): nothing more to do, nor to publish.
                waiting = job is not None and job.status == JobStatus.QUEUED and not self.fair.holds(pipe, job_id)
                pipe.multi()
                if worker is not None:
                    pipe.srem(WORKER_RESERVED_KEY.format(name=worker), job_id)
                if waiting:
                    self.fair.stage_enqueue(pipe, job.owner, job.priority, [job_id], front=True, turns=turns_of([job]))
                    pipe.zadd(QUEUED_INDEX_KEY, {job_id: time.time()}, xx=True)
                return job if waiting else None

            with redis_boundary():
                job = watched_update(self.redis, [key], step)
            if job is not None:
                put_back.append(job)
        return put_back

    @redis_boundary()
    def waiting_in_lines(self, job_ids: list[str]) -> dict[str, Priority]:
        """Which of these queued jobs wait in an owner's line (not taken by a worker), with their priority."""
        return self.fair.waiting_priorities(job_ids)

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

        with redis_boundary():
            return watched_update(self.redis, [key], step)  # a worker finishing meanwhile: read it again
