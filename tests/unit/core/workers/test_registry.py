"""The worker registry (core/workers/registry.py) against a Redis of the test's own: heartbeats that run out on
Redis's clock, draining, withdrawal, and the JSON each entry is stored as."""

from __future__ import annotations

import json
import time

import pytest

from core.jobs.store import connect
from core.redis.keys import WORKER_INFO_KEY, WORKERS_KEY
from core.workers.info import WorkerInfo
from core.workers.registry import WorkerRegistry


@pytest.fixture
def workers(own_redis) -> WorkerRegistry:
    return WorkerRegistry(connect(own_redis.url))


def test_a_registered_worker_is_live_with_what_it_announced(workers):
    workers.register(WorkerInfo(name="gpu@a#1", model="demo", running_jobs=0), ttl_s=60)
    assert workers.live() == [WorkerInfo(name="gpu@a#1", model="demo", running_jobs=0)]
    assert workers.live_names() == {"gpu@a#1"}
    # Stored as the dict the worker used to write, spacing included.
    assert workers.redis.hget(WORKER_INFO_KEY, "gpu@a#1") == json.dumps(
        {"name": "gpu@a#1", "model": "demo", "running_jobs": 0}
    )


def test_a_worker_whose_heartbeat_ran_out_is_not_live_and_the_next_beat_forgets_it(workers):
    workers.register(WorkerInfo(name="gpu@a#1"), ttl_s=0.2)
    workers.register(WorkerInfo(name="gpu@b#2"), ttl_s=60)
    time.sleep(0.4)
    assert workers.live_names() == {"gpu@b#2"}
    workers.register(WorkerInfo(name="gpu@b#2"), ttl_s=60)
    assert workers.redis.zrange(WORKERS_KEY, 0, -1) == ["gpu@b#2"]
    assert workers.redis.hkeys(WORKER_INFO_KEY) == ["gpu@b#2"]


def test_a_draining_worker_stays_live_with_its_announcement_and_says_it_is_draining(workers):
    workers.register(WorkerInfo(name="gpu@a#1", pid=5), ttl_s=60)
    workers.mark_draining("gpu@a#1", ttl_s=60)
    [info] = workers.live()
    assert info.draining and info.pid == 5
    assert json.loads(workers.redis.hget(WORKER_INFO_KEY, "gpu@a#1")) == {"name": "gpu@a#1", "pid": 5, "draining": True}


def test_a_worker_that_drains_before_its_first_beat_is_known_by_name(workers):
    workers.mark_draining("gpu@a#1", ttl_s=60)
    assert workers.live() == [WorkerInfo(name="gpu@a#1", draining=True)]


def test_a_withdrawn_worker_is_gone(workers):
    workers.register(WorkerInfo(name="gpu@a#1"), ttl_s=60)
    workers.unregister("gpu@a#1")
    assert workers.live() == []
    assert workers.redis.hkeys(WORKER_INFO_KEY) == []
