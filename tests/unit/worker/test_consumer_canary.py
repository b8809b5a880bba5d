"""The consumer canary: sent on schedule, judged against its timeout, paused while the consumer is busy."""

from __future__ import annotations

from types import SimpleNamespace

from worker.consumer_canary import ConsumerCanary


class Qos:
    def __init__(self) -> None:
        self.value = 0

    def increment_eventually(self) -> None:
        self.value += 1

    def decrement_eventually(self) -> None:
        self.value -= 1


def started(interval_s=5.0, timeout_s=45.0):
    sent: list[int] = []
    canary = ConsumerCanary(interval_s, timeout_s, send=sent.append)
    consumer = SimpleNamespace(qos=Qos(), connection_errors=())
    canary.strategy(None, None, consumer)
    return canary, consumer, sent


def test_nothing_is_sent_before_the_consumer_starts():
    sent: list[int] = []
    assert ConsumerCanary(5, 45, send=sent.append).check(now=100.0) is None and sent == []


def test_a_canary_consumed_in_time_counts_its_round_trip_and_gives_its_place_back():
    canary, consumer, sent = started()
    assert canary.check(now=100.0) is None and sent == [1] and consumer.qos.value == 1
    canary._consumed(1, consumer)
    assert consumer.qos.value == 0 and canary.describe()["canaries_consumed"] == 1
    assert canary.check(now=102.0) is None and sent == [1]  # the next is due only after the interval
    assert canary.check(now=106.0) is None and sent == [1, 2]


def test_a_canary_not_consumed_in_time_says_the_consumer_stopped():
    canary, _consumer, _sent = started(timeout_s=10)
    canary.check(now=100.0)
    assert canary.check(now=105.0) is None
    reason = canary.check(now=111.0)
    assert reason is not None and "not consumed" in reason


def test_a_redis_failure_restarts_the_canarys_clock():
    canary, _consumer, _sent = started(timeout_s=10)
    canary.check(now=100.0)
    canary._store_failed_at = 108.0
    assert canary.check(now=111.0) is None


def test_a_send_that_fails_leaves_nothing_pending():
    def refuse(_sequence: int) -> None:
        raise ConnectionError("away")

    canary = ConsumerCanary(5, 45, send=refuse)
    canary.strategy(None, None, SimpleNamespace(qos=Qos(), connection_errors=()))
    assert canary.check(now=100.0) is None and canary._pending is None
