"""Proving that the worker's Celery consumer still takes messages, and noticing within a bound when it stops.

A Celery worker can live on while its consumer takes nothing more (celery#9054: after a Redis restart; celery#10205):
its heartbeat thread keeps beating, so neither `/readyz` nor the reconciler would ever notice. So every
`CANARY_INTERVAL_SECONDS` the worker publishes a canary to a queue of its own, which its one task consumer reads
beside the GPU queue; a canary not consumed within `CANARY_TIMEOUT_SECONDS` means the consumer stopped.

The canary never competes with jobs:
- it is read first (its queue comes before the GPU queue, at the highest priority step) and handled in the
  consumer itself, acknowledged on arrival: it takes no pool thread and no engine place;
- a busy worker holds as many messages as its prefetch allows (one per batch place and one waiting for each), so
  while a canary is pending the consumer's prefetch is raised by one: the canary, already on its queue when that
  place opens, takes it, and gives it back as it is acknowledged.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

log = logging.getLogger("llm.worker")


@dataclass
class _Pending:
    sequence: int
    sent_at: float  # monotonic


class ConsumerCanary:
    """The canary's state, shared by the thread that sends and judges and the consumer that receives."""

    def __init__(self, interval_s: float, timeout_s: float, send: Callable[[int], None]) -> None:
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._send = send
        self._lock = threading.Lock()
        self._consumer = None  # Celery's Consumer, set when it starts (again, after a reconnect)
        self._pending: _Pending | None = None
        self._widened_qos = None  # the consumer's QoS given one more place for the pending canary
        self._sequence = 0
        self._sequence_sent_at = float("-inf")
        self._busy_consumer_since: float | None = None
        self._paused_s = 0.0
        self._store_failed_at = float("-inf")
        self.round_trips = 0
        self.last_round_trip_s: float | None = None

    # -------------------------------------------------------------- the consumer's side (its own thread)

    def strategy(self, task, app, consumer, **_kwargs) -> Callable:
        """A Celery task Strategy: the consumer hands canary messages here instead of to the pool."""
        with self._lock:
            self._consumer = consumer  # a restarted consumer (after a reconnect) comes through here again

        def on_canary(message, _body, ack, _reject, _callbacks, **_kw) -> None:
            ack(log, consumer.connection_errors)
            self._consumed(_sequence_of(message), consumer)

        return on_canary

    def _consumed(self, sequence: int | None, consumer) -> None:
        with self._lock:
            pending = self._pending
            if pending is None or sequence != pending.sequence:
                return  # an older canary, sent before a reconnect
            self._pending = None
            self.round_trips += 1
            self.last_round_trip_s = round(time.monotonic() - pending.sent_at - self._paused_s, 3)
            self._paused_s = 0.0
            if self._widened_qos is not None and self._widened_qos is consumer.qos:
                consumer.qos.decrement_eventually()
            self._widened_qos = None

    @contextlib.contextmanager
    def consumer_busy(self) -> Iterator[None]:
        """A job running on the consumer's own thread (the solo pool, MAX_BATCH_SIZE=1): the consumer can't read
        while it runs, so that time does not count against the canary."""
        with self._lock:
            self._busy_consumer_since = time.monotonic()
        try:
            yield
        finally:
            with self._lock:
                if self._pending is not None:
                    self._paused_s += time.monotonic() - max(self._busy_consumer_since, self._pending.sent_at)
                self._busy_consumer_since = None

    # -------------------------------------------------------------- the watching thread's side

    def store_failed(self) -> None:
        """Redis refused a write (down, full, read-only): a canary can't be judged while it does."""
        with self._lock:
            self._store_failed_at = time.monotonic()

    def check(self, now: float | None = None) -> str | None:
        """Send a canary when one is due; return why the consumer counts as stopped, else None."""
        now = time.monotonic() if now is None else now
        with self._lock:
            pending, consumer = self._pending, self._consumer
        if consumer is None:
            return None  # Celery has not started its consumer yet
        if pending is None:
            self._send_next(now)
            return None
        waited_s = self._waited_s(pending, now)
        if waited_s >= self.timeout_s:
            return (
                f"canary {pending.sequence} sent {now - pending.sent_at:.1f} s ago is still not consumed "
                f"(CANARY_TIMEOUT_SECONDS={self.timeout_s:g}) while Redis took writes: the Celery consumer stopped "
                "taking messages"
            )
        self._widen_prefetch(consumer)  # again, if the consumer restarted with a QoS of its own
        return None

    def _waited_s(self, pending: _Pending, now: float) -> float:
        with self._lock:
            paused_s = self._paused_s
            if self._busy_consumer_since is not None:
                paused_s += now - max(self._busy_consumer_since, pending.sent_at)
            # The clock starts again after Redis last refused a write: a consumer can't read from a Redis that is
            # away, and reconnecting after one takes it a while.
            counted_from = max(pending.sent_at, self._store_failed_at)
        return now - counted_from - paused_s

    def _send_next(self, now: float) -> None:
        if now - self._sequence_sent_at < self.interval_s:
            return
        # Pending before it is sent: a consumer with room takes it within milliseconds of the send.
        with self._lock:
            self._sequence += 1
            self._sequence_sent_at = now
            self._pending = _Pending(self._sequence, now)
            self._paused_s = 0.0
        try:
            self._send(self._sequence)
        except Exception as error:  # noqa: BLE001 - a canary not sent is tried again; Redis may be away
            log.debug("canary not sent: %s", error)
            with self._lock:
                self._pending = None
            self.store_failed()
            return
        # Only now: the canary is on its queue when the extra place opens, so it (not a job) takes it.
        self._widen_prefetch(self._consumer)

    def _widen_prefetch(self, consumer) -> None:
        qos = getattr(consumer, "qos", None)
        with self._lock:
            if self._pending is None or qos is None or self._widened_qos is qos:
                return
            self._widened_qos = qos
        qos.increment_eventually()  # applied by the consumer's loop; thread-safe

    def watch(self, stop: threading.Event, on_stall: Callable[[str], None], tick_s: float = 0.5) -> None:
        """Until `stop` is set: send canaries, and call `on_stall(reason)` once if one is not consumed in time."""
        tick_s = min(tick_s, self.interval_s / 2, self.timeout_s / 4)
        while not stop.wait(tick_s):
            reason = self.check()
            if reason is not None:
                on_stall(reason)
                return

    def describe(self) -> dict:
        """What the heartbeat announces: canaries consumed, and the last one's round trip."""
        return {"canaries_consumed": self.round_trips, "canary_round_trip_s": self.last_round_trip_s}


def _sequence_of(message) -> int | None:
    """The sequence number a canary message carries as its one argument (protocol 2: [args, kwargs, embed])."""
    try:
        return int(message.decode()[0][0])
    except (ValueError, TypeError, IndexError, KeyError):
        return None
