"""Batches in Redis: results in input order (an expired line said so), listings newest first, a cancel that takes
the queued lines off and leaves the running ones, and the sweep that completes a batch cut short."""

from __future__ import annotations

import json

import pytest

from core.errors import BatchNotFound
from core.jobs.model import JobStatus
from core.jobs.records import WebhookState
from core.redis.keys import BATCH_STATS_KEY, JOB_KEY, OPEN_BATCHES_KEY


def test_results_come_in_input_order_with_an_expired_line_marked(submit_batch, batches, store, client):
    batch = submit_batch([{"prompt": "a"}, {"prompt": "b"}, {"prompt": "c"}])
    first, second, third = next(batches.job_ids(batch.id))
    store.transition(first, JobStatus.RUNNING)

    def succeed(job) -> None:
        job.output = {"text": "A", "finish_reason": "stop"}

    store.transition(first, JobStatus.SUCCEEDED, succeed)
    client.delete(JOB_KEY.format(job_id=third))
    lines = [json.loads(line) for line in batches.result_lines(batch.id)]
    assert [line["job_id"] for line in lines] == [first, second, third]
    assert lines[0]["status"] == "succeeded" and lines[0]["output"] == {"text": "A", "finish_reason": "stop"}
    assert lines[1]["status"] == "queued" and lines[1]["custom_id"] == "1"
    assert lines[2] == {"custom_id": None, "job_id": third, "status": "expired"}


def test_a_cancel_takes_the_queued_lines_and_leaves_the_running_one(submit_batch, batches, store):
    batch = submit_batch([{"prompt": "a"}, {"prompt": "b"}, {"prompt": "c"}])
    first, *_ = next(batches.job_ids(batch.id))
    store.transition(first, JobStatus.RUNNING)
    assert batches.cancel(batch) == 2
    view = batches.view(batches.get(batch.id))
    assert view.status == "canceled" and view.counts.canceled == 2 and view.counts.running == 1
    assert batches.cancel(batches.get(batch.id)) == 0  # a second cancel finds nothing left


def test_an_owners_batches_are_listed_newest_first_and_hidden_from_others(submit_batch, batches):
    made = [submit_batch([{"prompt": "a"}]) for _ in range(3)]
    page, cursor = batches.list_for_owner("owner-a", limit=2, before_sequence=None)
    assert [batch.id for batch in page] == [made[2].id, made[1].id]
    rest, end = batches.list_for_owner("owner-a", limit=2, before_sequence=cursor)
    assert [batch.id for batch in rest] == [made[0].id] and end is None
    with pytest.raises(BatchNotFound):
        batches.get_for_owner(made[0].id, "owner-b")


def test_the_sweep_completes_a_batch_whose_completion_was_cut_short(submit_batch, batches, store, client):
    batch = submit_batch([{"prompt": "a"}])
    [job_id] = next(batches.job_ids(batch.id))
    store.cancel_queued([job_id])
    assert not client.sismember(OPEN_BATCHES_KEY, batch.id)
    client.hdel(BATCH_STATS_KEY.format(batch_id=batch.id), "completed_at")  # as if its completion never ran
    client.sadd(OPEN_BATCHES_KEY, batch.id)
    batches.complete_finished_batches()
    assert client.hget(BATCH_STATS_KEY.format(batch_id=batch.id), "completed_at")
    assert not client.sismember(OPEN_BATCHES_KEY, batch.id)


def test_a_delivery_attempt_is_recorded_on_the_batch_webhook(submit_batch, batches):
    batch = submit_batch([{"prompt": "a"}], webhook="http://127.0.0.1:9/hook")
    batches.update_webhook(batch.id, lambda record: record.state.update(completed=WebhookState.DELIVERED))
    assert batches.get(batch.id).webhook.state == {"completed": "delivered"}
