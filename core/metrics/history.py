"""The metrics history behind the console's charts: a sample of the service's figures every few seconds, kept
in one bounded Redis list covering the last METRICS_HISTORY_SECONDS.

An ops worker takes the samples (`record`); several may run, and each sampling period gets one sample whoever
takes it. The API reads them back (`samples`).
"""

from __future__ import annotations

import json
import math
from typing import Any

import redis

from core.metrics.service import Figures
from core.redis.errors import redis_boundary
from core.redis.keys import METRICS_HISTORY_KEY, METRICS_SAMPLE_CLAIM_KEY


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
        sample = _sample(figures, json.loads(previous_raw) if previous_raw else None)
        pipe = self.redis.pipeline(transaction=True)
        pipe.rpush(METRICS_HISTORY_KEY, json.dumps(sample, separators=(",", ":")))
        pipe.ltrim(METRICS_HISTORY_KEY, -self.max_samples, -1)
        pipe.execute()
        return True

    @redis_boundary()
    def samples(self, since_s: float = 0.0) -> list[dict[str, Any]]:
        """The samples of the window (Redis's clock), oldest first; with `since_s`, only those taken after it."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.time()
        pipe.lrange(METRICS_HISTORY_KEY, 0, -1)
        (seconds, microseconds), raws = pipe.execute()
        oldest = max(seconds + microseconds / 1e6 - self.window_s, since_s)
        found = (json.loads(raw) for raw in raws)
        return [sample for sample in found if sample["timestamp"] > oldest]


def _sample(figures: Figures, previous: dict[str, Any] | None) -> dict[str, Any]:
    """One sample; tokens/s is the tokens counted between the previous sample and this one, over the time between
    them (tokens are counted when their job ends, so a long job shows up at its end)."""
    tokens_per_second = None
    if previous is not None and figures.time_s > previous["timestamp"]:
        generated = max(0, figures.completion_tokens - previous["tokens_total"])  # Redis emptied: no negative rate
        tokens_per_second = round(generated / (figures.time_s - previous["timestamp"]), 3)
    return {
        "timestamp": round(figures.time_s, 3),
        "queue_depth": figures.jobs_queued,
        "jobs_in_flight": figures.jobs_running,
        "tokens_total": figures.completion_tokens,
        "tokens_per_second": tokens_per_second,
        "workers": [
            {
                "name": worker.name,
                "vram_allocated_gb": worker.vram_allocated_gb,
                "vram_reserved_gb": worker.vram_reserved_gb,
                "ram_used_gb": worker.ram_used_gb,
                "ram_total_gb": worker.ram_total_gb,
            }
            for worker in figures.workers
            if worker.up
        ],
    }
