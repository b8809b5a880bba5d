"""The service as several test hosts: Redis master, replica and three sentinels, an API host (gunicorn, as
`make run` runs it), a GPU-worker host and an ops host, each in its own namespace, all through REDIS_SENTINELS."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from core.jobs.store import JobStore
from core.redis.clients import redis_client
from core.settings import Settings
from core.workers.registry import WorkerRegistry
from launcher.processes import api_command, ops_worker_command, wait_for_worker, worker_command
from tests.conftest import ROOT, service_env, stop_process
from tests.hosts.network import Host, Network
from tests.redis_ha import RedisSet

API_KEY = "hosts-test-key"
API_PORT = 8001
REDIS_PORT = 6379
SENTINEL_PORT = 26379
PROXY_PORT = 16379
# Each host's last address byte.
ADDRESSES = {
    "redis-master": 11,
    "redis-replica-1": 12,
    "sentinel-1": 21,
    "sentinel-2": 22,
    "sentinel-3": 23,
    "api": 31,
    "gpu": 41,
    "gpu-2": 42,
    "ops": 51,
}


@dataclass
class ServiceHosts:
    """Start with `with ServiceHosts(...) as hosts:`; everything stops and every namespace goes at the end."""

    root: Path
    model_dir: Path
    min_replica_acks: int = 1
    # GPU-worker hosts: `gpu`, and `gpu-2` beside it when 2 (scenarios where one host's jobs move to another).
    gpu_hosts: int = 1
    # The `gpu` host reaches the Redis master through a slow, lossy proxy of the test's own (tests/hosts/slow_proxy.py)
    # on its own loopback, set by the file `gpu_link_control` says, instead of through the sentinels.
    slow_gpu_link: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    network: Network = field(default_factory=Network)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __enter__(self) -> ServiceHosts:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def host(self, name: str) -> Host:
        return self.network.hosts[name]

    @property
    def api_url(self) -> str:
        return f"http://{self.host('api').address}:{API_PORT}"

    @property
    def execution_log(self) -> Path:
        return self.root / "executions.log"

    def _start(self) -> None:
        self.network.__enter__()
        for name, number in ADDRESSES.items():
            if name != "gpu-2" or self.gpu_hosts > 1:
                self.network.add_host(name, number)

        self.redis = RedisSet(
            self.root / "redis",
            (self.host("redis-master").address, REDIS_PORT),
            [(self.host("redis-replica-1").address, REDIS_PORT)],
            [(self.host(f"sentinel-{index}").address, SENTINEL_PORT) for index in (1, 2, 3)],
            prefix=lambda node: self.host(node).prefix(),
        ).start()
        self.env = service_env("", self.model_dir, self.root / "logs")
        self.env.pop("REDIS_URL")
        self.env.update(
            REDIS_SENTINELS=self.redis.sentinel_addresses,
            REDIS_MIN_REPLICA_ACKS=str(self.min_replica_acks),
            API_KEYS=API_KEY,
            RATE_LIMIT="",
            EXECUTION_LOG=str(self.execution_log),
            **self.extra_env,
        )
        self.settings = Settings(_env_file=None, redis_sentinels=self.redis.sentinel_addresses)
        self.store = JobStore(redis_client(self.settings), job_ttl_s=3600)
        if self.slow_gpu_link:
            self.gpu_link_control.write_text("0 0")
            master = f"{self.host('redis-master').address}:{REDIS_PORT}"
            proxy = [sys.executable, "-m", "tests.hosts.slow_proxy", f"127.0.0.1:{PROXY_PORT}", master]
            self.processes["gpu-link"] = self._spawn("gpu", [*proxy, str(self.gpu_link_control)])
        for host in self.gpu_host_names:
            self.start_worker(host)
        self.processes["ops"] = self._spawn("ops", ops_worker_command())
        self.start_api()

    def _spawn(self, host: str, command: list[str], **env: str) -> subprocess.Popen:
        out = (self.root / f"{host}.out").open("a")
        try:
            return subprocess.Popen(
                [*self.host(host).prefix(), *command],
                cwd=ROOT, env={**self.env, **env}, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        finally:
            out.close()

    @property
    def gpu_host_names(self) -> list[str]:
        return ["gpu", "gpu-2"][: self.gpu_hosts]

    @staticmethod
    def worker_name(host: str) -> str:
        """The start of the name the GPU worker on `host` announces (`<this>@<hostname>`)."""
        return f"{host}-host"

    @property
    def gpu_link_control(self) -> Path:
        return self.root / "gpu-link"

    def start_worker(self, host: str = "gpu", timeout_s: float = 180) -> None:
        """The GPU worker on its host, once it has announced its model."""
        env = {}
        if host == "gpu" and self.slow_gpu_link:
            env = {"REDIS_URL": f"redis://127.0.0.1:{PROXY_PORT}/0", "REDIS_SENTINELS": ""}
        process = self._spawn(host, worker_command(f"{self.worker_name(host)}@%h"), **env)
        self.processes[host] = process
        try:
            wait_for_worker(WorkerRegistry(self.store.redis), process, self.worker_name(host), timeout_s)
        except RuntimeError as error:
            raise RuntimeError(f"{error}:\n{(self.root / f'{host}.out').read_text()[-3000:]}") from None

    def start_api(self, timeout_s: float = 60) -> None:
        """gunicorn on the API host, once /healthz answers from the clients' side of the bridge."""
        bind = f"{self.host('api').address}:{API_PORT}"
        self.processes["api"] = self._spawn("api", api_command(bind), PORT=str(API_PORT))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.api_url}/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError(f"the API host did not answer:\n{(self.root / 'api.out').read_text()[-3000:]}")

    def kill_redis_master_host(self) -> tuple[str, int]:
        """The master's host dies: its link is cut and its processes are killed. Returns the address it had."""
        master = self.redis.master_address()
        name = "redis-master" if master == self.redis.nodes["redis-master"].address else "redis-replica-1"
        self.network.cut(name)
        self.redis.kill(name)
        self.dead_redis = name
        return master

    def revive_redis_host(self) -> None:
        """The dead host comes back: link up, redis-server started again (the sentinels make it a replica)."""
        self.network.heal(self.dead_redis)
        self.redis.start_node(self.dead_redis)

    def close(self) -> None:
        for process in self.processes.values():
            stop_process(process, timeout_s=10)
        if getattr(self, "redis", None) is not None:
            self.redis.stop()
        self.network.close()
