"""Shared fixtures: a test-owned redis-server, the tiny real model, a real worker process, real HTTP."""

from __future__ import annotations

import base64
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests

from broker.kombu_redis import priority_list_names
from core.jobs.store import JobStore, connect
from core.redis.keys import QUEUED_INDEX_KEY, RUNNING_INDEX_KEY
from core.settings import Settings
from core.workers.registry import WorkerRegistry
from launcher.processes import api_command, ops_worker_command, wait_for_worker, worker_command
from launcher.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
WORKER_START_TIMEOUT_S = 120
# The tests' webhook secret, and a retry schedule compressed from a day to about two seconds.
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"tests-own-webhook-signing-key!!!").decode()
TEST_RETRY_SCHEDULE = "0.25,0.25,0.25,0.25,0.25,0.25,0.25,0.25"
# The session's tests share one Redis and, without API keys, one owner that polls fast and leaves jobs queued on
# queues nobody reads: the per-key rate, queued cap and stream cap are off for them (tests/test_edge_server.py and
# tests/test_stream_bounds.py test them).
FAIRNESS_OFF = {"rate_limit": "", "max_queued_per_key": 10**9, "max_streams_per_key": 10**6}
FAIRNESS_OFF_ENV = {name.upper(): str(value) for name, value in FAIRNESS_OFF.items()}

# The test files that take minutes, longest first (as measured by `pytest --durations` on 2 cores). `make test` runs
# each file whole in one of two processes, handed out in collection order: started first, they leave the short files
# to fill in around them, instead of one process still running a long file picked up last while the other idles.
LONGEST_FILES_FIRST = (
    "tests/faults/test_faults.py",
    "tests/faults/test_job_life_faults.py",
    "tests/faults/test_run_local.py",
    "tests/faults/test_engine_faults.py",
    "tests/faults/test_soak.py",
    "tests/test_large_batch.py",
    "tests/test_openapi_schema.py",
    "tests/hosts/test_hosts.py",
    "tests/test_gpu_sweep_dry_run.py",
    "tests/test_stream_bounds.py",
    "tests/test_engine_variants.py",
    "tests/faults/test_retention.py",
    "tests/faults/test_abuse.py",
    "tests/test_fair_turns.py",
    "tests/faults/test_scale_out.py",
    "tests/faults/test_stuck_consumer.py",
    "tests/test_console.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest files first; every other file, and every test within a file, keeps its order."""
    gone = [path for path in LONGEST_FILES_FIRST if not (ROOT / path).is_file()]
    if gone:
        raise pytest.UsageError(f"LONGEST_FILES_FIRST names files that are gone: {gone}")
    rank = {path: place for place, path in enumerate(LONGEST_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of the tests' own, on a free port."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own: its command counts are the test's alone, and filling, demoting or stopping
    it affects no other test."""
    server = RedisServer(tmp_path / "own-redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def demo_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The random-weight demo model, built once for the session by the project's own script."""
    from scripts.make_demo_model import build_demo_model

    return build_demo_model(tmp_path_factory.mktemp("model"))


@pytest.fixture
def make_settings(redis_server: RedisServer, tmp_path: Path) -> Callable[..., Settings]:
    """Settings for in-process use, pointing at the test Redis; keyword arguments override."""

    def build(**overrides) -> Settings:
        values = {
            "redis_url": redis_server.url,
            "model_dir": tmp_path / "no-model",
            "log_dir": tmp_path / "logs",
            "device": "cpu",
            **FAIRNESS_OFF,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return build


@pytest.fixture
def store(redis_server: RedisServer, request: pytest.FixtureRequest) -> JobStore:
    """The session Redis, with the lines of a GPU queue no worker reads: the jobs a test queues by hand wait there,
    and the session worker's messages never take them in place of the jobs they were published for."""
    return JobStore(connect(redis_server.url), job_ttl_s=3600, queue=unconsumed_queue_name(request))


def unconsumed_queue_name(request: pytest.FixtureRequest) -> str:
    """A queue no worker reads, so a test can count exactly what was enqueued."""
    return f"test-queue-{request.node.name}-{time.monotonic_ns()}"


def queue_length(redis_url: str, queue: str) -> int:
    """Messages waiting on a queue, all priority lists together."""
    client = redis.Redis.from_url(redis_url)
    return sum(int(client.llen(name)) for name in priority_list_names(queue))


@dataclass
class WorkerProcess:
    process: subprocess.Popen
    log_dir: Path
    stdout_path: Path
    env: dict[str, str]

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")


def service_env(redis_url: str, model_dir: Path, log_dir: Path, **extra: str) -> dict[str, str]:
    """The environment the real processes get: everything through the settings' variables."""
    env = dict(os.environ)
    env.update(
        {
            "REDIS_URL": redis_url,
            "MODEL_DIR": str(model_dir),
            "LOG_DIR": str(log_dir),
            "DEVICE": "cpu",
            "WORKER_HEARTBEAT_SECONDS": "1",
            "WEBHOOK_SECRET": WEBHOOK_SECRET,
            # Receivers in these tests listen on loopback.
            "WEBHOOK_ALLOW_PRIVATE": "true",
            "WEBHOOK_RETRY_SCHEDULE_SECONDS": TEST_RETRY_SCHEDULE,
            "WEBHOOK_TIMEOUT_SECONDS": "3",
            # The ops worker samples the metrics history every second, so its tests see it grow quickly.
            "METRICS_SAMPLE_SECONDS": "1",
            "PYTHONUNBUFFERED": "1",
            "TOKENIZERS_PARALLELISM": "false",
            **FAIRNESS_OFF_ENV,
        }
    )
    env.update(extra)
    return env


def start_worker(env: dict[str, str], stdout_path: Path, workers: WorkerRegistry, name: str) -> subprocess.Popen:
    """Start a real Celery GPU worker and wait until it has announced its loaded model."""
    with stdout_path.open("w") as out:
        command = worker_command(f"{name}@%h")
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_worker(workers, process, name, WORKER_START_TIMEOUT_S)
    except RuntimeError as error:
        process.kill()
        raise RuntimeError(f"{error}:\n{stdout_path.read_text()}") from None
    return process


def stop_process(process: subprocess.Popen, timeout_s: float = 20) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# How long a test's running jobs get to end once canceled (a cancel takes effect within a second).
LEFTOVER_CANCEL_TIMEOUT_S = 60
CANCEL_CHUNK = 1000


@pytest.fixture(autouse=True)
def session_redis_left_idle(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that used the session's Redis leaves it idle for the next: what it left queued is canceled, its jobs
    still running on the session worker are canceled and waited for, and records it set `running` by hand (no worker
    will ever end them) leave the running index. Otherwise the session's reconciler would run one test's leftovers
    beside the next test's jobs, changing its timings and batch sizes."""
    if "redis_server" not in request.fixturenames:
        yield
        return
    session_store = JobStore(connect(request.getfixturevalue("redis_server").url), job_ttl_s=3600)
    yield
    queued = session_store.redis.zrange(QUEUED_INDEX_KEY, 0, -1)
    for start in range(0, len(queued), CANCEL_CHUNK):
        session_store.cancel_queued(queued[start : start + CANCEL_CHUNK])
    live = WorkerRegistry(session_store.redis).live_names()
    on_workers = []
    for job_id in session_store.running_job_ids():
        job = session_store.get(job_id)
        if job is not None and job.worker in live:
            session_store.request_cancel_if_running(job_id)
            on_workers.append(job_id)
        else:
            session_store.redis.srem(RUNNING_INDEX_KEY, job_id)
    deadline = time.monotonic() + LEFTOVER_CANCEL_TIMEOUT_S
    while time.monotonic() < deadline and set(on_workers) & set(session_store.running_job_ids()):
        time.sleep(0.1)


@pytest.fixture(scope="session")
def worker(redis_server: RedisServer, demo_model_dir: Path, tmp_path_factory) -> Iterator[WorkerProcess]:
    """One real GPU worker process (on the CPU here) serving the default queue for the whole session."""
    base = tmp_path_factory.mktemp("worker")
    env = service_env(redis_server.url, demo_model_dir, base / "logs")
    stdout_path = base / "worker.out"
    process = start_worker(env, stdout_path, WorkerRegistry(connect(redis_server.url)), "gpu-test")
    yield WorkerProcess(process, base / "logs", stdout_path, env)
    stop_process(process)


@pytest.fixture(scope="session")
def webhook_worker(worker: WorkerProcess, tmp_path_factory) -> Iterator[subprocess.Popen]:
    """The ops worker process (webhook delivery and the reconciler), delivering for the session's jobs."""
    out = (tmp_path_factory.mktemp("webhooks") / "webhooks.out").open("w")
    process = subprocess.Popen(ops_worker_command(), cwd=ROOT, env=worker.env, stdout=out, stderr=subprocess.STDOUT)
    yield process
    stop_process(process)
    out.close()


@dataclass
class HttpServer:
    base_url: str
    process: subprocess.Popen


def start_api_server(env: dict[str, str], out_path: Path, **api_kwargs) -> HttpServer:
    """The API under gunicorn with this environment, once /healthz answers."""
    port = free_port()
    with out_path.open("w") as out:
        process = subprocess.Popen(
            api_command(f"127.0.0.1:{port}", **api_kwargs),
            cwd=ROOT,
            env=dict(env, PORT=str(port)),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return HttpServer(base_url, process)
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or still loading the app
            time.sleep(0.1)
    stop_process(process)
    raise RuntimeError(f"gunicorn did not start:\n{out_path.read_text()}")


@pytest.fixture(scope="session")
def api_server(worker: WorkerProcess, tmp_path_factory) -> Iterator[HttpServer]:
    """The API under gunicorn, over real HTTP, wired to the session's worker."""
    server = start_api_server(worker.env, tmp_path_factory.mktemp("api") / "gunicorn.out")
    yield server
    stop_process(server.process)


@pytest.fixture(scope="session")
def api_server_without_model(worker: WorkerProcess, tmp_path_factory) -> Iterator[HttpServer]:
    """The API as a container of its own runs it: it can't read the model, so the worker alone judges the context."""
    base = tmp_path_factory.mktemp("api-without-model")
    server = start_api_server(dict(worker.env, MODEL_DIR=str(base / "no-model")), base / "gunicorn.out")
    yield server
    stop_process(server.process)
