"""Retention never loses accepted work: the JOB_TTL clock starts when a job finishes (a batch's: when the batch
completes), never while it waits. Real Redis, a real worker started late, a TTL of a few seconds."""

from __future__ import annotations

import json
import time

from core.redis.keys import BATCH_JOBS_KEY, BATCH_KEY, BATCH_OWNER_INDEX_KEY, BATCH_STATS_KEY, JOB_KEY, OWNER_INDEX_KEY

TTL_S = 5
SHORT = {"prompt": "Giữ lại", "max_tokens": 4, "ignore_eos": True}


def test_a_job_queued_past_the_ttl_with_no_worker_is_kept_and_runs_when_a_worker_starts(lab):
    client = lab.client(job_ttl_seconds=TTL_S)
    job_id = lab.submit(client, SHORT)
    time.sleep(TTL_S + 1.5)  # no worker: the job waits past its TTL

    waiting = client.get(f"/jobs/{job_id}")
    assert waiting.status_code == 200 and waiting.get_json()["status"] == "queued"
    assert lab.store.redis.ttl(JOB_KEY.format(job_id=job_id)) == -1

    lab.start_worker(JOB_TTL_SECONDS=str(TTL_S))
    lab.wait(lambda: lab.job(job_id)["status"] == "succeeded", 60, "the job to run once a worker started")
    assert 0 < lab.store.redis.ttl(JOB_KEY.format(job_id=job_id)) <= TTL_S  # its clock starts now

    lab.wait(lambda: client.get(f"/jobs/{job_id}").status_code == 404, TTL_S + 5, "the finished job to expire")
    listed = client.get("/jobs").get_json()
    assert listed == {"data": [], "next_cursor": None}
    assert lab.store.redis.zscore(OWNER_INDEX_KEY.format(owner="anonymous"), job_id) is None


def test_a_completed_batch_is_served_for_the_ttl_after_it_completes(lab):
    client = lab.client(job_ttl_seconds=TTL_S)
    lines = [{"custom_id": f"r-{i}", "body": SHORT | {"prompt": f"dòng {i}"}} for i in range(3)]
    created = client.post(
        "/batches", data="\n".join(json.dumps(line) for line in lines), content_type="application/jsonl"
    )
    assert created.status_code == 202
    batch_id = created.get_json()["id"]
    time.sleep(TTL_S + 1.5)  # longer than the TTL since creation: none of it may have expired
    assert client.get(f"/batches/{batch_id}").get_json()["status"] == "queued"

    lab.start_worker(JOB_TTL_SECONDS=str(TTL_S))
    lab.wait(lambda: client.get(f"/batches/{batch_id}").get_json()["completed_at"], 60, "the batch to complete")
    served = client.get(f"/batches/{batch_id}/results").get_data(as_text=True)
    results = [json.loads(line) for line in served.splitlines()]
    assert [r["custom_id"] for r in results] == ["r-0", "r-1", "r-2"]
    assert all(r["status"] == "succeeded" and r["usage"]["completion_tokens"] == 4 for r in results)
    redis = lab.store.redis
    keys = [BATCH_KEY, BATCH_STATS_KEY, BATCH_JOBS_KEY]
    clocks = [redis.ttl(key.format(batch_id=batch_id)) for key in keys]
    clocks += [redis.ttl(JOB_KEY.format(job_id=r["job_id"])) for r in results]
    assert all(0 < ttl <= TTL_S for ttl in clocks), clocks  # started at completion, for all of it

    lab.wait(lambda: client.get(f"/batches/{batch_id}").status_code == 404, TTL_S + 5, "the batch to expire")
    assert client.get("/batches").get_json() == {"data": [], "next_cursor": None}
    assert redis.zscore(BATCH_OWNER_INDEX_KEY.format(owner="anonymous"), batch_id) is None
    assert all(redis.exists(JOB_KEY.format(job_id=r["job_id"])) == 0 for r in results)
