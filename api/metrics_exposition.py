"""The Prometheus exposition of the service's figures: a collector that reads them from Redis at scrape time.

The figures live in Redis (core/metrics/service.py), written by the processes where things happen, so every API
process renders the same numbers and no multiprocess directory is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from api.services import Services
from broker.kombu_redis import priority_lists
from core.metrics.service import Figures, read_figures

GIB = 1024**3

_HISTOGRAM_HELP = {
    "queue_wait_seconds": "Seconds finished jobs waited from submission to the start of their (last) run.",
    "time_to_first_token_seconds": "Seconds from the start of a finished job's run to its first token.",
    "generation_seconds": "Seconds finished jobs spent generating.",
}


class ServiceCollector(Collector):
    """Yields every metric from one read of the figures."""

    def __init__(self, read: Callable[[], Figures]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        figures = self.read()
        jobs = GaugeMetricFamily("llm_jobs", "Jobs queued or running now.", labels=["status"])
        jobs.add_metric(["queued"], figures.jobs_queued)
        jobs.add_metric(["running"], figures.jobs_running)
        yield jobs
        yield GaugeMetricFamily("llm_jobs_in_flight", "Jobs running now on GPU workers.", value=figures.jobs_running)
        finished = CounterMetricFamily("llm_jobs_finished", "Jobs finished, by final status.", labels=["status"])
        for status, count in figures.jobs_finished.items():
            finished.add_metric([status], count)
        yield finished
        depth = GaugeMetricFamily(
            "llm_queue_depth", "Messages waiting on the GPU queue (not yet taken by a worker).", labels=["priority"]
        )
        for priority, count in figures.queue_depth.items():
            depth.add_metric([priority], count)
        yield depth
        yield CounterMetricFamily(
            "llm_generated_tokens", "Completion tokens of finished jobs.", value=figures.completion_tokens
        )
        yield CounterMetricFamily("llm_prompt_tokens", "Prompt tokens of finished jobs.", value=figures.prompt_tokens)
        for name, histogram in figures.histograms.items():
            yield HistogramMetricFamily(
                f"llm_{name}", _HISTOGRAM_HELP[name], buckets=histogram.buckets, sum_value=histogram.sum
            )
        deliveries = CounterMetricFamily(
            "llm_webhook_deliveries", "Webhook delivery attempts, by what each came to.", labels=["result"]
        )
        for result, count in figures.webhook_deliveries.items():
            deliveries.add_metric([result], count)
        yield deliveries
        yield from _worker_metrics(figures)


def _worker_metrics(figures: Figures) -> Iterator[Metric]:
    """Per GPU worker, from its last heartbeat (a worker that stopped beating shows up 0 until it is forgotten)."""
    up = GaugeMetricFamily("llm_worker_up", "1 while the worker's heartbeat is current.", labels=["worker"])
    gauges = {
        "vram_allocated": GaugeMetricFamily(
            "llm_worker_vram_allocated_bytes", "GPU memory held by tensors.", labels=["worker", "gpu"]
        ),
        "vram_reserved": GaugeMetricFamily(
            "llm_worker_vram_reserved_bytes", "GPU memory reserved by the caching allocator.", labels=["worker", "gpu"]
        ),
        "ram_used": GaugeMetricFamily(
            "llm_worker_ram_used_bytes", "Memory used by the worker's container (or host).", labels=["worker"]
        ),
        "ram_total": GaugeMetricFamily(
            "llm_worker_ram_total_bytes", "Memory limit of the worker's container (or host).", labels=["worker"]
        ),
        "running": GaugeMetricFamily("llm_worker_running_jobs", "Jobs in the worker's batch now.", labels=["worker"]),
        "capacity": GaugeMetricFamily(
            "llm_worker_max_batch_size", "Jobs the worker runs at once (MAX_BATCH_SIZE).", labels=["worker"]
        ),
        "occupancy": GaugeMetricFamily(
            "llm_worker_batch_occupancy", "Share of the worker's batch places in use (0 to 1).", labels=["worker"]
        ),
    }
    for worker in figures.workers:
        up.add_metric([worker.name], 1 if worker.up else 0)
        gpu = worker.gpu or "none"
        if worker.vram_allocated_gb is not None:
            gauges["vram_allocated"].add_metric([worker.name, gpu], worker.vram_allocated_gb * GIB)
        if worker.vram_reserved_gb is not None:
            gauges["vram_reserved"].add_metric([worker.name, gpu], worker.vram_reserved_gb * GIB)
        if worker.ram_used_gb is not None:
            gauges["ram_used"].add_metric([worker.name], worker.ram_used_gb * GIB)
        if worker.ram_total_gb is not None:
            gauges["ram_total"].add_metric([worker.name], worker.ram_total_gb * GIB)
        if worker.running_jobs is not None:
            gauges["running"].add_metric([worker.name], worker.running_jobs)
        if worker.max_batch_size:
            gauges["capacity"].add_metric([worker.name], worker.max_batch_size)
            if worker.running_jobs is not None:
                gauges["occupancy"].add_metric([worker.name], worker.running_jobs / worker.max_batch_size)
    yield up
    yield from gauges.values()


def metrics_registry(services: Services) -> CollectorRegistry:
    """A registry holding only the service's collector (no per-process figures: they would differ between
    the API's processes)."""
    queue_lists = priority_lists(services.settings.gpu_queue)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(lambda: read_figures(services.store.redis, queue_lists)))
    return registry
