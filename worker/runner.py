"""Running one job: take it, sample resources around its generation, record the outcome once."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from core.errors import JobNotFound, StoreUnavailable, WrongState
from core.jobs import GenerationInput, Job, JobStatus, parse_iso, utc_now_iso
from core.settings import Settings
from core.store import JobStore
from worker.generation import Engine, GenerationResult, classify_failure
from worker.resources import ResourceSampler, log_resources

log = logging.getLogger("llm.worker")

CANCEL_CHECK_S = 0.25  # how stale a "was it canceled?" answer may be; cancels must land within a second
FATAL_EXIT_CODE = 70


@dataclass
class WorkerRuntime:
    """Everything a GPU worker process holds for its whole life: built once, at start."""

    settings: Settings
    store: JobStore
    engine: Engine
    sampler: ResourceSampler
    resource_log: logging.Logger
    worker_name: str
    model_name: str
    started_at: str
    model_load_seconds: float
    dtype_name: str
    # Hands a job id back to the queue (set by the Celery app: the runner itself knows no broker).
    republish: Callable[[str, str], None] = lambda job_id, priority: None
    stopping: threading.Event = field(default_factory=threading.Event)
    deadlines: dict[str, float] = field(default_factory=dict)  # job id -> monotonic deadline, for the watchdog


class StopWatch:
    """The engine's `should_cancel`: true once the job is canceled, past its deadline, or the worker stops."""

    def __init__(self, runtime: WorkerRuntime, job_id: str) -> None:
        self.runtime = runtime
        self.job_id = job_id
        self.deadline = time.monotonic() + runtime.settings.job_timeout_seconds
        self.reason: str | None = None
        self._checked_at = 0.0

    def __call__(self) -> bool:
        if self.reason is None:
            now = time.monotonic()
            if now >= self.deadline:
                self.reason = "timeout"
            elif self.runtime.stopping.is_set():
                self.reason = "shutdown"
            elif now - self._checked_at >= CANCEL_CHECK_S:
                self._checked_at = now
                try:
                    if self.runtime.store.cancel_requested(self.job_id):
                        self.reason = "canceled"
                except StoreUnavailable:
                    pass  # Redis away for a moment: keep generating, ask again next time
        return self.reason is not None


def _seconds_between(start_iso: str, end_iso: str) -> float:
    return round((parse_iso(end_iso) - parse_iso(start_iso)).total_seconds(), 6)


def _metrics(job: Job, result: GenerationResult) -> dict[str, float | None]:
    return {
        "queue_seconds": _seconds_between(job.created_at, job.started_at or job.created_at),
        "time_to_first_token_seconds": (
            round(result.time_to_first_token_s, 6) if result.time_to_first_token_s is not None else None
        ),
        "generation_seconds": round(result.generation_s, 6),
        "tokens_per_second": (
            round(result.completion_tokens / result.generation_s, 3) if result.generation_s > 0 else None
        ),
    }


def _note_execution(settings: Settings, job: Job, worker_name: str) -> None:
    if settings.execution_log is not None:
        with settings.execution_log.open("a", encoding="utf-8") as audit:
            audit.write(f"{utc_now_iso()} {job.id} attempt={job.attempts} worker={worker_name} pid={os.getpid()}\n")


def run_job(runtime: WorkerRuntime, job_id: str) -> None:
    """Execute one queued job; a job that is missing, finished or taken by another execution is skipped."""
    store = runtime.store

    def mark_started(job: Job) -> None:
        job.started_at = utc_now_iso()
        job.completed_at = None
        job.attempts += 1
        job.worker = runtime.worker_name

    try:
        job = store.transition(job_id, JobStatus.RUNNING, mark_started)
    except (JobNotFound, WrongState) as reason:
        log.info("job %s skipped: %s", job_id, reason)  # a redelivered message of a finished job
        return
    _note_execution(runtime.settings, job, runtime.worker_name)
    watch = StopWatch(runtime, job_id)
    runtime.deadlines[job_id] = watch.deadline
    try:
        _generate_and_record(runtime, job, watch)
    finally:
        runtime.deadlines.pop(job_id, None)


def _generate_and_record(runtime: WorkerRuntime, job: Job, watch: StopWatch) -> None:
    params = GenerationInput.model_validate(job.input)
    before, before_line = log_resources(runtime.resource_log, runtime.sampler, "Before generation", job.id)
    result: GenerationResult | None = None
    error: dict[str, str] | None = None
    with runtime.sampler.peak_window() as peak:
        try:
            result = runtime.engine.generate(params, watch)
        except Exception as failure:  # noqa: BLE001 - every failure is classified; a fatal one ends the process
            error, fatal = classify_failure(failure)
            if fatal:
                log.critical("job %s: unrecoverable device error, the worker exits: %s", job.id, failure)
                os._exit(FATAL_EXIT_CODE)  # the supervisor restarts us; the reconciler requeues the job
            if error["type"] == "generation_error":
                log.error("job %s: generation failed", job.id, exc_info=failure)
            runtime.engine.release_cached_memory()
    after, after_line = log_resources(runtime.resource_log, runtime.sampler, "After generation", job.id)
    if runtime.settings.empty_cuda_cache_after_job:
        runtime.engine.release_cached_memory()

    if watch.reason == "shutdown":
        _hand_back(runtime, job)
        return
    if watch.reason == "timeout":
        limit = runtime.settings.job_timeout_seconds
        error = {"type": "timeout", "message": f"the job ran past its deadline of {limit:g} s"}
    final_status = JobStatus.SUCCEEDED
    if watch.reason == "canceled":
        final_status = JobStatus.CANCELED
    elif error is not None:
        final_status = JobStatus.FAILED

    def record_outcome(job: Job) -> None:
        job.completed_at = utc_now_iso()
        job.logs = [*job.logs, before_line, after_line]
        job.resources = {
            "before": before.as_dict(),
            "after": after.as_dict(),
            "peak_vram_allocated_gb": round(peak.allocated_gb, 2),
            "peak_vram_reserved_gb": round(peak.reserved_gb, 2),
            "batch_size": result.batch_size if result is not None else 1,
        }
        if result is not None:
            # Partial text is kept for a canceled or timed-out job.
            job.output = {"text": result.text, "finish_reason": result.finish_reason}
            job.usage = {
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "total_tokens": result.prompt_tokens + result.completion_tokens,
            }
            job.metrics = _metrics(job, result)
        job.error = error

    try:
        _while_redis_is_away(
            lambda: runtime.store.transition(job.id, final_status, record_outcome, attempt=job.attempts)
        )
    except (JobNotFound, WrongState) as reason:
        log.warning("job %s: outcome not recorded (another execution owns it): %s", job.id, reason)
        return
    log.info("job %s %s", job.id, final_status.value)


def _while_redis_is_away(write: Callable[[], object], give_up_after_s: float = 600.0) -> None:
    """Retry a result write while Redis restarts: the result exists only in this process until it is stored."""
    deadline, wait_s = time.monotonic() + give_up_after_s, 0.2
    while True:
        try:
            write()
            return
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            log.warning("Redis unreachable: retrying the result write in %.1f s", wait_s)
            time.sleep(wait_s)
            wait_s = min(wait_s * 2, 5.0)


def _hand_back(runtime: WorkerRuntime, job: Job) -> None:
    """A stopping worker returns its unfinished job to the queue; the interrupted try does not count."""

    def requeue(job: Job) -> None:
        job.attempts -= 1
        job.started_at = None
        job.worker = None

    try:
        runtime.store.transition(job.id, JobStatus.QUEUED, requeue, attempt=job.attempts)
    except (JobNotFound, WrongState):
        return
    runtime.republish(job.id, job.priority)
    log.info("job %s handed back to the queue (the worker is stopping)", job.id)
