"""Webhook deliveries as Standard Webhooks defines them: the secret's form, the signature, the retry schedule with
its jitter, and the event a status raises."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random

import pytest

from core.batches.model import Batch
from core.batches.view import batch_view
from core.jobs.model import JobStatus
from core.webhooks.deliveries import (
    EVENT_COMPLETED,
    EVENT_STARTED,
    event_for_status,
    generate_secret,
    new_batch_delivery,
    new_delivery_for,
    retry_delay_s,
    secret_key_bytes,
    sign,
)


def test_a_generated_secret_reads_back_as_its_key():
    assert len(secret_key_bytes(generate_secret())) == 32


@pytest.mark.parametrize(
    ("secret", "words"),
    [("abc", "start with whsec_"), ("whsec_***", "followed by base64"), ("whsec_" + base64.b64encode(b"short").decode(),
                                                                           "at least 16 key bytes")],
)  # fmt: skip
def test_a_malformed_secret_is_refused(secret, words):
    with pytest.raises(ValueError, match=words):
        secret_key_bytes(secret)


def test_the_signature_is_hmac_sha256_of_id_timestamp_and_body():
    key = b"k" * 32
    expected = base64.b64encode(hmac.new(key, b"msg_1.1700000000.{}", hashlib.sha256).digest()).decode()
    assert sign(key, "msg_1", 1700000000, "{}") == "v1," + expected


def test_retries_follow_the_schedule_within_the_jitter_then_stop():
    schedule = [10.0, 60.0]
    rng = random.Random(7)
    assert 8.0 <= retry_delay_s(schedule, 1, rng) <= 12.0
    assert 48.0 <= retry_delay_s(schedule, 2, rng) <= 72.0
    assert retry_delay_s(schedule, 3, rng) is None


@pytest.mark.parametrize(
    ("status", "event"),
    [("queued", None), ("running", EVENT_STARTED), ("succeeded", EVENT_COMPLETED), ("failed", EVENT_COMPLETED),
     ("canceled", EVENT_COMPLETED)],
)  # fmt: skip
def test_the_event_a_status_raises(status, event):
    assert event_for_status(status) == event


def test_a_jobs_delivery_carries_a_snapshot_of_its_public_view(new_job, store):
    job = new_job(webhook="http://127.0.0.1:9/h")
    running = store.transition(job.id, JobStatus.RUNNING)
    delivery = new_delivery_for(running, EVENT_STARTED)
    body = json.loads(delivery.body)
    assert list(body) == ["type", "timestamp", "data"] and body["timestamp"] == running.started_at
    assert delivery.body == json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    assert delivery.id.startswith("msg_") and delivery.subject == "job" and delivery.url == "http://127.0.0.1:9/h"
    assert body["type"] == "job.started" and body["data"]["id"] == job.id and "owner" not in body["data"]


def test_a_batch_delivery_names_the_batch():
    view = batch_view(Batch(id="batch_1", created_at="2026-01-01T00:00:00Z", total=1), {"finished": "1"})
    delivery = new_batch_delivery(view, "https://h.example/", "2026-01-01T00:00Z")
    assert delivery.subject == "batch" and delivery.subject_id == "batch_1" and delivery.event == EVENT_COMPLETED
    assert delivery.body == json.dumps(
        {"type": "batch.completed", "timestamp": "2026-01-01T00:00Z", "data": view.model_dump(mode="json")},
        separators=(",", ":"),
    )
