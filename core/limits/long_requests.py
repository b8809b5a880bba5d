"""A bound, per API process, on the requests that hold their connection for long (event streams, waits).

gunicorn's gevent worker accepts at most `--worker-connections` at once; once they are all taken, new connections
wait in the kernel's backlog, `/healthz` included. Refusing long-lived requests past a lower bound keeps the
difference free for health checks and short calls, whatever one key (or all of them) opens. The count lives in
the process, not in Redis: it is this process's connections that it protects, and a killed process takes its
count with it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from core.errors import ServerBusy

BUSY_RETRY_AFTER_S = 5


class LongRequests:
    """At most `limit` long-lived requests in this process at once; past it, ServerBusy at once (no waiting)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held = 0
        # Under gevent (monkey-patched by gunicorn's worker) this is a cooperative lock; nothing waits on it long.
        self._lock = threading.Lock()

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold one of the process's places for the block; ServerBusy when all are taken."""
        with self._lock:
            if self._held >= self.limit:
                raise ServerBusy(
                    f"this API process already serves {self.limit} long-lived requests (event streams and waiting "
                    "calls; API_WORKER_CONNECTIONS less API_RESERVED_CONNECTIONS); try again shortly",
                    retry_after_s=BUSY_RETRY_AFTER_S,
                )
            self._held += 1
        try:
            yield
        finally:
            with self._lock:
                self._held -= 1
