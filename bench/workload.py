"""The one workload every `make bench` run sends, and how a run of concurrent clients is timed."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

NEW_TOKENS = 64
PROMPT = "Hà Nội là thủ đô của nước nào? Hãy kể về lịch sử, ẩm thực và con người nơi đây."
# The job body of every timed run: a fixed number of new tokens, sampled.
SAMPLING = {"max_tokens": NEW_TOKENS, "ignore_eos": True, "temperature": 0.7, "top_p": 0.9}
CLIENT_COUNTS = (1, 8, 32)
WARM_UP_JOBS_PER_CLIENT = 2

# A sender runs one job for the prompt it is given and returns (completion tokens, batch size it shared).
Sender = Callable[[str], tuple[int, int]]


@dataclass
class JobOutcome:
    seconds: float
    completion_tokens: int
    batch_size: int


def percentile(values: list[float], q: float) -> float:
    """The q-quantile of `values` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def jobs_per_client(clients: int) -> int:
    """About 64 jobs in all, but at least 2 per client; one client sends 16."""
    return max(2, 64 // clients) if clients > 1 else 16


def run_clients(new_sender: Callable[[], Sender], clients: int, jobs_each: int) -> tuple[float, list[JobOutcome]]:
    """`clients` threads with a sender each, sending `jobs_each` jobs back to back: wall time and every job."""

    def client(index: int) -> list[JobOutcome]:
        send = new_sender()
        outcomes = []
        for n in range(jobs_each):
            started = time.perf_counter()
            tokens, batch_size = send(f"{PROMPT} ({index}.{n})")
            outcomes.append(JobOutcome(time.perf_counter() - started, tokens, batch_size))
        return outcomes

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        outcomes = [outcome for result in pool.map(client, range(clients)) for outcome in result]
    return time.perf_counter() - started, outcomes


def measure_throughput(new_sender: Callable[[], Sender], clients: int) -> dict:
    """Warm up, then time `clients` concurrent clients: tokens/s, latency percentiles, the largest batch seen."""
    run_clients(new_sender, clients, WARM_UP_JOBS_PER_CLIENT)  # weights page in and caches fill on first use
    wall_s, outcomes = run_clients(new_sender, clients, jobs_per_client(clients))
    latencies = [outcome.seconds for outcome in outcomes]
    return {
        "clients": clients,
        "jobs": len(outcomes),
        "tokens_per_s": sum(outcome.completion_tokens for outcome in outcomes) / wall_s,
        "p50_s": percentile(latencies, 0.5),
        "p95_s": percentile(latencies, 0.95),
        "max_batch_size_seen": max(outcome.batch_size for outcome in outcomes),
    }
