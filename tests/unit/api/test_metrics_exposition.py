"""The Prometheus collector: one read of the service's figures rendered as metric families."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from api.metrics_exposition import GIB, ServiceCollector, metrics_registry
from core.metrics.service import Figures, Histogram, WorkerFigures

FIGURES = Figures(
    time_s=1000.0,
    jobs_queued=4,
    jobs_running=2,
    queue_depth={"high": 1, "normal": 3},
    jobs_finished={"succeeded": 7, "failed": 1},
    completion_tokens=120,
    prompt_tokens=40,
    webhook_deliveries={"delivered": 2},
    histograms={"generation_seconds": Histogram(buckets=[("1.0", 3), ("+Inf", 8)], sum=9.5, count=8)},
    workers=[
        WorkerFigures("gpu-a", True, "H100", 1.0, 2.0, 3.0, 16.0, 2, 8),
        WorkerFigures("gpu-b", False, None, None, None, None, None, None, None),
    ],
)


def rendered(figures: Figures) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(lambda: figures))
    return generate_latest(registry).decode()


def test_job_queue_and_token_figures_become_metrics():
    text = rendered(FIGURES)
    expected = [
        'llm_jobs{status="queued"} 4.0',
        "llm_jobs_in_flight 2.0",
        'llm_jobs_finished_total{status="failed"} 1.0',
        'llm_queue_depth{priority="normal"} 3.0',
        "llm_generated_tokens_total 120.0",
        "llm_prompt_tokens_total 40.0",
        'llm_generation_seconds_bucket{le="+Inf"} 8.0',
        "llm_generation_seconds_sum 9.5",
        'llm_webhook_deliveries_total{result="delivered"} 2.0',
    ]
    for line in expected:
        assert line in text, line


def test_each_worker_has_its_gauges_and_a_silent_one_shows_down():
    text = rendered(FIGURES)
    assert 'llm_worker_up{worker="gpu-a"} 1.0' in text and 'llm_worker_up{worker="gpu-b"} 0.0' in text
    assert f'llm_worker_vram_reserved_bytes{{gpu="H100",worker="gpu-a"}} {2.0 * GIB:.9e}' in text
    assert 'llm_worker_batch_occupancy{worker="gpu-a"} 0.25' in text
    assert 'llm_worker_running_jobs{worker="gpu-b"}' not in text


def test_the_registry_reads_the_services_redis(api):
    text = generate_latest(metrics_registry(api.app.extensions["llm"])).decode()
    assert "llm_jobs_in_flight" in text and "python_gc" not in text
