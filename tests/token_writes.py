"""Text deltas written as the worker writes them: each under the attempt the job runs now."""

from __future__ import annotations

from core.jobs.store import JobStore


def as_running_attempt(store: JobStore, deltas: dict[str, str]) -> dict[tuple[str, int], str]:
    """`{job id: text}` keyed by (job id, the job's current attempt), as TokenStreams.append_texts takes it."""
    return {(job_id, store.get(job_id).attempts): text for job_id, text in deltas.items()}
