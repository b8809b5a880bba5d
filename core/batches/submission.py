"""Submitting a batch: every line validated first, then one job per line stored and enqueued at batch priority."""

from __future__ import annotations

import logging

from core.batches.lines import BatchBody, BatchLine, validate_batch_lines
from core.batches.model import Batch, new_batch_id
from core.batches.store import BatchStore
from core.errors import StoreUnavailable
from core.jobs.context_window import ContextWindow
from core.jobs.idempotency import IdempotencyKeys
from core.jobs.model import Job, JobStatus, new_job_id, utc_now_iso
from core.jobs.priority import Priority
from core.jobs.submission import JobQueue, Submission, check_webhook_url, webhook_record
from core.jobs.text_checks import check_text
from core.limits.memory_budget import MemoryBudget
from core.redis.replication import ReplicaAcks
from core.settings import Settings

log = logging.getLogger("llm.api")


class SubmitBatch(Submission):
    """Accept a batch: any bad line refuses the whole of it, and nothing is enqueued."""

    def __init__(
        self,
        settings: Settings,
        batches: BatchStore,
        queue: JobQueue,
        idempotency: IdempotencyKeys,
        context_window: ContextWindow | None = None,
        *,
        memory: MemoryBudget | None = None,
        replicas: ReplicaAcks | None = None,
    ) -> None:
        super().__init__(settings, batches.jobs, queue, idempotency, context_window, memory=memory, replicas=replicas)
        self.batches = batches

    def __call__(self, body: BatchBody, owner: str, *, idempotency_key: str | None = None) -> Batch:
        """Validate every line, then store one job per line under a new batch and enqueue them all."""
        lines = validate_batch_lines(
            body.items,
            max_tokens_limit=self.settings.max_tokens_limit,
            max_prompt_chars=self.settings.max_prompt_chars,
            check=self.context_window.check if self.context_window is not None else None,
            endpoint=body.endpoint,
        )
        # An envelope's webhook and metadata may follow its lines: they are known only now.
        check_text({"webhook": body.webhook, "metadata": body.metadata})
        if body.webhook is not None:
            check_webhook_url(body.webhook, self.settings)
        batch_id = new_batch_id()
        body_hash = body.fingerprint()  # the whole body has been read by now
        with self.idempotency.claim(idempotency_key, body_hash, owner, batch_id, self.batches.get) as earlier:
            batch = earlier or self._store_and_publish(
                batch_id, lines, owner, webhook=body.webhook, metadata=body.metadata
            )
        # Outside the claim: a batch not confirmed on a replica keeps its Idempotency-Key, so a retry finds it.
        if self.replicas is not None:
            self.replicas.confirm()
        return batch

    def _store_and_publish(
        self, batch_id: str, lines: list[BatchLine], owner: str, *, webhook: str | None, metadata: dict[str, str]
    ) -> Batch:
        self.check_room(owner, len(lines))
        batch = Batch(
            id=batch_id,
            created_at=utc_now_iso(),
            total=len(lines),
            webhook=webhook_record(webhook, ["completed"]),
            metadata=metadata,
            owner=owner,
        )
        jobs = [
            Job(
                id=new_job_id(),
                status=JobStatus.QUEUED,
                created_at=batch.created_at,
                input=line.params.job_input,
                metadata=line.params.metadata,
                batch_id=batch.id,
                custom_id=line.custom_id,
                priority=Priority.BATCH,
                owner=owner,
            )
            for line in lines
        ]
        self.batches.create(batch, jobs)
        try:
            self.queue.publish([job.id for job in jobs], Priority.BATCH)
        except StoreUnavailable:
            # Some lines may be on the queue already: cancel the batch so none of them runs, then say so.
            try:
                self.batches.cancel(batch)
            except StoreUnavailable:
                log.error("batch %s stored but neither fully published nor canceled", batch.id)
            raise
        log.info("batch %s queued with %d jobs", batch.id, len(jobs))
        return batch
