"""Recovery that does not wait for the broker's visibility timeout.

Runs in the ops worker (beside webhook delivery). Every few seconds it
- returns to the queue the running jobs of workers whose heartbeat stopped (or fails them with `max_attempts`
  once they have used up their attempts, or cancels them if a cancel was pending), and
- puts back in their owners' lines, and publishes again, the queued jobs a dead worker took but never started, and
- publishes again for queued jobs left without a message on the broker (an API that died between storing a job
  and publishing it; a message lost with a worker that died before taking a job), and puts back in a line a queued
  job that is in none and held by no live worker.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from broker.publisher import JobPublisher
from core.batches.store import BatchStore
from core.errors import ErrorType, JobNotFound, StoreUnavailable, WrongState
from core.jobs.model import Job, JobStatus, parse_iso, utc_now_iso
from core.jobs.records import JobError, JobOutput
from core.jobs.store import JobStore
from core.settings import Settings
from core.workers.registry import WorkerRegistry
from core.workers.reservations import WorkerReservations

log = logging.getLogger("llm.reconciler")


class Reconciler:
    """Makes the store and the broker agree again after a crash."""

    def __init__(self, settings: Settings, store: JobStore, publisher: JobPublisher) -> None:
        self.settings = settings
        self.store = store
        self.publisher = publisher
        self.workers = WorkerRegistry(store.redis)
        self.reservations = WorkerReservations(store.redis)
        self.trust_heartbeats_after = 0.0

    def run(self, stop: threading.Event) -> None:
        """Reconcile every RECONCILE_INTERVAL_SECONDS until `stop` is set."""
        while not stop.wait(self.settings.reconcile_interval_seconds):
            try:
                self.run_once()
            except (StoreUnavailable, redis.RedisError) as error:
                log.warning("reconcile skipped, Redis unreachable: %s", error)
                # Heartbeats expired while Redis was away: give live workers time to announce themselves again
                # before taking their jobs for orphans.
                self.trust_heartbeats_after = time.monotonic() + 3 * self.settings.worker_heartbeat_seconds

    def run_once(self) -> None:
        """One pass over running and stale queued jobs."""
        self.recover_orphaned_running_jobs()
        self.republish_reservations_of_dead_workers()
        self.republish_jobs_without_messages()
        BatchStore(self.store).complete_finished_batches()

    def recover_orphaned_running_jobs(self) -> list[str]:
        """Running jobs whose worker is gone (or that overran every deadline): requeued, canceled, or failed."""
        heartbeats_trusted = time.monotonic() >= self.trust_heartbeats_after
        live = self.workers.live_names()
        # Past its deadline, the watchdog's grace and a margin, a job is lost even if its worker still beats.
        overdue_after_s = self.settings.job_timeout_seconds + self.settings.shutdown_grace_seconds + 120
        recovered, expired = [], []
        for job_id in self.store.running_job_ids():
            job = self.store.get(job_id)
            if job is None:
                expired.append(job_id)
                continue
            if job.status != JobStatus.RUNNING:
                continue
            overdue = job.started_at is not None and seconds_since(job.started_at) > overdue_after_s
            if overdue or (heartbeats_trusted and job.worker not in live):
                self._recover(job)
                recovered.append(job_id)
        self.store.forget_index_entries(expired)
        return recovered

    def republish_reservations_of_dead_workers(self) -> list[str]:
        """Queued jobs a dead worker held while they waited for a place: published again at once (their messages
        would otherwise wait out the broker's visibility timeout)."""
        if time.monotonic() < self.trust_heartbeats_after:
            return []
        live = self.workers.live_names()
        republished = []
        for job in self.store.put_back(self.reservations.take_from(lambda name: name not in live)):
            self.publisher.publish(job.id, job.priority)
            republished.append(job.id)
            log.warning("job %s: taken by a worker that died before starting it: back in line", job.id)
        return republished

    def _recover(self, job: Job) -> None:
        dead = job.worker
        try:
            if self.store.cancel_requested(job.id):
                self.store.transition(job.id, JobStatus.CANCELED, _finish_as_canceled, attempt=job.attempts)
                log.warning("job %s: its worker %s died; it was being canceled: canceled", job.id, dead)
            elif job.attempts >= self.settings.max_attempts:
                self.store.transition(job.id, JobStatus.FAILED, _fail_max_attempts, attempt=job.attempts)
                log.error("job %s: its worker died on each of %d attempts: failed", job.id, job.attempts)
            else:
                self.store.transition(job.id, JobStatus.QUEUED, _back_to_queue, attempt=job.attempts)
                self.publisher.publish(job.id, job.priority)
                log.warning("job %s: its worker %s died; back on the queue (attempt %d)", job.id, dead, job.attempts)
        except (JobNotFound, WrongState):
            pass  # it moved on meanwhile (the worker was alive after all, or another reconciler got there)

    def republish_jobs_without_messages(self) -> list[str]:
        """Queued jobs stale for STALE_QUEUED_SECONDS: those in no owner's line and held by no live worker are put
        back in line, and while fewer messages wait on the broker than such jobs wait in lines, more are published
        (each message takes one job, whichever is next)."""
        stale = self.store.queued_since_before(time.time() - self.settings.stale_queued_seconds)
        if not stale:
            return []
        in_lines = self.store.waiting_in_lines(stale)
        republished, expired = [], []
        if time.monotonic() >= self.trust_heartbeats_after:
            held = self.reservations.held_by(self.workers.live_names())
            lost = [job_id for job_id in stale if job_id not in in_lines and job_id not in held]
            republished, expired = self._put_back_lost(lost)
        # Every message takes one job, so each waiting one covers a job in a line; the jobs just put back have
        # theirs already. A message counted here that a fresh job's API is about to publish too makes one spare,
        # which finds nothing to take.
        missing = len(in_lines) - self.publisher.queue_depth(self.store.redis)
        for job_id, priority in list(in_lines.items())[: max(0, missing)]:
            self.publisher.publish(job_id, priority)
            republished.append(job_id)
        if missing > 0:
            log.warning("%d queued jobs had no message on the broker: published again", missing)
        self.store.forget_index_entries(expired)
        # Every job looked at starts a new clock, those with a message too: a long backlog (a big batch) is
        # then scanned once per STALE_QUEUED_SECONDS, not on every pass.
        self.store.touch_queued([job_id for job_id in stale if job_id not in expired])
        return republished

    def _put_back_lost(self, lost: list[str]) -> tuple[list[str], list[str]]:
        """Queued jobs in no line and held by nobody: back in line and published, or canceled when their batch was
        never accepted; returns those published and those expired."""
        republished, expired = [], []
        batches = BatchStore(self.store)
        for job_id in lost:
            job = self.store.get(job_id)
            if job is None:
                expired.append(job_id)
            elif job.status != JobStatus.QUEUED:
                continue
            elif job.batch_id is not None and batches.get(job.batch_id) is None:
                # The API died while storing this batch: it was never accepted, so its lines must not run.
                self.store.cancel_queued([job_id])
                log.warning("job %s: line of a batch whose submission never completed: canceled", job_id)
            else:
                for back in self.store.put_back([job_id]):
                    self.publisher.publish(back.id, back.priority)
                    republished.append(back.id)
                    log.warning("job %s: queued in no line and held by no worker: back in line", job_id)
        return republished, expired


def seconds_since(iso_moment: str) -> float:
    """Seconds elapsed since an ISO 8601 moment."""
    return (parse_iso(utc_now_iso()) - parse_iso(iso_moment)).total_seconds()


def _back_to_queue(job: Job) -> None:
    job.worker = None
    job.started_at = None


def _fail_max_attempts(job: Job) -> None:
    job.completed_at = utc_now_iso()
    job.error = JobError(
        type=ErrorType.MAX_ATTEMPTS,
        message=f"the worker running this job died on each of its {job.attempts} attempts",
    )


def _finish_as_canceled(job: Job) -> None:
    job.completed_at = utc_now_iso()
    job.output = JobOutput(text="", finish_reason="canceled")
