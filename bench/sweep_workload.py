"""What every process of the engine sweep runs: its prompts, job sizes, and how a wave of concurrent jobs is timed.

The sweep (bench/gpu_sweep.py) runs each engine variant, the seed-style baseline and the service in processes of
their own; they share these definitions so their figures compare.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.workload import PROMPT, percentile

GREEDY_PROMPTS = 8


@dataclass(frozen=True)
class SweepShape:
    """Job sizes of one sweep: the real one for a GPU, a tiny one to dry-run the sweep on a CPU."""

    new_tokens: int  # per timed job (ignore_eos)
    greedy_tokens: int  # compared with plain `generate` for each of GREEDY_PROMPTS prompts
    baseline_jobs: int  # one plain `generate` at a time
    raw_concurrency: tuple[int, ...]
    service_concurrency: tuple[int, ...]


GPU_SHAPE = SweepShape(128, 32, 3, (1, 8, 32), (1, 8, 32, 64))
TINY_SHAPE = SweepShape(8, 8, 2, (1, 8, 32), (1, 8, 32, 64))


def greedy_prompt(index: int) -> str:
    return f"{PROMPT} ({index})"


def timed_prompt(index: int) -> str:
    return f"{PROMPT} [{index}]"


# A job of a timed wave: returns (completion tokens, time to first token s, generation s, batch size it shared).
JobRunner = Callable[[str], tuple[int, float | None, float, int]]


def run_wave(run_job: JobRunner, concurrent: int, jobs: int | None = None) -> dict:
    """`jobs` jobs (default: one per client) sent by `concurrent` clients at once: tokens/s and per-token latency."""
    jobs = jobs or concurrent
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrent) as pool:
        outcomes = list(pool.map(run_job, [timed_prompt(n) for n in range(jobs)]))
    wall_s = time.perf_counter() - started
    tokens = sum(outcome[0] for outcome in outcomes)
    ttfts = [outcome[1] or 0.0 for outcome in outcomes]
    per_token_ms = [1000 * (gen_s - (ttft or 0.0)) / max(n - 1, 1) for n, ttft, gen_s, _ in outcomes]
    return {
        "concurrent": concurrent,
        "jobs": jobs,
        "tokens_per_s": tokens / wall_s,
        "ms_per_token_p50": percentile(per_token_ms, 0.5),
        "ttft_p50_ms": 1000 * percentile(ttfts, 0.5),
        "batch_seen": max(outcome[3] for outcome in outcomes),
        "wall_s": wall_s,
    }


def first_difference(ours: list[int], reference: list[int]) -> int | None:
    """The first position where two token lists differ (None when equal over the reference's length)."""
    for position, (a, b) in enumerate(zip(ours, reference, strict=False)):
        if a != b:
            return position
    return None if len(ours) >= len(reference) else len(ours)


class FiguresFile:
    """A JSON file rewritten after every step, so a process killed at its deadline leaves what it measured."""

    def __init__(self, path: Path, **first: object) -> None:
        self.path = path
        self.figures: dict = dict(first)
        self.write()

    def add(self, **figures: object) -> None:
        self.figures.update(figures)
        self.write()

    def write(self) -> None:
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(self.figures, indent=2, default=str), encoding="utf-8")
        partial.replace(self.path)
