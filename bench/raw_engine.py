"""The worker's batching engine alone, in a process of its own: no API, no queue. Prints its figures as JSON.

`python -m bench.raw_engine --clients 8` reads the worker's settings (MODEL_DIR, DEVICE, MAX_BATCH_SIZE, ...)
from the environment, loads the model and builds the engine with the worker's own code, then times the bench
workload with threads calling `engine.generate` concurrently.
"""

from __future__ import annotations

import argparse
import json
import sys

from bench.workload import SAMPLING, Sender, measure_throughput
from core.jobs.model import GenerationInput
from core.settings import Settings
from worker.batching_engine import BatchingEngine
from worker.model_loading import choose_device, load_model


def main() -> int:
    """Time the raw engine at each client count; the JSON figures are stdout's last line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", required=True)
    args = parser.parse_args()
    settings = Settings()
    loaded = load_model(settings, choose_device(settings.device))
    engine = BatchingEngine(loaded, settings)

    def new_sender() -> Sender:
        def send(prompt: str) -> tuple[int, int]:
            result = engine.generate(GenerationInput(prompt=prompt, **SAMPLING))
            return result.completion_tokens, result.batch_size

        return send

    try:
        rows = [measure_throughput(new_sender, clients) for clients in args.clients]
    finally:
        engine.shutdown()  # its generation thread is not a daemon
    print(json.dumps({"rows": rows, "max_batch_size": settings.max_batch_size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
