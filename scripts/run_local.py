"""`make run`: Redis (embedded unless REDIS_URL is set), the GPU worker, the ops worker and the API.

All in the foreground. Ctrl-C (SIGINT) or SIGTERM stops every process it started: the API first, then the
workers (the GPU worker finishes its jobs), then Redis (which flushes its append-only file).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.settings import get_settings, open_api_warning  # noqa: E402
from core.webhooks import generate_secret  # noqa: E402
from scripts.redis_server import RedisServer  # noqa: E402
from scripts.service_processes import api_command, ops_worker_command, worker_command  # noqa: E402
from worker.model_loading import ModelNotFound, locate_model  # noqa: E402

RUN_DIR = ROOT / ".run"
WEBHOOK_SECRET_FILE = RUN_DIR / "webhook_secret"
STOP_GRACE_S = 30.0


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
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_demo_model.py"), "--out", str(model_dir)], check=True)


def ensure_webhook_secret() -> str:
    """The secret webhooks are signed with: generated once and kept under .run/ when none is configured."""
    if not WEBHOOK_SECRET_FILE.is_file():
        RUN_DIR.mkdir(exist_ok=True)
        WEBHOOK_SECRET_FILE.write_text(generate_secret() + "\n")
        WEBHOOK_SECRET_FILE.chmod(0o600)
    say(f"WEBHOOK_SECRET is not set: webhooks are signed with the secret in {WEBHOOK_SECRET_FILE}")
    return WEBHOOK_SECRET_FILE.read_text().strip()


def url_host(host: str) -> str:
    """The host as a URL or bind address carries it (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host else host


def start(name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
    say(f"starting {name}: {' '.join(command)}")
    # A session of its own: the terminal's Ctrl-C reaches only this supervisor, which stops them in order.
    return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)


def stop(name: str, process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    say(f"stopping {name}")
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        say(f"{name} did not stop within {STOP_GRACE_S:g} s: killing it")
        process.kill()
        process.wait()


def wait_until_ready(url: str, children: dict[str, subprocess.Popen], timeout_s: float = 600) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in children.values()):
            return False
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def main() -> int:
    settings = get_settings()
    ensure_model(settings.model_dir)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if settings.webhook_secret is None:
        env["WEBHOOK_SECRET"] = ensure_webhook_secret()
    redis_server: RedisServer | None = None
    if settings.redis_url is None:
        redis_server = RedisServer(RUN_DIR / "redis")
        redis_server.start()
        env["REDIS_URL"] = redis_server.url
        say(f"embedded redis-server on {redis_server.url} (data in {redis_server.data_dir})")
    else:
        say(f"using REDIS_URL={settings.redis_url}")

    stopping = False

    def request_stop(signum: int, _frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    children = {
        "GPU worker": start("GPU worker", worker_command(), env),
        "ops worker": start("ops worker", ops_worker_command(), env),
        "API": start("API", api_command(f"{url_host(settings.api_host)}:{settings.port}"), env),
    }
    if not settings.api_keys:
        say(open_api_warning(settings))
    # Every interface (0.0.0.0, ::) includes loopback, where the readiness probe looks.
    local_host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::") else settings.api_host
    url = f"http://{url_host(local_host)}:{settings.port}"
    exit_code = 0
    try:
        if wait_until_ready(url, children):
            say(f'ready: {url}  (try: curl -s -X POST {url}/jobs -d \'{{"prompt": "Xin chào"}}\')')
        while not stopping:
            for name, process in children.items():
                if process.poll() is not None:
                    say(f"{name} exited with code {process.returncode}: stopping everything")
                    stopping, exit_code = True, 1
            time.sleep(0.2)
    finally:
        for name in ("API", "ops worker", "GPU worker"):
            stop(name, children[name])
        if redis_server is not None:
            say("stopping embedded redis-server")
            redis_server.stop()
        say("stopped")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
