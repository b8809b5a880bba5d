"""Readiness and the reconciler read what they need by key: a big keyspace costs them no SCAN."""

from __future__ import annotations

import time

import pytest

from api.app import create_app
from broker.publisher import JobPublisher
from core.jobs.model import Job, JobStatus, new_job_id, utc_now_iso
from core.jobs.store import JobStore, connect
from core.redis.keys import WORKER_INFO_KEY, WORKERS_KEY
from core.workers.info import WorkerInfo
from core.workers.registry import WorkerRegistry
from launcher.redis_server import RedisServer
from ops.reconciler import Reconciler
from tests.conftest import unconsumed_queue_name

UNRELATED_KEYS = 100_000


@pytest.fixture
def crowded_redis(own_redis) -> RedisServer:
    """Our redis-server holding 100,000 keys that are none of the service's."""
    client = connect(own_redis.url, socket_timeout_s=30)
    for start in range(0, UNRELATED_KEYS, 10_000):
        client.mset({f"someone-else:{i}": "x" for i in range(start, start + 10_000)})
    return own_redis


def scan_calls(store: JobStore) -> int:
    return int(store.redis.info("commandstats").get("cmdstat_scan", {}).get("calls", 0))


def test_readyz_and_a_reconcile_tick_issue_no_scan(crowded_redis, make_settings, request):
    settings = make_settings(redis_url=crowded_redis.url, gpu_queue=unconsumed_queue_name(request))
    store = JobStore(connect(crowded_redis.url), job_ttl_s=3600)
    WorkerRegistry(store.redis).register(WorkerInfo(name="gpu@test#1", model="demo"), ttl_s=60)
    running = Job(id=new_job_id(), status=JobStatus.QUEUED, created_at=utc_now_iso(), input={"prompt": "x"})
    store.create(running)
    store.transition(running.id, JobStatus.RUNNING, lambda job: setattr(job, "worker", "gpu@test#1"))
    assert store.redis.dbsize() > UNRELATED_KEYS
    before = scan_calls(store)

    ready = create_app(settings).test_client().get("/readyz")
    Reconciler(settings, store, JobPublisher(settings)).run_once()

    assert ready.status_code == 200 and [w["name"] for w in ready.get_json()["workers"]] == ["gpu@test#1"]
    assert store.get(running.id).status == JobStatus.RUNNING  # its worker's heartbeat vouches for it
    assert scan_calls(store) == before


def test_a_worker_whose_heartbeat_ran_out_is_not_live_and_is_forgotten(own_redis):
    workers = WorkerRegistry(connect(own_redis.url))
    workers.register(WorkerInfo(name="gpu@a#1"), ttl_s=0.2)
    workers.register(WorkerInfo(name="gpu@b#2"), ttl_s=60)
    assert sorted(w.name for w in workers.live()) == ["gpu@a#1", "gpu@b#2"]
    time.sleep(0.4)
    assert [w.name for w in workers.live()] == ["gpu@b#2"]
    workers.register(WorkerInfo(name="gpu@b#2"), ttl_s=60)  # the next beat forgets the dead one
    assert workers.redis.zrange(WORKERS_KEY, 0, -1) == ["gpu@b#2"]
    assert workers.redis.hkeys(WORKER_INFO_KEY) == ["gpu@b#2"]
    workers.unregister("gpu@b#2")
    assert workers.live() == []
