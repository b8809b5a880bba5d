"""`python -m worker [--hostname NAME] [celery worker options]`: the GPU worker, built from the environment's
settings and started (other options, `--help` included, go to Celery's worker)."""

from __future__ import annotations

import argparse

from core.settings import get_settings
from worker.app import create_worker_app, worker_argv


def main(argv: list[str] | None = None) -> None:
    """Read the settings once, build the worker's Celery app from them and run it until it is stopped."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--hostname", default="gpu@%h")
    args, celery_options = parser.parse_known_args(argv)
    create_worker_app(get_settings()).worker_main([*worker_argv(args.hostname), *celery_options])


if __name__ == "__main__":
    main()
