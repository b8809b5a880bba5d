"""Webhook events as Standard Webhooks defines them: the body, the delivery record, its signature, its retry
schedule."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import random
import secrets
import uuid
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from core.batches.view import BatchView
from core.jobs.records import WebhookState

if TYPE_CHECKING:
    from core.jobs.model import Job

SECRET_PREFIX = "whsec_"
EVENT_STARTED = "started"
EVENT_COMPLETED = "completed"
EVENT_TYPES = {EVENT_STARTED: "job.started", EVENT_COMPLETED: "job.completed"}
BATCH_COMPLETED_TYPE = "batch.completed"
RETRY_JITTER = 0.2  # each delay moves by up to ±20%, so receivers that failed together don't retry together


# What an event's delivery ends as (kept on the job's or batch's webhook record).
STATE_PENDING = WebhookState.PENDING
STATE_DELIVERED = WebhookState.DELIVERED
STATE_FAILED = WebhookState.FAILED
STATE_GONE = WebhookState.GONE
STATE_REFUSED = WebhookState.REFUSED


class Delivery(BaseModel):
    """One event on its way to one URL; `id` is the `webhook-id` header, the same on every retry."""

    id: str
    subject: str = "job"  # "job" or "batch": where the attempts are recorded
    subject_id: str
    event: str
    url: str
    body: str  # signed byte for byte, so it is fixed when the event happens
    attempts: int = 0


def secret_key_bytes(secret: str) -> bytes:
    """The key bytes of a `whsec_<base64>` secret; ValueError if it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("WEBHOOK_SECRET must start with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error:
        raise ValueError("WEBHOOK_SECRET must be whsec_ followed by base64") from None
    if len(key) < 16:
        raise ValueError("WEBHOOK_SECRET must carry at least 16 key bytes")
    return key


def generate_secret() -> str:
    """A new random secret in the `whsec_` form."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(key: bytes, message_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` header value: `v1,` + base64(HMAC-SHA256(key, "id.timestamp.body"))."""
    digest = hmac.new(key, f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def retry_delay_s(schedule_s: list[float], attempts_made: int, rng: random.Random | None = None) -> float | None:
    """Seconds until the next attempt after `attempts_made` failures, or None when the schedule is spent."""
    if attempts_made > len(schedule_s):
        return None
    base = schedule_s[attempts_made - 1]
    return max(0.0, base * (1 + (rng or random).uniform(-RETRY_JITTER, RETRY_JITTER)))


def event_for_status(status_value: str) -> str | None:
    """The webhook event a job's new status raises, if any."""
    if status_value == "running":
        return EVENT_STARTED
    if status_value in ("succeeded", "failed", "canceled"):
        return EVENT_COMPLETED
    return None


class WebhookEvent(BaseModel):
    """A webhook's body as Standard Webhooks shapes it: the event's type, when it happened, and its object."""

    type: str
    timestamp: str | None
    data: Any

    def body(self) -> str:
        """The body as sent and signed: compact JSON with non-ASCII kept."""
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":"))


class JobWebhookEvent(WebhookEvent):
    """`job.started` or `job.completed`, with the job as the API shows it."""

    type: Literal["job.started", "job.completed"]
    data: dict[str, Any]


class BatchWebhookEvent(WebhookEvent):
    """`batch.completed`, with the batch object."""

    type: Literal["batch.completed"]
    timestamp: str
    data: BatchView


def new_delivery_for(job: Job, event: str) -> Delivery:
    """The delivery of `event` for this job, its body a snapshot of the job now."""
    payload = JobWebhookEvent(
        type=EVENT_TYPES[event], timestamp=job.completed_at or job.started_at, data=job.public_view()
    )
    return Delivery(
        id=f"msg_{uuid.uuid4().hex}", subject_id=job.id, event=event, url=job.webhook.url, body=payload.body()
    )


def new_batch_delivery(batch_view: BatchView, url: str, timestamp: str) -> Delivery:
    """The `batch.completed` delivery, its body a snapshot of the batch object."""
    payload = BatchWebhookEvent(type=BATCH_COMPLETED_TYPE, timestamp=timestamp, data=batch_view)
    return Delivery(
        id=f"msg_{uuid.uuid4().hex}", subject="batch", subject_id=batch_view.id, event=EVENT_COMPLETED, url=url,
        body=payload.body(),
    )  # fmt: skip
