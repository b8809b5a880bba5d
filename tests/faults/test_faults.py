"""The reliability promises, each proven by injecting the fault for real (`make test-faults` runs these alone).

Every execution is counted in a log outside Redis, so loss and duplication are measured, not assumed.
"""

from __future__ import annotations

import time

import pytest
import redis
import requests

from tests.fault_engines import POISON_MARKER
from tests.faults.conftest import LONG_JOB

pytestmark = pytest.mark.faults

SHORT = {"prompt": "Ngắn gọn", "max_tokens": 8, "ignore_eos": True}


def test_kill_9_with_8_running_and_8_queued_loses_nothing(lab):
    lab.start_light_worker()
    worker = lab.start_worker(MAX_BATCH_SIZE="8")
    client = lab.client()
    job_ids = [lab.submit(client, LONG_JOB | {"max_tokens": 600, "prompt": f"việc {i}"}) for i in range(16)]
    # Running in the store and noted in the execution log (a line written just after the job starts).
    lab.wait(lambda: len(lab.store.running_job_ids()) == 8 and len(lab.executions()) == 8, 30, "8 running jobs")
    running_when_killed = set(lab.store.running_job_ids())
    lab.kill(worker)
    killed_at = time.monotonic()
    lab.start_worker(MAX_BATCH_SIZE="8")
    lab.wait(
        lambda: all(
            lab.job(job_id)["status"] != "running" or lab.job(job_id)["attempts"] == 2 for job_id in running_when_killed
        ),
        60,
        "the dead worker's jobs to be taken again",
    )
    recovery_s = time.monotonic() - killed_at
    lab.wait(lambda: lab.all_done(job_ids), 120, "all 16 jobs")
    jobs = [lab.job(job_id) for job_id in job_ids]
    assert [job["status"] for job in jobs] == ["succeeded"] * 16
    assert all(job["usage"]["completion_tokens"] == 600 for job in jobs)
    executions = lab.executions()
    duplicates = sum(executions.values()) - 16
    print(f"kill -9: 16/16 succeeded, {duplicates} duplicate executions, back on the queue in {recovery_s:.1f} s")
    assert set(executions) == set(job_ids)
    assert {job_id for job_id, count in executions.items() if count == 2} == running_when_killed
    assert all(lab.job(job_id)["attempts"] == 2 for job_id in running_when_killed)


@pytest.mark.parametrize("batch_size", ["1", "8"])
def test_poison_job_fails_with_max_attempts_after_three_executions(lab, batch_size):
    lab.start_light_worker()
    lab.keep_worker_running(MAX_BATCH_SIZE=batch_size, fault="kill_on_marker")
    client = lab.client()
    poison = lab.submit(client, {"prompt": f"{POISON_MARKER} bad", "max_tokens": 4})
    normal = [lab.submit(client, SHORT | {"prompt": f"tốt {i}"}) for i in range(20)]
    lab.wait(lambda: lab.all_done([poison, *normal]), 240, "the poison job and 20 others")
    failed = lab.job(poison)
    assert failed["status"] == "failed" and failed["error"]["type"] == "max_attempts"
    assert lab.executions()[poison] == 3
    assert all(lab.job(job_id)["status"] == "succeeded" for job_id in normal)


@pytest.mark.parametrize("batch_size", ["1", "8"])
def test_redis_shutdown_and_restart_with_50_queued_and_jobs_running(lab, batch_size):
    lab.start_light_worker()
    lab.start_worker(MAX_BATCH_SIZE=batch_size)
    client = lab.client()
    long_jobs = [
        lab.submit(client, LONG_JOB | {"max_tokens": 900, "prompt": f"dài {i}"}) for i in range(int(batch_size))
    ]
    running = long_jobs[0]
    queued = [*long_jobs[1:], *[lab.submit(client, SHORT | {"prompt": f"chờ {i}"}) for i in range(50)]]
    lab.wait(lambda: all(lab.job(job_id)["status"] == "running" for job_id in long_jobs), 30, "the long jobs to start")
    redis.Redis.from_url(lab.redis.url).shutdown(save=True)
    lab.redis.process.wait(10)
    time.sleep(2)
    lab.redis.start()
    lab.wait(lambda: lab.all_done([running, *queued]), 240, "every job after the Redis restart")
    statuses = [lab.job(job_id)["status"] for job_id in [running, *queued]]
    assert statuses == ["succeeded"] * (1 + len(queued))
    assert set(lab.executions()) == {running, *queued}


def test_redis_down_means_fast_503s_then_acceptance_when_back(lab):
    base_url = lab.start_api()
    lab.redis.stop()
    for i in range(20):
        started = time.monotonic()
        response = requests.post(f"{base_url}/jobs", json={"prompt": f"x{i}"}, timeout=10)
        assert time.monotonic() - started < 2.0
        assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0
        assert response.json()["error"]["type"] in ("store_unavailable", "queue_full")
    lab.redis.start()
    response = requests.post(f"{base_url}/jobs", json={"prompt": "back"}, timeout=10)
    assert response.status_code == 202


def test_api_killed_between_storing_and_publishing_still_runs_the_job(lab):
    lab.start_light_worker()
    lab.start_worker(MAX_BATCH_SIZE="1")
    base_url = lab.start_api(app="tests.fault_wsgi:app")
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{base_url}/jobs", json=SHORT | {"prompt": "mồ côi"}, timeout=10)
    [orphan] = lab.store.queued_since_before(time.time() + 1)
    lab.wait(lambda: lab.job(orphan)["status"] == "succeeded", 60, "the orphaned job to run")
    assert lab.executions()[orphan] == 1
