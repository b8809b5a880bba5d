"""One pub/sub connection per process on a pattern of per-job channels, routing each message to whoever in this
process registered for that job.

A thousand waiting or following clients then cost one Redis connection here, not one each. Under gevent (the API's
server model) the thread below is a greenlet and every wait on it yields to the others. Messages are not kept while
the connection is down: every (re)subscription calls `_resubscribed`, and the subclass tells its subscribers to
re-read what they follow, so nothing is lost for good.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

import redis

log = logging.getLogger("llm.store")

RECONNECT_PAUSE_S = 1.0
SUBSCRIBE_WAIT_S = 2.0
IDLE_READ_S = 30.0

Subscriber = TypeVar("Subscriber")


class JobChannelListener(Generic[Subscriber]):
    """The registry of this process's subscribers by job, and the one thread listening for all of them."""

    def __init__(self, client: redis.Redis, channel_template: str, *, name: str, after_outage: str) -> None:
        self.client = client
        self._pattern = channel_template.format(job_id="*")
        self._job_id_start = len(channel_template.split("{", 1)[0])
        self._name = name
        self._after_outage = after_outage  # what the subscribers do about an outage, for the log line
        self._lock = threading.Lock()
        self._subscribers: dict[str, set[Subscriber]] = {}
        self._subscribed = threading.Event()
        self._started_in: int | None = None

    @contextmanager
    def _registered(self, job_id: str, subscriber: Subscriber) -> Iterator[Subscriber]:
        """`subscriber` receives the job's messages for the block; register it before reading what it follows."""
        self._start_once()
        with self._lock:
            self._subscribers.setdefault(job_id, set()).add(subscriber)
        # A first subscriber in this process waits (briefly) for the subscription, so it needs no re-read to catch up.
        self._subscribed.wait(SUBSCRIBE_WAIT_S)
        try:
            yield subscriber
        finally:
            with self._lock:
                subscribers = self._subscribers.get(job_id)
                if subscribers is not None:
                    subscribers.discard(subscriber)
                    if not subscribers:
                        del self._subscribers[job_id]

    def _jobs_followed(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def _subscriber_count(self) -> int:
        with self._lock:
            return sum(len(subscribers) for subscribers in self._subscribers.values())

    def _subscribers_of(self, job_id: str) -> list[Subscriber]:
        with self._lock:
            return list(self._subscribers.get(job_id, ()))

    def _all_subscribers(self) -> list[Subscriber]:
        with self._lock:
            return [subscriber for subscribers in self._subscribers.values() for subscriber in subscribers]

    def _message(self, job_id: str, data: str) -> None:
        """A message on one job's channel."""
        raise NotImplementedError

    def _resubscribed(self) -> None:
        """The subscription is (back) in place: whatever was published before now may have gone unheard."""
        raise NotImplementedError

    def _lost(self) -> None:
        """The subscription is gone (Redis away): nothing will be heard until `_resubscribed`."""

    def _start_once(self) -> None:
        # Per process: a forked child (a gunicorn worker) starts its own listener.
        with self._lock:
            if self._started_in == os.getpid():
                return
            self._started_in = os.getpid()
            self._subscribed.clear()
        threading.Thread(target=self._listen_forever, name=f"{self._name}-listener", daemon=True).start()

    def _listen_forever(self) -> None:
        while True:
            try:
                self._listen()
            except redis.RedisError as error:
                if self._subscribed.is_set():  # once per outage, not once per reconnect attempt
                    log.warning("%s listener lost Redis (%s); %s", self._name, error, self._after_outage)
                    self._lost()
            self._subscribed.clear()
            threading.Event().wait(RECONNECT_PAUSE_S)

    def _listen(self) -> None:
        pubsub = self.client.pubsub()
        try:
            pubsub.psubscribe(self._pattern)
            while True:
                message = pubsub.get_message(timeout=IDLE_READ_S)
                if message is None:
                    continue
                if message["type"] == "psubscribe":
                    self._subscribed.set()
                    self._resubscribed()
                elif message["type"] == "pmessage":
                    self._message(message["channel"][self._job_id_start :], message["data"])
        finally:
            pubsub.close()
