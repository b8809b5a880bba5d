"""The watched read-modify-write loop: a step whose keys another client changed meanwhile runs again, and a step
that writes nothing commits nothing."""

from __future__ import annotations

from core.jobs.store import connect
from core.redis.transactions import watched_update


def test_a_step_interrupted_by_another_writer_runs_again_on_the_new_value(client, redis_url):
    client.set("counter", 1)
    other = connect(redis_url)
    runs = []

    def increment(pipe):
        value = int(pipe.get("counter"))
        runs.append(value)
        if len(runs) == 1:
            other.set("counter", 10)  # lands between this step's read and its write
        pipe.multi()
        pipe.set("counter", value + 1)
        return value + 1

    assert watched_update(client, ["counter"], increment) == 11
    assert runs == [1, 10] and client.get("counter") == "11"


def test_a_step_that_decides_not_to_write_returns_its_answer(client):
    def look(pipe):
        return pipe.get("absent")

    assert watched_update(client, ["absent"], look) is None
    assert not client.exists("absent")
