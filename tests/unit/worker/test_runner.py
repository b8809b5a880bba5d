"""The runner: a stored job taken, run on the demo model's engine, and its outcome recorded once."""

from __future__ import annotations

import contextlib
import json
import threading
import time

import pytest

from core.jobs.idempotency import IdempotencyKeys
from core.jobs.model import JobStatus
from core.jobs.submission import SubmitJob
from core.workers.registry import WorkerRegistry
from core.workers.reservations import WorkerReservations
from tests.unit.worker.conftest import cpu_settings
from worker.generation import ChoiceResult, EngineStopped, GenerationResult
from worker.job_log import JobLog
from worker.resources import ResourceSampler
from worker.runner import WorkerRuntime, job_output, run_next_job
from worker.running_jobs import RunningJobs
from worker.sequential_engine import SequentialEngine

WORKER = "gpu@unit#1"


class NoQueue:
    """The submit use case's queue: the runner's tests take jobs from the store's lines directly."""

    def publish(self, job_ids: list[str], priority: str) -> None: ...

    def depth(self) -> int:
        return 0


class Wrapped:
    """The real engine with one behaviour replaced, as the fault suite wraps it."""

    def __init__(self, engine, *, slot=None, generate=None) -> None:
        self.engine, self.device = engine, engine.device
        self._slot, self._generate = slot, generate

    def slot(self, params, rank, *, alone=False):
        return self._slot(params) if self._slot else self.engine.slot(params, rank, alone=alone)

    def generate(self, params, should_cancel=None, on_tokens=None, on_logprobs=None):
        if self._generate:
            return self._generate(params, should_cancel, on_tokens)
        return self.engine.generate(params, should_cancel, on_tokens, on_logprobs=on_logprobs)

    def __getattr__(self, name):
        return getattr(self.engine, name)


@pytest.fixture
def make_runtime(loaded_model, demo_model_dir, own_store, own_redis, tmp_path, quiet_logger):
    republished: list[tuple[str, str]] = []

    def build(wrap=None, **overrides):
        settings = cpu_settings(demo_model_dir, tmp_path, redis_url=own_redis.url, **overrides)
        engine = SequentialEngine(loaded_model)
        runtime = WorkerRuntime(
            settings=settings,
            store=own_store,
            engine=wrap(engine) if wrap else engine,
            sampler=ResourceSampler(None),
            resource_log=quiet_logger,
            worker_name=WORKER,
            model_name="demo",
            started_at="2026-01-01T00:00:00Z",
            model_load_seconds=0.1,
            dtype_name="float32",
            republish=lambda job_id, priority: republished.append((job_id, priority)),
            running=RunningJobs(own_store),
            workers=WorkerRegistry(own_store.redis),
            reservations=WorkerReservations(own_store.redis),
            job_log=JobLog(tmp_path / "logs", max_bytes=1 << 20, include_prompts=True),
        )
        runtime.republished = republished
        return runtime

    return build


def submit(runtime, body: dict) -> str:
    idempotency = IdempotencyKeys(runtime.store.redis, stale_after_s=10)
    return SubmitJob(runtime.settings, runtime.store, NoQueue(), idempotency)(body, "owner-unit").id


def test_a_stored_job_runs_and_its_outcome_is_recorded(make_runtime, tmp_path):
    runtime = make_runtime()
    job_id = submit(runtime, {"prompt": "Hello", "max_tokens": 5, "ignore_eos": True, "temperature": 0})
    run_next_job(runtime, job_id)
    job = runtime.store.get(job_id)
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 1 and job.worker == WORKER
    assert job.output.finish_reason == "length" and job.output.text
    assert job.usage.completion_tokens == 5 and job.usage.total_tokens == job.usage.prompt_tokens + 5
    assert set(job.metrics) >= {"queue_seconds", "generation_seconds", "tokens_per_second"}
    assert job.resources.batch_size == 1 and job.resources.before.gpu == "none"
    assert len(job.logs) == 2 and all(job_id in line for line in job.logs)
    line = json.loads((tmp_path / "logs" / "jobs.jsonl").read_text().splitlines()[-1])
    assert line["id"] == job_id and line["status"] == "succeeded" and line["output"] == job.output.text


def test_a_message_with_no_queued_job_left_runs_nothing(make_runtime):
    runtime = make_runtime()
    job_id = submit(runtime, {"prompt": "Hello", "max_tokens": 2})
    runtime.store.cancel_queued([job_id])
    run_next_job(runtime, job_id)
    assert runtime.store.get(job_id).status == JobStatus.CANCELED


def test_an_engine_failure_fails_the_job_with_its_type(make_runtime):
    def explode(params, should_cancel, on_tokens):
        raise ValueError("the engine broke")

    runtime = make_runtime(wrap=lambda engine: Wrapped(engine, generate=explode))
    job_id = submit(runtime, {"prompt": "Hello", "max_tokens": 2})
    run_next_job(runtime, job_id)
    job = runtime.store.get(job_id)
    assert job.status == JobStatus.FAILED and job.error.type == "generation_error"
    assert "the engine broke" in job.error.message and job.output is None


def test_a_job_past_its_deadline_fails_as_timeout_and_keeps_its_text(make_runtime):
    runtime = make_runtime(job_timeout_seconds=0.001)
    job_id = submit(runtime, {"prompt": "Hello", "max_tokens": 500, "ignore_eos": True})
    run_next_job(runtime, job_id)
    job = runtime.store.get(job_id)
    assert job.status == JobStatus.FAILED and job.error.type == "timeout"
    assert job.output.finish_reason == "timeout" and job.usage.completion_tokens < 500


def test_a_cancel_accepted_while_it_ran_wins_over_success(make_runtime):
    holder = {}

    def cancel_then_generate(params, should_cancel, on_tokens):
        holder["runtime"].store.request_cancel_if_running(holder["job_id"])
        return holder["engine"].generate(params, None, on_tokens)

    def wrap(engine):
        holder["engine"] = engine
        return Wrapped(engine, generate=cancel_then_generate)

    runtime = holder["runtime"] = make_runtime(wrap=wrap)
    job_id = holder["job_id"] = submit(runtime, {"prompt": "Hello", "max_tokens": 3, "ignore_eos": True})
    run_next_job(runtime, job_id)
    job = runtime.store.get(job_id)
    assert job.status == JobStatus.CANCELED and job.output.finish_reason == "canceled"


def test_a_job_refused_before_it_started_goes_back_to_the_queue_and_is_published_again(make_runtime):
    @contextlib.contextmanager
    def refuse(params):
        raise EngineStopped("the worker is stopping")
        yield

    runtime = make_runtime(wrap=lambda engine: Wrapped(engine, slot=refuse))
    job_id = submit(runtime, {"prompt": "Hello", "max_tokens": 2, "priority": "high"})
    run_next_job(runtime, job_id)
    job = runtime.store.get(job_id)
    assert job.status == JobStatus.QUEUED and job.attempts == 0
    assert runtime.republished == [(job_id, "high")]
    assert runtime.store.take_next("another-worker") == job_id


def test_a_stopping_worker_hands_a_running_job_back_without_counting_its_try(make_runtime):
    stop_now = threading.Event()

    def stop_midway(params, should_cancel, on_tokens):
        runtime.stopping.set()
        stop_now.set()
        return runtime_engine.generate(params, should_cancel, on_tokens)

    runtime = make_runtime(wrap=lambda engine: Wrapped(engine, generate=stop_midway))
    runtime_engine = runtime.engine.engine
    job_id = submit(runtime, {"prompt": "Hello", "max_tokens": 200, "ignore_eos": True})
    run_next_job(runtime, job_id)
    job = runtime.store.get(job_id)
    assert stop_now.is_set() and job.status == JobStatus.QUEUED and job.attempts == 0 and job.worker is None
    assert runtime.republished == [(job_id, "normal")]


def test_the_output_of_a_job_with_choices_lists_each_and_a_cancel_marks_them_all():
    choices = (ChoiceResult("a", "stop", 2), ChoiceResult("bc", "length", 3))
    result = GenerationResult("a", "stop", 4, 2, 0.1, 1.0, choices=choices)
    output = job_output(result, canceled=False)
    assert (output.text, output.finish_reason) == ("a", "stop")
    assert [(c.index, c.text, c.finish_reason, c.completion_tokens) for c in output.choices] == [
        (0, "a", "stop", 2),
        (1, "bc", "length", 3),
    ]
    canceled = job_output(result, canceled=True)
    assert {c.finish_reason for c in canceled.choices} == {canceled.finish_reason} == {"canceled"}
    assert job_output(GenerationResult("a", "stop", 4, 2, 0.1, 1.0), canceled=False).choices is None


def test_a_stopping_worker_stops_retrying_an_outcome_redis_wont_take(monkeypatch):
    from core.errors import StoreUnavailable
    from worker import runner

    monkeypatch.setattr(runner, "STOPPING_WRITE_WAIT_S", 0.5)
    tries: list[float] = []

    def unreachable():
        tries.append(time.monotonic())
        if len(tries) == 3:
            stopping.set()  # the stop arrives while Redis is away
        raise StoreUnavailable("Redis is away")

    stopping = threading.Event()
    with pytest.raises(StoreUnavailable):
        runner._while_redis_is_away(unreachable, give_up_after_s=600.0, stopping=stopping)
    # It gave up about STOPPING_WRITE_WAIT_S after the stop, not after the outage's 600 s.
    assert tries[-1] - tries[0] < 30.0 and len(tries) >= 4

    healed = iter([StoreUnavailable("away"), None])

    def comes_back():
        failure = next(healed)
        if failure is not None:
            raise failure
        return "written"

    assert runner._while_redis_is_away(comes_back, stopping=threading.Event()) == "written"


def test_a_start_whose_answer_redis_lost_runs_the_job_instead_of_leaving_it_running(make_runtime, monkeypatch):
    from core.errors import StoreUnavailable

    runtime = make_runtime()
    job_id = submit(runtime, {"prompt": "Hello", "max_tokens": 3, "ignore_eos": True, "temperature": 0})
    real_transition = runtime.store.transition
    lost = []

    def answer_lost_once(target_id, status, change, **kwargs):
        job = real_transition(target_id, status, change, **kwargs)
        if status == JobStatus.RUNNING and not lost:
            lost.append(job.id)  # Redis ran the start, then restarted before its answer came back
            raise StoreUnavailable("the job store is unreachable")
        return job

    monkeypatch.setattr(runtime.store, "transition", answer_lost_once)
    run_next_job(runtime, job_id)
    job = runtime.store.get(job_id)
    assert lost == [job_id]
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 1 and job.usage.completion_tokens == 3
