"""Token publishing against generation speed: the worker's batching engine with and without streaming every job's
text deltas to Redis (the worker's publisher thread, a Redis of the bench's own).

Each mode runs in a fresh process of its own: the engine with MAX_BATCH_SIZE=32, then the bench workload (64 new
tokens per job) at 8 and 32 concurrent clients; prints tokens/s of both modes, their ratio, and how many stream
entries publishing wrote per generated token (below 1: steps coalesced).
Usage: python -m bench.token_publishing [--record]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

from bench.results import machine_description, record

ROOT = Path(__file__).resolve().parent.parent

MODEL_DIR = ROOT / "bench" / ".cache" / "token-publishing-model"
BATCH_SIZE = 32
CLIENTS = (8, 32)


def run_mode(mode: str, redis_url: str) -> dict:
    """In this process: the engine, then the workload; with `mode` "publish", every job streams its text."""
    from bench.workload import SAMPLING, Sender, measure_throughput
    from core.events.stream import TokenStreams, entries_cap, stage_status, stream_key
    from core.jobs.model import GenerationInput
    from core.jobs.store import connect
    from core.settings import Settings
    from worker.batching_engine import BatchingEngine
    from worker.model_loading import choose_device, load_model
    from worker.token_publisher import TokenPublisher

    settings = Settings(_env_file=None, model_dir=MODEL_DIR, device="cpu", max_batch_size=BATCH_SIZE)
    loaded = load_model(settings, choose_device("cpu"))
    engine = BatchingEngine(loaded, settings)
    client = connect(redis_url)
    publisher = TokenPublisher(TokenStreams(client, max_entries=entries_cap(4096)), loaded.tokenizer)
    streamed: list[str] = []

    def new_sender() -> Sender:
        def send(prompt: str) -> tuple[int, int]:
            params = GenerationInput(prompt=prompt, **SAMPLING)
            if mode != "publish":
                result = engine.generate(params)
                return result.completion_tokens, result.batch_size
            job_id = uuid.uuid4().hex
            pipe = client.pipeline()
            stage_status(pipe, job_id, "running", attempt=1)  # what the running transition writes first
            pipe.execute()
            feed = publisher.open(job_id, 1, None)
            result = engine.generate(params, None, feed.on_tokens)
            feed.finish(result.text)
            streamed.append(job_id)
            return result.completion_tokens, result.batch_size

        return send

    rows = []
    try:
        for clients in CLIENTS:
            streamed.clear()
            row = measure_throughput(new_sender, clients)
            if streamed:
                entries = sum(client.xlen(stream_key(job_id)) - 1 for job_id in streamed)  # less the status entry
                row["entries_per_token"] = entries / (len(streamed) * SAMPLING["max_tokens"])
            rows.append(row)
    finally:
        engine.shutdown()  # its generation thread is not a daemon
    return {"mode": mode, "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help="append the figures to bench/RESULTS.md")
    args = parser.parse_args()
    from bench.run_bench import build_bench_model

    build_bench_model(MODEL_DIR)
    from launcher.redis_server import RedisServer

    with tempfile.TemporaryDirectory() as redis_dir:
        server = RedisServer(Path(redis_dir))
        server.start()
        try:
            results = {}
            for mode in ("off", "publish"):
                output = subprocess.run(
                    [sys.executable, "-m", "bench.token_publishing", "--mode", mode, "--redis-url", server.url],
                    check=True, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                )  # fmt: skip
                results[mode] = json.loads(output.stdout.strip().splitlines()[-1])["rows"]
        finally:
            server.stop()
    lines = [
        f"## token publishing, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine_description()}, no GPU",
        "",
        f"The worker's batching engine in-process (MAX_BATCH_SIZE={BATCH_SIZE}, the bench model, 64 new tokens per "
        "job), each mode in a fresh process; `publish` streams every job's text deltas through the worker's "
        "publisher thread to a local Redis.",
        "",
        "| clients | tokens/s without | tokens/s publishing | ratio | stream entries per token |",
        "| --- | --- | --- | --- | --- |",
    ]
    for off, on in zip(results["off"], results["publish"], strict=True):
        lines.append(
            f"| {off['clients']} | {off['tokens_per_s']:.1f} | {on['tokens_per_s']:.1f} | "
            f"{on['tokens_per_s'] / off['tokens_per_s']:.3f} | {on['entries_per_token']:.2f} |"
        )
    lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.record:
        record(text)
    return 0


if __name__ == "__main__":
    if "--mode" in sys.argv:
        mode = sys.argv[sys.argv.index("--mode") + 1]
        print(json.dumps(run_mode(mode, sys.argv[sys.argv.index("--redis-url") + 1])))
    else:
        sys.exit(main())
