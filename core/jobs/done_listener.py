"""One pub/sub connection per process that wakes whoever waits for a job when that job's done message comes.

A synchronous call then costs an event, not a Redis connection of its own: a thousand waiting clients hold a
thousand sockets to the API, and still one to Redis. Under gevent (the API's server model) the thread below
is a greenlet and every wait here yields to the others.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager

import redis

from core.jobs.channel_listener import JobChannelListener
from core.redis.keys import JOB_DONE_CHANNEL


class CompletionListener(JobChannelListener[threading.Event]):
    """Wakes the events registered for a job when its done message arrives.

    Correctness does not hang on the connection: a waiter registers before it reads the job, and every
    (re)subscription wakes all waiters, so a message lost while the connection was down is made up for by
    their re-reading the job once Redis is back.
    """

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(client, JOB_DONE_CHANNEL, name="job-done", after_outage="waiters re-read their jobs")

    def watching(self, job_id: str) -> AbstractContextManager[threading.Event]:
        """An event that is set whenever the job may have changed to terminal; registered for the block."""
        return self._registered(job_id, threading.Event())

    def waiting(self) -> int:
        """Jobs with at least one waiter in this process."""
        return self._jobs_followed()

    def _message(self, job_id: str, data: str) -> None:
        for event in self._subscribers_of(job_id):
            event.set()

    def _lost(self) -> None:
        # Waiters look at once, so those Redis stays away from give up after their own outage allowance,
        # not after their next recheck.
        for event in self._all_subscribers():
            event.set()

    def _resubscribed(self) -> None:
        # Waiters sleep on through an outage: this wakes them all to re-read their jobs.
        for event in self._all_subscribers():
            event.set()
