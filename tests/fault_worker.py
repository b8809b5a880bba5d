"""`python -m tests.fault_worker WRAPPER [--hostname NAME]`: the real GPU worker with a fault around its engine.

WRAPPER names a function of tests/fault_engines.py; everything else is `python -m worker`.
"""

from __future__ import annotations

import argparse

from core.settings import get_settings
from tests import fault_engines
from worker.app import create_worker_app, worker_argv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wrapper", help="a function of tests/fault_engines.py")
    parser.add_argument("--hostname", default="gpu@%h")
    args = parser.parse_args()
    wrap_engine = getattr(fault_engines, args.wrapper)
    create_worker_app(get_settings(), wrap_engine=wrap_engine).worker_main(worker_argv(args.hostname))


if __name__ == "__main__":
    main()
