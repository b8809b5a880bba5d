"""Redis past the API's high-water mark (REDIS_HIGH_WATER_PERCENT of its maxmemory): new jobs, batches and uploads
get 503 with Retry-After, while the worker still records the outcome of the job it is running.

The lab's redis-server is this test's own, so shrinking its maxmemory affects no other test.
"""

from __future__ import annotations

import io
import json
import time

import pytest

from core.limits.memory_budget import READING_TTL_S
from core.redis.keys import QUEUED_INDEX_KEY
from tests.faults.conftest import LONG_JOB

pytestmark = pytest.mark.faults

MIB = 1024 * 1024
BALLAST_KEY = "test:ballast"
BATCH_LINE = json.dumps({"custom_id": "a", "body": {"prompt": "no room"}}) + "\n"


def test_past_the_high_water_mark_new_work_gets_503_and_the_running_job_still_records_its_outcome(lab):
    lab.start_worker(MAX_BATCH_SIZE="1")
    client = lab.client(redis_high_water_percent=50)
    job_id = lab.submit(client, LONG_JOB | {"max_tokens": 300})
    lab.wait(lambda: lab.job(job_id)["status"] == "running", 30, "the job to start")

    # 40 MiB of ballast and a maxmemory 24 MiB above what Redis uses: past 50%, yet with room for the worker.
    redis = lab.store.redis
    for _ in range(40):  # by the MiB: one 40 MiB command would also count its query buffer until Redis frees it
        redis.append(BALLAST_KEY, b"x" * MIB)
    redis.config_set("maxmemory", int(redis.info("memory")["used_memory"]) + 24 * MIB)
    time.sleep(READING_TTL_S + 0.1)  # the reading the job's submission cached is stale now
    try:
        refusals = [
            client.post("/jobs", json={"prompt": "no room"}),
            client.post("/batches", data=BATCH_LINE, content_type="application/x-ndjson"),
            client.post(
                "/v1/files",
                data={"purpose": "batch", "file": (io.BytesIO(b'{"prompt": "x"}\n'), "in.jsonl")},
                content_type="multipart/form-data",
            ),
        ]
        for refused in refusals:
            assert refused.status_code == 503, refused.get_data(as_text=True)
            assert int(refused.headers["Retry-After"]) > 0
            assert "REDIS_HIGH_WATER_PERCENT" in refused.get_data(as_text=True)
        assert redis.zcard(QUEUED_INDEX_KEY) == 0  # none of them stored a job

        lab.wait(lambda: lab.job(job_id)["status"] == "succeeded", 120, "the running job's outcome")
        assert lab.job(job_id)["usage"]["completion_tokens"] == 300
    finally:
        redis.delete(BALLAST_KEY)
        redis.config_set("maxmemory", 0)
    time.sleep(READING_TTL_S + 0.1)  # the API's reading of Redis's memory is a second old at most
    assert client.post("/jobs", json={"prompt": "room again"}).status_code == 202
