"""What per-request logits rules cost the batch: tokens/s at 32 concurrent jobs with and without penalties.

`python -m bench.rules_cost [--rounds 2] [--no-record]` builds the bench model, then runs the worker's batching
engine in a fresh process per variant (plain sampled jobs; the same with presence and frequency penalties, which run
as per-request rules on every row), taking turns round after round, and prints the best tokens/s of each and their
ratio; the figures are appended to bench/RESULTS.md unless --no-record.
`python -m bench.rules_cost --one plain|penalties` is one such process (the JSON figures are stdout's last line).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from bench.results import machine_description, report
from bench.run_bench import CACHE, build_bench_model, run_json_process
from bench.workload import SAMPLING, Sender, measure_throughput

CLIENTS = 32
VARIANTS = {"plain": {}, "penalties": {"presence_penalty": 0.5, "frequency_penalty": 0.5}}


def engine_throughput(job_fields: dict) -> dict:
    """Time the batching engine at CLIENTS concurrent jobs with these fields, in this process."""
    from core.jobs.model import GenerationInput
    from core.settings import Settings
    from worker.batching_engine import BatchingEngine
    from worker.model_loading import choose_device, load_model

    settings = Settings()
    engine = BatchingEngine(load_model(settings, choose_device(settings.device)), settings)

    def new_sender() -> Sender:
        def send(prompt: str) -> tuple[int, int]:
            result = engine.generate(GenerationInput(prompt=prompt, **job_fields))
            return result.completion_tokens, result.batch_size

        return send

    try:
        return measure_throughput(new_sender, CLIENTS)
    finally:
        engine.shutdown()  # its generation thread is not a daemon


def main() -> int:
    """Run each variant in its own process, round after round; print and record the best of each and the ratio."""
    labels = {"plain": "plain", "penalties": "presence_penalty 0.5, frequency_penalty 0.5 (per-request rules)"}
    return compare("bench.rules_cost", __doc__, VARIANTS, labels, "per-request rules cost", "penalties")


def compare(
    module: str, doc: str, variants: dict[str, dict], labels: dict[str, str], heading: str, ratio_of: str
) -> int:
    """A two-variant cost bench's command line: `--one VARIANT` times that variant's sampled jobs (its extra input
    fields) in this process; otherwise every variant runs in fresh processes, round after round, and the best of
    each and the second's ratio to the first are printed and appended to bench/RESULTS.md."""
    args = command_line(doc, variants, lambda variant: engine_throughput(SAMPLING | variants[variant]))
    if args is None:
        return 0
    best = {
        variant: row["tokens_per_s"] for variant, row in best_in_fresh_processes(module, variants, args.rounds).items()
    }
    base, other = tuple(variants)
    rows = "".join(f"| {labels[name]} | {best[name]:.1f} |\n" for name in variants)
    text = (
        f"## {heading} {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine_description()}\n\n"
        f"Batching engine alone ({module.replace('.', '/')}.py), bench model on the CPU, {CLIENTS} concurrent sampled "
        f"jobs of {SAMPLING['max_tokens']} tokens, best of {args.rounds} rounds, each variant in a fresh process:\n\n"
        f"| variant | tokens/s |\n| --- | --- |\n{rows}\n"
        f"Ratio with / without {ratio_of}: {best[other] / best[base]:.3f}.\n"
    )
    return report(text, keep=not args.no_record)


def command_line(doc: str, variants, one) -> argparse.Namespace | None:
    """The options (`--rounds`, `--no-record`); with `--one VARIANT`, that variant is timed here, its figures printed
    as JSON, and None returned."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--one", choices=tuple(variants))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one)))
        return None
    return args


def best_in_fresh_processes(module: str, variants, rounds: int) -> dict[str, dict]:
    """`python -m module --one VARIANT` for each variant, taking turns round after round: the best row of each."""
    CACHE.mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        MODEL_DIR=str(build_bench_model()),
        LOG_DIR=str(CACHE / "logs"),
        DEVICE="cpu",
        MAX_BATCH_SIZE=str(CLIENTS),
        PYTHONUNBUFFERED="1",
    )
    best: dict[str, dict] = {}
    for round_number in range(1, rounds + 1):
        for variant in variants:
            log_name = f"{module.rsplit('.', 1)[-1]}_{variant}.log"
            row = run_json_process(module, ["--one", variant], env, log_name)
            print(f"round {round_number} {variant}: {row['tokens_per_s']:.1f} tokens/s", flush=True)
            if row["tokens_per_s"] > best.get(variant, {}).get("tokens_per_s", 0.0):
                best[variant] = row
    return best


if __name__ == "__main__":
    sys.exit(main())
