"""`python -m tests.fault_worker [WRAPPER] [--hostname NAME] [--stall-consumer-on PATH]`: the real GPU worker with a
fault around its engine, or in its Celery consumer.

WRAPPER names a function of tests/fault_engines.py. With `--stall-consumer-on PATH`, the worker's Celery consumer
stops taking messages once PATH appears (the file is removed, so a restarted worker runs normally): the file holds
`cancel` (the consumer stops consuming its queues while its loop runs on, as after celery#9054) or `block` (its
loop hangs). Everything else is `python -m worker`.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from pathlib import Path

from celery.signals import worker_ready

from core.settings import get_settings
from tests import fault_engines
from worker.app import create_worker_app, worker_argv

log = logging.getLogger("llm.worker")


def stall_consumer_on(trigger: Path):
    """A worker_ready receiver that stalls the consumer it is sent by once `trigger` appears."""

    def arm(sender=None, **_kwargs) -> None:
        consumer = sender

        def wait_for_trigger() -> None:
            while not trigger.exists():
                time.sleep(0.05)
            how = trigger.read_text().strip() or "cancel"
            trigger.unlink()
            log.warning("test fault: the consumer stops taking messages now (%s)", how)
            if how == "block":
                consumer.hub.call_soon(threading.Event().wait)  # the loop never comes back
            else:
                consumer.hub.call_soon(consumer.task_consumer.cancel)  # no queue is read any more

        threading.Thread(target=wait_for_trigger, name="stall-trigger", daemon=True).start()

    return arm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wrapper", nargs="?", help="a function of tests/fault_engines.py")
    parser.add_argument("--hostname", default="gpu@%h")
    parser.add_argument("--stall-consumer-on", type=Path, help="stall the consumer once this file appears")
    args = parser.parse_args()
    wrap_engine = getattr(fault_engines, args.wrapper) if args.wrapper else None
    if args.stall_consumer_on is not None:
        worker_ready.connect(stall_consumer_on(args.stall_consumer_on), weak=False)
    create_worker_app(get_settings(), wrap_engine=wrap_engine).worker_main(worker_argv(args.hostname))


if __name__ == "__main__":
    main()
