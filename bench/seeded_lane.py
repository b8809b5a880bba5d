"""Seeded jobs beside the batch: taking turns with the paused batch (what the worker does) against running unpaused.

Each mode runs in a fresh process of its own: the worker's batching engine, 8 plain and 8 seeded jobs of 64 tokens
submitted at once; prints how long the plain jobs and the seeded jobs took, and the ratio of the two modes.
Usage: python -m bench.seeded_lane [--record]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from bench.results import machine_description, record

ROOT = Path(__file__).resolve().parent.parent

MODEL_DIR = ROOT / "bench" / ".cache" / "seeded-lane-model"
NEW_TOKENS = 64
JOBS_EACH = 8


def run_mode(mode: str) -> dict:
    """In this process: the engine, then 8 plain and 8 seeded jobs at once."""
    from core.jobs.model import GenerationInput
    from core.settings import Settings
    from worker import batching_engine
    from worker.batching_engine import BatchingEngine
    from worker.model_loading import choose_device, load_model

    if mode == "unpaused":
        # The alternative measured here: the seeded job's generate runs while the batch goes on, unpaused.
        class _NoTurns:
            def __init__(self, manager) -> None:
                pass

            def __enter__(self):
                return self

            def take_turns(self) -> None:
                pass

            def __exit__(self, *exc_info) -> None:
                pass

        batching_engine._ModelTurns = _NoTurns
    settings = Settings(_env_file=None, model_dir=MODEL_DIR, device="cpu", max_batch_size=JOBS_EACH)
    engine = BatchingEngine(load_model(settings, choose_device("cpu")), settings)
    plain = GenerationInput(prompt="Hà Nội mùa thu", max_tokens=NEW_TOKENS, ignore_eos=True)
    seeded = [plain.model_copy(update={"seed": i, "prompt": f"Huế {i}"}) for i in range(JOBS_EACH)]

    def timed(params: GenerationInput) -> float:
        with engine.slot(params, rank=3):
            engine.generate(params)
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(2 * JOBS_EACH) as pool:
        seeded_futures = [pool.submit(timed, params) for params in seeded]
        plain_futures = [pool.submit(timed, plain) for _ in range(JOBS_EACH)]
        seeded_done = [future.result() for future in seeded_futures]
        plain_done = [future.result() for future in plain_futures]
    engine.shutdown()
    return {"mode": mode, "plain_s": max(plain_done), "seeded_s": max(seeded_done)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help="append the figures to bench/RESULTS.md")
    args = parser.parse_args()
    from bench.run_bench import build_bench_model

    build_bench_model(MODEL_DIR)
    rows = []
    for mode in ("turns", "unpaused"):
        output = subprocess.run(
            [sys.executable, "-m", "bench.seeded_lane", "--mode", mode],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        ).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
    turns, unpaused = rows
    lines = [
        f"## seeded jobs beside the batch, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine_description()}, no GPU",
        "",
        f"{JOBS_EACH} plain + {JOBS_EACH} seeded jobs of {NEW_TOKENS} tokens at once, the worker's engine in-process.",
        "",
        "| mode | plain jobs done after s | seeded jobs done after s |",
        "| --- | --- | --- |",
        *(f"| {row['mode']} | {row['plain_s']:.2f} | {row['seeded_s']:.2f} |" for row in rows),
        "",
        f"- taking turns / unpaused: plain {turns['plain_s'] / unpaused['plain_s']:.2f}x, "
        f"seeded {turns['seeded_s'] / unpaused['seeded_s']:.2f}x (below 1 is faster).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.record:
        record(text)
    return 0


if __name__ == "__main__":
    if "--mode" in sys.argv:
        print(json.dumps(run_mode(sys.argv[sys.argv.index("--mode") + 1])))
    else:
        sys.exit(main())
