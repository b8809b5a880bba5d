"""`make soak`: `python -m tests.soak [--seconds N] [--faults N] [--fault-kinds a,b] [--out DIR] [--seed N]`.

Prints the counts and every violation; exit status 1 on any violation.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from pathlib import Path

from tests.conftest import ROOT
from tests.soak.nemesis import FAULTS
from tests.soak.run import SoakConfig, run_soak

DEFAULT_SECONDS = 240
# One fault every 30 s or so: each plays out (restart, model load, recovery) before the next.
SECONDS_PER_FAULT = 30
SHOWN_VIOLATIONS = 30


def demo_model(cache: Path) -> Path:
    """The random-weight demo model (the soak measures the service, not the model), built once and kept."""
    from scripts.make_demo_model import build_demo_model

    if not (cache / "tokenizer").is_dir():
        build_demo_model(cache)
    return cache


def report(summary: dict) -> str:
    """The counts a person reads after a soak, then the violations."""
    faults = ", ".join(f"{fault['name']}@{fault['at_s']:g}s" for fault in summary["faults"])
    violations = summary["violations"]
    lines = [
        f"soak of {summary['seconds']:g} s in {summary['wall_seconds']:g} s; artifacts in {summary['folder']}",
        f"jobs by kind:         {summary['jobs_by_kind']} ({summary['batches']} batches)",
        f"jobs by final status: {summary['jobs_by_final_status']}",
        f"executions logged:    {summary['executions']}",
        f"faults injected:      {len(summary['faults'])}: {faults}",
        f"process restarts:     {summary['restarts']}",
        f"503 answers:          {summary['answers_503']}; retries {summary['retries']}; "
        f"connection errors {summary['connection_errors']}",
        f"webhooks:             {summary['webhook_events']} events in {summary['webhook_requests']} requests",
        f"idempotency keys:     {summary['idempotency_keys_by_route']}",
        f"routes ignoring keys: {summary['routes_ignoring_idempotency_key'] or 'none'} (not probed: "
        f"{summary['routes_not_probed_for_idempotency'] or 'none'})",
        f"unnamed stored jobs:  {len(summary['unnamed_jobs'])}",
        f"violations:           {len(violations)} {dict(collections.Counter(v['check'] for v in violations))}",
    ]
    lines += [f"  {v['check']}: {v['id']}: {v['detail']}" for v in violations[:SHOWN_VIOLATIONS]]
    if len(violations) > SHOWN_VIOLATIONS:
        lines.append(f"  ... {len(violations) - SHOWN_VIOLATIONS} more in summary.json")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS") or DEFAULT_SECONDS))
    parser.add_argument("--faults", type=int, default=None, help="faults injected (default: one per 30 s)")
    parser.add_argument("--fault-kinds", default=",".join(FAULTS), help=f"some of {','.join(FAULTS)}")
    parser.add_argument("--out", type=Path, default=None, help="artifacts folder (default: soak-artifacts/<time>)")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args(argv)
    folder = args.out or ROOT / "soak-artifacts" / time.strftime("%Y%m%d-%H%M%S")
    faults = args.faults if args.faults is not None else max(1, int(args.seconds // SECONDS_PER_FAULT))
    kinds = tuple(kind.strip() for kind in args.fault_kinds.split(",") if kind.strip())
    model_dir = demo_model(ROOT / "soak-artifacts" / "demo-model")
    print(f"soak: {args.seconds:g} s, {faults} faults, seed {args.seed}; artifacts in {folder}", flush=True)
    summary = run_soak(SoakConfig(args.seconds, faults, folder, model_dir, args.seed, kinds))
    print(report(summary))
    return 1 if summary["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
