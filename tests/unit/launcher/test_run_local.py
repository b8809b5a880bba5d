"""`make run`'s pieces: its own Redis (a memory budget under noeviction, a password kept off every command line,
dangerous commands renamed away), secrets in RUN_DIR never readable by others, the demo model built only when
MODEL_DIR holds none, IPv6 hosts in brackets, and the readiness probe. `main` itself runs processes: the end-to-end
suites and `make run` exercise it."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest
import redis
from pydantic import ValidationError
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.settings import DEFAULT_REDIS_MAXMEMORY_CEILING, DEFAULT_REDIS_MAXMEMORY_FLOOR, Settings
from launcher import run_local
from launcher.processes import demo_model_command
from launcher.redis_server import RedisServer, free_port
from launcher.run_local import embedded_redis, ensure_model, ensure_webhook_secret, is_ready, url_host

MIB = 1024 * 1024


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """A umask that lets every file be created world-readable unless its creator says otherwise."""
    previous = os.umask(0)
    yield
    os.umask(previous)


@pytest.fixture
def make_run_redis(tmp_path: Path, loose_umask) -> Iterator[RedisServer]:
    server = embedded_redis(Settings(_env_file=None, redis_maxmemory_mb=64), tmp_path / "run")
    server.start()
    yield server
    server.stop()


def test_make_runs_redis_has_a_memory_budget_under_noeviction_and_requires_its_password(make_run_redis, tmp_path):
    with pytest.raises(redis.AuthenticationError):
        # Asked once: the client's default retries would repeat the refused login for seconds.
        redis.Redis(port=make_run_redis.port, retry=Retry(NoBackoff(), 0)).ping()
    client = redis.Redis.from_url(make_run_redis.url)
    memory = client.info("memory")
    assert memory["maxmemory"] == 64 * MIB and memory["maxmemory_policy"] == "noeviction"

    password = (tmp_path / "run" / "redis_password").read_text().strip()
    assert len(password) == 64 and f":{password}@" in make_run_redis.url
    command_line = " ".join(psutil.Process(make_run_redis.process.pid).cmdline())
    assert password not in command_line
    for private in (tmp_path / "run" / "redis_password", make_run_redis.config_file):
        assert mode_of(private) == 0o600, private
    assert mode_of(make_run_redis.data_dir) == 0o700


def test_make_runs_redis_refuses_config_and_the_other_locked_down_commands(make_run_redis):
    client = redis.Redis.from_url(make_run_redis.url)
    for command in (("CONFIG", "SET", "dir", "/tmp"), ("MODULE", "LIST"), ("DEBUG", "SLEEP", "0")):
        with pytest.raises(redis.ResponseError, match="unknown command"):
            client.execute_command(*command)
    assert client.set("still", "works") and client.info("memory")["used_memory"] > 0


def test_a_second_start_keeps_the_password(tmp_path: Path):
    settings = Settings(_env_file=None, redis_maxmemory_mb=64)
    assert embedded_redis(settings, tmp_path).password == embedded_redis(settings, tmp_path).password


def test_the_webhook_secret_file_is_created_private(tmp_path: Path, loose_umask):
    secret_file = tmp_path / "run" / "webhook_secret"
    secret = ensure_webhook_secret(secret_file)
    assert secret.startswith("whsec_") and mode_of(secret_file) == 0o600
    assert ensure_webhook_secret(secret_file) == secret


def test_a_webhook_secret_left_readable_by_an_older_version_is_made_private(tmp_path: Path, loose_umask):
    secret_file = tmp_path / "webhook_secret"
    secret_file.write_text("whsec_b2xkLXNlY3JldC1vbGQtc2VjcmV0LW9sZC1zZWNyZXQh\n")
    secret_file.chmod(0o644)
    assert ensure_webhook_secret(secret_file) == "whsec_b2xkLXNlY3JldC1vbGQtc2VjcmV0LW9sZC1zZWNyZXQh"
    assert mode_of(secret_file) == 0o600


def test_the_redis_memory_budget_defaults_to_a_share_of_the_ram_and_can_be_set():
    assert Settings(_env_file=None, redis_maxmemory_mb=512).redis_maxmemory_bytes == 512 * MIB
    default = Settings(_env_file=None).redis_maxmemory_bytes
    assert DEFAULT_REDIS_MAXMEMORY_FLOOR <= default <= DEFAULT_REDIS_MAXMEMORY_CEILING
    with pytest.raises(ValidationError):
        Settings(_env_file=None, redis_maxmemory_mb=-1)
    with pytest.raises(ValidationError):
        Settings(_env_file=None, redis_high_water_percent=0)


def test_the_demo_model_is_built_only_where_there_is_no_model(tmp_path: Path, monkeypatch):
    built: list[list[str]] = []
    monkeypatch.setattr(run_local.subprocess, "run", lambda command, **options: built.append(command))
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "config.json").write_text("{}")
    ensure_model(tmp_path / "real")
    assert built == []
    ensure_model(tmp_path / "empty")
    assert built == [demo_model_command(tmp_path / "empty")]


def test_an_ipv6_host_goes_in_brackets():
    assert (url_host("127.0.0.1"), url_host("::"), url_host("::1")) == ("127.0.0.1", "[::]", "[::1]")


class Readyz(BaseHTTPRequestHandler):
    """/readyz answering with the server's `status`."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(self.server.status if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def readyz() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Readyz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_ready_only_when_readyz_answers_200(readyz):
    url = f"http://127.0.0.1:{readyz.server_address[1]}"
    readyz.status = 200
    assert is_ready(url)
    readyz.status = 503
    assert not is_ready(url)
    assert not is_ready(f"http://127.0.0.1:{free_port()}")
