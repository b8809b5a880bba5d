"""The API in-process: an app from the factory over the session's Redis, with a queue that records what was
published instead of a broker, and (when asked) answers each job at once as a worker would."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.app import create_app
from core.jobs.model import JobStatus, utc_now_iso
from core.jobs.records import JobOutput, JobUsage
from core.jobs.store import JobStore, connect
from core.settings import Settings
from tests.conftest import unconsumed_queue_name

HAND_WORKER = "hand-worker"


def finish_by_hand(store: JobStore, job_id: str, text: str, finish_reason: str = "stop") -> None:
    """Run a queued job to `succeeded` as a worker records it: running, then its output and usage."""

    def start(job) -> None:
        job.started_at = utc_now_iso()
        job.attempts += 1
        job.worker = HAND_WORKER

    started = store.transition(job_id, JobStatus.RUNNING, start)

    def succeed(job, _cancel_requested: bool) -> JobStatus:
        job.completed_at = utc_now_iso()
        job.output = JobOutput(text=text, finish_reason=finish_reason)
        job.usage = JobUsage(prompt_tokens=3, completion_tokens=2, total_tokens=5)
        return JobStatus.SUCCEEDED

    store.record_outcome(job_id, started.attempts, succeed)


@dataclass
class RecordingQueue:
    """core's JobQueue for tests: keeps every published id; with `answer` set, each job is answered at once."""

    store: JobStore
    answer: str | None = None
    waiting: int = 0  # what depth() reports, so a test can fill the queue
    published: list[tuple[str, str]] = field(default_factory=list)

    def publish(self, job_ids: list[str], priority: str) -> None:
        self.published.extend((job_id, priority) for job_id in job_ids)
        if self.answer is not None:
            for job_id in job_ids:
                finish_by_hand(self.store, job_id, self.answer)

    def depth(self) -> int:
        return self.waiting

    @property
    def job_ids(self) -> list[str]:
        return [job_id for job_id, _ in self.published]


@dataclass
class InProcessApi:
    app: Flask
    client: FlaskClient
    queue: RecordingQueue
    settings: Settings
    headers: dict[str, str]

    @property
    def store(self) -> JobStore:
        return self.app.extensions["llm"].store


@pytest.fixture
def make_api(make_settings, request) -> Callable[..., InProcessApi]:
    """Build an app with a recording queue; each call's caller is a key of its own, so listings hold only its jobs."""

    def build(*, answer: str | None = None, key: str | None = None, **overrides) -> InProcessApi:
        key = key or f"key-{secrets.token_hex(8)}"
        values = {"gpu_queue": unconsumed_queue_name(request), "api_keys": [key], "sync_wait_seconds": 5.0}
        settings = make_settings(**(values | overrides))
        queue = RecordingQueue(JobStore(connect(settings.effective_redis_url), job_ttl_s=3600), answer=answer)
        app = create_app(settings, queue=queue)
        return InProcessApi(app, app.test_client(), queue, settings, {"Authorization": f"Bearer {key}"})

    return build


@pytest.fixture
def api(make_api) -> InProcessApi:
    """An app whose jobs wait on the queue (nobody answers them)."""
    return make_api()


@pytest.fixture
def answering_api(make_api) -> InProcessApi:
    """An app whose every job is answered `Bonjour` as soon as it is queued."""
    return make_api(answer="Bonjour")
