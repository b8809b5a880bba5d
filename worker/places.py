"""Places in an engine, given to waiting jobs by priority, then by arrival: a job taken from the queue later but with
a higher priority goes ahead of the lower-priority jobs the worker already holds."""

from __future__ import annotations

import heapq
import itertools
import threading


class Places:
    """A counting semaphore whose waiters are served best rank first (lower is better), then first come."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._free = count
        self._waiting: list[tuple[int, int]] = []  # (rank, arrival) of each waiter, a heap
        self._arrivals = itertools.count()
        self._changed = threading.Condition()

    def acquire(self, rank: int, timeout_s: float, keep_waiting, places: int = 1) -> None:
        """Wait for `places` places (all of them: to run alone); every `timeout_s`, `keep_waiting()` may raise to
        give up (it is called unlocked)."""
        ticket = (rank, next(self._arrivals))
        with self._changed:
            heapq.heappush(self._waiting, ticket)
        try:
            while True:
                with self._changed:
                    if self._free >= places and self._waiting[0] == ticket:
                        heapq.heappop(self._waiting)
                        self._free -= places
                        # The next in line may be served too, if more places are free.
                        self._changed.notify_all()
                        return
                    self._changed.wait(timeout_s)
                keep_waiting()
        except BaseException:
            with self._changed:
                if ticket in self._waiting:
                    self._waiting.remove(ticket)
                    heapq.heapify(self._waiting)
                    self._changed.notify_all()
            raise

    def release(self, places: int = 1) -> None:
        with self._changed:
            self._free += places
            self._changed.notify_all()

    def taken(self) -> bool:
        """Whether any place is held."""
        with self._changed:
            return self._free < self.count
