"""What logprobs cost the batch: tokens/s at 32 concurrent jobs without them and with `logprobs` 5 on every job.

`python -m bench.logprobs_cost [--rounds 2] [--no-record]` builds the bench model, then runs the worker's batching
engine in a fresh process per variant (plain sampled jobs; the same jobs each asking for their tokens' logprobs with
5 alternatives, captured per request in the batch), taking turns round after round, and prints the best tokens/s of
each and their ratio; the figures are appended to bench/RESULTS.md unless --no-record.
`python -m bench.logprobs_cost --one plain|logprobs` is one such process (the JSON figures are stdout's last line).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from bench.results import machine_description, record
from bench.rules_cost import CLIENTS, best_of_rounds, engine_throughput
from bench.workload import SAMPLING

VARIANTS = {"plain": {}, "logprobs": {"logprobs": 5}}


def main() -> int:
    """Run each variant in its own process, round after round; print and record the best of each and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", choices=tuple(VARIANTS))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(engine_throughput(VARIANTS[args.one])))
        return 0
    best = best_of_rounds("bench.logprobs_cost", tuple(VARIANTS), args.rounds)
    ratio = best["logprobs"] / best["plain"]
    text = (
        f"## logprobs cost {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine_description()}\n\n"
        f"Batching engine alone (bench/logprobs_cost.py), bench model on the CPU, {CLIENTS} concurrent sampled jobs of "
        f"{SAMPLING['max_tokens']} tokens, best of {args.rounds} rounds, each variant in a fresh process:\n\n"
        "| variant | tokens/s |\n| --- | --- |\n"
        f"| plain | {best['plain']:.1f} |\n"
        f"| logprobs 5 on every job (raw log_softmax captured per request) | {best['logprobs']:.1f} |\n\n"
        f"Ratio with / without logprobs: {ratio:.3f}.\n"
    )
    print(text)
    if not args.no_record:
        record(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
