"""Accepting a job: check capacity, store it durably, then publish its id."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from api.publisher import JobPublisher
from core.errors import QueueFull, StoreUnavailable
from core.jobs import GenerationInput, Job, JobStatus, new_job_id, utc_now_iso
from core.settings import Settings
from core.store import JobStore

log = logging.getLogger("llm.api")


@dataclass
class Services:
    """What the routes need, built once per API process."""

    settings: Settings
    store: JobStore
    publisher: JobPublisher

    def submit(self, params: GenerationInput, owner: str) -> Job:
        """Store and enqueue one generation job; returns it as `queued`."""
        depth = self.publisher.queue_depth(self.store.redis)
        if depth >= self.settings.max_queue_depth:
            raise QueueFull(f"the queue holds {depth} jobs, its limit; try again later", retry_after_s=10)
        job = Job(
            id=new_job_id(),
            status=JobStatus.QUEUED,
            created_at=utc_now_iso(),
            input=params.generation_fields,
            metadata=params.metadata,
            webhook=(
                {"url": params.webhook, "events": params.webhook_events, "state": {}, "deliveries": []}
                if params.webhook
                else None
            ),
            owner=owner,
        )
        self.store.create(job)
        try:
            self.publisher.publish(job.id)
        except StoreUnavailable:
            # Not published means not accepted: take the stored copy back so nothing waits forever.
            try:
                self.store.delete(job.id, owner)
            except StoreUnavailable:
                log.error("job %s stored but neither published nor removed", job.id)
            raise
        log.info("job %s queued", job.id)
        return job
