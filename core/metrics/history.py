"""The metrics history behind the console's charts: a sample of the service's figures every few seconds, kept
in one bounded Redis list covering the last METRICS_HISTORY_SECONDS.

An ops worker takes the samples (`record`); several may run, and each sampling period gets one sample whoever
takes it. The API reads them back (`samples`).
"""

from __future__ import annotations

import math

import redis
from pydantic import BaseModel, Field

from core.metrics.service import Figures
from core.redis.errors import redis_boundary
from core.redis.keys import METRICS_HISTORY_KEY, METRICS_SAMPLE_CLAIM_KEY


class WorkerMemorySample(BaseModel):
    """One live GPU worker's memory at a sample (GB, as in the job's resource log; null if it did not say)."""

    name: str = Field(description="The worker's name, as in /readyz and the job's `worker`.")
    vram_allocated_gb: float | None
    vram_reserved_gb: float | None
    ram_used_gb: float | None
    ram_total_gb: float | None


class MetricsSample(BaseModel):
    """The service at one moment."""

    timestamp: float = Field(description="Unix time in seconds (Redis's clock) when the sample was taken.")
    queue_depth: int = Field(description="Jobs queued (waiting for the GPU).")
    jobs_in_flight: int = Field(description="Jobs running.")
    tokens_total: int = Field(description="Completion tokens of all finished jobs so far (never goes down).")
    tokens_per_second: float | None = Field(
        description="Completion tokens counted since the previous sample, per second (tokens are counted when "
        "their job ends); null for the first sample."
    )
    workers: list[WorkerMemorySample] = Field(description="The GPU workers alive at that moment.")


class MetricsHistory:
    """Samples of queue depth, jobs in flight, tokens/s and every GPU worker's memory, oldest first."""

    def __init__(self, client: redis.Redis, *, interval_s: float, window_s: int) -> None:
        self.redis = client
        self.interval_s = interval_s
        self.window_s = window_s
        # The list holds a little more than the window, so a period with a late sample never cuts it short.
        self.max_samples = math.ceil(window_s / interval_s) + 1

    @redis_boundary()
    def record(self, figures: Figures) -> bool:
        """Add a sample of these figures, unless this period already has one; True when it was added."""
        slot = int(figures.time_s // self.interval_s)
        claim_ttl_ms = max(1, math.ceil(2 * self.interval_s * 1000))
        if not self.redis.set(METRICS_SAMPLE_CLAIM_KEY.format(slot=slot), "1", nx=True, px=claim_ttl_ms):
            return False
        previous_raw = self.redis.lindex(METRICS_HISTORY_KEY, -1)
        sample = _sample(figures, MetricsSample.model_validate_json(previous_raw) if previous_raw else None)
        pipe = self.redis.pipeline(transaction=True)
        pipe.rpush(METRICS_HISTORY_KEY, sample.model_dump_json())
        pipe.ltrim(METRICS_HISTORY_KEY, -self.max_samples, -1)
        pipe.execute()
        return True

    @redis_boundary()
    def samples(self, since_s: float = 0.0) -> list[MetricsSample]:
        """The samples of the window (Redis's clock), oldest first; with `since_s`, only those taken after it."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.time()
        pipe.lrange(METRICS_HISTORY_KEY, 0, -1)
        (seconds, microseconds), raws = pipe.execute()
        oldest = max(seconds + microseconds / 1e6 - self.window_s, since_s)
        found = (MetricsSample.model_validate_json(raw) for raw in raws)
        return [sample for sample in found if sample.timestamp > oldest]


def _sample(figures: Figures, previous: MetricsSample | None) -> MetricsSample:
    """One sample; tokens/s is the tokens counted between the previous sample and this one, over the time between
    them (tokens are counted when their job ends, so a long job shows up at its end)."""
    tokens_per_second = None
    if previous is not None and figures.time_s > previous.timestamp:
        generated = max(0, figures.completion_tokens - previous.tokens_total)  # Redis emptied: no negative rate
        tokens_per_second = round(generated / (figures.time_s - previous.timestamp), 3)
    return MetricsSample(
        timestamp=round(figures.time_s, 3),
        queue_depth=figures.jobs_queued,
        jobs_in_flight=figures.jobs_running,
        tokens_total=figures.completion_tokens,
        tokens_per_second=tokens_per_second,
        workers=[
            WorkerMemorySample(
                name=worker.name,
                vram_allocated_gb=worker.vram_allocated_gb,
                vram_reserved_gb=worker.vram_reserved_gb,
                ram_used_gb=worker.ram_used_gb,
                ram_total_gb=worker.ram_total_gb,
            )
            for worker in figures.workers
            if worker.up
        ],
    )
