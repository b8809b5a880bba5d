"""The service as the soak runs it: its own redis-server (to stop and restart on the same port and append-only
file), a GPU worker, the ops worker and the API under gunicorn, each kept running by a supervising loop, every
execution noted in a log outside Redis, and every process's output kept in the artifacts folder."""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import requests

from launcher.processes import api_command, ops_worker_command, worker_command
from launcher.redis_server import RedisServer, free_port
from tests.conftest import ROOT, service_env

# Recovery clocks compressed from tens of seconds to about a second (as the fault suite's FAST_RECOVERY), yet with
# a heartbeat loose enough that a worker starved of CPU on a loaded machine is not declared dead every minute.
SOAK_CLOCKS = {
    "WORKER_HEARTBEAT_SECONDS": "1",
    "RECONCILE_INTERVAL_SECONDS": "0.5",
    "STALE_QUEUED_SECONDS": "5",
    "SHUTDOWN_GRACE_SECONDS": "1",
    # A synchronous call rides out a paused worker and a Redis restart rather than timing out midway.
    "SYNC_WAIT_SECONDS": "120",
    "MAX_ATTEMPTS": "3",
}
# What `python -m worker` needs at most to load the demo model on a loaded machine.
START_TIMEOUT_S = 180
RESTART_DELAY_S = 0.5


class Kept:
    """One service process, started again by the world's supervising loop whenever it exits."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], folder: Path) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.folder = folder
        self.starts = 0
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.starts += 1
        log = (self.folder / f"{self.name}-{self.starts}.log").open("w")
        # A session of its own: a signal meant for gunicorn's master reaches its workers through it, never the soak.
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, grace_s: float = 20) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGCONT)  # a paused process can't act on SIGTERM
            self.process.terminate()
        try:
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class SoakWorld:
    """Redis, the GPU worker, the ops worker and the API, with a supervisor that restarts what exits."""

    def __init__(self, folder: Path, model_dir: Path, **settings: str) -> None:
        self.folder = folder
        self.redis = RedisServer(folder / "redis")
        self.execution_log = folder / "executions.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = SOAK_CLOCKS | settings
        self.restarts: collections.Counter = collections.Counter()
        self._model_dir = model_dir
        self._closing = threading.Event()
        self._supervisor: threading.Thread | None = None
        self.processes: dict[str, Kept] = {}

    def env(self) -> dict[str, str]:
        return service_env(
            self.redis.url,
            self._model_dir,
            self.folder / "service-logs",
            EXECUTION_LOG=str(self.execution_log),
            PORT=str(self.port),
            **self.settings,
        )

    def start(self) -> None:
        """Start every process and the supervising loop; return once the API says it is ready."""
        self.redis.start()
        env = self.env()
        self.processes = {
            "gpu": Kept("gpu", worker_command("gpu@%h"), env, self.folder),
            "ops": Kept("ops", ops_worker_command(), env, self.folder),
            "api": Kept("api", api_command(f"127.0.0.1:{self.port}", workers=2), env, self.folder),
        }
        for kept in self.processes.values():
            kept.start()
        self._supervisor = threading.Thread(target=self._supervise, name="soak-supervisor", daemon=True)
        self._supervisor.start()
        self.wait_ready(START_TIMEOUT_S)

    def _supervise(self) -> None:
        """What systemd, compose or `make run` do for the service: start again a process that exited."""
        with (self.folder / "supervisor.log").open("a") as log:
            while not self._closing.is_set():
                for kept in self.processes.values():
                    code = kept.exited()
                    if code is not None and not self._closing.is_set():
                        log.write(f"{time.strftime('%H:%M:%S')} {kept.name} exited with {code}: restarting\n")
                        log.flush()
                        time.sleep(RESTART_DELAY_S)
                        self.restarts[kept.name] += 1
                        kept.start()
                self._closing.wait(0.2)

    def ready(self) -> bool:
        """/readyz answers 200: Redis reachable and a GPU worker with its model loaded."""
        try:
            return requests.get(f"{self.url}/readyz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the service was not ready within {timeout_s:g} s (logs in {self.folder})")
            time.sleep(0.5)

    def close(self) -> None:
        """Stop the supervisor, then the API, the GPU worker, the ops worker and Redis, in that order."""
        self._closing.set()
        if self._supervisor is not None:
            self._supervisor.join(5)
        for name in ("api", "gpu", "ops"):
            if name in self.processes:
                self.processes[name].stop()
        self.redis.stop()
