"""The metrics sampler: one sample per period into the history, the wait until the next period."""

from __future__ import annotations

import redis

from core.metrics.history import MetricsHistory
from ops.metrics_sampler import MetricsSampler


def test_a_sample_lands_in_the_history_and_the_next_is_within_a_period(make_settings, own_redis):
    settings = make_settings(redis_url=own_redis.url, metrics_sample_seconds=1)
    client = redis.Redis.from_url(own_redis.url, decode_responses=True)
    wait_s = MetricsSampler(settings, client).sample_once()
    assert 0 < wait_s <= 1.1
    history = MetricsHistory(client, interval_s=1, window_s=settings.metrics_history_seconds)
    samples = history.samples(0)
    assert len(samples) == 1
