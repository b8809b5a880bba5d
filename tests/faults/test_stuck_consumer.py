"""A stuck consumer (celery#9054, celery#10205): the worker process lives and beats, but its Celery consumer takes no
more messages. Its canary finds it out within CANARY_TIMEOUT_SECONDS; it hands its jobs back and exits, its supervisor
starts a fresh one, and every job completes. A busy worker (every batch place taken, as many jobs waiting) still
consumes its canaries."""

from __future__ import annotations

import time

import pytest

from core.workers.reservations import WorkerReservations
from tests.faults.conftest import LONG_JOB
from worker.app import STUCK_CONSUMER_EXIT_CODE

pytestmark = pytest.mark.faults

CANARY = {"CANARY_INTERVAL_SECONDS": "0.5", "CANARY_TIMEOUT_SECONDS": "5"}
SHORT = {"max_tokens": 16, "ignore_eos": True, "do_sample": False}


def test_a_stuck_consumer_is_detected_and_its_worker_replaced(lab):
    trigger = lab.tmp / "stall-consumer"
    lab.start_light_worker()
    workers = lab.keep_worker_running(fault_args=("--stall-consumer-on", str(trigger)), **CANARY)
    client = lab.client()
    # Long enough to be running still when the consumer stalls and its canary finds it out, a few seconds later
    # (1,200 tokens were not, on a quiet machine: the check below says so if that happens again).
    running = [lab.submit(client, LONG_JOB | {"prompt": f"dài {i}"}) for i in range(8)]
    lab.wait(lambda: len(lab.store.running_job_ids()) == 8, 30, "8 running jobs")
    waiting = [lab.submit(client, SHORT | {"prompt": f"chờ {i}"}) for i in range(8)]

    # Full: 8 jobs running and 8 waiting for a place, i.e. every message its prefetch allows (the worker notes
    # each job it took, until it starts running).
    reservations = WorkerReservations(lab.store.redis)
    [announced] = lab.workers.live()
    lab.wait(lambda: len(reservations.held_by({announced.name})) == 8, 30, "8 jobs waiting on the worker")
    consumed_when_full = lab.workers.live()[0].canaries_consumed
    # Canaries keep coming through while every place is taken (the consumer widens its prefetch for each one).
    lab.wait(
        lambda: lab.workers.live()[0].canaries_consumed >= consumed_when_full + 3,
        10,
        "3 canaries consumed by the full worker",
    )
    assert len(reservations.held_by({announced.name})) == 8 and len(lab.store.running_job_ids()) == 8
    assert workers[0].poll() is None and len(workers) == 1

    trigger.write_text("cancel")  # the consumer stops reading its queues; its loop, its threads and the process live
    stalled_at = time.monotonic()
    late = lab.submit(client, SHORT | {"prompt": "đến khi kẹt"})
    assert workers[0].wait(60) == STUCK_CONSUMER_EXIT_CODE
    detected_s = time.monotonic() - stalled_at
    # On a fast machine a long job may still finish before the canary's timeout: those ran once, the rest twice.
    finished_first = {job_id for job_id in running if lab.job(job_id)["status"] == "succeeded"}
    assert len(finished_first) < len(running), "every long job finished before the stall was found: make them longer"
    output = (lab.tmp / "gpu-1.out").read_text(errors="replace")
    assert "the Celery consumer stopped taking messages" in output

    lab.wait(lambda: len(workers) == 2, 60, "the supervisor's fresh worker")
    jobs = [*running, *waiting, late]
    lab.wait(lambda: lab.all_done(jobs), 180, "every job on the fresh worker")
    print(f"stuck consumer: detected and exited after {detected_s:.1f} s (CANARY_TIMEOUT_SECONDS=5)")
    assert [lab.job(job_id)["status"] for job_id in jobs] == ["succeeded"] * len(jobs)
    # Handed back, not failed: the interrupted tries don't count against the jobs.
    assert all(lab.job(job_id)["attempts"] == 1 for job_id in jobs)
    executions = lab.executions()
    assert all(executions[job_id] == (1 if job_id in finished_first else 2) for job_id in running), executions
    assert all(executions[job_id] == 1 for job_id in [*waiting, late])
    assert workers[1].poll() is None
