"""`make bench`: the service against a one-`generate`-at-a-time baseline, in one run, on one machine.

Prints, side by side: the one-at-a-time baseline; the service end to end (real API, Redis, worker) at 1, 8 and 32
concurrent clients; the queue's own overhead on 1-token jobs; model load time against a raw read of the weight
files; the worker's resident memory after 10 and after 500 jobs. Appends the figures to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.settings import Settings  # noqa: E402
from core.store import JobStore, connect  # noqa: E402
from scripts.redis_server import RedisServer, free_port  # noqa: E402
from scripts.service_processes import api_command, wait_for_worker, worker_command  # noqa: E402

CACHE = ROOT / "bench" / ".cache"
RESULTS = ROOT / "bench" / "RESULTS.md"
NEW_TOKENS = 64
PROMPT = "Hà Nội là thủ đô của nước nào? Hãy kể về lịch sử, ẩm thực và con người nơi đây."
# About 30M parameters, a small model of realistic shape (the bundled corpus gives the tokenizer ~2.4k tokens,
# not 8k, so the MLP is a little wider to keep the size).
BENCH_MODEL_SHAPE = {"hidden_size": 512, "layers": 8, "heads": 8, "kv_heads": 4, "intermediate_size": 2048}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def build_bench_model() -> Path:
    from scripts.make_demo_model import build_demo_model

    target = CACHE / "model"
    if not (target / "fp16" / "config.json").is_file():
        build_demo_model(target, vocab_size=8000, dtype="float32", **BENCH_MODEL_SHAPE)
    return target


def one_at_a_time_baseline(model_dir: Path, jobs: int) -> dict:
    """One `model.generate` at a time, no queue and no batching: tokens/s and per-job latency."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir / "tokenizer")
    model = AutoModelForCausalLM.from_pretrained(model_dir / "fp16", dtype=torch.float32).eval()
    input_ids = torch.tensor([tokenizer(PROMPT)["input_ids"]])
    kwargs = dict(
        attention_mask=torch.ones_like(input_ids),
        max_new_tokens=NEW_TOKENS,
        min_new_tokens=NEW_TOKENS,
        do_sample=True,
        temperature=0.7,
        top_p=0.9,
        top_k=0,
        pad_token_id=tokenizer.pad_token_id,
    )
    latencies = []
    with torch.inference_mode():
        model.generate(input_ids, **(kwargs | {"max_new_tokens": 4, "min_new_tokens": 4}))  # warm-up
        for _ in range(jobs):
            started = time.perf_counter()
            model.generate(input_ids, **kwargs)
            latencies.append(time.perf_counter() - started)
    parameters = sum(p.numel() for p in model.parameters())
    del model
    return {
        "tokens_per_s": NEW_TOKENS * jobs / sum(latencies),
        "p50_s": percentile(latencies, 0.5),
        "p95_s": percentile(latencies, 0.95),
        "parameters": parameters,
    }


def load_versus_read(model_dir: Path) -> dict:
    """The worker's model load against reading the same weight files' bytes (both from the page cache)."""
    from worker.model_loading import choose_device, load_model

    files = sorted((model_dir / "fp16").glob("*.safetensors"))
    started = time.perf_counter()
    size = 0
    for path in files:
        with path.open("rb") as handle:
            while chunk := handle.read(16 * 2**20):
                size += len(chunk)
    read_s = time.perf_counter() - started
    settings = Settings(_env_file=None, model_dir=model_dir, device="cpu", dtype="float32")
    started = time.perf_counter()
    loaded = load_model(settings, choose_device("cpu"))  # the worker's own loading code
    load_s = time.perf_counter() - started
    del loaded
    return {"bytes": size, "read_s": read_s, "load_s": load_s}


class Service:
    """Redis, a worker and the API, all real processes, for the length of the benchmark."""

    def __init__(self, model_dir: Path, max_batch_size: int) -> None:
        self.redis = RedisServer(CACHE / "redis", appendfsync="everysec")
        self.redis.start()
        self.port = free_port()
        self.env = dict(
            os.environ,
            REDIS_URL=self.redis.url,
            MODEL_DIR=str(model_dir),
            LOG_DIR=str(CACHE / "logs"),
            DEVICE="cpu",
            MAX_BATCH_SIZE=str(max_batch_size),
            WORKER_HEARTBEAT_SECONDS="1",
            PYTHONUNBUFFERED="1",
            # It measures the worker's throughput, not the edge's fairness: no per-key request rate.
            RATE_LIMIT="",
        )
        log = (CACHE / "service.log").open("w")
        self.worker = subprocess.Popen(worker_command("bench@%h"), cwd=ROOT, env=self.env, stdout=log, stderr=log)
        self.api = subprocess.Popen(
            api_command(f"127.0.0.1:{self.port}", workers=2), cwd=ROOT, env=self.env, stdout=log, stderr=log
        )
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.worker_info = wait_for_worker(JobStore(connect(self.redis.url), job_ttl_s=3600), self.worker, "bench")
        self.session = requests.Session()
        while True:
            try:
                if self.session.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.2)

    def generate(self, session: requests.Session, **body) -> tuple[float, dict]:
        started = time.perf_counter()
        response = session.post(f"{self.base_url}/v1/generate", json=body, timeout=600)
        elapsed = time.perf_counter() - started
        response.raise_for_status()
        return elapsed, response.json()

    def worker_rss_mb(self) -> float:
        return psutil.Process(self.worker_info["pid"]).memory_info().rss / 2**20

    def stop(self) -> None:
        for process in (self.api, self.worker):
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.redis.stop()


def run_clients(service: Service, clients: int, jobs_per_client: int, body: dict) -> tuple[float, list[float], list]:
    """`clients` threads, each sending `jobs_per_client` synchronous requests back to back."""

    def client(index: int) -> list[tuple[float, dict]]:
        session = requests.Session()
        bodies = [body | {"prompt": f"{PROMPT} ({index}.{n})"} for n in range(jobs_per_client)]
        return [service.generate(session, **one) for one in bodies]

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        outcomes = [item for result in pool.map(client, range(clients)) for item in result]
    wall_s = time.perf_counter() - started
    return wall_s, [elapsed for elapsed, _ in outcomes], [result for _, result in outcomes]


def service_throughput(service: Service, clients: int, baseline: dict) -> dict:
    body = {"max_tokens": NEW_TOKENS, "ignore_eos": True, "temperature": 0.7, "top_p": 0.9}
    jobs_per_client = max(2, 64 // clients) if clients > 1 else 16
    run_clients(service, clients, 2, body)  # warm-up: the weights are memory-mapped and page in on first use
    wall_s, latencies, results = run_clients(service, clients, jobs_per_client, body)
    tokens = sum(r["usage"]["completion_tokens"] for r in results)
    tokens_per_s = tokens / wall_s
    return {
        "clients": clients,
        "jobs": len(results),
        "tokens_per_s": tokens_per_s,
        "ratio": tokens_per_s / baseline["tokens_per_s"],
        "p50_s": percentile(latencies, 0.5),
        "p95_s": percentile(latencies, 0.95),
        "latency_ratio": percentile(latencies, 0.5) / baseline["p50_s"],
        "max_batch_size_seen": max(r["resources"]["batch_size"] for r in results),
    }


def queue_overhead(service: Service, jobs: int = 60) -> dict:
    """A 1-token job end to end, minus the time it spent inside the engine."""
    session = requests.Session()
    overheads = []
    for n in range(jobs):
        elapsed, result = service.generate(session, prompt=f"{PROMPT} {n}", max_tokens=1, ignore_eos=True)
        overheads.append(elapsed - result["metrics"]["generation_seconds"])
    overheads = overheads[5:]  # the first few warm connections and caches
    return {"p50_ms": 1000 * percentile(overheads, 0.5), "p95_ms": 1000 * percentile(overheads, 0.95)}


def memory_growth(service: Service) -> dict:
    body = {"max_tokens": 8, "ignore_eos": True}
    run_clients(service, 10, 1, body)
    after_10 = service.worker_rss_mb()
    run_clients(service, 20, 25, body)
    after_510 = service.worker_rss_mb()
    return {"rss_after_10_mb": after_10, "rss_after_510_mb": after_510, "growth_mb": after_510 - after_10}


def report(figures: dict) -> str:
    b = figures["baseline"]
    lines = [
        f"## {figures['date']} on {figures['machine']}",
        "",
        f"Model: Llama, {b['parameters'] / 1e6:.1f}M parameters, float32 on CPU; {NEW_TOKENS} new tokens per job "
        "(ignore_eos), temperature 0.7, top_p 0.9.",
        "",
        "| run | jobs | tokens/s | x baseline | p50 latency s | p95 latency s | p50 / baseline p50 | batch seen |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| baseline (one `generate` at a time) | {figures['baseline_jobs']} | {b['tokens_per_s']:.1f} "
        f"| 1.00 | {b['p50_s']:.3f} | {b['p95_s']:.3f} | 1.00 | 1 |",
    ]
    for row in figures["service"]:
        lines.append(
            f"| service, {row['clients']} client(s) | {row['jobs']} | {row['tokens_per_s']:.1f} | {row['ratio']:.2f} "
            f"| {row['p50_s']:.3f} | {row['p95_s']:.3f} | {row['latency_ratio']:.2f} | {row['max_batch_size_seen']} |"
        )
    o, m, load = figures["overhead"], figures["memory"], figures["load"]
    lines += [
        "",
        f"- Queue overhead, 1-token job end to end minus engine time: p50 {o['p50_ms']:.1f} ms, "
        f"p95 {o['p95_ms']:.1f} ms.",
        f"- Model load (the worker's code) {load['load_s']:.2f} s vs raw read of the {load['bytes'] / 2**20:.0f} MB "
        f"of weight files {load['read_s']:.3f} s (ratio {load['load_s'] / max(load['read_s'], 1e-9):.1f}x).",
        f"- Worker RSS after 10 jobs {m['rss_after_10_mb']:.0f} MB, after 510 jobs {m['rss_after_510_mb']:.0f} MB "
        f"(growth {m['growth_mb']:+.1f} MB).",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--baseline-jobs", type=int, default=8)
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to bench/RESULTS.md")
    args = parser.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    model_dir = build_bench_model()
    print("baseline: one generate at a time ...", flush=True)
    baseline = one_at_a_time_baseline(model_dir, args.baseline_jobs)
    load = load_versus_read(model_dir)
    service = Service(model_dir, args.max_batch_size)
    try:
        rows = []
        for clients in (1, 8, 32):
            print(f"service: {clients} client(s) ...", flush=True)
            rows.append(service_throughput(service, clients, baseline))
        print("queue overhead ...", flush=True)
        overhead = queue_overhead(service)
        print("worker memory over 510 jobs ...", flush=True)
        memory = memory_growth(service)
    finally:
        service.stop()
    figures = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.node()}: {os.cpu_count()} CPU cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"{platform.processor() or platform.machine()}, no GPU",
        "baseline": baseline,
        "baseline_jobs": args.baseline_jobs,
        "service": rows,
        "overhead": overhead,
        "memory": memory,
        "load": load,
    }
    text = report(figures)
    print("\n" + text)
    if not args.no_record:
        with RESULTS.open("a", encoding="utf-8") as results:
            results.write("\n" + text)
        print(f"appended to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
