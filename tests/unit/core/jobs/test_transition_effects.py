"""What a status change sets off, read back from Redis after the change: the webhook outbox, the event stream and
its channel, the done message, the owner's queued count, the metrics, a batch's counters, and a batch's completion."""

from __future__ import annotations

import json
import time

from core.jobs.model import JobStatus
from core.jobs.transition_effects import complete_batch_if_done
from core.redis.keys import (
    BATCH_JOBS_KEY,
    BATCH_KEY,
    BATCH_STATS_KEY,
    EXPIRING_INDEX_ENTRIES_KEY,
    JOB_DONE_CHANNEL,
    JOB_EVENTS_KEY,
    JOB_KEY,
    METRICS_COUNTERS_KEY,
    OPEN_BATCHES_KEY,
    WEBHOOK_DELIVERY_KEY,
    WEBHOOK_DUE_KEY,
)

HOOK = "http://127.0.0.1:9/hook"


def succeed(job) -> None:
    job.usage = {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}


def deliveries(client) -> list[dict]:
    """The deliveries waiting in the outbox, as stored."""
    ids = client.zrange(WEBHOOK_DUE_KEY, 0, -1)
    return [json.loads(client.get(WEBHOOK_DELIVERY_KEY.format(delivery_id=i))) for i in ids]


def test_each_event_asked_for_is_staged_in_the_outbox_and_noted_pending(new_job, store, client):
    job = new_job(webhook=HOOK, webhook_events=["started", "completed"])
    assert deliveries(client) == []
    running = store.transition(job.id, JobStatus.RUNNING)
    assert running.webhook.state == {"started": "pending"}
    [started] = deliveries(client)
    assert started["event"] == "started" and started["url"] == HOOK and started["subject_id"] == job.id
    assert json.loads(started["body"])["type"] == "job.started"
    done = store.transition(job.id, JobStatus.SUCCEEDED, succeed)
    assert done.webhook.state == {"started": "pending", "completed": "pending"}
    assert [d["event"] for d in deliveries(client)] == ["started", "completed"]


def test_an_event_not_asked_for_stages_nothing(new_job, store, client):
    job = new_job(webhook=HOOK)  # `completed` only
    store.transition(job.id, JobStatus.RUNNING)
    assert deliveries(client) == []


def test_a_run_writes_status_entries_and_a_finished_job_publishes_its_end(new_job, store, client):
    job = new_job()
    done_messages = client.pubsub()
    done_messages.subscribe(JOB_DONE_CHANNEL.format(job_id=job.id))
    store.transition(job.id, JobStatus.RUNNING)
    store.transition(job.id, JobStatus.SUCCEEDED, succeed)
    entries = client.xrange(JOB_EVENTS_KEY.format(job_id=job.id))
    assert [fields for _, fields in entries] == [
        {"kind": "status", "value": "running"},
        {"kind": "status", "value": "succeeded"},
    ]
    assert 0 < client.ttl(JOB_EVENTS_KEY.format(job_id=job.id)) <= 3600  # the stream expires with the job
    # The subscription's own confirmation is read (and skipped) first.
    heard = [done_messages.get_message(ignore_subscribe_messages=True, timeout=2) for _ in range(2)]
    assert [message["data"] for message in heard if message is not None] == ["succeeded"]
    index_entry = f"llm:jobs:owner:{job.owner}|{job.id}"
    assert client.zscore(EXPIRING_INDEX_ENTRIES_KEY, index_entry) > time.time() + 3500


def test_a_job_canceled_while_queued_starts_no_stream(new_job, store, client):
    job = new_job()
    store.cancel_queued([job.id])
    assert not client.exists(JOB_EVENTS_KEY.format(job_id=job.id))
    assert store.queued_count(job.owner) == 0


def test_the_owners_queued_count_follows_the_job_in_and_out_of_queued(new_job, store):
    job = new_job()
    assert store.queued_count("owner-a") == 1
    store.transition(job.id, JobStatus.RUNNING)
    assert store.queued_count("owner-a") == 0
    store.transition(job.id, JobStatus.QUEUED)  # handed back by its worker
    assert store.queued_count("owner-a") == 1


def test_a_finished_job_is_counted_in_the_metrics(new_job, store, client):
    ok, failed = new_job(), new_job()
    for job in (ok, failed):
        store.transition(job.id, JobStatus.RUNNING)
    store.transition(ok.id, JobStatus.SUCCEEDED, succeed)
    store.transition(failed.id, JobStatus.FAILED)
    counters = client.hgetall(METRICS_COUNTERS_KEY)
    assert counters["jobs_finished:succeeded"] == "1" and counters["jobs_finished:failed"] == "1"
    assert counters["completion_tokens"] == "5" and counters["prompt_tokens"] == "3"


def test_a_batch_line_moves_the_batch_counters(submit_batch, batches, store, client):
    batch = submit_batch([{"prompt": "a"}, {"prompt": "b"}])
    first, _second = next(batches.job_ids(batch.id))
    store.transition(first, JobStatus.RUNNING)
    stats = client.hgetall(BATCH_STATS_KEY.format(batch_id=batch.id))
    assert stats["queued"] == "1" and stats["running"] == "1" and stats["finished"] == "0" and stats["started_at"]
    store.transition(first, JobStatus.SUCCEEDED, succeed)
    stats = client.hgetall(BATCH_STATS_KEY.format(batch_id=batch.id))
    assert stats["succeeded"] == "1" and stats["finished"] == "1" and stats["completion_tokens"] == "5"
    assert client.ttl(JOB_KEY.format(job_id=first)) == -1  # a batch's job waits for its batch to complete
    assert "completed_at" not in stats and client.sismember(OPEN_BATCHES_KEY, batch.id)


def test_the_last_line_completes_the_batch_once_with_its_webhook_and_expiry(submit_batch, batches, store, client):
    batch = submit_batch([{"prompt": "a"}, {"prompt": "b"}], webhook=HOOK)
    for job_id in next(batches.job_ids(batch.id)):
        store.transition(job_id, JobStatus.RUNNING)
        store.transition(job_id, JobStatus.SUCCEEDED, succeed)
    stats = client.hgetall(BATCH_STATS_KEY.format(batch_id=batch.id))
    assert stats["completed_at"] and not client.sismember(OPEN_BATCHES_KEY, batch.id)
    [delivery] = deliveries(client)
    body = json.loads(delivery["body"])
    assert delivery["subject"] == "batch" and body["type"] == "batch.completed"
    assert body["data"]["status"] == "completed" and body["data"]["counts"]["succeeded"] == 2
    assert batches.get(batch.id).webhook.state == {"completed": "pending"}
    for key in (BATCH_KEY, BATCH_STATS_KEY, BATCH_JOBS_KEY):
        assert 0 < client.ttl(key.format(batch_id=batch.id)) <= 3600
    for job_id in next(batches.job_ids(batch.id)):
        assert 0 < client.ttl(JOB_KEY.format(job_id=job_id)) <= 3600
    complete_batch_if_done(client, batch.id, 3600, [])  # a second call (the sweep) changes nothing
    assert len(deliveries(client)) == 1


def test_an_unfinished_batch_is_not_completed(submit_batch, client):
    batch = submit_batch([{"prompt": "a"}])
    complete_batch_if_done(client, batch.id, 3600, [])
    assert "completed_at" not in client.hgetall(BATCH_STATS_KEY.format(batch_id=batch.id))
    assert client.sismember(OPEN_BATCHES_KEY, batch.id)


def test_lines_of_a_batch_never_stored_leave_the_open_set_and_expire(client):
    client.sadd(OPEN_BATCHES_KEY, "batch_gone")
    client.set(JOB_KEY.format(job_id="line-1"), "{}")
    client.hset(BATCH_STATS_KEY.format(batch_id="batch_gone"), "finished", 1)
    complete_batch_if_done(client, "batch_gone", 3600, ["line-1"])
    assert not client.sismember(OPEN_BATCHES_KEY, "batch_gone")
    assert 0 < client.ttl(JOB_KEY.format(job_id="line-1")) <= 3600
    assert 0 < client.ttl(BATCH_STATS_KEY.format(batch_id="batch_gone")) <= 3600
