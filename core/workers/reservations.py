"""Jobs a worker took from the lines and holds while they wait for a place in its engine.

The fair queue's take reserves a job for its worker (core/jobs/fair_queue.py) and the job store drops the
reservation when the job starts or goes back in line; here the worker lets go of one, and the reconciler asks which
jobs live workers hold and takes over those of dead ones.
"""

from __future__ import annotations

from collections.abc import Callable

import redis

from core.redis.errors import redis_boundary
from core.redis.keys import RESERVING_WORKERS_KEY, WORKER_RESERVED_KEY


class WorkerReservations:
    """Each worker's set of reserved job ids, and the set of workers that have one."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    @redis_boundary()
    def release(self, worker: str, job_id: str) -> None:
        """The job started, or went back to the queue: the worker no longer holds it."""
        self.redis.srem(WORKER_RESERVED_KEY.format(name=worker), job_id)

    @redis_boundary()
    def held_by(self, workers: set[str]) -> set[str]:
        """The jobs these workers hold while the jobs wait for a place."""
        if not workers:
            return set()
        return set(self.redis.sunion([WORKER_RESERVED_KEY.format(name=name) for name in workers]))

    @redis_boundary()
    def take_from(self, gone: Callable[[str], bool]) -> list[str]:
        """The jobs reserved by workers for which `gone(name)` holds; their reservations are dropped."""
        job_ids: list[str] = []
        for name in self.redis.smembers(RESERVING_WORKERS_KEY):
            if not gone(name):
                continue
            key = WORKER_RESERVED_KEY.format(name=name)
            pipe = self.redis.pipeline(transaction=True)
            pipe.smembers(key)
            pipe.delete(key)
            pipe.srem(RESERVING_WORKERS_KEY, name)
            job_ids.extend(pipe.execute()[0])
        return job_ids
