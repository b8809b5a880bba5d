"""Read-modify-write on Redis keys with WATCH: the one retry loop every store uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import redis

T = TypeVar("T")


def watched_update(client: redis.Redis, keys: list[str], step: Callable[[redis.client.Pipeline], T]) -> T:
    """Run `step` with `keys` watched; it reads through the pipeline, then calls `pipe.multi()` and queues its
    writes (or returns without writing). If another client changed a watched key meanwhile, it runs again."""
    with client.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(*keys)
                result = step(pipe)
                if pipe.explicit_transaction:
                    pipe.execute()
                return result
            except redis.WatchError:
                continue
