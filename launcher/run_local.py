"""`make run` (`llmq-run`, `python -m launcher`): Redis (embedded unless REDIS_URL is set), the GPU worker, the
ops worker and the API.

All in the foreground. A worker, or the embedded Redis, that exits is started again (after 1 s, 2 s, 4 s ... at most
30 s; Redis on the same port, from its append-only file); an API that exits stops everything. Ctrl-C (SIGINT) or
SIGTERM stops every process it started: the API first, then the GPU worker (which gets SHUTDOWN_GRACE_SECONDS to
finish or hand back its jobs), the ops worker, then Redis (which flushes its append-only file). If `make run` itself
is killed, every process it started gets SIGTERM from the kernel.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from core.settings import Settings, get_settings, open_api_warning, redacted_url
from core.webhooks.deliveries import generate_secret
from launcher.private_files import private_secret
from launcher.processes import api_command, demo_model_command, ops_worker_command, worker_command
from launcher.redis_server import RedisServer
from launcher.supervisor import Supervised, describe_exit
from worker.model_loading import ModelNotFound, locate_model

# The checkout this runs from (an editable install): RUN_DIR is relative to it, and the children start in it.
ROOT = Path(__file__).resolve().parent.parent

STOP_GRACE_S = 30.0
REDIS_START_TIMEOUT_S = 30.0
# Past SHUTDOWN_GRACE_SECONDS the GPU worker still has to hand its jobs back and leave Celery.
GPU_STOP_MARGIN_S = 15.0


def say(message: str) -> None:
    print(f"[make run] {message}", flush=True)


def ensure_model(model_dir: Path) -> None:
    """Build the random-weight demo model when MODEL_DIR holds no model."""
    try:
        locate_model(model_dir)
        return
    except ModelNotFound:
        pass
    say("!" * 70)
    say(f"NO MODEL in {model_dir}: building a small RANDOM-WEIGHT demo model there.")
    say("Its answers are random text. Put a real model in MODEL_DIR for real answers.")
    say("!" * 70)
    subprocess.run(demo_model_command(model_dir), cwd=ROOT, check=True)


def ensure_webhook_secret(secret_file: Path) -> str:
    """The secret webhooks are signed with: generated once and kept in RUN_DIR when none is configured."""
    secret = private_secret(secret_file, generate_secret)
    say(f"WEBHOOK_SECRET is not set: webhooks are signed with the secret in {secret_file}")
    return secret


def embedded_redis(settings: Settings, run_dir: Path) -> RedisServer:
    """`make run`'s own Redis: its data and password in RUN_DIR, a memory budget, dangerous commands renamed away.

    Hex, so the password goes into the processes' REDIS_URL unescaped.
    """
    password = private_secret(run_dir / "redis_password", lambda: secrets.token_hex(32))
    return RedisServer(
        run_dir / "redis", maxmemory_bytes=settings.redis_maxmemory_bytes, password=password, lock_down=True
    )


def url_host(host: str) -> str:
    """The host as a URL or bind address carries it (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host else host


def is_ready(url: str) -> bool:
    """Whether the API answers /readyz with 200 (Redis up, a worker with its model loaded)."""
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def main() -> int:
    settings = get_settings()
    ensure_model(settings.model_dir)
    # Relative to the repository, whatever the current directory (an absolute RUN_DIR stays as it is).
    run_dir = ROOT / settings.run_dir
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if settings.webhook_secret is None:
        env["WEBHOOK_SECRET"] = ensure_webhook_secret(run_dir / "webhook_secret")
    stopping = False

    def request_stop(signum: int, _frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    def supervised(name: str, command: list[str], stop_grace_s: float, restart: bool, **options) -> Supervised:
        return Supervised(
            name, command, cwd=ROOT, env=env, stop_grace_s=stop_grace_s, restart=restart, say=say, **options
        )

    # Supervised like the workers: a Redis that dies (killed, out of memory) comes back on its port, so the service
    # does not answer 503 until someone notices.
    redis_process: Supervised | None = None
    if settings.redis_url is None:
        redis_server = embedded_redis(settings, run_dir)
        redis_server.prepare()
        redis_process = supervised("Redis", redis_server.command(), STOP_GRACE_S, True, quiet=True)
        redis_process.start()
        try:
            redis_server.wait_until_answering(redis_process.process, REDIS_START_TIMEOUT_S)
        except RuntimeError:
            redis_process.stop()
            raise
        env["REDIS_URL"] = redis_server.url
        say(
            f"embedded redis-server on {redacted_url(redis_server.url)} (data in {redis_server.data_dir}, password in "
            f"{run_dir / 'redis_password'}, maxmemory {redis_server.maxmemory_bytes // 2**20} MiB)"
        )
    else:
        say(f"using REDIS_URL={redacted_url(settings.redis_url)}")

    # The GPU worker hands its running jobs back to the queue within SHUTDOWN_GRACE_SECONDS of a SIGTERM.
    gpu_worker = supervised("GPU worker", worker_command(), settings.shutdown_grace_seconds + GPU_STOP_MARGIN_S, True)
    ops_worker = supervised("ops worker", ops_worker_command(), STOP_GRACE_S, True)
    # An API that exits (its port taken, say) stops everything: a restart loop would hide the reason.
    api_bind = f"{url_host(settings.api_host)}:{settings.port}"
    api_line = api_command(api_bind, worker_connections=settings.api_worker_connections)
    api = supervised("API", api_line, STOP_GRACE_S, False)
    for process in (gpu_worker, ops_worker, api):
        process.start()
    if not settings.api_keys:
        say(open_api_warning(settings))
    # Every interface (0.0.0.0, ::) includes loopback, where the readiness probe looks.
    local_host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::") else settings.api_host
    url = f"http://{url_host(local_host)}:{settings.port}"
    announced_ready = False
    exit_code = 0
    try:
        while not stopping:
            if redis_process is not None:
                redis_process.check()
            gpu_worker.check()
            ops_worker.check()
            returncode = api.check()
            if returncode is not None:
                say(f"API exited with {describe_exit(returncode)}: stopping everything")
                exit_code = 1
                break
            if not announced_ready and is_ready(url):
                announced_ready = True
                say(
                    f"ready: {url}  (console: {url}/ ; try: curl -s -X POST {url}/jobs "
                    f"-H 'Content-Type: application/json' -d '{{\"prompt\": \"Xin chào\"}}')"
                )
            time.sleep(0.2)
    finally:
        # The API first (no new jobs), then the GPU worker (its last results), then the ops worker, which
        # meanwhile goes on delivering those results' webhooks.
        for process in (api, gpu_worker, ops_worker, redis_process):
            if process is not None:
                process.stop()
        say("stopped")
    return exit_code
