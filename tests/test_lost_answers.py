"""Writes Redis ran whose answers the worker never got (a connection dropped on the way back): a start that was
written runs, and a take that was written goes back to its line."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from core.jobs.model import Job, JobStatus, new_job_id, utc_now_iso
from core.workers.reservations import WorkerReservations
from worker.runner import WorkerRuntime, _started_here


def queued_job(store) -> Job:
    job = Job(id=new_job_id(), status=JobStatus.QUEUED, created_at=utc_now_iso(), input={"prompt": "x"}, owner="o")
    store.create(job)
    return job


def test_a_start_written_with_its_answer_lost_is_this_execution(store):
    queued = queued_job(store)
    started_at = utc_now_iso()

    def start(job: Job) -> None:
        job.attempts, job.worker, job.started_at = 1, "gpu@test", started_at

    store.transition(queued.id, JobStatus.RUNNING, start)
    assert _started_here(store, queued.id, queued, "gpu@test", started_at).attempts == 1
    # Another thread's start (another time), or another worker's, is not this one.
    assert _started_here(store, queued.id, queued, "gpu@test", utc_now_iso()) is None
    assert _started_here(store, queued.id, queued, "gpu@other", started_at) is None


def test_a_reservation_no_thread_holds_goes_back_at_the_second_look(store):
    queued = queued_job(store)
    assert store.take_next("gpu@lost-take") == queued.id  # taken, as if the answer never came back
    republished = []
    runtime = SimpleNamespace(
        store=store,
        reservations=WorkerReservations(store.redis),
        worker_name="gpu@lost-take",
        held=set(),
        held_lock=threading.Lock(),
        unheld_reservations=set(),
        republish=lambda job_id, priority: republished.append(job_id),
    )
    lost = WorkerRuntime.put_back_lost_reservations
    assert lost(runtime) == [] and republished == []  # a take that just returned gets one heartbeat
    assert lost(runtime) == [queued.id] and republished == [queued.id]
    assert store.take_next("gpu@lost-take") == queued.id  # back in its line


def test_a_held_reservation_stays(store):
    queued = queued_job(store)
    store.take_next("gpu@held-take")
    runtime = SimpleNamespace(
        store=store,
        reservations=WorkerReservations(store.redis),
        worker_name="gpu@held-take",
        held={queued.id},
        held_lock=threading.Lock(),
        unheld_reservations=set(),
        republish=lambda job_id, priority: None,
    )
    WorkerRuntime.put_back_lost_reservations(runtime)
    assert WorkerRuntime.put_back_lost_reservations(runtime) == []
