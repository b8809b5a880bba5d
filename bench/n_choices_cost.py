"""What n choices cost the batch: tokens/s of 8 jobs with n=4 against 32 jobs with n=1 (32 sequences either way).

`python -m bench.n_choices_cost [--rounds 2] [--no-record]` builds the bench model, then runs the worker's batching
engine in a fresh process per variant, taking turns round after round, and prints the best tokens/s of each (every
choice's tokens counted) and their ratio; the figures are appended to bench/RESULTS.md unless --no-record.
`python -m bench.n_choices_cost --one n1|n4` is one such process (the JSON figures are stdout's last line).
"""

from __future__ import annotations

import sys
import time

from bench.results import machine_description, report
from bench.rules_cost import CLIENTS, best_in_fresh_processes, command_line
from bench.workload import SAMPLING, Sender, percentile, run_clients

# As many sequences as the other cost benches' concurrent jobs (and their MAX_BATCH_SIZE).
SEQUENCES = CLIENTS
# Jobs each client sends back to back: both variants generate the same number of sequences.
JOBS_EACH = 4
CHOICES = {"n1": 1, "n4": 4}


def one(variant: str) -> dict:
    """Time the engine at SEQUENCES concurrent sequences made of jobs with this variant's n, in this process."""
    from core.jobs.model import GenerationInput
    from core.settings import Settings
    from worker.batching_engine import BatchingEngine
    from worker.model_loading import choose_device, load_model

    settings = Settings()
    engine = BatchingEngine(load_model(settings, choose_device(settings.device)), settings)
    n = CHOICES[variant]

    def new_sender() -> Sender:
        def send(prompt: str) -> tuple[int, int]:
            result = engine.generate(GenerationInput(prompt=prompt, n=n, **SAMPLING))
            return result.total_completion_tokens, result.batch_size

        return send

    clients = SEQUENCES // n
    try:
        run_clients(new_sender, clients, 1)  # warm-up: weights page in, caches fill
        wall_s, outcomes = run_clients(new_sender, clients, JOBS_EACH)
    finally:
        engine.shutdown()  # its generation thread is not a daemon
    return {
        "clients": clients,
        "n": n,
        "jobs": len(outcomes),
        "tokens_per_s": sum(outcome.completion_tokens for outcome in outcomes) / wall_s,
        "p50_s": percentile([outcome.seconds for outcome in outcomes], 0.5),
        "max_batch_size_seen": max(outcome.batch_size for outcome in outcomes),
    }


def main() -> int:
    """Run each variant in its own process, round after round; print and record the best of each and the ratio."""
    args = command_line(__doc__, CHOICES, one)
    if args is None:
        return 0
    best = best_in_fresh_processes("bench.n_choices_cost", CHOICES, args.rounds)
    ratio = best["n4"]["tokens_per_s"] / best["n1"]["tokens_per_s"]
    text = (
        f"## n choices cost {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine_description()}\n\n"
        f"Batching engine alone (bench/n_choices_cost.py), bench model on the CPU, {SEQUENCES} sequences at once "
        f"of {SAMPLING['max_tokens']} sampled tokens, {JOBS_EACH} jobs per client after a warm-up job, best of "
        f"{args.rounds} rounds, each variant in a fresh process:\n\n"
        "| variant | jobs | tokens/s (every choice) | p50 job latency s | batch seen |\n"
        "| --- | --- | --- | --- | --- |\n"
        + "".join(
            f"| {best[v]['clients']} clients, n={best[v]['n']} | {best[v]['jobs']} | {best[v]['tokens_per_s']:.1f} | "
            f"{best[v]['p50_s']:.2f} | {best[v]['max_batch_size_seen']} |\n"
            for v in CHOICES
        )
        + f"\nRatio n=4 / n=1 tokens/s: {ratio:.3f}.\n"
    )
    return report(text, keep=not args.no_record)


if __name__ == "__main__":
    sys.exit(main())
