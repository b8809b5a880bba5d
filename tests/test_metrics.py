"""GET /metrics and GET /metrics/history end to end: the session's real worker, ops worker and gunicorn API (two
processes); figures read back with prometheus-client's own parser."""

from __future__ import annotations

import http.client
import time
from urllib.parse import urlsplit

import psutil
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from core.jobs.store import connect
from core.metrics.history import MetricsHistory
from core.metrics.service import Figures, read_figures
from launcher.redis_server import free_port
from tests.polling import poll_until
from tests.receivers import Receiver
from tests.test_batches import batch_lines, post_batch, results, wait_for_batch

Samples = dict[tuple[str, frozenset], float]
BATCH_JOBS = 40
HISTOGRAMS = ("llm_queue_wait_seconds", "llm_time_to_first_token_seconds", "llm_generation_seconds")


def parse(text: str) -> Samples:
    """Every sample of the exposition, by name and labels, as Prometheus itself would read it."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def scrape(base_url: str) -> Samples:
    response = requests.get(f"{base_url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    return parse(response.text)


def scrape_naming_the_process(base_url: str, api_processes: list[psutil.Process]) -> tuple[int, Samples]:
    """A scrape on a fresh connection, and the pid of the gunicorn process that answered it (the one holding the
    connection's other end)."""
    address = urlsplit(base_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        connection.connect()
        client_port = connection.sock.getsockname()[1]
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        body = response.read().decode()
        assert response.status == 200, body
        holders = [
            process.pid
            for process in api_processes
            if any(conn.raddr and conn.raddr.port == client_port for conn in process.net_connections("tcp"))
        ]
    finally:
        connection.close()
    assert len(holders) == 1, holders
    return holders[0], parse(body)


def gpu_queue_depth(samples: Samples) -> float:
    return sum(value(samples, "llm_queue_depth", priority=p) for p in ("high", "normal", "low", "batch"))


def test_metrics_move_as_a_batch_runs_and_both_api_processes_agree(api_server):
    api_processes = psutil.Process(api_server.process.pid).children()
    assert len(api_processes) == 2, "the API runs under two gunicorn worker processes"
    # Counts are compared before and after: start once earlier tests' jobs on the GPU queue are done.
    before = poll_until(
        lambda: scrape(api_server.base_url),
        lambda s: gpu_queue_depth(s) == 0 and value(s, "llm_jobs_in_flight") == 0,
        120,
        "an idle GPU queue",
        interval_s=0.2,
    )
    batch = post_batch(api_server.base_url, batch_lines(BATCH_JOBS, "metrics", max_tokens=24))
    during = scrape(api_server.base_url)
    # The worker holds at most 2 x MAX_BATCH_SIZE (16) of them: the rest wait on the broker, all are queued jobs.
    assert value(during, "llm_queue_depth", priority="batch") > 0
    assert value(during, "llm_jobs", status="queued") > value(before, "llm_jobs", status="queued")
    wait_for_batch(api_server.base_url, batch["id"])
    lines = results(api_server.base_url, batch["id"])
    assert [line["status"] for line in lines] == ["succeeded"] * BATCH_JOBS
    tokens = sum(line["usage"]["completion_tokens"] for line in lines)
    prompt_tokens = sum(line["usage"]["prompt_tokens"] for line in lines)

    answers: dict[int, Samples] = {}
    for _ in range(100):  # new connections until each process has answered at least once
        pid, samples = scrape_naming_the_process(api_server.base_url, api_processes)
        answers.setdefault(pid, samples)
        if len(answers) == 2:
            break
    assert len(answers) == 2, "one gunicorn process answered every scrape"
    for after in answers.values():
        assert gpu_queue_depth(after) == 0
        assert value(after, "llm_jobs_in_flight") == 0
        finished = value(after, "llm_jobs_finished_total", status="succeeded")
        assert finished - value(before, "llm_jobs_finished_total", status="succeeded") == BATCH_JOBS
        assert value(after, "llm_generated_tokens_total") - value(before, "llm_generated_tokens_total") == tokens
        assert value(after, "llm_prompt_tokens_total") - value(before, "llm_prompt_tokens_total") == prompt_tokens
        for histogram in HISTOGRAMS:
            counted = value(after, f"{histogram}_count") - value(before, f"{histogram}_count")
            assert counted == BATCH_JOBS, histogram
            assert value(after, f"{histogram}_bucket", le="+Inf") == value(after, f"{histogram}_count")
            assert value(after, f"{histogram}_sum") > value(before, f"{histogram}_sum")
        workers = {labels for name, labels in after if name == "llm_worker_up"}
        session_worker = next(dict(labels)["worker"] for labels in workers if "gpu-test@" in dict(labels)["worker"])
        assert value(after, "llm_worker_up", worker=session_worker) == 1
        assert value(after, "llm_worker_ram_used_bytes", worker=session_worker) > 0
        assert value(after, "llm_worker_vram_allocated_bytes", worker=session_worker, gpu="none") == 0
        assert value(after, "llm_worker_max_batch_size", worker=session_worker) == 8
        assert 0 <= value(after, "llm_worker_batch_occupancy", worker=session_worker) <= 1
    first, second = answers.values()
    # A worker's live figures (its running jobs, memory) are as fresh as its last heartbeat, which may fall between
    # the two scrapes; everything else is read from the same Redis and must be equal.
    assert settled(first) == settled(second), "both API processes read the same figures"


LIVE_WORKER_FIGURES = ("llm_worker_running_jobs", "llm_worker_batch_occupancy", "llm_worker_ram", "llm_worker_vram")


def settled(samples: Samples) -> Samples:
    return {key: figure for key, figure in samples.items() if not key[0].startswith(LIVE_WORKER_FIGURES)}


def test_webhook_deliveries_are_counted_by_result(api_server, webhook_worker):
    receiver = Receiver(free_port()).start()
    try:
        before = scrape(api_server.base_url)
        # One receiver answers 200; nothing listens on the other port, so that delivery is retried.
        for url in (receiver.url, f"http://127.0.0.1:{free_port()}/hook"):
            body = {"prompt": "metrics webhook", "max_tokens": 2, "webhook": url}
            assert requests.post(f"{api_server.base_url}/jobs", json=body, timeout=10).status_code == 202

        def moved(samples: Samples) -> dict[str, float]:
            return {
                result: value(samples, "llm_webhook_deliveries_total", result=result)
                - value(before, "llm_webhook_deliveries_total", result=result)
                for result in ("delivered", "retrying")
            }

        poll_until(
            lambda: moved(scrape(api_server.base_url)),
            lambda change: change["delivered"] >= 1 and change["retrying"] >= 1,
            30,
            "a delivered and a retried attempt",
            interval_s=0.2,
        )
    finally:
        receiver.stop()


def test_history_grows_while_the_ops_worker_samples(api_server, webhook_worker):
    started = time.time()
    url = f"{api_server.base_url}/metrics/history"
    history = poll_until(
        lambda: requests.get(url, timeout=10).json(),
        lambda body: len([s for s in body["samples"] if s["timestamp"] > started]) >= 3,
        30,
        "three new samples",
        interval_s=0.2,
    )
    assert history["interval_seconds"] == 1 and history["window_seconds"] == 3600
    samples = history["samples"]
    stamps = [sample["timestamp"] for sample in samples]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    # One sample per period, whoever takes it (neighbouring periods' samples may lie close together).
    periods = [int(stamp // history["interval_seconds"]) for stamp in stamps]
    assert len(set(periods)) == len(periods)
    newest = samples[-1]
    assert newest["queue_depth"] >= 0 and newest["jobs_in_flight"] >= 0 and newest["tokens_total"] >= 0
    assert newest["tokens_per_second"] is not None and newest["tokens_per_second"] >= 0
    worker = next(w for w in newest["workers"] if w["name"].startswith("gpu-test@"))
    assert worker["ram_used_gb"] > 0 and worker["ram_total_gb"] >= worker["ram_used_gb"]
    assert worker["vram_allocated_gb"] == 0 and worker["vram_reserved_gb"] == 0  # no GPU here
    later = requests.get(url, params={"since": stamps[-2]}, timeout=10).json()["samples"]
    assert later[0]["timestamp"] == stamps[-1]
    assert requests.get(url, params={"since": "-1"}, timeout=10).status_code == 422


def figures_at(time_s: float, tokens: int) -> Figures:
    return Figures(
        time_s=time_s,
        jobs_queued=3,
        jobs_running=2,
        queue_depth={},
        jobs_finished={},
        completion_tokens=tokens,
        prompt_tokens=0,
        webhook_deliveries={},
        histograms={},
    )


def test_one_sample_per_period_whoever_samples_and_the_history_stays_bounded(own_redis):
    client = connect(own_redis.url)
    # Two samplers (two ops workers) in the same period: one sample.
    first = MetricsHistory(client, interval_s=1, window_s=60)
    second = MetricsHistory(client, interval_s=1, window_s=60)
    now = read_figures(client, {}).time_s
    assert [first.record(figures_at(now, 0)), second.record(figures_at(now + 0.01, 0))] == [True, False]
    # A period later the tokens counted in between give the rate.
    assert second.record(figures_at(now + 1, 25))
    samples = first.samples()
    assert [s.tokens_per_second for s in samples] == [None, pytest.approx(25.0, rel=0.02)]
    assert samples[0].queue_depth == 3 and samples[0].jobs_in_flight == 2
    # Two hundred periods later only the window's worth is kept, oldest first.
    for period in range(2, 201):
        first.record(figures_at(now + period, 25))
    assert client.llen("llm:metrics:history") == first.max_samples == 61
    kept = first.samples()
    assert [s.timestamp for s in kept] == [pytest.approx(now + period, abs=0.01) for period in range(140, 201)]
    assert len(first.samples(since_s=kept[-11].timestamp)) == 10
    # A sample older than the window (a sampler whose clock lags, say) is kept in the list but never shown.
    first.record(figures_at(now - 120, 25))
    assert client.llen("llm:metrics:history") == 61 and len(first.samples()) == 60


@pytest.mark.parametrize("path", ["/metrics", "/metrics/history"])
def test_only_an_admin_key_or_a_local_caller_sees_metrics(make_settings, path):
    keyed = create_app(make_settings(api_keys=["user-key", "admin-key"], admin_api_keys=["admin-key"])).test_client()
    assert keyed.get(path).status_code == 401
    assert keyed.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    # Every key's traffic and the workers' hosts together are the operator's view, not any tenant's.
    user = keyed.get(path, headers={"Authorization": "Bearer user-key"})
    assert user.status_code == 403 and user.get_json()["error"]["type"] == "forbidden"
    assert "ADMIN_API_KEYS" in user.get_json()["error"]["message"]
    assert keyed.get(path, headers={"Authorization": "Bearer admin-key"}).status_code == 200
    open_api = create_app(make_settings()).test_client()
    assert open_api.get(path, environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
    refused = open_api.get(path, environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert refused.status_code == 403 and refused.get_json()["error"]["type"] == "forbidden"
