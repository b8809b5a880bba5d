"""Places go to waiting jobs by rank, then by arrival; a waiter may give up."""

from __future__ import annotations

import threading
import time

import pytest

from worker.places import Places


def test_a_better_rank_waiting_later_is_served_first():
    places = Places(1)
    places.acquire(3, 0.01, lambda: None)
    order: list[str] = []

    def wait(name: str, rank: int) -> None:
        places.acquire(rank, 0.01, lambda: None)
        order.append(name)
        places.release()

    low = threading.Thread(target=wait, args=("low", 6))
    low.start()
    time.sleep(0.1)
    high = threading.Thread(target=wait, args=("high", 0))
    high.start()
    time.sleep(0.1)
    places.release()
    low.join(5)
    high.join(5)
    assert order == ["high", "low"]


def test_taking_every_place_waits_for_all_to_be_free():
    places = Places(2)
    places.acquire(3, 0.01, lambda: None)
    assert places.taken()
    done = threading.Event()
    thread = threading.Thread(target=lambda: (places.acquire(3, 0.01, lambda: None, 2), done.set()))
    thread.start()
    assert not done.wait(0.2)
    places.release()
    assert done.wait(5)
    places.release(2)
    assert not places.taken()


def test_a_waiter_that_gives_up_leaves_the_line():
    places = Places(1)
    places.acquire(3, 0.01, lambda: None)

    def give_up() -> None:
        raise TimeoutError

    with pytest.raises(TimeoutError):
        places.acquire(0, 0.01, give_up)
    places.release()
    places.acquire(3, 0.01, lambda: None)  # the line is empty again: served at once
