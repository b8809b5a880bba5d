"""The live GPU workers: heartbeats in Redis, on Redis's clock (key names: core/redis/keys.py)."""

from __future__ import annotations

import json

import redis

from core.redis.errors import redis_boundary
from core.redis.keys import WORKER_INFO_KEY, WORKERS_KEY
from core.redis.transactions import watched_update
from core.workers.info import WorkerInfo


class WorkerRegistry:
    """Workers announce themselves with a heartbeat that runs out; the others ask who is live."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def _server_time_s(self) -> float:
        """Redis's clock: heartbeats written and read on different hosts are compared on one clock."""
        seconds, microseconds = self.redis.time()
        return seconds + microseconds / 1e6

    @redis_boundary()
    def register(self, info: WorkerInfo, ttl_s: float) -> None:
        """Announce (or refresh) a live worker that has its model loaded; it counts as live for `ttl_s`."""

        def beat(pipe: redis.client.Pipeline) -> None:
            now = self._server_time_s()
            # Workers that stopped beating without withdrawing (killed) are forgotten by the next beat.
            dead = [other for other in pipe.zrangebyscore(WORKERS_KEY, "-inf", now) if other != info.name]
            pipe.multi()
            pipe.hset(WORKER_INFO_KEY, info.name, json.dumps(info.as_json()))
            pipe.zadd(WORKERS_KEY, {info.name: now + ttl_s})
            if dead:
                pipe.zrem(WORKERS_KEY, *dead)
                pipe.hdel(WORKER_INFO_KEY, *dead)

        watched_update(self.redis, [WORKERS_KEY], beat)

    @redis_boundary()
    def mark_draining(self, name: str, ttl_s: float) -> None:
        """A worker handing its jobs back before it exits: still live for `ttl_s` (the reconciler leaves its running
        jobs to it, so their interrupted try is not counted twice), but no longer ready for new work."""

        def drain(pipe: redis.client.Pipeline) -> None:
            now = self._server_time_s()
            raw = pipe.hget(WORKER_INFO_KEY, name)
            info = WorkerInfo.model_validate_json(raw) if raw else WorkerInfo(name=name)
            pipe.multi()
            pipe.hset(WORKER_INFO_KEY, name, json.dumps(info.model_copy(update={"draining": True}).as_json()))
            pipe.zadd(WORKERS_KEY, {name: now + ttl_s})

        watched_update(self.redis, [WORKERS_KEY, WORKER_INFO_KEY], drain)

    @redis_boundary()
    def unregister(self, name: str) -> None:
        """Withdraw a worker that is shutting down."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(WORKERS_KEY, name)
        pipe.hdel(WORKER_INFO_KEY, name)
        pipe.execute()

    @redis_boundary()
    def live(self) -> list[WorkerInfo]:
        """The workers whose heartbeat has not run out."""
        names = self.redis.zrangebyscore(WORKERS_KEY, f"({self._server_time_s()}", "+inf")
        raws = self.redis.hmget(WORKER_INFO_KEY, names) if names else []
        return [WorkerInfo.model_validate_json(raw) for raw in raws if raw]

    def live_names(self) -> set[str]:
        """The names of the live workers."""
        return {worker.name for worker in self.live()}
