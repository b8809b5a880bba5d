"""The service's figures, kept in Redis so that every process reads the same ones.

Writers add to them where the event happens: a job's end is counted in the transaction that records it
(`stage_job_finished`, from the transition effects), a webhook attempt by the ops worker once it is recorded, and
each GPU worker's own gauges travel in its heartbeat. `read_figures` gathers everything in one round trip for
`GET /metrics` and the history sampler; no process keeps figures of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from core.jobs.model import Job, JobStatus
from core.redis.errors import redis_boundary
from core.redis.keys import (
    METRICS_COUNTERS_KEY,
    METRICS_HISTOGRAM_KEY,
    QUEUED_INDEX_KEY,
    RUNNING_INDEX_KEY,
    WORKER_INFO_KEY,
    WORKERS_KEY,
)
from core.workers.info import WorkerInfo

# Seconds; the last bucket, +Inf, is implied. Queue waits run from milliseconds to hours behind a large batch.
HISTOGRAM_BUCKETS: dict[str, tuple[float, ...]] = {
    "queue_wait_seconds": (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400),
    "time_to_first_token_seconds": (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    "generation_seconds": (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
}
# Which value of the job's `metrics` each histogram observes.
_HISTOGRAM_SOURCES = {
    "queue_wait_seconds": "queue_seconds",
    "time_to_first_token_seconds": "time_to_first_token_seconds",
    "generation_seconds": "generation_seconds",
}
INF = "+Inf"

# Counter fields of METRICS_COUNTERS_KEY.
JOBS_FINISHED = "jobs_finished"  # :<terminal status>
COMPLETION_TOKENS = "completion_tokens"
PROMPT_TOKENS = "prompt_tokens"
WEBHOOK_DELIVERIES = "webhook_deliveries"  # :<result>
TERMINAL_STATUSES = tuple(status.value for status in JobStatus if status.is_terminal)
# What one webhook attempt came to: a final state, or "retrying" (it is tried again later).
WEBHOOK_RESULTS = ("delivered", "retrying", "failed", "gone", "refused")


def bucket_field(bound: float) -> str:
    """The hash field of a histogram bucket (its upper bound as written in the exposition)."""
    return repr(float(bound))


def stage_job_finished(pipe: redis.client.Pipeline, job: Job) -> None:
    """Count a job that just became terminal, in the transaction that records it (so counts never drift)."""
    pipe.hincrby(METRICS_COUNTERS_KEY, f"{JOBS_FINISHED}:{job.status.value}", 1)
    if job.usage is not None:
        # A canceled or timed-out job keeps its partial text: its tokens were generated all the same.
        pipe.hincrby(METRICS_COUNTERS_KEY, COMPLETION_TOKENS, job.usage.completion_tokens)
        pipe.hincrby(METRICS_COUNTERS_KEY, PROMPT_TOKENS, job.usage.prompt_tokens)
    for name, source in _HISTOGRAM_SOURCES.items():
        value = (job.metrics or {}).get(source)
        if value is not None:
            _stage_observation(pipe, name, float(value))


def _stage_observation(pipe: redis.client.Pipeline, name: str, value: float) -> None:
    key = METRICS_HISTOGRAM_KEY.format(name=name)
    # Each observation lands in the first bucket that holds it; the exposition adds them up (cumulative).
    bucket = next((bucket_field(bound) for bound in HISTOGRAM_BUCKETS[name] if value <= bound), INF)
    pipe.hincrby(key, bucket, 1)
    pipe.hincrby(key, "count", 1)
    pipe.hincrbyfloat(key, "sum", value)


@redis_boundary()
def count_webhook_attempt(client: redis.Redis, result: str) -> None:
    """Count one webhook attempt by what it came to (one of WEBHOOK_RESULTS)."""
    client.hincrby(METRICS_COUNTERS_KEY, f"{WEBHOOK_DELIVERIES}:{result}", 1)


@dataclass(frozen=True)
class Histogram:
    """One histogram as read: cumulative counts per upper bound (+Inf last), the sum and the count."""

    buckets: list[tuple[str, int]]
    sum: float
    count: int


@dataclass(frozen=True)
class WorkerFigures:
    """What one GPU worker said in its last heartbeat."""

    name: str
    up: bool
    gpu: str | None
    vram_allocated_gb: float | None
    vram_reserved_gb: float | None
    ram_used_gb: float | None
    ram_total_gb: float | None
    running_jobs: int | None
    max_batch_size: int | None


@dataclass(frozen=True)
class Figures:
    """Every figure of the service at one moment (Redis's clock)."""

    time_s: float
    jobs_queued: int
    jobs_running: int
    queue_depth: dict[str, int]  # messages waiting on the broker, per priority
    jobs_finished: dict[str, int]
    completion_tokens: int
    prompt_tokens: int
    webhook_deliveries: dict[str, int]
    histograms: dict[str, Histogram]
    workers: list[WorkerFigures] = field(default_factory=list)


@redis_boundary()
def read_figures(client: redis.Redis, queue_lists: dict[str, str]) -> Figures:
    """Everything, in one pipelined round trip. `queue_lists`: priority -> the broker list holding its messages
    (the caller knows the broker; core does not)."""
    pipe = client.pipeline(transaction=False)
    pipe.time()
    pipe.zcard(QUEUED_INDEX_KEY)
    pipe.scard(RUNNING_INDEX_KEY)
    pipe.hgetall(METRICS_COUNTERS_KEY)
    for name in HISTOGRAM_BUCKETS:
        pipe.hgetall(METRICS_HISTOGRAM_KEY.format(name=name))
    for list_name in queue_lists.values():
        pipe.llen(list_name)
    pipe.zrange(WORKERS_KEY, 0, -1, withscores=True)
    pipe.hgetall(WORKER_INFO_KEY)
    answers = iter(pipe.execute())
    seconds, microseconds = next(answers)
    now = seconds + microseconds / 1e6
    jobs_queued, jobs_running, counters = next(answers), next(answers), next(answers)
    histograms = {name: _histogram(name, next(answers)) for name in HISTOGRAM_BUCKETS}
    queue_depth = {priority: int(next(answers)) for priority in queue_lists}
    beats, infos = next(answers), next(answers)
    return Figures(
        time_s=now,
        jobs_queued=int(jobs_queued),
        jobs_running=int(jobs_running),
        queue_depth=queue_depth,
        jobs_finished={status: _int(counters, f"{JOBS_FINISHED}:{status}") for status in TERMINAL_STATUSES},
        completion_tokens=_int(counters, COMPLETION_TOKENS),
        prompt_tokens=_int(counters, PROMPT_TOKENS),
        webhook_deliveries={result: _int(counters, f"{WEBHOOK_DELIVERIES}:{result}") for result in WEBHOOK_RESULTS},
        histograms=histograms,
        workers=[_worker(name, expires_at > now, infos.get(name)) for name, expires_at in beats],
    )


def _int(counters: dict[str, str], name: str) -> int:
    return int(counters.get(name, 0))


def _histogram(name: str, raw: dict[str, str]) -> Histogram:
    running, buckets = 0, []
    for bound in [bucket_field(bound) for bound in HISTOGRAM_BUCKETS[name]] + [INF]:
        running += int(raw.get(bound, 0))
        buckets.append((bound, running))
    return Histogram(buckets=buckets, sum=float(raw.get("sum", 0.0)), count=int(raw.get("count", 0)))


def _worker(name: str, up: bool, raw_info: str | None) -> WorkerFigures:
    """A heartbeat's figures; a worker from before this release (no `resources`) shows only whether it is up."""
    info = WorkerInfo.model_validate_json(raw_info) if raw_info else WorkerInfo(name=name)
    resources = info.resources
    return WorkerFigures(
        name=name,
        up=up,
        gpu=resources.gpu if resources else None,
        vram_allocated_gb=resources.vram_allocated_gb if resources else None,
        vram_reserved_gb=resources.vram_reserved_gb if resources else None,
        ram_used_gb=resources.ram_used_gb if resources else None,
        ram_total_gb=resources.ram_total_gb if resources else None,
        running_jobs=info.running_jobs,
        max_batch_size=info.max_batch_size,
    )
