"""Waiting clients: 1,000 synchronous /v1/generate calls in flight while /healthz and POST /jobs keep answering.

The API runs as deployed (gunicorn, 2 gevent workers) on its own redis-server, with a queue no worker reads, so
every synchronous call really waits. Prints the p50/p99 latency of /healthz and POST /jobs with no waiter and
with the 1,000 waiting, the API's memory (RSS of the gunicorn master and workers) in both states, and how long
the 1,000 took to answer once their jobs were canceled; appends the figures to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
import requests

from bench.results import machine_description, record
from core.jobs.store import connect
from core.limits.wait_slots import WaitSlots
from core.owners.ids import ANONYMOUS_OWNER
from launcher.processes import api_command
from launcher.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent

WAITERS = 1000
PROBES = 200
WAIT_S = 600
API_WORKERS = 2


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def raise_open_files_limit(needed: int) -> None:
    """Each waiting client holds a socket: lift the soft limit on open files as far as the hard one allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


def api_rss_mb(master: psutil.Process) -> float:
    """Resident memory of the gunicorn master and its workers together."""
    processes = [master, *master.children(recursive=True)]
    return sum(process.memory_info().rss for process in processes) / 2**20


def probe_latencies(base_url: str, count: int) -> dict[str, list[float]]:
    """`count` sequential GET /healthz and POST /jobs, timed one by one (seconds)."""
    timings: dict[str, list[float]] = {"healthz": [], "post_jobs": []}
    with requests.Session() as session:
        for _ in range(count):
            started = time.perf_counter()
            session.get(f"{base_url}/healthz", timeout=30).raise_for_status()
            timings["healthz"].append(time.perf_counter() - started)
            started = time.perf_counter()
            response = session.post(f"{base_url}/jobs", json={"prompt": "probe", "max_tokens": 4}, timeout=30)
            assert response.status_code == 202, response.text
            timings["post_jobs"].append(time.perf_counter() - started)
    return timings


def summary(timings: dict[str, list[float]]) -> dict[str, float]:
    return {
        f"{name}_{label}_ms": percentile(values, q) * 1000
        for name, values in timings.items()
        for label, q in (("p50", 0.5), ("p99", 0.99))
    }


def cancel_every_queued(base_url: str) -> int:
    """Cancel the service's queued jobs through the API (which wakes their waiters); returns how many."""
    job_ids, cursor = [], None
    with requests.Session() as session:
        while True:
            params = {"status": "queued", "limit": 100} | ({"cursor": cursor} if cursor else {})
            page = session.get(f"{base_url}/jobs", params=params, timeout=30).json()
            job_ids += [job["id"] for job in page["data"]]
            if (cursor := page["next_cursor"]) is None:
                break
        for job_id in job_ids:
            session.post(f"{base_url}/jobs/{job_id}/cancel", timeout=30)
    return len(job_ids)


def measure(waiters: int, probes: int) -> dict:
    """Start Redis and the API, take the idle figures, put `waiters` calls in flight, take them again."""
    raise_open_files_limit(waiters * 2 + 256)
    tmp = Path(tempfile.mkdtemp(prefix="waiting-clients-"))
    redis_server = RedisServer(tmp / "redis")
    redis_server.start()
    port = free_port()
    env = dict(
        os.environ,
        REDIS_URL=redis_server.url,
        GPU_QUEUE=f"waiting-clients-{os.getpid()}",  # no worker reads it: every call waits the whole time
        SYNC_WAIT_SECONDS=str(WAIT_S),
        # One open service, one owner: let it hold every waiter and send as fast as it likes.
        MAX_WAITS_PER_KEY=str(waiters + 100),
        RATE_LIMIT="",
        LOG_DIR=str(tmp / "logs"),
        PYTHONUNBUFFERED="1",
    )
    log = (tmp / "api.log").open("w")
    api = subprocess.Popen(
        api_command(f"127.0.0.1:{port}", workers=API_WORKERS), cwd=ROOT, env=env, stdout=log, stderr=log
    )
    base_url = f"http://127.0.0.1:{port}"
    answers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{base_url}/healthz", timeout=1).raise_for_status()
                break
            except (requests.ConnectionError, requests.Timeout):  # not listening yet
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the API did not start; see {tmp / 'api.log'}") from None
                time.sleep(0.2)
        master = psutil.Process(api.pid)
        probe_latencies(base_url, 20)  # warm both workers up
        idle = summary(probe_latencies(base_url, probes))
        rss_idle = api_rss_mb(master)

        def wait_once() -> None:
            response = requests.post(
                f"{base_url}/v1/generate", json={"prompt": "wait", "max_tokens": 4}, timeout=WAIT_S
            )
            answers.append(response.status_code)

        threading.stack_size(256 * 1024)  # a thousand client threads, each only blocked in a socket read
        clients = [threading.Thread(target=wait_once, daemon=True) for _ in range(waiters)]
        started = time.perf_counter()
        for client in clients:
            client.start()
        slots = WaitSlots(connect(redis_server.url), limit=1, wait_s=WAIT_S)
        while slots.in_flight(ANONYMOUS_OWNER) < waiters:
            if time.perf_counter() - started > 120:
                raise RuntimeError(f"only {slots.in_flight(ANONYMOUS_OWNER)} of {waiters} waits in flight")
            time.sleep(0.2)
        all_waiting_s = time.perf_counter() - started
        assert not answers, f"{len(answers)} calls answered while their jobs were queued"
        loaded = summary(probe_latencies(base_url, probes))
        rss_loaded = api_rss_mb(master)
        started = time.perf_counter()
        canceled = cancel_every_queued(base_url)
        for client in clients:
            client.join(timeout=120)
        all_answered_s = time.perf_counter() - started
    finally:
        api.terminate()
        try:
            api.wait(30)
        except subprocess.TimeoutExpired:
            api.kill()
        log.close()
        redis_server.stop()
    return {
        "waiters": waiters,
        "probes": probes,
        "idle": idle,
        "loaded": loaded,
        "rss_idle_mb": rss_idle,
        "rss_loaded_mb": rss_loaded,
        "all_waiting_s": all_waiting_s,
        "canceled": canceled,
        "answered": len(answers),
        "answered_409": answers.count(409),
        "all_answered_s": all_answered_s,
    }


def report(figures: dict, machine: str, date: str) -> str:
    idle, loaded = figures["idle"], figures["loaded"]
    return "\n".join(
        [
            f"## Waiting clients ({date})",
            "",
            f"Machine: {machine} (shared with other work while it ran: figures are indicative). "
            f"`python -m bench.waiting_clients`: the API under gunicorn, {API_WORKERS} gevent workers, on a queue "
            f"no worker reads; {figures['waiters']:,} concurrent synchronous `/v1/generate` calls waiting; "
            f"{figures['probes']} sequential probes of each endpoint per state.",
            "",
            "| state | /healthz p50 ms | /healthz p99 ms | POST /jobs p50 ms | POST /jobs p99 ms | API RSS MB |",
            "| --- | --- | --- | --- | --- | --- |",
            f"| no waiter | {idle['healthz_p50_ms']:.1f} | {idle['healthz_p99_ms']:.1f} | "
            f"{idle['post_jobs_p50_ms']:.1f} | {idle['post_jobs_p99_ms']:.1f} | {figures['rss_idle_mb']:.0f} |",
            f"| {figures['waiters']:,} waiting | {loaded['healthz_p50_ms']:.1f} | {loaded['healthz_p99_ms']:.1f} | "
            f"{loaded['post_jobs_p50_ms']:.1f} | {loaded['post_jobs_p99_ms']:.1f} | {figures['rss_loaded_mb']:.0f} |",
            "",
            f"- All {figures['waiters']:,} calls were waiting {figures['all_waiting_s']:.1f} s after the first was "
            f"sent; after their {figures['canceled']:,} queued jobs were canceled through the API, "
            f"{figures['answered']:,} had answered ({figures['answered_409']:,} with 409: canceled) within "
            f"{figures['all_answered_s']:.1f} s (canceling included).",
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiters", type=int, default=WAITERS)
    parser.add_argument("--probes", type=int, default=PROBES)
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to bench/RESULTS.md")
    args = parser.parse_args()
    figures = measure(args.waiters, args.probes)
    text = report(figures, machine_description(), datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    print("\n" + text)
    if not args.no_record:
        record(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
