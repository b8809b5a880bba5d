"""The batching engine's own failure paths, at the default batch size (MAX_BATCH_SIZE=8), each fault injected for
real into a real worker (see tests/fault_engines.py), and what batching promises its jobs."""

from __future__ import annotations

import time

import pytest

from core.jobs.model import parse_iso
from tests.faults.conftest import LONG_JOB

pytestmark = pytest.mark.faults

BATCH = "8"
GREEDY = {"max_tokens": 48, "ignore_eos": True, "do_sample": False}


def submit_batch(lab, client, count: int, body: dict, label: str) -> list[str]:
    return [lab.submit(client, body | {"prompt": f"{label} {i}: Hà Nội mùa thu"}) for i in range(count)]


@pytest.mark.parametrize(
    "fault", ["crash_batch_step_once", "kill_dispatcher_once"], ids=["manager-loop-dies", "dispatcher-dies"]
)
def test_a_dead_engine_thread_hands_its_jobs_back_and_the_worker_is_replaced(lab, fault):
    lab.start_light_worker()
    workers = lab.keep_worker_running(MAX_BATCH_SIZE=BATCH, fault=fault)
    client = lab.client()
    job_ids = submit_batch(lab, client, 16, {"max_tokens": 200, "ignore_eos": True}, "việc")
    lab.wait(lambda: lab.all_done(job_ids), 240, "16 jobs through a dying engine")
    jobs = [lab.job(job_id) for job_id in job_ids]
    assert [job["status"] for job in jobs] == ["succeeded"] * 16
    assert all(job["usage"]["completion_tokens"] == 200 for job in jobs)
    assert len(workers) >= 2 and workers[0].returncode == 70  # the first worker exited; another took over
    handed_back = [job_id for job_id, count in lab.executions().items() if count > 1]
    assert handed_back, "the fault must have hit running jobs"
    # A hand-back is not the job's fault: it does not count as an attempt.
    assert all(lab.job(job_id)["attempts"] == 1 for job_id in handed_back)


def test_a_dead_cancel_watcher_hands_the_jobs_back_and_the_worker_is_replaced(lab):
    lab.start_light_worker()
    workers = lab.keep_worker_running(MAX_BATCH_SIZE=BATCH, fault="kill_cancel_watcher_on_cancel")
    client = lab.client()
    job_ids = submit_batch(lab, client, 8, LONG_JOB | {"max_tokens": 600}, "dài")
    lab.wait(lambda: all(lab.job(job_id)["status"] == "running" for job_id in job_ids), 30, "8 running jobs")
    canceled = job_ids[0]
    assert client.post(f"/jobs/{canceled}/cancel").status_code == 202
    lab.wait(lambda: lab.all_done(job_ids), 240, "the jobs after the cancel watcher died")
    assert lab.job(canceled)["status"] == "canceled"
    assert all(lab.job(job_id)["status"] == "succeeded" for job_id in job_ids[1:])
    assert len(workers) >= 2 and workers[0].returncode == 70


def test_out_of_memory_in_a_batch_step_fails_that_batch_and_the_same_worker_serves_on(lab):
    """The jobs in the batch when a step ran out of memory fail `out_of_memory` (a re-run could run out again and
    take its neighbours down with it each time; the failure is visible and the caller may retry). The manager is
    started again in the same process."""
    worker = lab.start_worker(MAX_BATCH_SIZE=BATCH, fault="oom_in_batch_step_once")
    client = lab.client()
    in_batch = submit_batch(lab, client, 8, {"max_tokens": 200, "ignore_eos": True}, "trước")
    lab.wait(lambda: lab.all_done(in_batch), 120, "the batch that runs out of memory")
    failed = [lab.job(job_id) for job_id in in_batch if lab.job(job_id)["status"] == "failed"]
    assert failed, "the injected out-of-memory must fail the jobs of its batch"
    assert all(job["error"]["type"] == "out_of_memory" for job in failed)
    after = submit_batch(lab, client, 10, {"max_tokens": 16, "ignore_eos": True}, "sau")
    lab.wait(lambda: lab.all_done(after), 120, "10 jobs after the out-of-memory")
    jobs = [lab.job(job_id) for job_id in after]
    assert all(job["status"] == "succeeded" for job in jobs)
    assert {job["worker"] for job in jobs} == {failed[0]["worker"]}  # the same worker process
    assert worker.poll() is None


def test_cancel_mid_batch_leaves_the_neighbours_text_alone_and_frees_its_place(lab):
    lab.start_worker(MAX_BATCH_SIZE=BATCH)
    client = lab.client()
    # Long enough that none of the eight ends between the look that finds them all running and the next one.
    alone = submit_batch(lab, client, 8, GREEDY | {"max_tokens": 600}, "láng giềng")
    lab.wait(lambda: lab.all_done(alone), 120, "the batch without a cancel")
    expected = [lab.job(job_id)["output"]["text"] for job_id in alone]

    again = submit_batch(lab, client, 8, GREEDY | {"max_tokens": 600}, "láng giềng")
    waiting = lab.submit(client, GREEDY | {"prompt": "đang chờ chỗ"})
    # One read of the store for all eight (eight reads over HTTP let the first end before the last was read).
    lab.wait(lambda: set(again) <= set(lab.store.running_job_ids()), 30, "8 running jobs")
    assert lab.job(waiting)["status"] == "queued"
    canceled = again[3]
    asked_at = time.time()
    assert client.post(f"/jobs/{canceled}/cancel").status_code == 202
    lab.wait(lambda: lab.all_done([*again, waiting]), 120, "the batch with a cancel")
    assert lab.job(canceled)["status"] == "canceled"
    neighbours = [job_id for job_id in again if job_id != canceled]
    assert [lab.job(job_id)["output"]["text"] for job_id in neighbours] == [
        text for job_id, text in zip(again, expected, strict=True) if job_id != canceled
    ]
    started = parse_iso(lab.job(waiting)["started_at"]).timestamp()
    assert started - asked_at < 1.0, f"the queued job took the freed place after {started - asked_at:.2f} s"


def test_seeded_jobs_match_their_solo_text_and_never_hold_back_the_batch(lab):
    lab.start_worker(MAX_BATCH_SIZE=BATCH)
    client = lab.client()
    seeded = [{"prompt": f"hạt giống {i}", "max_tokens": 24, "seed": 100 + i, "temperature": 0.9} for i in range(8)]
    solo_texts = []
    for body in seeded:  # each one alone first
        job_id = lab.submit(client, body)
        lab.wait(lambda job_id=job_id: lab.all_done([job_id]), 60, "a seeded job alone")
        solo_texts.append(lab.job(job_id)["output"]["text"])

    seeded_ids = [lab.submit(client, body) for body in seeded]
    # Long enough that the first plain job is still running when the eighth is submitted on a loaded machine.
    plain_ids = submit_batch(lab, client, 8, {"max_tokens": 128, "ignore_eos": True}, "thường")
    lab.wait(lambda: lab.all_done([*seeded_ids, *plain_ids]), 180, "8 seeded and 8 plain jobs")
    seeded_jobs = [lab.job(job_id) for job_id in seeded_ids]
    plain_jobs = [lab.job(job_id) for job_id in plain_ids]
    assert all(job["status"] == "succeeded" for job in [*seeded_jobs, *plain_jobs])
    assert [job["output"]["text"] for job in seeded_jobs] == solo_texts
    # The plain jobs ran as one batch of 8 while the seeded ones took their turns in the lane: none of them waited
    # for the seeded jobs to finish.
    assert max(job["resources"]["batch_size"] for job in plain_jobs) == 8
    last_plain_done = max(parse_iso(job["completed_at"]) for job in plain_jobs)
    last_seeded_done = max(parse_iso(job["completed_at"]) for job in seeded_jobs)
    assert last_plain_done < last_seeded_done
