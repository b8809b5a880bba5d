"""Webhook delivery: takes due deliveries, signs each attempt per Standard Webhooks, and records it on its subject.

It retries on the configured schedule. Several senders may run; they never take the same delivery.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import redis

from core.batches.store import BatchStore
from core.errors import StoreUnavailable
from core.jobs.model import utc_now_iso
from core.jobs.records import WebhookAttempt, WebhookRecord
from core.jobs.store import JobStore
from core.metrics.service import count_webhook_attempt
from core.settings import Settings
from core.webhooks.callback_urls import CallbackHostUnresolved, CallbackUrlRefused, check_callback_url
from core.webhooks.deliveries import (
    EVENT_COMPLETED,
    STATE_DELIVERED,
    STATE_FAILED,
    STATE_GONE,
    STATE_REFUSED,
    Delivery,
    retry_delay_s,
    secret_key_bytes,
    sign,
)
from core.webhooks.queue import WebhookQueue
from ops.webhook_http import post_json

log = logging.getLogger("llm.webhooks")

IDLE_POLL_S = 0.1
USER_AGENT = "llm-offline-queue-webhooks/1"


class WebhookSender:
    """Takes due deliveries and attempts them on a thread pool, so one slow receiver delays no one else."""

    def __init__(self, settings: Settings, store: JobStore, queue: WebhookQueue) -> None:
        if settings.webhook_secret is None:
            raise ValueError("WEBHOOK_SECRET is not set: webhooks can't be signed")
        self.settings = settings
        self.key = secret_key_bytes(settings.webhook_secret.get_secret_value())
        self.store = store
        self.batches = BatchStore(store)
        self.queue = queue
        self.pool = ThreadPoolExecutor(settings.webhook_concurrency, thread_name_prefix="webhook")
        self.free_slots = threading.Semaphore(settings.webhook_concurrency)
        # A claim outlives the slowest attempt, so a delivery is never attempted twice at once.
        self.lease_s = settings.webhook_timeout_seconds * 3 + 30

    def run(self, stop: threading.Event) -> None:
        """Deliver until `stop` is set, then let attempts under way finish."""
        while not stop.is_set():
            try:
                claimed = self._claim()
            except (StoreUnavailable, redis.RedisError) as error:
                log.warning("Redis unreachable: %s", error)
                stop.wait(1.0)
                continue
            if not claimed:
                stop.wait(IDLE_POLL_S)
        self.pool.shutdown(wait=True)

    def _claim(self) -> int:
        slots = 0
        while self.free_slots.acquire(blocking=False):
            slots += 1
        if slots == 0:
            return 0
        try:
            delivery_ids = self.queue.claim_due(slots, self.lease_s)
        except Exception:
            for _ in range(slots):
                self.free_slots.release()
            raise
        for _ in range(slots - len(delivery_ids)):
            self.free_slots.release()
        for delivery_id in delivery_ids:
            self.pool.submit(self._attempt_and_release, delivery_id)
        return len(delivery_ids)

    def _attempt_and_release(self, delivery_id: str) -> None:
        try:
            self.attempt(delivery_id)
        except Exception:  # a store hiccup: the lease runs out and the delivery becomes due again
            log.exception("webhook %s: attempt not recorded", delivery_id)
        finally:
            self.free_slots.release()

    def attempt(self, delivery_id: str) -> None:
        """One attempt of one delivery, recorded on its job; then finished or rescheduled."""
        delivery = self.queue.get(delivery_id)
        if delivery is None:
            self.queue.drop_missing(delivery_id)
            return
        if self._is_job_completion(delivery) and self.queue.park_behind_started(delivery):
            return  # the job's `started` event goes first; finishing it makes this one due again
        delivery.attempts += 1
        status, error, final_state = self._send(delivery)
        delay = retry_delay_s(self.settings.webhook_retry_schedule_seconds, delivery.attempts)
        if final_state is None and delay is None:
            final_state = STATE_FAILED
        record = WebhookAttempt(
            event=delivery.event,
            webhook_id=delivery.id,
            attempt=delivery.attempts,
            at=utc_now_iso(),
            status_code=status,
            error=error,
        )

        def note(webhook: WebhookRecord) -> None:
            webhook.deliveries.append(record)
            if final_state is not None:
                webhook.state[delivery.event] = final_state

        if delivery.subject == "batch":
            self.batches.update_webhook(delivery.subject_id, note)
        else:
            self.store.update_webhook(delivery.subject_id, note)
        if final_state is None:
            self.queue.retry_later(delivery, delay)
        else:
            self.queue.finish(delivery)
        with contextlib.suppress(StoreUnavailable):  # a lost count must not make the attempt look unrecorded
            count_webhook_attempt(self.store.redis, str(final_state) if final_state is not None else "retrying")
        log.info(
            "%s %s webhook %s attempt %d: %s", delivery.subject, delivery.subject_id, delivery.event, delivery.attempts,
            status if status is not None else error,
        )  # fmt: skip

    @staticmethod
    def _is_job_completion(delivery: Delivery) -> bool:
        """A job's `completed` event, which goes out only after the job's `started` event is done with."""
        return delivery.subject == "job" and delivery.event == EVENT_COMPLETED

    def _send(self, delivery: Delivery) -> tuple[int | None, str | None, str | None]:
        """(HTTP status, error, final state or None to retry)."""
        try:
            # Resolved and vetted again now: an address that turned private since submission is refused.
            target = check_callback_url(
                delivery.url,
                allow_private=self.settings.webhook_allow_private,
                allowed_ports=self.settings.webhook_allowed_ports,
            )
        except CallbackHostUnresolved as unresolved:
            return None, unresolved.message, None  # DNS may be back by the next attempt
        except CallbackUrlRefused as refused:
            return None, refused.message, STATE_REFUSED
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": delivery.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self.key, delivery.id, timestamp, delivery.body),
        }
        try:
            status = post_json(target, delivery.body, headers, self.settings.webhook_timeout_seconds)
        except (OSError, http.client.HTTPException) as failure:
            # The job's owner learns only the kind of failure; its text (which may name the address) stays in the log.
            log.info("%s %s webhook %s: %r", delivery.subject, delivery.subject_id, delivery.event, failure)
            return None, f"{type(failure).__name__}: the request to the receiver failed", None
        if 200 <= status < 300:
            return status, None, STATE_DELIVERED
        if status == 410:
            return status, None, STATE_GONE
        return status, None, None
