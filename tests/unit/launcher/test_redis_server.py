"""A private redis-server: its URL, its command line (no secret on it), its config file, a start that waits for PING
or says that it exited, and a stop that leaves nothing running."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from launcher.redis_server import LOCKED_DOWN_COMMANDS, RedisServer, find_redis_server, free_port


def test_a_free_port_can_be_bound():
    import socket

    port = free_port()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))


def test_the_url_carries_the_password_and_the_command_line_does_not(tmp_path: Path):
    server = RedisServer(tmp_path / "data", 6399, password="s3cret", maxmemory_bytes=2**20, lock_down=True)
    assert server.url == "redis://:s3cret@127.0.0.1:6399/0"
    assert RedisServer(tmp_path, 6400).url == "redis://127.0.0.1:6400/0"
    server.prepare()
    command = server.command()
    assert command[0] == find_redis_server() and "s3cret" not in " ".join(command)
    options = dict(zip(command[2::2], command[3::2], strict=True))
    assert options["--port"] == "6399" and options["--bind"] == "127.0.0.1"
    assert options["--appendonly"] == "yes" and options["--maxmemory-policy"] == "noeviction"
    config = server.config_file.read_text().splitlines()
    assert config[:2] == ["requirepass s3cret", f"maxmemory {2**20}"]
    assert config[2:] == [f'rename-command {name} ""' for name in LOCKED_DOWN_COMMANDS]
    assert stat.S_IMODE(server.config_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o700


def test_a_started_server_answers_keeps_its_data_on_restart_and_stops(tmp_path: Path):
    server = RedisServer(tmp_path / "data", appendfsync="always")
    server.start()
    client = redis.Redis.from_url(server.url)
    client.set("kept", "1")
    server.stop()
    assert server.process.poll() is not None
    with pytest.raises(redis.ConnectionError):
        client.ping()
    server.start()  # same port, from its append-only file
    try:
        assert client.get("kept") == b"1"
    finally:
        server.stop()
    server.stop()  # a second stop is harmless


def test_a_process_that_exits_at_start_is_reported_with_its_code(tmp_path: Path):
    exited = subprocess.Popen([sys.executable, "-c", "raise SystemExit(4)"])
    exited.wait()
    with pytest.raises(RuntimeError, match="exited at start with code 4"):
        RedisServer(tmp_path).wait_until_answering(exited, timeout_s=2)
