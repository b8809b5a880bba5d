"""kombu's lists in Redis: one per priority step, counted together."""

from __future__ import annotations

import redis

from broker.kombu_redis import priority_list_names, priority_lists, waiting_message_count


def test_the_highest_step_is_the_queue_itself_and_the_others_carry_their_step():
    lists = priority_lists("gpu")
    assert lists["high"] == "gpu" and lists["batch"] == "gpu\x06\x169"
    assert priority_list_names("gpu") == list(lists.values())


def test_waiting_messages_are_counted_over_every_list(own_redis):
    client = redis.Redis.from_url(own_redis.url)
    lists = priority_lists("q")
    client.rpush(lists["high"], "m1")
    client.rpush(lists["batch"], "m2", "m3")
    assert waiting_message_count(client, "q") == 3 and waiting_message_count(client, "other") == 0
