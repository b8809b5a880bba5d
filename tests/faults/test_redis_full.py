"""Redis at `maxmemory` under `noeviction` (the shipped policy): writes are refused, nothing is lost.

The lab's redis-server is this test's own, so filling it affects no other test.
"""

from __future__ import annotations

import pytest

from tests.faults.conftest import LONG_JOB

pytestmark = pytest.mark.faults

RETRY_LOG_LINE = "retrying the result write"


def test_a_full_redis_gives_503_with_retry_after_and_the_worker_records_its_result_once_memory_is_freed(lab):
    worker = lab.start_worker(MAX_BATCH_SIZE="1")
    client = lab.client()
    job_id = lab.submit(client, LONG_JOB | {"max_tokens": 400})
    lab.wait(lambda: lab.job(job_id)["status"] == "running", 30, "the job to start")
    redis = lab.store.redis
    redis.config_set("maxmemory-policy", "noeviction")
    redis.config_set("maxmemory", 1)  # far below what it holds: every write that needs memory is refused
    try:
        refused = client.post("/jobs", json={"prompt": "no room"})
        assert refused.status_code == 503 and int(refused.headers["Retry-After"]) > 0
        assert refused.get_json()["error"]["type"] == "store_unavailable"
        worker_log = lab.tmp / "gpu-1.out"
        lab.wait(lambda: RETRY_LOG_LINE in worker_log.read_text(), 60, "the worker's result write to be refused")
        assert lab.job(job_id)["status"] == "running" and worker.poll() is None
    finally:
        redis.config_set("maxmemory", 0)
    lab.wait(lambda: lab.job(job_id)["status"] == "succeeded", 30, "the result to be recorded")
    job = lab.job(job_id)
    assert job["usage"]["completion_tokens"] == 400 and job["attempts"] == 1
    assert lab.executions()[job_id] == 1
    assert client.post("/jobs", json={"prompt": "room again"}).status_code == 202
