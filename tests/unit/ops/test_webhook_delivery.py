"""Webhook delivery: a finished job's event signed, sent to a local receiver, and its attempt recorded."""

from __future__ import annotations

import time

import pytest

from core.jobs.model import Job, JobStatus, new_job_id, utc_now_iso
from core.jobs.records import WebhookRecord
from core.webhooks.deliveries import secret_key_bytes, sign
from core.webhooks.queue import WebhookQueue
from ops.webhook_delivery import WebhookSender
from tests.conftest import WEBHOOK_SECRET


def finished_job_with_webhook(store, url: str) -> str:
    job = Job(id=new_job_id(), status=JobStatus.QUEUED, created_at=utc_now_iso(), input={"prompt": "x"},
              webhook=WebhookRecord(url=url, events=["completed"]))  # fmt: skip
    store.create(job)
    running = store.transition(job.id, JobStatus.RUNNING, lambda j: setattr(j, "attempts", 1))
    store.record_outcome(job.id, running.attempts, lambda j, _cancel: JobStatus.SUCCEEDED)
    return job.id


@pytest.fixture
def sender_for(make_settings, own_store, receiver):
    def build(**overrides) -> WebhookSender:
        values = {"webhook_secret": WEBHOOK_SECRET, "webhook_allow_private": True,
                  "webhook_allowed_ports": [receiver.port], "webhook_retry_schedule_seconds": "0.1,0.1"}  # fmt: skip
        return WebhookSender(make_settings(**(values | overrides)), own_store, WebhookQueue(own_store.redis, ttl_s=60))

    return build


def attempt_due(sender: WebhookSender) -> None:
    for delivery_id in sender.queue.claim_due(10, 60):
        sender.attempt(delivery_id)


def test_a_completed_event_is_delivered_signed_and_recorded_on_the_job(sender_for, own_store, receiver):
    sender = sender_for()
    job_id = finished_job_with_webhook(own_store, receiver.url)
    attempt_due(sender)
    headers, body = receiver.requests[0]
    key = secret_key_bytes(WEBHOOK_SECRET)
    expected = sign(key, headers["webhook-id"], int(headers["webhook-timestamp"]), body.decode())
    assert headers["webhook-signature"] == expected
    webhook = own_store.get(job_id).webhook
    assert webhook.state["completed"] == "delivered" and webhook.deliveries[0].status_code == 200


def test_a_failing_receiver_is_retried_then_given_up_and_410_means_gone(sender_for, own_store, receiver):
    sender = sender_for()
    receiver.answers.extend([500, 500, 500])
    job_id = finished_job_with_webhook(own_store, receiver.url)
    for _ in range(3):
        attempt_due(sender)
        time.sleep(0.2)  # past the 0.1 s retry delay and its jitter
    webhook = own_store.get(job_id).webhook
    assert [attempt.status_code for attempt in webhook.deliveries] == [500, 500, 500]
    assert webhook.state["completed"] == "failed"
    receiver.answers.append(410)
    gone_id = finished_job_with_webhook(own_store, receiver.url)
    attempt_due(sender)
    assert own_store.get(gone_id).webhook.state["completed"] == "gone"


def test_a_callback_to_a_refused_address_is_never_sent(sender_for, own_store, receiver):
    sender = sender_for(webhook_allow_private=False)
    job_id = finished_job_with_webhook(own_store, receiver.url)
    attempt_due(sender)
    assert receiver.requests == [] and own_store.get(job_id).webhook.state["completed"] == "refused"


def test_a_sender_needs_a_secret(make_settings, own_store):
    with pytest.raises(ValueError, match="WEBHOOK_SECRET"):
        WebhookSender(make_settings(), own_store, WebhookQueue(own_store.redis, ttl_s=60))
