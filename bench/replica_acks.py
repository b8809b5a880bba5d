"""What the replica promise costs a submission: SubmitJob against a local master + replica, with REDIS_MIN_REPLICA_ACKS
0 (today's single-Redis behaviour) and 1 (WAIT 1 after each submission), on a queue that takes every job.

Each mode submits SUBMISSIONS jobs one after another from one thread, then from THREADS threads; prints the
median and p99 latency of a submission and submissions per second.
Usage: python -m bench.replica_acks [--record]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from bench.results import machine_description, record
from core.jobs.idempotency import IdempotencyKeys
from core.jobs.store import JobStore
from core.jobs.submission import SubmitJob
from core.redis.clients import redis_client
from core.redis.replication import ReplicaAcks
from core.settings import Settings
from launcher.redis_server import free_port
from tests.redis_ha import RedisSet

SUBMISSIONS = 2000
THREADS = 8


class NoQueue:
    """The broker left out: only the job store's writes (and the WAIT) are measured."""

    def publish(self, job_ids: list[str], priority: str) -> None:
        pass

    def depth(self) -> int:
        return 0


def measure(url: str, acks: int, threads: int) -> dict:
    """Latencies (ms) and rate of SUBMISSIONS submissions from `threads` threads."""
    settings = Settings(_env_file=None, redis_url=url, redis_min_replica_acks=acks, rate_limit="")
    client = redis_client(settings, max_connections=threads * 2, pool_timeout_s=5)
    store = JobStore(client, job_ttl_s=600)
    submit = SubmitJob(
        settings, store, NoQueue(), IdempotencyKeys(client), replicas=ReplicaAcks.from_settings(client, settings)
    )

    def one(_: int) -> float:
        started = time.perf_counter()
        submit({"prompt": "hello", "max_tokens": 8}, "bench")
        return (time.perf_counter() - started) * 1000

    for _ in range(50):  # warm the pool
        one(0)
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        latencies = sorted(pool.map(one, range(SUBMISSIONS)))
    elapsed = time.perf_counter() - started
    return {
        "p50": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99)],
        "rate": SUBMISSIONS / elapsed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help="append the figures to bench/RESULTS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        master = ("127.0.0.1", free_port())
        redis_set = RedisSet(Path(folder), master, [("127.0.0.1", free_port())], []).start()
        try:
            url = f"redis://{master[0]}:{master[1]}/0"
            rows = []
            for threads in (1, THREADS):
                without, with_wait = measure(url, 0, threads), measure(url, 1, threads)
                rows.append((threads, without, with_wait))
        finally:
            redis_set.stop()
    lines = [
        "| threads | acks 0: p50 ms | p99 ms | submissions/s | acks 1 (WAIT): p50 ms | p99 ms | submissions/s "
        "| added p50 ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for threads, without, with_wait in rows:
        lines.append(
            f"| {threads} | {without['p50']:.2f} | {without['p99']:.2f} | {without['rate']:.0f} "
            f"| {with_wait['p50']:.2f} | {with_wait['p99']:.2f} | {with_wait['rate']:.0f} "
            f"| {with_wait['p50'] - without['p50']:.2f} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.record:
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        record(
            f"## replica acknowledgements (REDIS_MIN_REPLICA_ACKS) {when} on {machine_description()}\n\n"
            f"`python bench/replica_acks.py`: {SUBMISSIONS} submissions (SubmitJob, the broker left out) against a "
            "master and one replica on this machine's loopback (both redis-server 7, AOF everysec), without and "
            "with WAIT 1 after each.\n\n" + table + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
