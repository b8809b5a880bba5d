"""The service's figures read back in one round trip: finished jobs and tokens counted by their transitions, the
histograms cumulative, the broker's lists measured, and each worker up or down by its heartbeat."""

from __future__ import annotations

import json

from core.jobs.model import JobStatus
from core.jobs.records import ResourceReading
from core.metrics.service import INF, count_webhook_attempt, read_figures
from core.redis.keys import WORKER_INFO_KEY, WORKERS_KEY
from core.workers.info import WorkerInfo


def finish(store, job_id: str, queue_seconds: float) -> None:
    store.transition(job_id, JobStatus.RUNNING)

    def done(job) -> None:
        job.usage = {"prompt_tokens": 2, "completion_tokens": 7, "total_tokens": 9}
        job.metrics = {"queue_seconds": queue_seconds}

    store.transition(job_id, JobStatus.SUCCEEDED, done)


def test_finished_jobs_and_their_tokens_are_counted(new_job, store, client):
    finish(store, new_job().id, 0.03)
    finish(store, new_job().id, 7200)
    new_job()
    figures = read_figures(client, {})
    assert figures.jobs_queued == 1 and figures.jobs_running == 0
    assert figures.jobs_finished == {"succeeded": 2, "failed": 0, "canceled": 0}
    assert figures.completion_tokens == 14 and figures.prompt_tokens == 4
    wait = figures.histograms["queue_wait_seconds"]
    assert wait.count == 2 and wait.sum == 7200.03
    counts = dict(wait.buckets)
    assert counts["0.01"] == 0 and counts["0.05"] == 1 and counts["14400.0"] == 2 and counts[INF] == 2


def test_webhook_attempts_and_queue_lists_are_read(client):
    count_webhook_attempt(client, "delivered")
    count_webhook_attempt(client, "retrying")
    count_webhook_attempt(client, "retrying")
    client.rpush("broker-high", "m1", "m2")
    figures = read_figures(client, {"high": "broker-high", "low": "broker-low"})
    assert figures.webhook_deliveries["retrying"] == 2 and figures.webhook_deliveries["delivered"] == 1
    assert figures.queue_depth == {"high": 2, "low": 0}


def test_a_worker_is_up_while_its_heartbeat_lasts_and_shows_its_resources(client):
    seconds, _ = client.time()
    client.zadd(WORKERS_KEY, {"live": seconds + 60, "dead": seconds - 60})
    resources = ResourceReading(
        gpu="H100", vram_allocated_gb=3.5, vram_reserved_gb=4.0, ram_used_gb=10.0, ram_total_gb=64.0, ram_percent=15.6
    )
    info = WorkerInfo(name="live", resources=resources, running_jobs=2, max_batch_size=8)
    client.hset(WORKER_INFO_KEY, "live", json.dumps(info.as_json()))
    workers = {worker.name: worker for worker in read_figures(client, {}).workers}
    assert workers["live"].up and workers["live"].gpu == "H100" and workers["live"].running_jobs == 2
    assert not workers["dead"].up and workers["dead"].gpu is None
