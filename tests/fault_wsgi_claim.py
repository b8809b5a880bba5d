"""A WSGI app for the idempotency tests: the real API, killed right after it claims an Idempotency-Key.

Served by gunicorn as `tests.fault_wsgi_claim:app`: the capacity check runs after the claim and before the job
is stored, so a queue that exits there leaves a claim whose job never existed, as a crashed API would.
"""

from __future__ import annotations

import logging
import os

from api.app import create_app

FAULT_EXIT_CODE = 9


class DiesOnCapacityCheck:
    """A queue that kills the API process when asked how full it is."""

    def publish(self, job_ids: list[str], priority: str) -> None:
        """Never reached: the process is gone by then."""
        os._exit(FAULT_EXIT_CODE)

    def depth(self) -> int:
        """Die between the claim and the store."""
        os._exit(FAULT_EXIT_CODE)


logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
app = create_app(queue=DiesOnCapacityCheck())
