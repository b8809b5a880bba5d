"""`make run` as people run it (`python -m launcher`, embedded Redis, default settings): a GPU worker killed with
8 jobs running is started again, every job succeeds, and Ctrl-C then leaves no process behind; a killed Redis is
started again; `make run` itself killed leaves no process behind either."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import requests

from launcher.redis_server import free_port
from tests.conftest import ROOT, service_env
from tests.faults.conftest import FAST_RECOVERY, LONG_JOB
from tests.polling import poll_until, wait_for_terminal, wait_until

pytestmark = pytest.mark.faults

# The default SHUTDOWN_GRACE_SECONDS: with no job running, Ctrl-C must be done well within it.
DEFAULT_SHUTDOWN_GRACE_S = 30


class MakeRun:
    """`python -m launcher` started as `make run` starts it, its output in a file."""

    def __init__(self, tmp: Path, model_dir: Path, **extra: str) -> None:
        """`extra`: settings of the test's own, over the fast recovery clocks (the rest are the tests' defaults)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = service_env(
            "",  # REDIS_URL empty means unset (even over a .env file): it starts its embedded redis-server
            model_dir,
            tmp / "logs",
            PORT=str(self.port),
            # Its embedded Redis's data away from the developer's own .run/.
            RUN_DIR=str(tmp / "run"),
            # The reconciler is what puts a dead worker's jobs back on the queue: seconds, not tens of seconds.
            WORKER_HEARTBEAT_SECONDS=FAST_RECOVERY["WORKER_HEARTBEAT_SECONDS"],
            RECONCILE_INTERVAL_SECONDS=FAST_RECOVERY["RECONCILE_INTERVAL_SECONDS"],
            **extra,
        )
        self.output_path = tmp / "make-run.out"
        with self.output_path.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "launcher"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def output(self) -> str:
        return self.output_path.read_text(encoding="utf-8", errors="replace")

    def descendants(self) -> list[psutil.Process]:
        """Every process it started (Redis, the workers, gunicorn and its workers)."""
        return psutil.Process(self.process.pid).children(recursive=True)

    def worker_pids(self) -> set[int]:
        """The GPU workers /readyz lists, by process id."""
        try:
            response = requests.get(f"{self.url}/readyz", timeout=2)
        except (requests.ConnectionError, requests.Timeout):
            return set()
        return {worker["pid"] for worker in response.json()["workers"]}

    def statuses(self, job_ids: list[str]) -> list[str]:
        return [requests.get(f"{self.url}/jobs/{job_id}", timeout=5).json()["status"] for job_id in job_ids]

    def kill_everything(self) -> None:
        """After a failure: no process of the test outlives it."""
        if self.process.poll() is None:
            for child in self.descendants():
                child.kill()
            self.process.kill()
        self.process.wait()


def test_make_run_restarts_a_gpu_worker_killed_mid_batch_and_every_job_succeeds(
    tmp_path: Path, demo_model_dir: Path
) -> None:
    run = MakeRun(tmp_path, demo_model_dir)
    try:
        wait_until(lambda: run.process.poll() is None and run.worker_pids(), 120, "a ready service", poll_s=0.2)
        (first_worker,) = run.worker_pids()
        assert first_worker in {child.pid for child in run.descendants()}

        body = LONG_JOB | {"max_tokens": 400}
        job_ids = []
        for i in range(16):
            response = requests.post(f"{run.url}/jobs", json=body | {"prompt": f"việc {i}"}, timeout=10)
            assert response.status_code == 202, response.text
            job_ids.append(response.json()["id"])
        wait_until(lambda: run.statuses(job_ids).count("running") == 8, 60, "8 running jobs", poll_s=0.1)

        psutil.Process(first_worker).send_signal(signal.SIGKILL)
        restarting = "[make run] GPU worker exited with code -9 (killed by SIGKILL): restarting in 1 s"
        wait_until(lambda: restarting in run.output(), 10, "the restart to be announced", poll_s=0.1)
        wait_until(lambda: run.worker_pids() - {first_worker}, 120, "a new GPU worker", poll_s=0.2)
        (second_worker,) = run.worker_pids() - {first_worker}
        assert second_worker in {child.pid for child in run.descendants()}

        jobs = [wait_for_terminal(run.url, job_id, timeout_s=240) for job_id in job_ids]
        assert [job["status"] for job in jobs] == ["succeeded"] * 16
        assert all(job["usage"]["completion_tokens"] == 400 for job in jobs)
        assert max(job["attempts"] for job in jobs) == 2  # the killed worker's jobs really ran again

        children = run.descendants()
        run.process.send_signal(signal.SIGINT)
        assert run.process.wait(DEFAULT_SHUTDOWN_GRACE_S) == 0
        assert [child.pid for child in children if child.is_running()] == []
        assert run.output().rstrip().endswith("[make run] stopped")
    except BaseException:
        print(run.output()[-8000:])
        raise
    finally:
        run.kill_everything()


def redis_children(run: MakeRun) -> list[psutil.Process]:
    return [child for child in run.descendants() if "redis-server" in child.name()]


def test_make_run_restarts_a_killed_redis_and_jobs_go_on(tmp_path: Path, demo_model_dir: Path) -> None:
    run = MakeRun(tmp_path, demo_model_dir)
    try:
        wait_until(lambda: run.process.poll() is None and run.worker_pids(), 120, "a ready service", poll_s=0.2)
        before = requests.post(f"{run.url}/jobs", json={"prompt": "trước", "max_tokens": 4}, timeout=10).json()
        assert wait_for_terminal(run.url, before["id"], timeout_s=60)["status"] == "succeeded"

        (first,) = redis_children(run)
        first.send_signal(signal.SIGKILL)
        restarting = "[make run] Redis exited with code -9 (killed by SIGKILL): restarting in 1 s"
        wait_until(lambda: restarting in run.output(), 10, "the Redis restart to be announced", poll_s=0.1)
        wait_until(
            lambda: [child.pid for child in redis_children(run) if child.pid != first.pid], 30, "a new redis-server"
        )

        def submit_after() -> requests.Response | None:
            try:
                response = requests.post(f"{run.url}/jobs", json={"prompt": "sau", "max_tokens": 4}, timeout=10)
            except requests.RequestException:
                return None
            return response if response.status_code == 202 else None

        after = poll_until(submit_after, bool, 60, "a job accepted once Redis is back", interval_s=0.5)
        assert wait_for_terminal(run.url, after.json()["id"], timeout_s=120)["status"] == "succeeded"
        # The append-only file brought the earlier job back with it.
        assert requests.get(f"{run.url}/jobs/{before['id']}", timeout=5).json()["status"] == "succeeded"
    except BaseException:
        print(run.output()[-8000:])
        raise
    finally:
        run.kill_everything()


def test_make_run_killed_while_its_gpu_worker_drains_leaves_no_process_behind(
    tmp_path: Path, demo_model_dir: Path
) -> None:
    run = MakeRun(tmp_path, demo_model_dir, SHUTDOWN_GRACE_SECONDS="5")
    try:
        wait_until(lambda: run.process.poll() is None and run.worker_pids(), 120, "a ready service", poll_s=0.2)
        job = requests.post(f"{run.url}/jobs", json=LONG_JOB, timeout=10).json()
        wait_until(lambda: run.statuses([job["id"]]) == ["running"], 60, "a running job", poll_s=0.1)
        children = run.descendants()
        run.process.send_signal(signal.SIGINT)
        wait_until(lambda: "[make run] stopping GPU worker" in run.output(), 30, "the GPU worker's grace", poll_s=0.1)
        run.process.send_signal(signal.SIGKILL)  # make run dies while the worker drains: the rest must not live on
        run.process.wait(10)
        wait_until(
            lambda: not [child for child in children if child.is_running() and child.status() != "zombie"],
            60,
            "every process make run started to exit",
            poll_s=0.2,
        )
    except BaseException:
        print(run.output()[-8000:])
        raise
    finally:
        for child in children if "children" in locals() else []:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        run.kill_everything()
