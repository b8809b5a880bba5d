"""Following a job's events in-process: a finished job is replayed and closed with its object, a client resumes
after the last id it got, a job that has not run says where it is, and a lifetime ends the follow between events."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput, JobNotFound
from core.events.follow import Completed, JobEvents, KeepAlive, Lapsed
from core.events.listener import JobEventListener
from core.events.stream import StreamEvent, TokenStreams
from core.jobs.model import JobStatus


@pytest.fixture
def events(store, client) -> JobEvents:
    return JobEvents(store, TokenStreams(client), JobEventListener(client), keepalive_s=0.2)


def finished_with_text(store, new_job, client, text: str):
    job = new_job()

    def take(job) -> None:
        job.attempts += 1

    store.transition(job.id, JobStatus.RUNNING, take)
    TokenStreams(client).append_texts({(job.id, 1): text})
    return store.transition(job.id, JobStatus.SUCCEEDED)


def test_a_finished_job_is_replayed_then_closed_with_its_object(events, store, new_job, client):
    job = finished_with_text(store, new_job, client, "Hi")
    items = list(events.follow(job.id, job.owner, None))
    assert [(item.kind, item.data) for item in items[:-1]] == [
        ("status", {"status": "running"}),
        ("token", {"text": "Hi"}),
        ("status", {"status": "succeeded"}),
    ]
    assert items[-1] == Completed(store.get(job.id))


def test_a_client_resuming_after_an_id_gets_only_what_came_after(events, store, new_job, client):
    job = finished_with_text(store, new_job, client, "Hi")
    first = list(events.follow(job.id, job.owner, None))
    resumed = list(events.follow(job.id, job.owner, first[1].event_id))
    assert resumed == first[2:]


def test_a_job_that_has_not_run_says_so_and_a_lifetime_ends_the_follow(events, new_job):
    job = new_job()
    items = list(events.follow(job.id, job.owner, None, lifetime_s=0.3))
    assert items[0] == StreamEvent("", "status", {"status": "queued"})
    assert KeepAlive() in items and items[-1] == Lapsed()


def test_a_job_canceled_while_followed_ends_with_its_status_and_object(events, store, new_job):
    job = new_job()
    follow = events.follow(job.id, job.owner, None)
    assert next(follow) == StreamEvent("", "status", {"status": "queued"})
    store.cancel_queued([job.id])
    rest = list(follow)
    assert rest[-2] == StreamEvent("", "status", {"status": "canceled"})
    assert isinstance(rest[-1], Completed) and rest[-1].job.status == JobStatus.CANCELED


def test_a_malformed_id_or_another_owners_job_is_refused_before_anything_is_sent(events, new_job):
    job = new_job()
    with pytest.raises(InvalidInput) as refused:
        events.follow(job.id, job.owner, "not-an-id")
    assert refused.value.field == "last_event_id"
    with pytest.raises(JobNotFound):
        events.follow(job.id, "someone-else", None)
