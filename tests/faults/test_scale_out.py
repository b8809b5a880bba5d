"""Scale-out: two GPU workers (CPU here) on one Redis and one queue share the jobs, each loads the model once, and a
kill -9 of one of them mid-job loses nothing: its jobs run again on the other."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = pytest.mark.faults

SHORT = {"max_tokens": 16, "ignore_eos": True, "do_sample": False}
LONG = {"max_tokens": 600, "ignore_eos": True, "do_sample": False}
MODEL_LOAD_LINE = re.compile(r"loaded \S+ on \S+ as \S+ in [\d.]+ s")


def test_two_workers_share_one_queue_and_a_kill_9_loses_nothing(lab):
    lab.start_light_worker()
    with ThreadPoolExecutor(2) as starting:  # both load their model at once, as on two GPUs
        worker_a, _worker_b = starting.map(lab.start_worker, ["gpu-a", "gpu-b"])
    client = lab.client()
    ready = client.get("/readyz").get_json()
    names = sorted(worker["name"].split("@")[0] for worker in ready["workers"])
    assert ready["status"] == "ready" and names == ["gpu-a", "gpu-b"]

    # Ten short jobs: whichever worker waits on the queue takes the next one, so both run some.
    first = [lab.submit(client, SHORT | {"prompt": f"ngắn {i}"}) for i in range(10)]
    lab.wait(lambda: lab.all_done(first), 60, "the 10 short jobs")
    ran_on = {lab.job(job_id)["worker"].split("@")[0] for job_id in first}
    assert ran_on == {"gpu-a", "gpu-b"}

    # Ten long ones: kill -9 worker a while both run some of them.
    second = [lab.submit(client, LONG | {"prompt": f"dài {i}"}) for i in range(10)]

    def running_on(prefix: str) -> set[str]:
        return {
            job_id for job_id in lab.store.running_job_ids() if (lab.job(job_id)["worker"] or "").startswith(prefix)
        }

    lab.wait(lambda: running_on("gpu-a@") and running_on("gpu-b@"), 30, "both workers running long jobs")
    killed_jobs = running_on("gpu-a@")
    lab.kill(worker_a)
    lab.wait(lambda: lab.all_done(second), 120, "the 10 long jobs after the kill")

    jobs = [lab.job(job_id) for job_id in [*first, *second]]
    assert [job["status"] for job in jobs] == ["succeeded"] * 20
    executions = lab.executions()
    assert set(executions) == {job["id"] for job in jobs}
    # A job seen running on worker a may still have finished there in the moment before the kill: it ran once.
    finished_before_kill = {job_id for job_id in killed_jobs if lab.job(job_id)["worker"].startswith("gpu-a@")}
    assert all(executions[job_id] == 1 for job_id in finished_before_kill)
    rerun = killed_jobs - finished_before_kill
    assert rerun, "the kill interrupted no job: nothing was proven"
    for job_id in rerun:  # run again, to the end, on the worker left
        assert executions[job_id] == 2 and lab.job(job_id)["worker"].startswith("gpu-b@")
    assert lab.job(next(iter(rerun)))["usage"]["completion_tokens"] == LONG["max_tokens"]
    print(f"two workers: 20/20 succeeded; {len(rerun)} jobs of the killed worker ran again on the other")

    # Each worker loaded the model exactly once.
    for name in ("gpu-a", "gpu-b"):
        output = (lab.tmp / f"{name}-1.out").read_text(errors="replace")
        assert len(MODEL_LOAD_LINE.findall(output)) == 1, name

    # The dead worker's heartbeat ran out: /readyz counts the one left.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ready = client.get("/readyz").get_json()
        if len(ready["workers"]) == 1:
            break
        time.sleep(0.2)
    assert [worker["name"].split("@")[0] for worker in ready["workers"]] == ["gpu-b"]
