"""The Redis job store: the one source of truth about jobs and live workers (key names: core/redis/keys.py)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import redis

from core.errors import JobNotFound, StoreUnavailable, WrongState
from core.jobs.done_listener import CompletionListener
from core.jobs.fair_queue import FairQueue
from core.jobs.model import ALLOWED_TRANSITIONS, Job, JobStatus, utc_now_iso
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
    RESERVING_WORKERS_KEY,
    RUNNING_INDEX_KEY,
    WORKER_INFO_KEY,
    WORKER_RESERVED_KEY,
    WORKERS_KEY,
)
from core.redis.transactions import watched_update

log = logging.getLogger("llm.store")

# The GPU queue's name when a store is built without one (the GPU_QUEUE setting's default).
DEFAULT_QUEUE = "gpu"
# A synchronous waiter re-reads its job at least this often even if no done message came (a safety net only).
RECHECK_S = 30.0
# While Redis is away, a waiter re-reads its job after this pause, doubled after each failure up to the cap.
OUTAGE_FIRST_RETRY_S = 0.1
OUTAGE_MAX_RETRY_S = 1.0
# How long a waiter rides out an outage unless told otherwise (SYNC_WAIT_OUTAGE_SECONDS for the API's waits).
OUTAGE_RIDDEN_S = 10.0


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
        self._completion_listener: CompletionListener | None = None

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
        self.fair.stage_enqueue(pipe, job.owner, job.priority, [job.id])
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
            self.fair.stage_enqueue(pipe, job.owner, job.priority, [job.id], front=True)
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
                    job.output = {"text": "", "finish_reason": "canceled"}
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
    def update_webhook(self, job_id: str, change: Callable[[dict], None]) -> None:
        """Change the job's `webhook` record (delivery attempts) without touching its status or its expiry.

        `change` edits the record as a dict (`deliveries`, `state`); the result is validated back.
        """
        key = JOB_KEY.format(job_id=job_id)

        def step(pipe: redis.client.Pipeline) -> None:
            raw = pipe.get(key)
            job = Job.model_validate_json(raw) if raw else None
            if job is None or job.webhook is None:
                return  # expired: nothing left to record on
            record = job.webhook.model_dump()
            change(record)
            job.webhook = record
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

    def _load_many(self, job_ids: list[str]) -> list[Job | None]:
        raws = self.redis.mget([JOB_KEY.format(job_id=job_id) for job_id in job_ids])
        return [Job.model_validate_json(raw) if raw else None for raw in raws]

    def wait_until_terminal(self, job_id: str, timeout_s: float, *, outage_s: float = OUTAGE_RIDDEN_S) -> Job:
        """Block until the job is terminal or the timeout passes; returns the job as it then is.

        It sleeps until the job's done message wakes it (one shared subscription per process), re-reading the
        job only then, or every RECHECK_S at most in case Redis went away and came back meanwhile. A read that
        fails is retried, backing off, for up to `outage_s` (a Redis restart); past that the StoreUnavailable
        raised names the job, which exists and goes on.
        """
        deadline = time.monotonic() + timeout_s
        with self._completions().watching(job_id) as woken:
            while True:
                # Registered before reading: a completion between the read and the wait still wakes us.
                woken.clear()
                job = self._read_through_outage(job_id, outage_s)
                if job is None:
                    raise JobNotFound(f"job {job_id} expired while waiting", job_id=job_id)
                remaining = deadline - time.monotonic()
                if job.status.is_terminal or remaining <= 0:
                    return job
                woken.wait(min(remaining, RECHECK_S))

    def _read_through_outage(self, job_id: str, outage_s: float) -> Job | None:
        give_up_at = time.monotonic() + outage_s
        pause_s = OUTAGE_FIRST_RETRY_S
        while True:
            try:
                return self.get(job_id)
            except StoreUnavailable as error:
                if time.monotonic() + pause_s > give_up_at:
                    raise StoreUnavailable(
                        f"the job store is unavailable now; job {job_id} was accepted and goes on: "
                        f"read it at /jobs/{job_id} later",
                        detail=error.detail or str(error),
                        retry_after_s=error.retry_after_s,
                        job_id=job_id,
                    ) from error
                log.warning("job %s: waiting through a store outage (%s)", job_id, error)
                time.sleep(pause_s)
                pause_s = min(pause_s * 2, OUTAGE_MAX_RETRY_S)

    def _completions(self) -> CompletionListener:
        if self._completion_listener is None:
            self._completion_listener = CompletionListener(self.redis)
        return self._completion_listener

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

    def _server_time_s(self) -> float:
        """Redis's clock: heartbeats written and read on different hosts are compared on one clock."""
        seconds, microseconds = self.redis.time()
        return seconds + microseconds / 1e6

    @redis_boundary()
    def register_worker(self, name: str, info: dict[str, Any], ttl_s: float) -> None:
        """Announce (or refresh) a live worker that has its model loaded; it counts as live for `ttl_s`."""

        def beat(pipe: redis.client.Pipeline) -> None:
            now = self._server_time_s()
            # Workers that stopped beating without withdrawing (killed) are forgotten by the next beat.
            dead = [other for other in pipe.zrangebyscore(WORKERS_KEY, "-inf", now) if other != name]
            pipe.multi()
            pipe.hset(WORKER_INFO_KEY, name, json.dumps(info))
            pipe.zadd(WORKERS_KEY, {name: now + ttl_s})
            if dead:
                pipe.zrem(WORKERS_KEY, *dead)
                pipe.hdel(WORKER_INFO_KEY, *dead)

        watched_update(self.redis, [WORKERS_KEY], beat)

    @redis_boundary()
    def mark_worker_draining(self, name: str, ttl_s: float) -> None:
        """A worker handing its jobs back before it exits: still live for `ttl_s` (the reconciler leaves its running
        jobs to it, so their interrupted try is not counted twice), but no longer ready for new work."""

        def drain(pipe: redis.client.Pipeline) -> None:
            now = self._server_time_s()
            raw = pipe.hget(WORKER_INFO_KEY, name)
            info = json.loads(raw) if raw else {"name": name}
            pipe.multi()
            pipe.hset(WORKER_INFO_KEY, name, json.dumps(info | {"draining": True}))
            pipe.zadd(WORKERS_KEY, {name: now + ttl_s})

        watched_update(self.redis, [WORKERS_KEY, WORKER_INFO_KEY], drain)

    @redis_boundary()
    def unregister_worker(self, name: str) -> None:
        """Withdraw a worker that is shutting down."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(WORKERS_KEY, name)
        pipe.hdel(WORKER_INFO_KEY, name)
        pipe.execute()

    @redis_boundary()
    def take_next(self, worker: str) -> str | None:
        """The queued job this worker runs next (by priority, then owners' turns), reserved for it while it waits
        for a place in the engine; None when no job waits."""
        return self.fair.take(worker)

    @redis_boundary()
    def unreserve(self, worker: str, job_id: str) -> None:
        """The job started, or went back to the queue: the worker no longer holds it."""
        self.redis.srem(WORKER_RESERVED_KEY.format(name=worker), job_id)

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
                    self.fair.stage_enqueue(pipe, job.owner, job.priority, [job_id], front=True)
                    pipe.zadd(QUEUED_INDEX_KEY, {job_id: time.time()}, xx=True)
                return job if waiting else None

            with redis_boundary():
                job = watched_update(self.redis, [key], step)
            if job is not None:
                put_back.append(job)
        return put_back

    @redis_boundary()
    def waiting_in_lines(self, job_ids: list[str]) -> dict[str, str]:
        """Which of these queued jobs wait in an owner's line (not taken by a worker), with their priority."""
        return self.fair.waiting_priorities(job_ids)

    @redis_boundary()
    def reserved_by(self, workers: set[str]) -> set[str]:
        """The jobs these workers hold while the jobs wait for a place."""
        if not workers:
            return set()
        return set(self.redis.sunion([WORKER_RESERVED_KEY.format(name=name) for name in workers]))

    @redis_boundary()
    def take_reservations_of(self, gone: Callable[[str], bool]) -> list[str]:
        """The jobs reserved by workers for which `gone(name)` holds; their reservations are dropped."""
        job_ids: list[str] = []
        for name in self.redis.smembers(RESERVING_WORKERS_KEY):
            if not gone(name):
                continue
            key = WORKER_RESERVED_KEY.format(name=name)
            pipe = self.redis.pipeline(transaction=True)
            pipe.smembers(key)
            pipe.delete(key)
            pipe.srem(RESERVING_WORKERS_KEY, name)
            job_ids.extend(pipe.execute()[0])
        return job_ids

    @redis_boundary()
    def live_workers(self) -> list[dict[str, Any]]:
        """The workers whose heartbeat has not run out."""
        names = self.redis.zrangebyscore(WORKERS_KEY, f"({self._server_time_s()}", "+inf")
        raws = self.redis.hmget(WORKER_INFO_KEY, names) if names else []
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

        with redis_boundary():
            return watched_update(self.redis, [key], step)  # a worker finishing meanwhile: read it again
