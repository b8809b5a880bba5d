"""Submitting one job in-process: refused work leaves nothing behind; accepted work is stored, in its owner's line and
on the queue; a publish that fails takes the stored copy back."""

from __future__ import annotations

import pytest

from core.errors import Forbidden, InvalidInput, QueueFull, StoreUnavailable, TooManyRequests
from core.jobs.idempotency import IdempotencyKeys
from core.jobs.model import JobStatus
from core.jobs.submission import SubmitJob, check_capacity, check_webhook_url, webhook_record
from core.owners.ids import owner_id_for_key
from core.redis.keys import JOB_KEY, OWNER_INDEX_KEY, QUEUED_INDEX_KEY


def stored_keys(client) -> list[str]:
    return sorted(client.scan_iter("llm:job:*"))


def test_an_accepted_job_is_stored_queued_indexed_and_published(submit, store, queue, client):
    job = submit({"prompt": "hello", "max_tokens": 3, "metadata": {"k": "v"}}, "owner-a")
    assert job.status == JobStatus.QUEUED and job.owner == "owner-a" and job.metadata == {"k": "v"}
    assert store.get(job.id) == job
    assert client.zscore(QUEUED_INDEX_KEY, job.id) is not None
    assert client.zscore(OWNER_INDEX_KEY.format(owner="owner-a"), job.id) is not None
    assert queue.published == [(job.id, "normal")]
    assert store.queued_count("owner-a") == 1
    assert store.waiting_in_lines([job.id]) == {job.id: "normal"}


def test_the_priority_asked_for_is_the_one_published(submit, queue):
    job = submit({"prompt": "x", "priority": "low"}, "owner-a")
    assert job.priority == "low" and queue.published == [(job.id, "low")]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x", "max_tokens": 10**6}, "max_tokens"),
        ({"prompt": "x\x00"}, "prompt"),
        ({"prompt": "x", "webhook": "ftp://example.com/"}, "webhook"),
        ({"prompt": "x", "priority": "urgent"}, "priority"),
        ([], None),
    ],
)
def test_an_invalid_body_is_refused_and_nothing_is_stored(submit, queue, client, body, field):
    with pytest.raises(InvalidInput) as refused:
        submit(body, "owner-a")
    assert refused.value.field == field
    assert queue.published == [] and stored_keys(client) == []


def test_a_full_queue_refuses_with_retry_after_and_stores_nothing(make_settings, redis_url, store, queue, client):
    submit = SubmitJob(make_settings(redis_url=redis_url, max_queue_depth=2), store, queue, IdempotencyKeys(client))
    submit({"prompt": "a"}, "owner-a")
    submit({"prompt": "b"}, "owner-b")
    with pytest.raises(QueueFull) as refused:
        submit({"prompt": "c"}, "owner-c")
    assert refused.value.retry_after_s == 10 and "limit of 2" in refused.value.message
    assert len(queue.published) == 2 and store.queued_count("owner-c") == 0


def test_an_owner_past_its_queued_cap_is_refused_and_another_owner_is_not(make_settings, redis_url, store, queue):
    settings = make_settings(redis_url=redis_url, max_queued_per_key=1)
    submit = SubmitJob(settings, store, queue, IdempotencyKeys(store.redis))
    submit({"prompt": "a"}, "owner-a")
    with pytest.raises(TooManyRequests, match="MAX_QUEUED_PER_KEY = 1"):
        submit({"prompt": "b"}, "owner-a")
    submit({"prompt": "c"}, "owner-b")
    assert store.queued_count("owner-a") == 1 and store.queued_count("owner-b") == 1


def test_high_priority_is_only_for_the_listed_keys(make_settings, redis_url, store, queue):
    settings = make_settings(redis_url=redis_url, api_keys=["boss", "staff"], high_priority_keys=["boss"])
    submit = SubmitJob(settings, store, queue, IdempotencyKeys(store.redis))
    assert submit({"prompt": "x", "priority": "high"}, owner_id_for_key("boss")).priority == "high"
    with pytest.raises(Forbidden):
        submit({"prompt": "x", "priority": "high"}, owner_id_for_key("staff"))
    assert len(queue.published) == 1


def test_a_failed_publish_takes_the_stored_job_back(submit, queue, store, client):
    queue.failure = StoreUnavailable("the broker is away")
    with pytest.raises(StoreUnavailable) as refused:
        submit({"prompt": "x"}, "owner-a")
    assert refused.value.job_id is None  # nothing stays behind to name
    assert stored_keys(client) == [] and client.zcard(QUEUED_INDEX_KEY) == 0
    assert store.queued_count("owner-a") == 0


def test_a_repeated_idempotency_key_returns_the_first_job_and_publishes_once(submit, queue, client):
    first = submit({"prompt": "x"}, "owner-a", idempotency_key="k1")
    again = submit({"prompt": "x"}, "owner-a", idempotency_key="k1")
    assert again.id == first.id and queue.published == [(first.id, "normal")]
    assert client.exists(JOB_KEY.format(job_id=first.id))
    with pytest.raises(InvalidInput, match="different body"):
        submit({"prompt": "y"}, "owner-a", idempotency_key="k1")
    other_owner = submit({"prompt": "x"}, "owner-b", idempotency_key="k1")
    assert other_owner.id != first.id


def test_a_webhook_needs_a_secret(make_settings, redis_url):
    with pytest.raises(InvalidInput, match="no WEBHOOK_SECRET") as refused:
        check_webhook_url("https://example.com/h", make_settings(redis_url=redis_url, webhook_secret=None))
    assert refused.value.field == "webhook"


def test_a_webhook_is_recorded_with_its_events(submit):
    job = submit({"prompt": "x", "webhook": "http://127.0.0.1:9/h", "webhook_events": ["started"]}, "owner-a")
    assert job.webhook.url == "http://127.0.0.1:9/h" and job.webhook.events == ["started"]
    assert webhook_record(None, ["completed"]) is None


def test_capacity_counts_what_is_added(queue):
    queue.published = [("a", "normal")] * 3
    check_capacity(queue, 2, 5)
    with pytest.raises(QueueFull, match="3 jobs; 3 more"):
        check_capacity(queue, 3, 5)
