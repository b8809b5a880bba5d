"""Following a job's events (`GET /jobs/<id>/events`): replay its stream from where the client is, then hand on
each new entry as it comes, and end with the finished job.

Nothing is missed or repeated: the follower registers with the process's listener before it reads the stream,
reads from the last id it gave out, and drops any published entry at or before that id. It reads the stream again
whenever the listener reconnected, and at every keep-alive (a safety net, which also notices a job that finished
or expired without its entry being heard).

A follower given a lifetime ends, once it is over, between two events: the client resumes from the last id it
got, so a connection (and its per-key slot) is never held for hours by a job that waits or runs that long.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

from core.errors import InvalidInput, StoreUnavailable
from core.events.listener import JobEventListener
from core.events.stream import START, STATUS, StreamEvent, TokenStreams, id_order, is_event_id
from core.jobs.model import Job, JobStatus
from core.jobs.store import JobStore
from core.redis.errors import redis_boundary

log = logging.getLogger("llm.api")

READ_PAGE = 512  # entries read per round trip while catching up
RETRY_READ_S = 1.0  # after a failed read, the next try


@dataclass(frozen=True)
class KeepAlive:
    """Nothing happened for a while: the route sends a comment so proxies and clients keep the connection."""


@dataclass(frozen=True)
class Completed:
    """The job is finished: its object (sent as its public view) closes the stream."""

    job: Job


@dataclass(frozen=True)
class Lapsed:
    """The follower's lifetime is over before the job: the stream ends, and the client resumes from its last id."""


FollowItem = StreamEvent | KeepAlive | Completed | Lapsed


class JobEvents:
    """The use case behind the events route: one per API process, sharing the process's listener."""

    def __init__(
        self, store: JobStore, streams: TokenStreams, listener: JobEventListener, *, keepalive_s: float
    ) -> None:
        self.store = store
        self.streams = streams
        self.listener = listener
        self.keepalive_s = keepalive_s

    def follow(
        self, job_id: str, owner: str, after: str | None, *, lifetime_s: float | None = None
    ) -> Iterator[FollowItem]:
        """The job's events after the id `after` (from the start when None), checked now: another owner's job or
        a malformed id raises here, before anything is sent. With `lifetime_s`, a job not finished by then ends
        the follow with Lapsed."""
        if after is not None and not is_event_id(after):
            raise InvalidInput(
                "last event id: must be an event's id (`<milliseconds>-<sequence>`)", field="last_event_id"
            )
        job = self.store.get_for_owner(job_id, owner)
        return self._follow(job, after, lifetime_s)

    def _follow(self, job: Job, after: str | None, lifetime_s: float | None) -> Iterator[FollowItem]:
        ends_at = math.inf if lifetime_s is None else time.monotonic() + lifetime_s
        try:
            yield from self._follow_until_done(job, after, ends_at)
        except StoreUnavailable as error:
            # Mid-stream nothing can be answered any more: the stream ends, and the client resumes from its last id.
            log.warning("job %s: event stream ended early: %s", job.id, error)

    def _follow_until_done(self, job: Job, after: str | None, ends_at: float) -> Iterator[FollowItem]:
        cursor = after or START
        with self.listener.following(job.id) as inbox:
            replayed, finished = self._catch_up(job.id, cursor)
            if not replayed and after is None and not job.status.is_terminal:
                # Nothing written yet (a job that has not run): say where it is, without an id.
                yield StreamEvent("", STATUS, {"status": job.status.value})
            for event in replayed:
                yield event
                cursor = event.event_id
            terminal_entry = finished
            # Read before the stream: a job finished then has its terminal entry (if any) in what was just replayed.
            finished = finished or job.status.is_terminal
            stale = False  # a read failed: entries may be missing before the next published one
            while not finished:
                left_s = ends_at - time.monotonic()
                if left_s <= 0:
                    yield Lapsed()
                    return
                wait_s = RETRY_READ_S if stale else self.keepalive_s
                items = inbox.take(min(wait_s, left_s))
                if items is None and left_s < wait_s:
                    continue  # the lifetime is over, not the keep-alive's interval
                if items is None and not stale:
                    yield KeepAlive()
                if items is None or stale:
                    items = [None]  # read again: after a failure, and at every keep-alive as a safety net
                for item in items:
                    if item is None:
                        try:
                            events, finished = self._read_again(job.id, cursor)
                        except StoreUnavailable:
                            stale = True
                            break
                        stale = False
                    elif id_order(item.event_id) <= id_order(cursor):
                        continue  # already given out by a read
                    else:
                        events, finished = [item], _is_terminal(item)
                    for event in events:
                        yield event
                        cursor = event.event_id
                        terminal_entry = terminal_entry or _is_terminal(event)
                    if finished:
                        break
            job_now = self.store.get(job.id)
            if job_now is None:
                return  # expired meanwhile: the stream just ends
            if not terminal_entry and not self._has_terminal_entry(job.id):
                # Finished without an entry (canceled while queued): its status still comes before the job, no id.
                yield StreamEvent("", STATUS, {"status": job_now.status.value})
            yield Completed(job_now)

    def _read_again(self, job_id: str, cursor: str) -> tuple[list[StreamEvent], bool]:
        """Entries after `cursor`, and whether the job is over: by its terminal entry, or (without one heard)
        because the job, read after the stream, is finished or gone."""
        events, finished = self._catch_up(job_id, cursor)
        if finished:
            return events, True
        job = self.store.get(job_id)
        if job is None or job.status.is_terminal:
            # Its terminal entry may have come between the two reads: take what is there, then end.
            more, _ = self._catch_up(job_id, events[-1].event_id if events else cursor)
            return events + more, True
        return events, False

    def _has_terminal_entry(self, job_id: str) -> bool:
        """Whether the stream ends with the job's terminal status (a client resuming after it has had it)."""
        with redis_boundary():
            last = self.streams.last(job_id)
        return last is not None and _is_terminal(last)

    def _catch_up(self, job_id: str, cursor: str) -> tuple[list[StreamEvent], bool]:
        """Every entry after `cursor`, up to and including a terminal status; and whether one came."""
        events: list[StreamEvent] = []
        while True:
            with redis_boundary():
                page = self.streams.read(job_id, after=cursor, count=READ_PAGE)
            for event in page:
                events.append(event)
                if _is_terminal(event):
                    return events, True
            if len(page) < READ_PAGE:
                return events, False
            cursor = page[-1].event_id


def _is_terminal(event: StreamEvent) -> bool:
    return event.kind == STATUS and JobStatus(event.data["status"]).is_terminal
