"""Places in an engine go to waiting jobs by priority, then by arrival."""

from __future__ import annotations

import threading
import time

import pytest

from worker.places import Places


def test_a_freed_place_goes_to_the_best_priority_then_the_earliest(tmp_path):
    places = Places(1)
    places.acquire(rank=3, timeout_s=0.05, keep_waiting=lambda: None)
    order: list[str] = []

    def wait(name: str, rank: int) -> None:
        places.acquire(rank, 0.05, lambda: None)
        order.append(name)
        places.release()

    waiters = []
    for name, rank in [("batch line", 9), ("normal, first", 3), ("high", 0), ("normal, second", 3)]:
        waiters.append(threading.Thread(target=wait, args=(name, rank)))
        waiters[-1].start()
        time.sleep(0.05)  # arrivals in this order
    places.release()
    for waiter in waiters:
        waiter.join(5)
    assert order == ["high", "normal, first", "normal, second", "batch line"]
    assert not places.taken()


def test_a_waiter_that_gives_up_leaves_the_line():
    places = Places(1)
    places.acquire(0, 0.05, lambda: None)

    class Stopping(Exception):
        pass

    def refuse() -> None:
        raise Stopping

    with pytest.raises(Stopping):
        places.acquire(0, 0.05, refuse)
    places.release()
    places.acquire(5, 0.05, lambda: None)  # the line is empty again: served at once
    assert places.taken()


def test_a_job_that_must_run_alone_waits_for_every_place_and_holds_them_all():
    places = Places(3)
    places.acquire(0, 0.05, lambda: None)
    alone_started = threading.Event()

    def run_alone() -> None:
        places.acquire(3, 0.05, lambda: None, places=3)
        alone_started.set()

    threading.Thread(target=run_alone, daemon=True).start()
    time.sleep(0.2)
    assert not alone_started.is_set()  # one place is still held
    places.release()
    assert alone_started.wait(5)
    assert places.taken()
    places.release(3)
    assert not places.taken()
