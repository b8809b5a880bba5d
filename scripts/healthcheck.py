"""Container health checks (docker-compose.yml): `python -m scripts.healthcheck gpu-worker|ops-worker`.

- `gpu-worker`: healthy while a GPU worker of this host (the container's hostname) has its model loaded and its
  heartbeat in Redis has not run out. Unhealthy while the model loads (compose's start_period covers that), once
  the heartbeat stops, or when Redis can't be reached with this container's REDIS_URL (password included).
- `ops-worker`: healthy while Redis answers through this container's REDIS_URL.

Exit status 0 when healthy, 1 when not, with one line saying why (docker keeps it in `docker inspect`). The line
names Redis's host at most (as redis-py's errors do), never the URL, which holds the password.
"""

from __future__ import annotations

import argparse
import socket
import sys

import redis

from core.errors import StoreUnavailable
from core.redis.clients import redis_client
from core.settings import get_settings
from core.workers.registry import WorkerRegistry


def worker_host(name: str) -> str:
    """The host part of a worker name (`gpu@HOST#PID`, as worker/app.py names each process)."""
    return name.partition("@")[2].rpartition("#")[0]


def check_gpu_worker(workers: WorkerRegistry, hostname: str) -> tuple[bool, str]:
    """A live worker of this host is announced in Redis."""
    mine = [worker.name for worker in workers.live() if worker_host(worker.name) == hostname]
    if not mine:
        return False, f"no GPU worker of {hostname} with a live heartbeat (model still loading, or the worker stopped)"
    return True, f"live: {', '.join(mine)}"


def check_redis(client: redis.Redis) -> tuple[bool, str]:
    client.ping()
    return True, "redis answers"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Health check of one of the service's containers.")
    parser.add_argument("role", choices=("gpu-worker", "ops-worker"))
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except SystemExit:  # a bad setting, already printed; docker reserves exit status 2
        return 1
    client = redis_client(settings)
    try:
        if args.role == "gpu-worker":
            healthy, reason = check_gpu_worker(WorkerRegistry(client), socket.gethostname())
        else:
            healthy, reason = check_redis(client)
    except (StoreUnavailable, redis.RedisError) as error:  # away, slow, or the password refused
        healthy, reason = False, f"redis unavailable: {type(error).__name__}: {error}"
    print(f"{args.role}: {reason}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
