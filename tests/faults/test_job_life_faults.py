"""The reliability promises about a job's own life, each proven by injecting the fault for real: cancel, deadline,
out of memory, SIGTERM's hand-back, expiry (split from test_faults.py so the two files run in parallel).

Every execution is counted in a log outside Redis, so loss and duplication are measured, not assumed.
"""

from __future__ import annotations

import signal
import time

import pytest

from core.redis.keys import JOB_KEY
from tests.fault_engines import OOM_MARKER
from tests.faults.conftest import LONG_JOB

pytestmark = pytest.mark.faults

SHORT = {"prompt": "Ngắn gọn", "max_tokens": 8, "ignore_eos": True}


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
