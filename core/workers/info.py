"""What a GPU worker announces in its heartbeat: its model and device, and live figures as fresh as the beat."""

from __future__ import annotations

from core.jobs.records import Record, ResourceReading


class WorkerInfo(Record):
    """One worker's announcement, stored as JSON in the worker registry and shown by `/readyz` to an admin.

    Only `name` is required: a worker marked draining before its first beat is known by name alone. The JSON holds
    the fields that were set, as the worker wrote them (see `as_json`).
    """

    name: str
    pid: int | None = None
    model: str | None = None
    device: str | None = None
    dtype: str | None = None
    gpu: str | None = None
    max_batch_size: int | None = None
    started_at: str | None = None
    model_load_seconds: float | None = None
    # Live figures for GET /metrics and the metrics history.
    resources: ResourceReading | None = None
    running_jobs: int | None = None
    canary_queue: str | None = None
    canaries_consumed: int | None = None
    canary_round_trip_s: float | None = None
    # Handing its jobs back before it exits: still live, but it takes no new work.
    draining: bool = False

    def as_json(self) -> dict:
        """The announcement as JSON data: the fields set, so a field never announced stays absent."""
        return self.model_dump(mode="json", exclude_unset=True)
