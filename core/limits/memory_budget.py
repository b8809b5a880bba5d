"""The API's guard against filling Redis: new work is refused above a high-water mark below Redis's maxmemory.

Under `noeviction` a full Redis refuses every write, the workers' outcome writes included. Refusing new jobs,
batches and uploads a margin earlier leaves that margin to the work already accepted.
"""

from __future__ import annotations

import time

import redis

from core.errors import StoreUnavailable
from core.redis.errors import redis_boundary

# One INFO per process per second at most: the check costs a request nothing but a clock read.
READING_TTL_S = 1.0
# Memory comes back as jobs finish, results are read and records expire: seconds to minutes.
RETRY_AFTER_S = 30


class MemoryBudget:
    """Answers whether Redis has room for new work, from its `INFO memory` read at most once a second."""

    def __init__(self, client: redis.Redis, *, high_water_percent: int, reading_ttl_s: float = READING_TTL_S) -> None:
        self.redis = client
        self.high_water_percent = high_water_percent
        self.reading_ttl_s = reading_ttl_s
        # (when read, used_memory, maxmemory): replaced whole, so concurrent requests never see half a reading.
        self._last: tuple[float, int, int] = (-float("inf"), 0, 0)

    def check_room(self) -> None:
        """Refuse (StoreUnavailable, 503) new work while Redis is above REDIS_HIGH_WATER_PERCENT of its maxmemory."""
        used, maximum = self._reading()
        if maximum and used * 100 >= maximum * self.high_water_percent:
            raise StoreUnavailable(
                f"the job store is {used * 100 // maximum}% full (REDIS_HIGH_WATER_PERCENT is "
                f"{self.high_water_percent}): new work is refused until running jobs finish or old records expire",
                retry_after_s=RETRY_AFTER_S,
            )

    def _reading(self) -> tuple[int, int]:
        read_at, used, maximum = self._last
        if time.monotonic() - read_at < self.reading_ttl_s:
            return used, maximum
        with redis_boundary():
            info = self.redis.info("memory")
        used, maximum = int(info["used_memory"]), int(info.get("maxmemory", 0))
        self._last = (time.monotonic(), used, maximum)
        return used, maximum
