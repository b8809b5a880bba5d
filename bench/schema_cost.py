"""What a response_format schema costs the batch: tokens/s at 32 concurrent jobs with and without one.

`python -m bench.schema_cost [--rounds 2] [--no-record]` builds the bench model, then runs the worker's batching
engine in a fresh process per variant (plain sampled jobs of 64 tokens; the same jobs asked for JSON following a
schema of objects, enums, bounded strings and integer ranges, long enough that every job still runs its 64 tokens),
taking turns round after round, and prints the best tokens/s of each, their ratio, and what the grammar rule itself
took per request and step; the figures are appended to bench/RESULTS.md unless --no-record.
`python -m bench.schema_cost --one plain|schema` is one such process (the JSON figures are stdout's last line).
"""

from __future__ import annotations

import sys
import time

from bench.results import machine_description, report
from bench.rules_cost import CLIENTS, best_in_fresh_processes, command_line, engine_throughput
from bench.workload import SAMPLING

# At least 20 records of a dozen tokens each: no job completes its JSON within 64 tokens, so both variants generate
# the same number of tokens and the difference is the grammar's cost.
RECORDS = {
    "type": "object",
    "properties": {
        "records": {
            "type": "array",
            "minItems": 20,
            "maxItems": 20,
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 12},
                    "kind": {"enum": ["person", "place", "thing"]},
                    "count": {"type": "integer", "minimum": 0, "maximum": 999},
                },
                "required": ["name", "kind", "count"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["records"],
    "additionalProperties": False,
}
# A schema ends where its grammar says, so ignore_eos (refused beside a schema) is left out of both variants' length.
SCHEMA_JOB = {name: value for name, value in SAMPLING.items() if name != "ignore_eos"} | {
    "response_format": {"type": "json_schema", "json_schema": {"name": "records", "schema": RECORDS}}
}
VARIANTS = {"plain": SAMPLING, "schema": SCHEMA_JOB}


def one(variant: str) -> dict:
    """Time the engine at CLIENTS concurrent jobs of this variant in this process, and the grammar rule's share."""
    from worker.grammar import GrammarMask

    spent = {"seconds": 0.0, "calls": 0}
    apply = GrammarMask.apply

    def timed_apply(self, scores, generated) -> None:
        started = time.perf_counter()
        apply(self, scores, generated)
        spent["seconds"] += time.perf_counter() - started
        spent["calls"] += 1

    GrammarMask.apply = timed_apply
    row = engine_throughput(VARIANTS[variant])
    row["grammar_ms_per_call"] = 1000 * spent["seconds"] / spent["calls"] if spent["calls"] else None
    return row


def main() -> int:
    """Run each variant in its own process, round after round; print and record the best of each and the ratio."""
    args = command_line(__doc__, VARIANTS, one)
    if args is None:
        return 0
    best = best_in_fresh_processes("bench.schema_cost", VARIANTS, args.rounds)
    ratio = best["schema"]["tokens_per_s"] / best["plain"]["tokens_per_s"]
    text = (
        f"## response_format cost {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine_description()}\n\n"
        f"Batching engine alone (`python -m bench.schema_cost --rounds {args.rounds}`), bench model on the CPU, "
        f"{CLIENTS} concurrent sampled jobs of {SAMPLING['max_tokens']} tokens, best of {args.rounds} rounds, each "
        "variant in a fresh process:\n\n"
        "| variant | tokens/s | grammar rule, ms per request and step |\n| --- | --- | --- |\n"
        f"| plain | {best['plain']['tokens_per_s']:.1f} | - |\n"
        f"| json_schema (20 records of enum, string <= 12, integer 0-999) | {best['schema']['tokens_per_s']:.1f} | "
        f"{best['schema']['grammar_ms_per_call']:.3f} |\n\n"
        f"Ratio with / without a schema: {ratio:.3f}.\n"
    )
    return report(text, keep=not args.no_record)


if __name__ == "__main__":
    sys.exit(main())
