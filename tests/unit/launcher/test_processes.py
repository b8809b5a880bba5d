"""The service's command lines, and the wait for a worker to announce its model (or to die trying)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from launcher.processes import api_command, demo_model_command, ops_worker_command, wait_for_worker, worker_command


def test_the_command_lines_run_this_interpreters_modules():
    assert worker_command() == [sys.executable, "-m", "worker", "--hostname", "gpu@%h"]
    assert worker_command("w2@%h")[-1] == "w2@%h"
    assert ops_worker_command() == [sys.executable, "-m", "ops"]
    assert demo_model_command(Path("/m")) == [sys.executable, "-m", "scripts.make_demo_model", "--out", "/m"]


def test_the_api_runs_under_gunicorns_gevent_workers():
    line = api_command("127.0.0.1:8000", workers=3, worker_connections=50)
    assert line[:3] == [sys.executable, "-m", "gunicorn"] and line[-1] == "api.wsgi:app"
    options = dict(zip(line[3:-1:2], line[4:-1:2], strict=True))
    assert options == {
        "--bind": "127.0.0.1:8000",
        "--worker-class": "gevent",
        "--workers": "3",
        "--worker-connections": "50",
        "--graceful-timeout": "10",
    }


class Registry:
    """The worker registry as wait_for_worker reads it: the live workers, announced after some asks."""

    def __init__(self, names: list[str], after_asks: int = 0) -> None:
        self.names = names
        self.after_asks = after_asks
        self.asks = 0

    def live(self) -> list[SimpleNamespace]:
        self.asks += 1
        return [SimpleNamespace(name=name) for name in self.names] if self.asks > self.after_asks else []


@pytest.fixture
def sleeping() -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    yield process
    process.kill()
    process.wait()


def test_the_worker_named_by_its_prefix_is_returned_once_announced(sleeping):
    registry = Registry(["cpu@host", "gpu@host"], after_asks=1)
    assert wait_for_worker(registry, sleeping, "gpu", timeout_s=5).name == "gpu@host"
    assert registry.asks == 2


def test_a_worker_that_never_announces_itself_times_out(sleeping):
    with pytest.raises(RuntimeError, match=r"no worker gpu@\.\.\. ready within 0.3 s"):
        wait_for_worker(Registry(["gpux@host"]), sleeping, "gpu", timeout_s=0.3)


def test_a_worker_that_exits_at_start_says_its_code():
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait()
    with pytest.raises(RuntimeError, match="exited at start with code 3"):
        wait_for_worker(Registry([]), process, "gpu", timeout_s=5)
