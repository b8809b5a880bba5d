"""`make test-hosts`: the test hosts' scenarios, each on a fresh set of hosts; prints every scenario's counts and
exits 1 on any violation. Needs root (network namespaces)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from scripts.make_demo_model import build_demo_model
from tests.hosts.network import unavailable_reason
from tests.hosts.scenarios import api_host_cut_off, gpu_host_cut_off, master_host_dies, slow_gpu_link
from tests.hosts.service import ServiceHosts

SCENARIOS = {"1": master_host_dies, "2": gpu_host_cut_off, "3": api_host_cut_off, "4": slow_gpu_link}
# Hosts a scenario needs beyond the default set.
HOST_OPTIONS = {"2": {"gpu_hosts": 2}, "4": {"slow_gpu_link": True}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SCENARIOS), action="append", help="run only these scenarios")
    parser.add_argument("--keep", type=Path, help="keep every host's logs in this folder")
    parser.add_argument(
        "--min-replica-acks", type=int, default=1, help="REDIS_MIN_REPLICA_ACKS of the service (default 1)"
    )
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason is not None:
        print(f"test hosts can't run: {reason}", file=sys.stderr)
        return 2
    failed = False
    with tempfile.TemporaryDirectory(prefix="test-hosts-") as folder:
        root = args.keep or Path(folder)
        model_dir = build_demo_model(root / "model")
        for key in args.only or sorted(SCENARIOS):
            run_root = root / f"scenario-{key}"
            run_root.mkdir(parents=True)
            options = {"min_replica_acks": args.min_replica_acks, **HOST_OPTIONS.get(key, {})}
            with ServiceHosts(run_root, model_dir, **options) as hosts:
                outcome = SCENARIOS[key](hosts)
            print(outcome.report(), flush=True)
            failed = failed or bool(outcome.violations)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
