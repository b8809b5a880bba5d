"""Submitting one job: validate it, check capacity, store it durably, then put its id on the queue."""

from __future__ import annotations

import hashlib
import logging
from typing import Any, Protocol

from core.errors import InvalidInput, QueueFull, StoreUnavailable
from core.jobs.context_window import ContextWindow
from core.jobs.idempotency import IdempotencyKeys
from core.jobs.model import GenerationInput, Job, JobStatus, new_job_id, utc_now_iso, within_limits
from core.jobs.priority import Priority
from core.jobs.records import WebhookRecord
from core.jobs.store import JobStore
from core.limits.memory_budget import MemoryBudget
from core.limits.submit_limits import OwnerLimits
from core.redis.replication import ReplicaAcks
from core.settings import Settings
from core.webhooks.callback_urls import check_callback_url

log = logging.getLogger("llm.api")


class JobQueue(Protocol):
    """Where accepted job ids wait for a worker; the API hands core one that publishes to the broker."""

    def publish(self, job_ids: list[str], priority: Priority) -> None:
        """Enqueue these jobs at this priority; raises StoreUnavailable if the queue can't take them."""
        ...

    def depth(self) -> int:
        """Messages waiting on the queue, all priorities together."""
        ...


def webhook_record(url: str | None, events: list[str]) -> WebhookRecord | None:
    """The `webhook` field of a new job or batch."""
    return WebhookRecord(url=url, events=events) if url else None


def check_webhook_url(url: str, settings: Settings) -> None:
    """Refuse (InvalidInput) a callback this server can't sign or must not call."""
    if settings.webhook_secret is None:
        raise InvalidInput("webhook: this server has no WEBHOOK_SECRET, so it can't send webhooks", field="webhook")
    check_callback_url(url, allow_private=settings.webhook_allow_private, allowed_ports=settings.webhook_allowed_ports)


def check_capacity(queue: JobQueue, adding: int, limit: int) -> None:
    """Refuse (QueueFull) work that would take the queue past its limit."""
    depth = queue.depth()
    if depth + adding > limit:
        raise QueueFull(
            f"the queue holds {depth} jobs; {adding} more would pass its limit of {limit}; try again later",
            retry_after_s=10,
        )


class Submission:
    """What a use case that queues jobs holds: the deployment's settings and limits, the queue, idempotency keys,
    and the replicas a write must reach before it is confirmed (REDIS_MIN_REPLICA_ACKS)."""

    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        queue: JobQueue,
        idempotency: IdempotencyKeys,
        context_window: ContextWindow | None = None,
        *,
        memory: MemoryBudget | None = None,
        replicas: ReplicaAcks | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.replicas = replicas
        self.queue = queue
        self.idempotency = idempotency
        self.owner_limits = OwnerLimits(settings, store)
        self.context_window = context_window
        self.memory = memory

    def check_room(self, owner: str, adding: int) -> None:
        """Refuse `adding` more queued jobs past the owner's cap, the queue's limit or the memory budget."""
        self.owner_limits.check_queued(owner, adding)
        check_capacity(self.queue, adding, self.settings.max_queue_depth)
        if self.memory is not None:
            self.memory.check_room()


class SubmitJob(Submission):
    """Accept one generation job: `202` means it is in the store and on the queue (and, with `replicas`, on as many
    replicas as REDIS_MIN_REPLICA_ACKS asks)."""

    def check(self, params: GenerationInput) -> GenerationInput:
        """A valid generation held to this deployment: its limits, its webhook, the model's context."""
        params = within_limits(
            params, max_tokens_limit=self.settings.max_tokens_limit, max_prompt_chars=self.settings.max_prompt_chars
        )
        if params.webhook is not None:
            check_webhook_url(params.webhook, self.settings)
        if self.context_window is not None:
            self.context_window.check(params)
        return params

    def __call__(self, body: Any, owner: str, idempotency_key: str | None = None) -> Job:
        """Validate, store and enqueue one job; returns it `queued` (or the earlier job for a repeated key)."""
        return self.submit(GenerationInput.parse(body), owner, idempotency_key)

    def submit(self, params: GenerationInput, owner: str, idempotency_key: str | None = None) -> Job:
        """Store and enqueue one valid generation (an OpenAI request's, or a parsed body's) under this deployment's
        limits; returns it `queued` (or the earlier job for a repeated key)."""
        params = self.check(params)
        self.owner_limits.check_priority(params.priority, owner)
        job_id = new_job_id()
        body_hash = hashlib.sha256(params.model_dump_json().encode()).hexdigest()
        with self.idempotency.claim(idempotency_key, body_hash, owner, job_id, self.store.get) as earlier:
            if earlier is not None:
                self._confirm_replicated(earlier)
                return earlier
            self.check_room(owner, 1)
            job = Job(
                id=job_id,
                status=JobStatus.QUEUED,
                created_at=utc_now_iso(),
                input=params.job_input,
                metadata=params.metadata,
                priority=params.priority,
                webhook=webhook_record(params.webhook, params.webhook_events),
                owner=owner,
            )
            self.store.create(job)
            try:
                self.queue.publish([job.id], job.priority)
            except StoreUnavailable as error:
                # Not published means not accepted: take the stored copy back so nothing waits forever.
                try:
                    self.store.delete(job)
                except StoreUnavailable:
                    log.error("job %s stored but neither published nor removed", job.id)
                    # The reconciler will publish it: the answer must name it, or a retry would run it twice.
                    error.job_id = job.id
                raise
        # Outside the claim: a job not confirmed on a replica keeps its Idempotency-Key, so a retry finds it.
        self._confirm_replicated(job)
        log.info("job %s queued", job.id)
        return job

    def _confirm_replicated(self, job: Job) -> None:
        """Answer 503 naming the job, not 202, while its write may still be lost with the master."""
        if self.replicas is not None:
            self.replicas.confirm(job.id)
