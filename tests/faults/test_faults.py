"""The reliability promises, each proven by injecting the fault for real (`make test-faults` runs these alone).

Every execution is counted in a log outside Redis, so loss and duplication are measured, not assumed.
"""

from __future__ import annotations

import signal
import time

import pytest
import redis
import requests

from core.keys import JOB_KEY
from tests.fault_engines import OOM_MARKER, POISON_MARKER
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


@pytest.mark.parametrize("batch_size", ["1", "4"])
def test_cancel_queued_never_runs_and_running_stops_within_a_second(lab, batch_size):
    lab.start_light_worker()
    worker = lab.start_worker(MAX_BATCH_SIZE=batch_size)
    client = lab.client()
    blockers = [lab.submit(client, LONG_JOB | {"prompt": f"chặn {i}"}) for i in range(int(batch_size))]
    lab.wait(lambda: all(lab.job(job_id)["status"] == "running" for job_id in blockers), 30, "blockers running")
    queued = lab.submit(client, SHORT)  # behind them: every place is taken
    response = client.post(f"/jobs/{queued}/cancel")
    assert response.status_code == 200 and response.get_json()["status"] == "canceled"
    time.sleep(0.5)  # let the running job produce some text
    running = blockers[0]
    asked_at = time.monotonic()
    assert client.post(f"/jobs/{running}/cancel").status_code == 202
    lab.wait(lambda: lab.job(running)["status"] == "canceled", 5, "the running job to stop")
    assert time.monotonic() - asked_at < 1.5
    canceled = lab.job(running)
    assert canceled["output"]["finish_reason"] == "canceled" and canceled["output"]["text"]
    assert 0 < canceled["usage"]["completion_tokens"] < LONG_JOB["max_tokens"]
    assert client.post(f"/jobs/{running}/cancel").status_code == 409
    for job_id in blockers[1:]:
        client.post(f"/jobs/{job_id}/cancel")
    worker.send_signal(signal.SIGTERM)
    worker.wait(30)
    lab.start_worker(MAX_BATCH_SIZE=batch_size)
    time.sleep(2)
    executions = lab.executions()
    assert executions[queued] == 0 and executions[running] == 1
    assert lab.job(running)["status"] == "canceled" and lab.job(queued)["status"] == "canceled"


@pytest.mark.parametrize("batch_size", ["1", "8"])
def test_job_past_its_deadline_fails_with_timeout_and_the_next_runs(lab, batch_size):
    lab.start_worker(MAX_BATCH_SIZE=batch_size, JOB_TIMEOUT_SECONDS="1")
    client = lab.client()
    slow = [lab.submit(client, LONG_JOB | {"prompt": f"chậm {i}"}) for i in range(int(batch_size))]
    after = lab.submit(client, SHORT)
    lab.wait(lambda: lab.all_done([*slow, after]), 60, "every job")
    for job_id in slow:
        timed_out = lab.job(job_id)
        assert timed_out["status"] == "failed" and timed_out["error"]["type"] == "timeout"
        assert timed_out["output"]["finish_reason"] == "timeout"
        assert timed_out["usage"]["completion_tokens"] < LONG_JOB["max_tokens"]
    assert lab.job(after)["status"] == "succeeded"


@pytest.mark.parametrize("batch_size", ["1", "8"])
def test_out_of_memory_fails_that_job_and_the_worker_serves_on(lab, batch_size):
    lab.start_worker(MAX_BATCH_SIZE=batch_size, fault="oom_on_marker")
    client = lab.client()
    oom = lab.submit(client, {"prompt": f"{OOM_MARKER} lớn quá", "max_tokens": 4})
    after = [lab.submit(client, SHORT | {"prompt": f"sau {i}"}) for i in range(10)]
    lab.wait(lambda: lab.all_done([oom, *after]), 60, "11 jobs")
    failed = lab.job(oom)
    assert failed["status"] == "failed" and failed["error"]["type"] == "out_of_memory"
    assert "out of memory" in failed["error"]["message"]
    jobs = [lab.job(job_id) for job_id in after]
    assert all(job["status"] == "succeeded" for job in jobs)
    assert {job["worker"] for job in jobs} == {failed["worker"]}  # the same worker process served on


@pytest.mark.parametrize("batch_size", ["1", "8"])
def test_sigterm_hands_running_jobs_back_after_the_grace_and_loses_nothing(lab, batch_size):
    """SIGTERM: jobs that can't finish within SHUTDOWN_GRACE_SECONDS go back to the queue, their interrupted try
    not counted, and run to the end on the next worker; jobs still waiting for a place go back at once."""
    lab.start_light_worker()
    worker = lab.start_worker(MAX_BATCH_SIZE=batch_size, SHUTDOWN_GRACE_SECONDS="1")
    client = lab.client()
    long_jobs = [lab.submit(client, LONG_JOB | {"prompt": f"dài {i}"}) for i in range(int(batch_size))]
    lab.wait(lambda: all(lab.job(job_id)["status"] == "running" for job_id in long_jobs), 30, "the long jobs")
    waiting = [lab.submit(client, SHORT | {"prompt": f"chờ {i}"}) for i in range(int(batch_size))]
    time.sleep(0.5)  # the worker takes them, and they wait for a place
    worker.send_signal(signal.SIGTERM)
    worker.wait(60)
    for job_id in long_jobs:
        handed_back = lab.job(job_id)
        assert handed_back["status"] == "queued" and handed_back["attempts"] == 0 and handed_back["output"] is None
    assert all(lab.job(job_id)["status"] == "queued" for job_id in waiting)
    lab.start_worker(MAX_BATCH_SIZE=batch_size)
    lab.wait(lambda: lab.all_done([*long_jobs, *waiting]), 240, "every job after the restart")
    for job_id in long_jobs:
        finished = lab.job(job_id)
        assert finished["status"] == "succeeded" and finished["attempts"] == 1
        assert finished["usage"]["completion_tokens"] == LONG_JOB["max_tokens"]
    assert all(lab.job(job_id)["status"] == "succeeded" for job_id in waiting)
    executions = lab.executions()
    assert all(executions[job_id] == 2 for job_id in long_jobs)
    assert all(executions[job_id] == 1 for job_id in waiting)


def test_finished_job_expires_to_a_404(lab):
    client = lab.client()
    job_id = lab.submit(client, SHORT)
    lab.store.redis.expire(JOB_KEY.format(job_id=job_id), 1)
    time.sleep(1.5)
    response = client.get(f"/jobs/{job_id}")
    assert response.status_code == 404 and response.get_json()["error"]["type"] == "not_found"
