"""The soak's nemesis: one fault at a time, spaced out, on the live service; each is recorded with the process it
hit, since a SIGTERM'd worker's hand-back is what lets one attempt of a job run twice (the checks need to know)."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from dataclasses import dataclass

from tests.soak.world import SoakWorld

FAULTS = ("kill-9-gpu", "sigterm-gpu", "sigstop-gpu", "kill-ops", "restart-redis")
# Redis stays down this long: clients see 503s, workers retry their writes.
REDIS_DOWN_S = 3.0


@dataclass(frozen=True)
class Fault:
    name: str
    pid: int | None
    at_s: float  # seconds since the soak started
    took_s: float


class Nemesis:
    """Injects `count` faults of the `kinds` named, cycling through them in a shuffled order, `every_s` apart."""

    def __init__(
        self, world: SoakWorld, count: int, every_s: float, seed: int, kinds: tuple[str, ...] = FAULTS
    ) -> None:
        unknown = set(kinds) - set(FAULTS)
        if unknown or not kinds:
            raise ValueError(f"faults must be some of {', '.join(FAULTS)}; got {', '.join(kinds)}")
        self.world = world
        self.count = count
        self.kinds = kinds
        self.every_s = every_s
        self.rng = random.Random(seed)
        self.faults: list[Fault] = []
        self.sigtermed_pids: set[int] = set()
        self.error: str | None = None
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-nemesis", daemon=True)
        self._started_at = time.monotonic()
        self._injections = {
            "kill-9-gpu": self.kill_9_gpu,
            "sigterm-gpu": self.sigterm_gpu,
            "sigstop-gpu": self.sigstop_gpu,
            "kill-ops": self.kill_ops,
            "restart-redis": self.restart_redis,
        }

    def start(self) -> None:
        self._started_at = time.monotonic()
        self._thread.start()

    def finish(self, timeout_s: float) -> None:
        """Let the planned faults all play out (each waits for the service to be whole again), within a bound."""
        self._thread.join(timeout_s)
        self.stopping.set()
        self._thread.join()

    def _plan(self) -> list[str]:
        plan: list[str] = []
        while len(plan) < self.count:
            kinds = list(self.kinds)
            self.rng.shuffle(kinds)
            plan += kinds
        return plan[: self.count]

    def _run(self) -> None:
        try:
            self._strike()
        except Exception as error:  # noqa: BLE001 - a service that never came back is the soak's finding
            self.error = f"{type(error).__name__}: {error}"

    def _strike(self) -> None:
        for name in self._plan():
            if self.stopping.wait(self.every_s * self.rng.uniform(0.7, 1.3)):
                return
            # The previous fault is over and the supervisor has started what it killed (with its model loaded).
            self.world.wait_ready(180)
            started = time.monotonic()
            pid = self._injections[name]()
            self.faults.append(Fault(name, pid, round(started - self._started_at, 1), time.monotonic() - started))

    def gpu_pid(self) -> int:
        return self.world.processes["gpu"].pid

    def kill_9_gpu(self) -> int:
        pid = self.gpu_pid()
        os.kill(pid, signal.SIGKILL)
        return pid

    def sigterm_gpu(self) -> int:
        pid = self.gpu_pid()
        self.sigtermed_pids.add(pid)
        os.kill(pid, signal.SIGTERM)
        return pid

    def sigstop_gpu(self) -> int:
        """Paused past its heartbeat's expiry (3 beats): the reconciler takes its jobs back while it sleeps; once
        resumed, its old attempts may no longer write."""
        pid = self.gpu_pid()
        os.kill(pid, signal.SIGSTOP)
        time.sleep(3 * float(self.world.settings["WORKER_HEARTBEAT_SECONDS"]) + 4)
        os.kill(pid, signal.SIGCONT)
        return pid

    def kill_ops(self) -> int:
        pid = self.world.processes["ops"].pid
        os.kill(pid, signal.SIGKILL)
        return pid

    def restart_redis(self) -> int | None:
        """Stopped (it flushes its append-only file) and started again on the same port with the same data."""
        redis = self.world.redis
        pid = redis.process.pid if redis.process else None
        redis.stop()
        time.sleep(REDIS_DOWN_S)
        redis.start(timeout_s=60)
        return pid
