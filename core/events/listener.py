"""One pub/sub connection per process that hands every new entry of a job's event stream to whoever follows it.

Each entry is published with its id as it is added (core/events/stream.py), so a follower in this process gets it
from memory: five hundred clients watching jobs cost one Redis connection here, not one blocked read each. Under
gevent (the API's server model) the thread below is a greenlet and every wait here yields to the others.

Messages are not kept while the connection is down: every (re)subscription tells each follower to read the stream
again from the last id it has, so nothing is lost for good.
"""

from __future__ import annotations

import threading
from collections import deque
from contextlib import AbstractContextManager

import redis

from core.events.stream import StreamEvent, event_from_message
from core.jobs.channel_listener import JobChannelListener
from core.redis.keys import JOB_EVENTS_CHANNEL


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


class JobEventListener(JobChannelListener[Inbox]):
    """Routes the published entries of every job to the inboxes registered for it in this process."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(
            client, JOB_EVENTS_CHANNEL, name="job-events", after_outage="followers read their streams again"
        )

    def following(self, job_id: str) -> AbstractContextManager[Inbox]:
        """An inbox that receives the job's new entries for the block; register it before reading the stream."""
        return self._registered(job_id, Inbox())

    def followers(self) -> int:
        """Inboxes registered in this process."""
        return self._subscriber_count()

    def _message(self, job_id: str, data: str) -> None:
        inboxes = self._subscribers_of(job_id)
        if not inboxes:
            return  # nobody here follows this job: not even decoded
        event = event_from_message(data)  # None (a status change): they read the stream for it
        for inbox in inboxes:
            inbox.put(event)

    def _resubscribed(self) -> None:
        for inbox in self._all_subscribers():
            inbox.put(None)  # they may have missed entries: read the stream again
