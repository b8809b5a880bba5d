"""Submitting a batch in-process: one job per line, in input order, at batch priority; any bad line refuses the
whole batch and nothing is stored or queued; a publish that fails cancels what was stored."""

from __future__ import annotations

import json

import pytest

from core.batches.lines import InvalidBatch, read_batch_body
from core.batches.submission import SubmitBatch
from core.errors import InvalidInput, QueueFull, StoreUnavailable
from core.jobs.idempotency import IdempotencyKeys
from core.jobs.model import JobStatus
from core.jobs.priority import Priority
from core.redis.keys import OPEN_BATCHES_KEY


def test_every_line_becomes_a_queued_job_in_input_order_at_batch_priority(submit_batch, batches, queue, store):
    batch = submit_batch([{"prompt": "a"}, {"prompt": "b", "max_tokens": 2}, {"prompt": "c"}], owner="owner-a")
    jobs = [job for _, job in batches.jobs_in_order(batch.id)]
    assert [job.custom_id for job in jobs] == ["0", "1", "2"]
    assert all(job.status == JobStatus.QUEUED and job.batch_id == batch.id for job in jobs)
    assert all(job.priority == Priority.BATCH and job.owner == "owner-a" for job in jobs)
    assert queue.published == [(job.id, Priority.BATCH) for job in jobs]
    assert batches.view(batch).counts.queued == 3 and store.queued_count("owner-a") == 3
    assert batches.redis.sismember(OPEN_BATCHES_KEY, batch.id)


def test_a_bad_line_refuses_the_whole_batch_naming_it(submit_batch, queue, client):
    with pytest.raises(InvalidBatch) as refused:
        submit_batch([{"prompt": "a"}, {"prompt": ""}, {"prompt": "c", "priority": "high"}])
    assert [error["line"] for error in refused.value.line_errors] == [2, 3]
    assert "webhook and priority are set on the batch" in refused.value.line_errors[1]["message"]
    assert queue.published == [] and list(client.scan_iter("llm:*")) == []


def test_the_batch_webhook_is_checked_and_recorded_for_completed_only(submit_batch, batches):
    batch = submit_batch([{"prompt": "a"}], webhook="http://127.0.0.1:9/hook")
    assert batches.get(batch.id).webhook.events == ["completed"]
    with pytest.raises(InvalidInput) as refused:
        submit_batch([{"prompt": "a"}], webhook="file:///etc/passwd")
    assert refused.value.field == "webhook"


def test_a_batch_past_the_queue_limit_is_refused(make_settings, redis_url, batches, queue, client):
    settings = make_settings(redis_url=redis_url, max_queue_depth=2)
    submit = SubmitBatch(settings, batches, queue, IdempotencyKeys(client))
    lines = [json.dumps({"custom_id": name, "body": {"prompt": name}}) for name in "abc"]
    body = read_batch_body(["\n".join(lines).encode()], None)
    with pytest.raises(QueueFull):
        submit(body, "owner-a")
    assert queue.published == [] and list(client.scan_iter("llm:batch*")) == []


def test_a_failed_publish_cancels_the_stored_batch(submit_batch, batches, queue, client):
    queue.failure = StoreUnavailable("the broker is away")
    with pytest.raises(StoreUnavailable):
        submit_batch([{"prompt": "a"}, {"prompt": "b"}])
    [batch_key] = [key for key in client.scan_iter("llm:batch:*") if key.count(":") == 2]
    batch = batches.get(batch_key.rsplit(":", 1)[1])
    assert batch.cancel_requested_at is not None
    assert [job.status for _, job in batches.jobs_in_order(batch.id)] == [JobStatus.CANCELED] * 2


def test_a_repeated_idempotency_key_returns_the_first_batch(settings, batches, queue, client):
    submit = SubmitBatch(settings, batches, queue, IdempotencyKeys(client))
    data = b'{"custom_id": "a", "body": {"prompt": "a"}}'
    first = submit(read_batch_body([data], None), "owner-a", idempotency_key="k")
    again = submit(read_batch_body([data], None), "owner-a", idempotency_key="k")
    assert again.id == first.id and len(queue.published) == 1
