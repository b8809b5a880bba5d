"""One pub/sub connection per process that wakes whoever waits for a job when that job's done message comes.

A synchronous call then costs an event, not a Redis connection of its own: a thousand waiting clients hold a
thousand sockets to the API, and still one to Redis. Under gevent (the API's server model) the thread below
is a greenlet and every wait here yields to the others.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from core.keys import JOB_DONE_CHANNEL

log = logging.getLogger("llm.store")

DONE_PATTERN = JOB_DONE_CHANNEL.format(job_id="*")
_JOB_ID_START = len(JOB_DONE_CHANNEL.split("{", 1)[0])
RECONNECT_PAUSE_S = 1.0
SUBSCRIBE_WAIT_S = 2.0
IDLE_READ_S = 30.0


class CompletionListener:
    """Wakes the events registered for a job when its done message arrives.

    Correctness does not hang on the connection: a waiter registers before it reads the job, and every
    (re)subscription wakes all waiters, so a message lost while the connection was down is made up for by
    their re-reading the job once Redis is back.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._waiters: dict[str, set[threading.Event]] = {}
        self._subscribed = threading.Event()
        self._started_in: int | None = None

    @contextmanager
    def watching(self, job_id: str) -> Iterator[threading.Event]:
        """An event that is set whenever the job may have changed to terminal; registered for the block."""
        self._start_once()
        event = threading.Event()
        with self._lock:
            self._waiters.setdefault(job_id, set()).add(event)
        # A first wait in this process waits (briefly) for the subscription, so it needs no wake-up to catch up.
        self._subscribed.wait(SUBSCRIBE_WAIT_S)
        try:
            yield event
        finally:
            with self._lock:
                events = self._waiters.get(job_id)
                if events is not None:
                    events.discard(event)
                    if not events:
                        del self._waiters[job_id]

    def waiting(self) -> int:
        """Jobs with at least one waiter in this process."""
        with self._lock:
            return len(self._waiters)

    def _start_once(self) -> None:
        # Per process: a forked child (a gunicorn worker) starts its own listener.
        with self._lock:
            if self._started_in == os.getpid():
                return
            self._started_in = os.getpid()
            self._subscribed.clear()
        threading.Thread(target=self._listen_forever, name="job-done-listener", daemon=True).start()

    def _listen_forever(self) -> None:
        while True:
            try:
                self._listen()
            except redis.RedisError as error:
                if self._subscribed.is_set():  # once per outage, not once per reconnect attempt
                    log.warning("job-done listener lost Redis (%s); waiters re-read their jobs", error)
            # Waiters sleep on through the outage: the resubscription wakes them all to re-read their jobs.
            self._subscribed.clear()
            threading.Event().wait(RECONNECT_PAUSE_S)

    def _listen(self) -> None:
        pubsub = self.client.pubsub()
        try:
            pubsub.psubscribe(DONE_PATTERN)
            while True:
                message = pubsub.get_message(timeout=IDLE_READ_S)
                if message is None:
                    continue
                if message["type"] == "psubscribe":
                    self._subscribed.set()
                    self._wake_all()  # whatever finished before now may have gone unheard
                elif message["type"] == "pmessage":
                    self._wake(message["channel"][_JOB_ID_START:])
        finally:
            pubsub.close()

    def _wake(self, job_id: str) -> None:
        with self._lock:
            events = list(self._waiters.get(job_id, ()))
        for event in events:
            event.set()

    def _wake_all(self) -> None:
        with self._lock:
            events = [event for events in self._waiters.values() for event in events]
        for event in events:
            event.set()
