"""The publisher puts job ids on the GPU queue by task name, at their priority's step."""

from __future__ import annotations

import base64
import json

import pytest
import redis

from broker.kombu_redis import priority_lists
from broker.names import GENERATE_TASK_NAME
from broker.publisher import JobPublisher
from core.errors import StoreUnavailable


def test_each_job_id_lands_on_its_prioritys_list_as_a_generate_task(make_settings, own_redis):
    settings = make_settings(redis_url=own_redis.url, gpu_queue="unit-gpu")
    client = redis.Redis.from_url(own_redis.url)
    publisher = JobPublisher(settings)
    publisher.publish("a" * 32, "high")
    publisher.publish_many(["b" * 32, "c" * 32], "batch")
    lists = priority_lists("unit-gpu")
    assert client.llen(lists["high"]) == 1 and client.llen(lists["batch"]) == 2
    assert publisher.queue_depth(client) == 3
    message = json.loads(client.lindex(lists["high"], 0))
    assert message["headers"]["task"] == GENERATE_TASK_NAME
    assert json.loads(base64.b64decode(message["body"]))[0] == ["a" * 32]


def test_an_unreachable_broker_is_store_unavailable(make_settings):
    settings = make_settings(redis_url="redis://127.0.0.1:1/0", redis_socket_timeout_seconds=0.2)
    publisher = JobPublisher(settings)
    with pytest.raises(StoreUnavailable):
        publisher.publish("a" * 32)
    with pytest.raises(StoreUnavailable):
        publisher.queue_depth(redis.Redis.from_url(settings.effective_redis_url, socket_timeout=0.2))
