"""A Redis master, its replicas and three sentinels as child processes, for the Sentinel tests and the test hosts.

Each node runs `prefix(name) + [redis-server, config]`: nothing for nodes on this machine's loopback, `ip netns exec
<host>` for the test hosts, so the same set runs on one machine or across network namespaces.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from launcher.redis_server import find_redis_server

MASTER_NAME = "mymaster"
# Quick to notice and to fail over: a dead master is declared down after a second.
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


@dataclass
class Node:
    """One redis-server (a data node or a sentinel) and where it listens."""

    name: str
    host: str
    port: int
    config: list[str]
    process: subprocess.Popen | None = None

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port


@dataclass
class RedisSet:
    """A master, `replicas` and sentinels, each on its own (host, port); start() waits until the set is formed."""

    root: Path
    master: tuple[str, int]
    replicas: list[tuple[str, int]]
    sentinels: list[tuple[str, int]]
    prefix: Callable[[str], list[str]] = lambda name: []
    quorum: int = 2
    nodes: dict[str, Node] = field(default_factory=dict)

    def __post_init__(self) -> None:
        master_host, master_port = self.master
        self.nodes["redis-master"] = Node("redis-master", master_host, master_port, self._data_config(None))
        for index, (host, port) in enumerate(self.replicas, start=1):
            name = f"redis-replica-{index}"
            self.nodes[name] = Node(name, host, port, self._data_config(self.master))
        for index, (host, port) in enumerate(self.sentinels, start=1):
            self.nodes[f"sentinel-{index}"] = Node(f"sentinel-{index}", host, port, self._sentinel_config())

    def _data_config(self, primary: tuple[str, int] | None) -> list[str]:
        lines = ["appendonly yes", "appendfsync everysec", "protected-mode no", "save ''", "repl-diskless-sync no"]
        if primary is not None:
            lines.append(f"replicaof {primary[0]} {primary[1]}")
        return lines

    def _sentinel_config(self) -> list[str]:
        host, port = self.master
        return [
            "protected-mode no",
            f"sentinel monitor {MASTER_NAME} {host} {port} {self.quorum}",
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {MASTER_NAME} 1",
        ]

    @property
    def sentinel_addresses(self) -> str:
        """The REDIS_SENTINELS value that names this set's sentinels."""
        return ",".join(f"{host}:{port}" for host, port in self.sentinels)

    def start(self, timeout_s: float = 30.0) -> RedisSet:
        """Start every node, then wait until the replicas are in sync and every sentinel knows the others."""
        for node in self.nodes.values():
            self.start_node(node.name)
        deadline = time.monotonic() + timeout_s
        while not self._formed():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Redis set did not form within {timeout_s:g} s (logs in {self.root})")
            time.sleep(0.2)
        return self

    def start_node(self, name: str) -> None:
        """Start (or start again, keeping its data and the sentinel's rewritten config) one node."""
        node = self.nodes[name]
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "redis.conf"
        if not config.exists():  # a sentinel rewrites its file; a restart must read what it learnt
            base = [f"bind {node.host}", f"port {node.port}", f"dir {folder}"]
            config.write_text("\n".join([*base, *node.config]) + "\n")
        command = [find_redis_server(), str(config)]
        if name.startswith("sentinel"):
            command.append("--sentinel")
        log = open(folder / "server.log", "ab")  # noqa: SIM115 - the child keeps it
        node.process = subprocess.Popen([*self.prefix(name), *command], stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def kill(self, name: str) -> None:
        """SIGKILL one node, as a host that loses power."""
        node = self.nodes[name]
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait(10)

    def stop(self) -> None:
        """Stop every node."""
        for name in self.nodes:
            self.kill(name)

    def client(self, address: tuple[str, int], timeout_s: float = 1.0) -> redis.Redis:
        """A plain client of one node."""
        host, port = address
        return redis.Redis(host=host, port=port, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)

    def master_address(self) -> tuple[str, int] | None:
        """Where the first sentinel that answers says the master is now."""
        for address in self.sentinels:
            try:
                found = self.client(address).sentinel_get_master_addr_by_name(MASTER_NAME)
            except redis.RedisError:
                continue
            if found:
                return found[0].decode() if isinstance(found[0], bytes) else found[0], int(found[1])
        return None

    def _formed(self) -> bool:
        try:
            info = self.client(self.master).info("replication")
            if info.get("connected_slaves", 0) < len(self.replicas):
                return False
            for address in self.sentinels:
                state = self.client(address).sentinel_master(MASTER_NAME)
                if int(state.get("num-other-sentinels", 0)) < len(self.sentinels) - 1:
                    return False
                if int(state.get("num-slaves", 0)) < len(self.replicas):
                    return False
        except redis.RedisError:
            return False
        return True
