"""One pub/sub connection per process that hands every new entry of a job's event stream to whoever follows it.

Each entry is published with its id as it is added (core/token_stream.py), so a follower in this process gets it
from memory: five hundred clients watching jobs cost one Redis connection here, not one blocked read each. Under
gevent (the API's server model) the thread below is a greenlet and every wait here yields to the others.

Messages are not kept while the connection is down: every (re)subscription tells each follower to read the stream
again from the last id it has, so nothing is lost for good.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from core.keys import JOB_EVENTS_CHANNEL
from core.token_stream import StreamEvent, event_from_message

log = logging.getLogger("llm.store")

EVENTS_PATTERN = JOB_EVENTS_CHANNEL.format(job_id="*")
_JOB_ID_START = len(JOB_EVENTS_CHANNEL.split("{", 1)[0])
RECONNECT_PAUSE_S = 1.0
SUBSCRIBE_WAIT_S = 2.0
IDLE_READ_S = 30.0


class Inbox:
    """What one follower of one job has been handed and not taken yet: events, or a call to read again."""

    def __init__(self) -> None:
        self._items: deque[StreamEvent | None] = deque()
        self._ready = threading.Event()

    def put(self, item: StreamEvent | None) -> None:
        """An event, or None: the follower may have missed events and must read the stream again."""
        self._items.append(item)
        self._ready.set()

    def take(self, timeout_s: float) -> list[StreamEvent | None] | None:
        """Everything handed over so far, in order; None if nothing came within `timeout_s`."""
        if not self._ready.wait(timeout_s):
            return None
        self._ready.clear()
        items = []
        while self._items:
            items.append(self._items.popleft())
        return items


class JobEventListener:
    """Routes the published entries of every job to the inboxes registered for it in this process."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._inboxes: dict[str, set[Inbox]] = {}
        self._subscribed = threading.Event()
        self._started_in: int | None = None

    @contextmanager
    def following(self, job_id: str) -> Iterator[Inbox]:
        """An inbox that receives the job's new entries for the block; register it before reading the stream."""
        self._start_once()
        inbox = Inbox()
        with self._lock:
            self._inboxes.setdefault(job_id, set()).add(inbox)
        # A first follower in this process waits (briefly) for the subscription, so it needs no re-read to catch up.
        self._subscribed.wait(SUBSCRIBE_WAIT_S)
        try:
            yield inbox
        finally:
            with self._lock:
                inboxes = self._inboxes.get(job_id)
                if inboxes is not None:
                    inboxes.discard(inbox)
                    if not inboxes:
                        del self._inboxes[job_id]

    def followers(self) -> int:
        """Inboxes registered in this process."""
        with self._lock:
            return sum(len(inboxes) for inboxes in self._inboxes.values())

    def _start_once(self) -> None:
        # Per process: a forked child (a gunicorn worker) starts its own listener.
        with self._lock:
            if self._started_in == os.getpid():
                return
            self._started_in = os.getpid()
            self._subscribed.clear()
        threading.Thread(target=self._listen_forever, name="job-events-listener", daemon=True).start()

    def _listen_forever(self) -> None:
        while True:
            try:
                self._listen()
            except redis.RedisError as error:
                if self._subscribed.is_set():  # once per outage, not once per reconnect attempt
                    log.warning("job-events listener lost Redis (%s); followers read their streams again", error)
            self._subscribed.clear()
            threading.Event().wait(RECONNECT_PAUSE_S)

    def _listen(self) -> None:
        pubsub = self.client.pubsub()
        try:
            pubsub.psubscribe(EVENTS_PATTERN)
            while True:
                message = pubsub.get_message(timeout=IDLE_READ_S)
                if message is None:
                    continue
                if message["type"] == "psubscribe":
                    self._subscribed.set()
                    self._hand_out_all(None)  # whatever was published before now may have gone unheard
                elif message["type"] == "pmessage":
                    self._hand_out(message["channel"][_JOB_ID_START:], message["data"])
        finally:
            pubsub.close()

    def _hand_out(self, job_id: str, payload: str) -> None:
        with self._lock:
            inboxes = list(self._inboxes.get(job_id, ()))
        if not inboxes:
            return  # nobody here follows this job: not even decoded
        event = event_from_message(payload)  # None (a status change): they read the stream for it
        for inbox in inboxes:
            inbox.put(event)

    def _hand_out_all(self, item: None) -> None:
        with self._lock:
            inboxes = [inbox for inboxes in self._inboxes.values() for inbox in inboxes]
        for inbox in inboxes:
            inbox.put(item)
