"""The API's reading of Redis's memory (core/limits/memory_budget.py): at most one INFO per second per process, a
refusal past the high-water mark, and no check at all on a Redis without maxmemory."""

from __future__ import annotations

import pytest

from core.errors import StoreUnavailable
from core.jobs.store import connect
from core.limits.memory_budget import MemoryBudget


def info_calls(client) -> int:
    return int(client.info("commandstats").get("cmdstat_info", {}).get("calls", 0))


def test_the_reading_is_taken_at_most_once_a_second(own_redis):
    client = connect(own_redis.url)
    budget = MemoryBudget(client, high_water_percent=85)
    before = info_calls(client)
    for _ in range(500):
        budget.check_room()
    assert info_calls(client) - before == 2  # the budget's one reading, and this test's own count of them


def test_past_the_mark_new_work_is_refused_with_retry_after_and_below_it_accepted(own_redis):
    client = connect(own_redis.url)
    budget = MemoryBudget(client, high_water_percent=50, reading_ttl_s=0)
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", used * 4)
    budget.check_room()
    client.config_set("maxmemory", used + used // 2)
    with pytest.raises(StoreUnavailable, match="REDIS_HIGH_WATER_PERCENT") as refused:
        budget.check_room()
    assert refused.value.retry_after_s > 0


def test_a_redis_without_maxmemory_is_never_refused(own_redis):
    client = connect(own_redis.url)
    client.config_set("maxmemory", 0)
    budget = MemoryBudget(client, high_water_percent=1, reading_ttl_s=0)
    budget.check_room()
