"""Running one job: take it, sample resources around its generation, record the outcome once."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from broker.names import priority_step
from core.errors import ErrorType, JobNotFound, StoreUnavailable, WrongState
from core.jobs.model import Job, JobInput, JobStatus, parse_iso, utc_now_iso
from core.jobs.priority import Priority
from core.jobs.records import JobChoice, JobError, JobOutput, JobResources, JobUsage
from core.jobs.store import JobStore
from core.redis.replication import ReplicaAcks
from core.settings import Settings
from core.workers.registry import WorkerRegistry
from core.workers.reservations import WorkerReservations
from worker.generation import Engine, EngineDead, EngineStopped, GenerationResult, classify_failure
from worker.job_log import JobLog
from worker.resources import ResourceSampler, log_resources
from worker.running_jobs import RunningJobs
from worker.token_publisher import TokenPublisher

log = logging.getLogger("llm.worker")

FATAL_EXIT_CODE = 70
# How long a dying worker waits for its job threads to hand their jobs back before it exits anyway.
HAND_BACK_WAIT_S = 15.0
# How long a draining worker's entry stays live without being renewed (renewed while it waits, so a kill -9 then
# leaves its jobs to the reconciler within this).
DRAINING_TTL_S = 3.0
# How much longer a stopping worker retries an outcome Redis won't take (see _while_redis_is_away).
STOPPING_WRITE_WAIT_S = 10.0
# How long a job's start rides out a Redis outage, as its take does.
START_WRITE_WAIT_S = 30.0


@dataclass
class WorkerRuntime:
    """Everything a GPU worker process holds for its whole life: built once, at start, from its settings."""

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
    # Hands a job id back to the queue (the broker's publisher: the runner itself knows no broker).
    republish: Callable[[str, Priority], None]
    running: RunningJobs
    # This worker's heartbeat entry, and the jobs it holds while they wait for a place in the engine.
    workers: WorkerRegistry
    reservations: WorkerReservations
    # Writes each running job's text deltas to its event stream (None: nothing is streamed).
    publisher: TokenPublisher | None = None
    # How many jobs share the model at once: MAX_BATCH_SIZE with continuous batching, 1 when the model is served one
    # job at a time (MAX_BATCH_SIZE=1, or an architecture the batching manager can't run).
    batch_size: int = 1
    stopping: threading.Event = field(default_factory=threading.Event)
    dying: threading.Event = field(default_factory=threading.Event)
    # LOG_DIR/jobs.jsonl: a line per job this worker finishes.
    job_log: JobLog | None = None
    # Confirms an outcome reached REDIS_MIN_REPLICA_ACKS replicas before its message is acknowledged (None: no wait).
    replicas: ReplicaAcks | None = None
    # The jobs this process's threads took and still hold. A reservation of this worker that no thread holds is one
    # whose take's answer was lost on the way (a connection dropped after Redis ran it): seen twice in a row, it goes
    # back to its line (put_back_lost_reservations).
    held: set[str] = field(default_factory=set)
    held_lock: threading.Lock = field(default_factory=threading.Lock)
    unheld_reservations: set[str] = field(default_factory=set)

    def put_back_lost_reservations(self) -> list[str]:
        """Return to their lines (and publish again) this worker's reservations no thread held at the last call
        either; called every heartbeat, so a take that just returned is never mistaken for a lost one."""
        reserved = self.reservations.held_by({self.worker_name})
        with self.held_lock:
            unheld = reserved - self.held
        lost, self.unheld_reservations = unheld & self.unheld_reservations, unheld
        for job in self.store.put_back(sorted(lost), self.worker_name):
            self.republish(job.id, job.priority)
            log.warning("job %s: its take's answer was lost; back in its line", job.id)
        return sorted(lost)

    def exit_after_hand_back(self, reason: str, code: int = FATAL_EXIT_CODE) -> None:
        """The engine can run no more jobs: stop announcing this worker, let the job threads hand their jobs back
        to the queue, then exit for the supervisor to start a fresh process. Safe to call more than once."""
        if self.dying.is_set():
            return
        self.dying.set()
        log.critical("the worker exits (code %d) once its jobs are handed back: %s", code, reason)

        def exit_when_handed_back() -> None:
            # Draining, not withdrawn: /readyz stops counting this worker at once, but the reconciler must not take
            # its running jobs for a dead worker's (and count their try) while their threads hand them back.
            deadline = time.monotonic() + HAND_BACK_WAIT_S
            while time.monotonic() < deadline:
                with contextlib.suppress(StoreUnavailable):
                    self.workers.mark_draining(self.worker_name, ttl_s=DRAINING_TTL_S)
                if self.running.wait_until_empty(DRAINING_TTL_S / 3):
                    break
            else:
                log.critical(
                    "jobs still running after %.0f s: exiting anyway (the reconciler requeues them)", HAND_BACK_WAIT_S
                )
            time.sleep(0.5)  # let the last job threads return, so Celery acknowledges their messages
            with contextlib.suppress(StoreUnavailable):
                self.workers.unregister(self.worker_name)
            logging.shutdown()
            os._exit(code)

        threading.Thread(target=exit_when_handed_back, name="exit", daemon=True).start()


class StopWatch:
    """The engine's `should_cancel`: true once the job is canceled, past its deadline, or the worker stops.

    Its deadline starts when the job's work starts (it is made then); it reads only memory, never Redis.
    """

    def __init__(self, runtime: WorkerRuntime, job_id: str) -> None:
        self.runtime = runtime
        self.job_id = job_id
        self.deadline = time.monotonic() + runtime.settings.job_timeout_seconds
        self.reason: str | None = None

    def __call__(self) -> bool:
        if self.reason is None:
            if time.monotonic() >= self.deadline:
                self.reason = "timeout"
            elif self.runtime.stopping.is_set():
                self.reason = "shutdown"
            elif self.runtime.running.canceled(self.job_id):
                self.reason = "canceled"
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
            round(result.total_completion_tokens / result.generation_s, 3) if result.generation_s > 0 else None
        ),
    }


def job_output(result: GenerationResult, *, canceled: bool) -> JobOutput:
    """The job's `output`: choice 0's text and finish reason, and every choice when there are several; a cancel
    marks every choice (each keeps its partial text)."""

    def reason(finish_reason: str) -> str:
        return "canceled" if canceled else finish_reason

    choices = [
        JobChoice(
            index=index,
            text=choice.text,
            finish_reason=reason(choice.finish_reason),
            completion_tokens=choice.completion_tokens,
            logprobs=choice.logprobs,
        )
        for index, choice in enumerate(result.choices)
    ]
    return JobOutput(
        text=result.text,
        finish_reason=reason(result.finish_reason),
        choices=choices or None,
        logprobs=result.logprobs,
        prompt_logprobs=result.prompt_logprobs,
        prompt_text=result.prompt_text,
    )


def _note_execution(settings: Settings, job: Job, worker_name: str) -> None:
    if settings.execution_log is not None:
        with settings.execution_log.open("a", encoding="utf-8") as audit:
            audit.write(f"{utc_now_iso()} {job.id} attempt={job.attempts} worker={worker_name} pid={os.getpid()}\n")


def run_next_job(runtime: WorkerRuntime, announced_job_id: str) -> None:
    """Take the next queued job in fair order and execute it.

    A message on the GPU queue only says that a job was queued (`announced_job_id`, kept for the log): the job run
    is the one the owners' turns pick (core/jobs/fair_queue.py), so one key's long backlog can't hold back another
    key's job. Messages and queued jobs stay equal in number; a message left over (its job was canceled) finds
    nothing to take.
    """
    job_id = _take_while_redis_is_away(runtime)
    if job_id is None:
        log.info("message for job %s: no queued job left to take", announced_job_id)
        return
    with runtime.held_lock:
        runtime.held.add(job_id)
    try:
        run_job(runtime, job_id)
    finally:
        with contextlib.suppress(StoreUnavailable):
            runtime.reservations.release(runtime.worker_name, job_id)
        with runtime.held_lock:
            runtime.held.discard(job_id)


def _take_while_redis_is_away(runtime: WorkerRuntime, give_up_after_s: float = 30.0) -> str | None:
    """The next job, riding over a short Redis outage; past it the message is dropped, and the reconciler
    publishes again for the jobs left without one."""
    deadline, wait_s = time.monotonic() + give_up_after_s, 0.2
    while True:
        try:
            return runtime.store.take_next(runtime.worker_name)
        except StoreUnavailable:
            if time.monotonic() > deadline or runtime.stopping.is_set():
                raise
            time.sleep(wait_s)
            wait_s = min(wait_s * 2, 5.0)


def run_job(runtime: WorkerRuntime, job_id: str) -> None:
    """Execute one queued job this worker took; a job that is missing, finished or taken by another execution is
    skipped.

    The job stays queued while it waits for its slot in the engine (a cancel then ends it at once), and its
    deadline starts when its work does.
    """
    store = runtime.store
    queued = store.get(job_id)
    if queued is None or queued.status != JobStatus.QUEUED:
        log.info("job %s skipped: it is %s", job_id, queued.status.value if queued else "gone")
        return
    params = queued.input  # typed and valid since the API accepted it

    started_at = utc_now_iso()

    def mark_started(job: Job) -> None:
        job.started_at = started_at
        job.completed_at = None
        job.attempts += 1
        job.worker = runtime.worker_name

    try:
        # A job that already used an attempt was running when its worker died: it may be what kills workers.
        with runtime.engine.slot(params, priority_step(queued.priority), alone=queued.attempts > 0):
            try:
                # A start whose answer Redis lost (a restart between commit and reply) is retried, and then found
                # already done by this worker (_started_here) rather than left running with no thread behind it.
                job = _while_redis_is_away(
                    lambda: store.transition(job_id, JobStatus.RUNNING, mark_started),
                    give_up_after_s=START_WRITE_WAIT_S,
                    stopping=runtime.stopping,
                )
            except (JobNotFound, WrongState) as reason:
                job = _started_here(store, job_id, queued, runtime.worker_name, started_at)
                if job is None:
                    log.info("job %s skipped: %s", job_id, reason)  # canceled while it waited, or taken elsewhere
                    return
            _note_execution(runtime.settings, job, runtime.worker_name)
            watch = StopWatch(runtime, job_id)
            runtime.running.add(job_id, watch.deadline)
            try:
                _generate_and_record(runtime, job, params, watch)
            finally:
                runtime.running.remove(job_id)
    except (EngineStopped, EngineDead) as refusal:
        # Refused before it started: the job is still queued; it goes back to the front of its owner's line, and
        # as the message that brought it goes with this task, one is published anew.
        with contextlib.suppress(StoreUnavailable):
            if store.put_back([job_id], runtime.worker_name):
                runtime.republish(job_id, queued.priority)
        log.info("job %s handed back to the queue before it started: %s", job_id, refusal)
        if isinstance(refusal, EngineDead):
            runtime.exit_after_hand_back(str(refusal))


def _started_here(store: JobStore, job_id: str, queued: Job, worker: str, started_at: str) -> Job | None:
    """The job, if this very start was written and only its answer lost (a connection dropped after Redis ran the
    transaction, and the retry found it running): else the start really was refused."""
    with contextlib.suppress(StoreUnavailable):
        found = store.get(job_id)
        if (
            found is not None
            and found.status == JobStatus.RUNNING
            and (found.worker, found.started_at, found.attempts) == (worker, started_at, queued.attempts + 1)
        ):
            log.info("job %s: its start was written, its answer lost; it runs", job_id)
            return found
    return None


def _generate_and_record(runtime: WorkerRuntime, job: Job, params: JobInput, watch: StopWatch) -> None:
    before, before_line = log_resources(runtime.resource_log, runtime.sampler, "Before generation", job.id)
    result: GenerationResult | None = None
    error: JobError | None = None
    with runtime.sampler.peak_window() as peak:
        try:
            result = _generate_streamed(runtime, job, params, watch)
        except EngineStopped:
            _hand_back(runtime, job, "the worker is stopping")
            return
        except EngineDead as death:
            # Not the job's fault: it runs again on a fresh worker; this one exits once its jobs are handed back.
            _hand_back(runtime, job, f"the engine died: {death}")
            runtime.exit_after_hand_back(str(death))
            return
        except Exception as failure:  # noqa: BLE001 - every failure is classified; a fatal one ends the process
            error, fatal = classify_failure(failure)
            if fatal:
                log.critical("job %s: unrecoverable device error: %s", job.id, failure)
                _hand_back(runtime, job, "the device failed")
                runtime.exit_after_hand_back(f"unrecoverable device error: {failure}")
                return
            if error.type == ErrorType.ENGINE_FAILED:
                log.error("job %s: generation failed", job.id, exc_info=failure)
            runtime.engine.release_cached_memory()
    after, after_line = log_resources(runtime.resource_log, runtime.sampler, "After generation", job.id)
    if runtime.settings.empty_cuda_cache_after_job:
        runtime.engine.release_cached_memory()

    if watch.reason == "shutdown":
        _hand_back(runtime, job, "the worker is stopping")
        return
    if watch.reason == "timeout":
        limit = runtime.settings.job_timeout_seconds
        error = JobError(type=ErrorType.JOB_TIMED_OUT, message=f"the job ran past its deadline of {limit:g} s")
        if result is not None:
            result = replace(
                result,
                finish_reason="timeout",
                choices=tuple(replace(choice, finish_reason="timeout") for choice in result.choices),
            )

    def record_outcome(job: Job, cancel_requested: bool) -> JobStatus:
        job.completed_at = utc_now_iso()
        job.logs = [*job.logs, before_line, after_line]
        job.resources = JobResources(
            before=before,
            after=after,
            peak_vram_allocated_gb=round(peak.allocated_gb, 2),
            peak_vram_reserved_gb=round(peak.reserved_gb, 2),
            batch_size=result.batch_size if result is not None else 1,
        )
        # A cancel accepted after the engine's last look still wins over success: its caller was told 202.
        canceled = error is None and (watch.reason == "canceled" or cancel_requested)
        if result is not None:
            # Partial text is kept for a canceled or timed-out job.
            job.output = job_output(result, canceled=canceled)
            # The prompt is counted once, however many choices were sampled from it.
            job.usage = JobUsage(
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.total_completion_tokens,
                total_tokens=result.prompt_tokens + result.total_completion_tokens,
            )
            job.metrics = _metrics(job, result)
        job.error = error
        if canceled:
            return JobStatus.CANCELED
        return JobStatus.FAILED if error is not None else JobStatus.SUCCEEDED

    try:
        recorded = _record_durably(runtime, job, record_outcome)
    except (JobNotFound, WrongState) as reason:
        log.warning("job %s: outcome not recorded (another execution owns it): %s", job.id, reason)
        return
    log.info("job %s %s", job.id, recorded.status.value)
    if runtime.job_log is not None:
        runtime.job_log.write(recorded)


def _generate_streamed(runtime: WorkerRuntime, job: Job, params: JobInput, watch: StopWatch):
    """The engine's result, its text streamed as it grows; all of it is written before the outcome is recorded
    (a job that fails or goes back to the queue streams nothing more)."""
    if runtime.publisher is None:
        return runtime.engine.generate(params, watch)
    feed = runtime.publisher.open(job.id, job.attempts, params.stop)
    try:
        result = runtime.engine.generate(params, watch, feed.on_tokens, on_logprobs=feed.on_logprobs)
    except BaseException:
        feed.close()
        raise
    feed.finish(result.text, result.logprobs)
    return result


def _while_redis_is_away(
    write: Callable[[], Job], give_up_after_s: float = 600.0, stopping: threading.Event | None = None
) -> Job:
    """Retry a result write while Redis restarts: the result exists only in this process until it is stored.

    Once the worker is `stopping`, it waits STOPPING_WRITE_WAIT_S more at most: whoever stops it (make run, docker,
    systemd) kills it soon anyway, and a job whose outcome was never written is still `running` in Redis, where the
    reconciler finds it once this worker's heartbeat lapses and queues it again; nothing is lost but this try.
    """
    deadline, wait_s = time.monotonic() + give_up_after_s, 0.2
    while True:
        try:
            return write()
        except StoreUnavailable:
            if stopping is not None and stopping.is_set():
                deadline = min(deadline, time.monotonic() + STOPPING_WRITE_WAIT_S)
                stopping = None  # the stop's bound is set once, from when it was first seen
            if time.monotonic() > deadline:
                raise
            log.warning("Redis unreachable: retrying the result write in %.1f s", wait_s)
            time.sleep(wait_s)
            wait_s = min(wait_s * 2, 5.0)


def _record_durably(
    runtime: WorkerRuntime, job: Job, decide: Callable[[Job, bool], JobStatus], give_up_after_s: float = 600.0
) -> Job:
    """Record the outcome, then see it on REDIS_MIN_REPLICA_ACKS replicas before the job's message is acknowledged.

    Replication is asynchronous: an outcome only the master held is lost when a replica takes over, and the job is
    found there still running this attempt. Until the replicas confirm it the outcome is written again, wherever it
    is missing; found already written (by this attempt, on this worker) it is only confirmed again.
    """
    deadline, wait_s, again = time.monotonic() + give_up_after_s, 0.2, False
    while True:
        try:
            recorded = _while_redis_is_away(
                lambda: runtime.store.record_outcome(job.id, job.attempts, decide), stopping=runtime.stopping
            )
        except WrongState:
            if not again:  # the first write: another execution (or a cancel) owns the job, as without replicas
                raise
            found = _while_redis_is_away(lambda: runtime.store.get(job.id), stopping=runtime.stopping)
            ours = found is not None and found.attempts == job.attempts and found.worker == runtime.worker_name
            if not (ours and found.status.is_terminal):
                raise
            recorded = found
        if runtime.replicas is None:
            return recorded
        try:
            runtime.replicas.confirm(job.id)
            return recorded
        except StoreUnavailable as error:
            if time.monotonic() > deadline:
                raise
            log.warning("job %s: outcome not yet on a replica (%s): recorded again in %.1f s", job.id, error, wait_s)
            again = True
            time.sleep(wait_s)
            wait_s = min(wait_s * 2, 5.0)


def _hand_back(runtime: WorkerRuntime, job: Job, why: str) -> None:
    """Return an unfinished job to the queue; the interrupted try does not count (it was not the job's fault)."""

    def requeue(job: Job) -> None:
        job.attempts -= 1
        job.started_at = None
        job.worker = None

    try:
        runtime.store.transition(job.id, JobStatus.QUEUED, requeue, attempt=job.attempts)
    except (JobNotFound, WrongState):
        return
    runtime.republish(job.id, job.priority)
    log.info("job %s handed back to the queue (%s)", job.id, why)
