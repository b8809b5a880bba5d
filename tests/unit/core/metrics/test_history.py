"""The metrics history: one sample per period whoever takes it, tokens/s between consecutive samples, and a list
bounded by the window."""

from __future__ import annotations

from core.metrics.history import MetricsHistory
from core.metrics.service import Figures, WorkerFigures
from core.redis.keys import METRICS_HISTORY_KEY


def figures(time_s: float, tokens: int = 0, *, workers: list[WorkerFigures] | None = None) -> Figures:
    return Figures(time_s=time_s, jobs_queued=3, jobs_running=1, queue_depth={}, jobs_finished={},
                   completion_tokens=tokens, prompt_tokens=0, webhook_deliveries={}, histograms={},
                   workers=workers or [])  # fmt: skip


def worker(name: str, up: bool) -> WorkerFigures:
    return WorkerFigures(name, up, "gpu", 1.0, 2.0, 3.0, 4.0, 0, 8)


def now_s(client) -> float:
    seconds, microseconds = client.time()
    return seconds + microseconds / 1e6


def test_one_sample_per_period_and_tokens_per_second_between_samples(client):
    history = MetricsHistory(client, interval_s=10, window_s=600)
    start = (now_s(client) // 10) * 10 - 20
    assert history.record(figures(start, 100))
    assert not history.record(figures(start + 5, 150))  # same period: another sampler already took it
    assert history.record(figures(start + 10, 300, workers=[worker("up", True), worker("down", False)]))
    first, second = history.samples()
    assert first.tokens_per_second is None and first.queue_depth == 3 and first.jobs_in_flight == 1
    assert second.tokens_per_second == 20.0 and [w.name for w in second.workers] == ["up"]
    assert history.samples(since_s=start + 1) == [second]


def test_the_list_keeps_only_the_window(client):
    history = MetricsHistory(client, interval_s=1, window_s=3)
    start = now_s(client) - 10
    for n in range(8):
        history.record(figures(start + n, n))
    assert client.llen(METRICS_HISTORY_KEY) == history.max_samples == 4


def test_a_counter_that_went_back_never_gives_a_negative_rate(client):
    history = MetricsHistory(client, interval_s=1, window_s=60)
    start = now_s(client) - 5
    history.record(figures(start, 500))
    history.record(figures(start + 1, 10))  # Redis was emptied meanwhile
    assert history.samples()[-1].tokens_per_second == 0.0
