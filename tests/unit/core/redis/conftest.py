"""A Redis set of the test module's own: a master, one replica and three sentinels on loopback."""

from __future__ import annotations

import pytest

from launcher.redis_server import free_port
from tests.redis_ha import RedisSet


@pytest.fixture(scope="module")
def redis_set(tmp_path_factory):
    def address() -> tuple[str, int]:
        return "127.0.0.1", free_port()

    redis_set = RedisSet(tmp_path_factory.mktemp("redis-set"), address(), [address()], [address() for _ in range(3)])
    try:
        yield redis_set.start()
    finally:
        redis_set.stop()
