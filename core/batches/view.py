"""The batch object the API answers with (and a `batch.completed` webhook carries), built from the stored record
and its counters hash."""

from __future__ import annotations

from pydantic import BaseModel, Field

from core.batches.model import Batch, BatchStatus
from core.batches.progress import batch_rates
from core.jobs.records import WebhookRecord


class BatchCounts(BaseModel):
    queued: int
    running: int
    succeeded: int
    failed: int
    canceled: int


class BatchUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int


class BatchView(BaseModel):
    """A batch: its status, counts of its jobs by status, times, tokens so far, its pace and ETA."""

    id: str = Field(examples=["batch_6f1c0e5a9b2d4c3e8f7a6b5c4d3e2f1a"])
    status: BatchStatus
    created_at: str
    started_at: str | None
    completed_at: str | None
    cancel_requested_at: str | None
    total: int = Field(description="Lines in the batch.")
    counts: BatchCounts
    usage: BatchUsage
    tokens_per_second: float | None = Field(
        description="Completion tokens per second since the first job started (until the last one ended); null "
        "before any job starts."
    )
    eta_seconds: float | None = Field(
        description="Seconds until every line is done at the pace so far; 0 once done, null before any line finishes."
    )
    webhook: WebhookRecord | None
    metadata: dict[str, str]


# The batch after a cancel, and what this cancel did (no docstring: the document shows the batch's own).
class BatchCancellation(BatchView):
    canceled_now: int = Field(
        description="How many of its queued jobs this call canceled (0: none were left, or it already was canceled)."
    )


class BatchPage(BaseModel):
    """One page of the caller's batches, newest first."""

    data: list[BatchView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


def batch_view(batch: Batch, stats: dict[str, str]) -> BatchView:
    """The batch object from the record and its counters hash (status, counts, times, tokens, tokens/s and ETA)."""
    finished = int(stats.get("finished", 0))
    if batch.cancel_requested_at:
        status = BatchStatus.CANCELED
    elif finished >= batch.total:
        status = BatchStatus.COMPLETED
    elif stats.get("started_at"):
        status = BatchStatus.RUNNING
    else:
        status = BatchStatus.QUEUED
    completion_tokens = int(stats.get("completion_tokens", 0))
    pace = batch_rates(
        started_at=stats.get("started_at"),
        completed_at=stats.get("completed_at"),
        total=batch.total,
        finished=finished,
        completion_tokens=completion_tokens,
    )
    return BatchView(
        id=batch.id,
        status=status,
        created_at=batch.created_at,
        started_at=stats.get("started_at"),
        completed_at=stats.get("completed_at"),
        cancel_requested_at=batch.cancel_requested_at,
        total=batch.total,
        counts=BatchCounts(**{name: int(stats.get(name, 0)) for name in BatchCounts.model_fields}),
        usage=BatchUsage(prompt_tokens=int(stats.get("prompt_tokens", 0)), completion_tokens=completion_tokens),
        tokens_per_second=pace.tokens_per_second,
        eta_seconds=pace.eta_seconds,
        webhook=batch.webhook,
        metadata=batch.metadata,
    )
