"""A 50,000-line batch: how long its submission takes, and the API's memory while its results stream out.

`python -m bench.large_batch` appends the figures to bench/RESULTS.md; tests/test_large_batch.py runs the same
measurement and checks what it must (every line back, in order; memory bounded while streaming).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil
import requests

from launcher.processes import api_command
from launcher.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent

LINES = 50_000


@dataclass
class LargeBatchFigures:
    lines: int
    submit_s: float
    cancel_s: float
    stream_s: float
    result_lines: int
    in_order: bool
    statuses: dict[str, int]
    rss_before_mb: float
    rss_after_submit_mb: float
    rss_stream_peak_mb: float

    def markdown(self) -> str:
        return (
            f"- {self.lines:,}-line batch (the API alone, gunicorn with 1 worker, on a queue no worker reads): "
            f"submitted in {self.submit_s:.1f} s (validate, store, enqueue), canceled in {self.cancel_s:.1f} s, "
            f"results ({self.result_lines:,} lines, {self.statuses}) streamed in {self.stream_s:.1f} s. "
            f"API worker RSS {self.rss_before_mb:.0f} MB before, {self.rss_after_submit_mb:.0f} MB after the "
            f"submission, peak {self.rss_stream_peak_mb:.0f} MB while streaming "
            f"(+{self.rss_stream_peak_mb - self.rss_after_submit_mb:.1f} MB)."
        )


class _PeakRss(threading.Thread):
    def __init__(self, process: psutil.Process) -> None:
        super().__init__(daemon=True)
        self.process, self.peak, self.done = process, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)


def measure_large_batch(redis_url: str, lines: int = LINES) -> LargeBatchFigures:
    """Run the API against `redis_url` on a private queue; submit, cancel and stream a batch of `lines`."""
    queue = f"large-batch-{os.getpid()}-{time.monotonic_ns()}"
    port = free_port()
    env = dict(os.environ, REDIS_URL=redis_url, GPU_QUEUE=queue, PYTHONUNBUFFERED="1")
    api = subprocess.Popen(
        api_command(f"127.0.0.1:{port}", workers=1), cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                requests.get(f"{base_url}/healthz", timeout=1)
                break
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or still loading the app
                time.sleep(0.1)
        worker = psutil.Process(api.pid).children()[0]
        rss_before = worker.memory_info().rss
        body = "\n".join(
            json.dumps(
                {"custom_id": f"row-{i}", "body": {"prompt": f"Dịch sang tiếng Anh: câu số {i}", "max_tokens": 64}}
            )
            for i in range(lines)
        )
        started = time.perf_counter()
        response = requests.post(
            f"{base_url}/batches", data=body.encode(), headers={"Content-Type": "application/jsonl"}, timeout=600
        )
        submit_s = time.perf_counter() - started
        response.raise_for_status()
        batch_id = response.json()["id"]
        rss_after_submit = worker.memory_info().rss
        started = time.perf_counter()
        requests.post(f"{base_url}/batches/{batch_id}/cancel", timeout=600).raise_for_status()
        cancel_s = time.perf_counter() - started
        sampler = _PeakRss(worker)
        sampler.start()
        started = time.perf_counter()
        custom_ids, statuses = [], {}
        with requests.get(f"{base_url}/batches/{batch_id}/results", stream=True, timeout=600) as results:
            for raw in results.iter_lines():
                line = json.loads(raw)
                custom_ids.append(line["custom_id"])
                statuses[line["status"]] = statuses.get(line["status"], 0) + 1
        stream_s = time.perf_counter() - started
        sampler.done.set()
        sampler.join()
        return LargeBatchFigures(
            lines=lines,
            submit_s=submit_s,
            cancel_s=cancel_s,
            stream_s=stream_s,
            result_lines=len(custom_ids),
            in_order=custom_ids == [f"row-{i}" for i in range(lines)],
            statuses=statuses,
            rss_before_mb=rss_before / 2**20,
            rss_after_submit_mb=rss_after_submit / 2**20,
            rss_stream_peak_mb=max(sampler.peak, rss_after_submit) / 2**20,
        )
    finally:
        api.terminate()
        api.wait(30)
        client = __import__("redis").Redis.from_url(redis_url)
        for name in client.keys(f"{queue}*"):
            client.delete(name)


def main() -> int:
    redis_server = RedisServer(ROOT / "bench" / ".cache" / "redis-large")
    redis_server.start()
    try:
        figures = measure_large_batch(redis_server.url)
    finally:
        redis_server.stop()
    line = f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}, {os.cpu_count()} CPU cores: {figures.markdown()[2:]}"
    print(line)
    with (ROOT / "bench" / "RESULTS.md").open("a", encoding="utf-8") as out:
        out.write(f"\n## Large batch, {line}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
