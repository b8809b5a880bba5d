"""The command lines of the service's processes, shared by `make run`, the tests and the benchmark."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from core.workers.info import WorkerInfo
from core.workers.registry import WorkerRegistry


def worker_command(hostname: str = "gpu@%h") -> list[str]:
    """The GPU worker: `python -m worker`, a Celery worker whose pool and concurrency follow MAX_BATCH_SIZE."""
    return [sys.executable, "-m", "worker", "--hostname", hostname]


def api_command(bind: str, *, workers: int = 2, worker_connections: int = 1000) -> list[str]:
    """The API under gunicorn's gevent workers: a synchronous /v1/generate waits as a greenlet, not an OS thread,
    so clients waiting by the thousand leave /healthz and POST /jobs answering. `worker_connections` is the
    API's API_WORKER_CONNECTIONS: the API keeps API_RESERVED_CONNECTIONS of them free of long-lived requests."""
    return [
        sys.executable, "-m", "gunicorn", "--bind", bind, "--worker-class", "gevent", "--workers", str(workers),
        "--worker-connections", str(worker_connections), "--graceful-timeout", "10", "api.wsgi:app",
    ]  # fmt: skip


def ops_worker_command() -> list[str]:
    """The ops worker: webhook delivery and the reconciler (no model, no torch)."""
    return [sys.executable, "-m", "ops"]


def demo_model_command(out: Path) -> list[str]:
    """The random-weight demo model built into `out` (scripts/make_demo_model.py, `llmq-demo-model`)."""
    return [sys.executable, "-m", "scripts.make_demo_model", "--out", str(out)]


def wait_for_worker(
    workers: WorkerRegistry, process: subprocess.Popen, name_prefix: str, timeout_s: float = 120
) -> WorkerInfo:
    """Block until a worker whose name starts with `name_prefix@` has announced its loaded model."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the worker exited at start with code {process.returncode}")
        for worker in workers.live():
            if worker.name.startswith(f"{name_prefix}@"):
                return worker
        time.sleep(0.2)
    raise RuntimeError(f"no worker {name_prefix}@... ready within {timeout_s} s")
