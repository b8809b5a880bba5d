"""Samples the service's figures into the metrics history (core/metrics/history.py) once per period.

Every ops worker runs one; the history's per-period claim keeps their samples from doubling up.
"""

from __future__ import annotations

import logging
import threading

import redis

from broker.kombu_redis import priority_lists
from core.errors import StoreUnavailable
from core.metrics.history import MetricsHistory
from core.metrics.service import read_figures
from core.settings import Settings

log = logging.getLogger("llm.metrics")


class MetricsSampler:
    """Takes a sample at the start of every period of METRICS_SAMPLE_SECONDS (on Redis's clock)."""

    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self.client = client
        self.queue_lists = priority_lists(settings.gpu_queue)
        self.interval_s = settings.metrics_sample_seconds
        self.history = MetricsHistory(
            client, interval_s=settings.metrics_sample_seconds, window_s=settings.metrics_history_seconds
        )

    def sample_once(self) -> float:
        """Take this period's sample if no sampler has yet; returns the seconds until the next period."""
        figures = read_figures(self.client, self.queue_lists)
        self.history.record(figures)
        into_period = figures.time_s % self.interval_s
        # A little past the next period's start, so clocks a hair apart still land in that period.
        return self.interval_s - into_period + min(0.05, self.interval_s / 10)

    def run(self, stop: threading.Event) -> None:
        """Sample until `stop` is set; Redis being away only skips samples."""
        while not stop.is_set():
            try:
                wait_s = self.sample_once()
            except StoreUnavailable as error:
                log.warning("metrics sample skipped: %s", error)
                wait_s = self.interval_s
            except Exception:  # noqa: BLE001 - the sampler must outlive one bad answer
                log.exception("metrics sample failed")
                wait_s = self.interval_s
            stop.wait(wait_s)
