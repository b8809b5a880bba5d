"""Fault-test fixtures: a Redis of the test's own (to stop and restart), worker processes to kill, fast clocks."""

from __future__ import annotations

import collections
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from api.app import create_app
from core.jobs.store import JobStore, connect
from core.settings import Settings
from core.workers.registry import WorkerRegistry
from launcher.processes import api_command, ops_worker_command, wait_for_worker, worker_command
from launcher.redis_server import RedisServer, free_port
from tests.conftest import FAIRNESS_OFF, ROOT, service_env, stop_process
from tests.polling import is_terminal, wait_until

# Clocks compressed from seconds-to-minutes to fractions of a second, so each fault plays out quickly.
FAST_RECOVERY = {
    "WORKER_HEARTBEAT_SECONDS": "0.5",
    "RECONCILE_INTERVAL_SECONDS": "0.5",
    "STALE_QUEUED_SECONDS": "3",
    "SHUTDOWN_GRACE_SECONDS": "1",
}
LONG_JOB = {"prompt": "Một câu chuyện rất dài", "max_tokens": 1800, "ignore_eos": True, "do_sample": False}


class FaultLab:
    """One test's world: its Redis, its workers, the light worker (reconciler), an execution log on disk."""

    def __init__(self, tmp: Path, model_dir: Path) -> None:
        self.tmp = tmp
        self.model_dir = model_dir
        self.redis = RedisServer(tmp / "redis")
        self.redis.start()
        self.execution_log = tmp / "executions.log"
        self.processes: list[subprocess.Popen] = []
        self.store = JobStore(connect(self.redis.url), job_ttl_s=3600)
        self.workers = WorkerRegistry(self.store.redis)
        self._names = collections.Counter()
        self._closing = False

    def env(self, **extra: str) -> dict[str, str]:
        return service_env(
            self.redis.url,
            self.model_dir,
            self.tmp / "logs",
            EXECUTION_LOG=str(self.execution_log),
            **(FAST_RECOVERY | extra),
        )

    def _spawn(self, command: list[str], label: str, env: dict[str, str]) -> subprocess.Popen:
        self._names[label] += 1
        out = (self.tmp / f"{label}-{self._names[label]}.out").open("w")
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def start_worker(
        self, name: str = "gpu", *, fault: str | None = None, fault_args: tuple[str, ...] = (), **extra: str
    ) -> subprocess.Popen:
        """A GPU worker (CPU here), ready once it has announced its loaded model; `fault` names a wrapper of
        tests/fault_engines.py to put around its engine, `fault_args` other options of tests/fault_worker.py."""
        command = worker_command(f"{name}@%h")
        if fault is not None or fault_args:
            wrapper = [fault] if fault is not None else []
            command = [sys.executable, "-m", "tests.fault_worker", *wrapper, "--hostname", f"{name}@%h", *fault_args]
        process = self._spawn(command, name, self.env(**extra))
        wait_for_worker(self.workers, process, name, timeout_s=120)
        return process

    def keep_worker_running(self, **start_kwargs) -> list[subprocess.Popen]:
        """What systemd, docker or `make run` do: start a worker, and start it again whenever it exits.

        Returns the list of every worker started (the last one is the live one); the first is ready on return.
        """
        workers: list[subprocess.Popen] = [self.start_worker(**start_kwargs)]

        def supervise() -> None:
            while not self._closing:
                if workers[-1].poll() is not None:
                    workers.append(self.start_worker(**start_kwargs))
                time.sleep(0.1)

        threading.Thread(target=supervise, daemon=True).start()
        return workers

    def start_light_worker(self, **extra: str) -> subprocess.Popen:
        """The ops worker, whose reconciler recovers jobs."""
        return self._spawn(ops_worker_command(), "light", self.env(**extra))

    def start_api(self, app: str = "api.wsgi:app", **extra: str) -> str:
        """The API under gunicorn; `app` names another WSGI app to serve (a faulty one) in place of the real."""
        port = free_port()
        real = api_command(f"127.0.0.1:{port}", workers=1)
        command = [app if part == "api.wsgi:app" else part for part in real]
        self._spawn(command, "api", self.env(**extra))
        base_url = f"http://127.0.0.1:{port}"
        import requests

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(f"{base_url}/healthz", timeout=1)
                return base_url
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or still loading the app
                time.sleep(0.1)
        raise RuntimeError("the API did not start")

    def client(self, **overrides):
        """The API in-process (Flask test client) on this lab's Redis."""
        settings = Settings(
            _env_file=None,
            redis_url=self.redis.url,
            log_dir=self.tmp / "logs",
            device="cpu",
            **(FAIRNESS_OFF | overrides),
        )
        return create_app(settings).test_client()

    def submit(self, client, body: dict) -> str:
        response = client.post("/jobs", json=body)
        assert response.status_code == 202, response.get_data(as_text=True)
        return response.get_json()["id"]

    def job(self, job_id: str) -> dict:
        job = self.store.get(job_id)
        assert job is not None, job_id
        return job.public_view()

    def wait(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> float:
        """Poll until `predicate()`; returns the seconds it took."""
        return wait_until(predicate, timeout_s, what)

    def all_done(self, job_ids: list[str]) -> bool:
        return all(is_terminal(self.job(job_id)) for job_id in job_ids)

    def executions(self) -> collections.Counter:
        """How many times each job started, read from the log kept outside Redis."""
        if not self.execution_log.exists():
            return collections.Counter()
        return collections.Counter(line.split()[1] for line in self.execution_log.read_text().splitlines())

    def kill(self, process: subprocess.Popen) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait()

    def close(self) -> None:
        self._closing = True
        time.sleep(0.2)  # the supervising thread sees it before its workers are stopped
        for process in reversed(self.processes):
            stop_process(process, timeout_s=10)
        self.redis.stop()


@pytest.fixture
def lab(tmp_path: Path, demo_model_dir: Path) -> Iterator[FaultLab]:
    world = FaultLab(tmp_path, demo_model_dir)
    yield world
    world.close()
