"""A WSGI app for the fault tests: the real API whose queue kills the process right after a job is stored.

Served by gunicorn as `tests.fault_wsgi:app` in place of `api.wsgi:app`: it proves that a job stored but never
published (an API that died mid-submit) is found and published by the reconciler.
"""

from __future__ import annotations

import logging
import os

from api.app import create_app

FAULT_EXIT_CODE = 9


class DiesOnPublish:
    """A queue that is always empty and kills the API process when asked to publish."""

    def publish(self, job_ids: list[str], priority: str) -> None:
        """Die between storing and publishing, as a crashed API would."""
        os._exit(FAULT_EXIT_CODE)

    def depth(self) -> int:
        """Nothing waits here, so capacity never refuses."""
        return 0


logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
app = create_app(queue=DiesOnPublish())
