"""The batch view: its status from the counters and a cancel, its counts by job status."""

from __future__ import annotations

from core.batches.model import Batch
from core.batches.view import batch_view


def view(stats: dict, **batch) -> dict:
    record = Batch(id="batch_x", created_at="2026-01-01T00:00:00Z", total=2, **batch)
    return batch_view(record, stats).model_dump(mode="json")


def test_the_status_comes_from_the_counters_and_a_cancel():
    assert view({})["status"] == "queued"
    assert view({"started_at": "2026-01-01T00:00:01Z", "finished": "1"})["status"] == "running"
    assert view({"finished": "2"})["status"] == "completed"
    assert view({"finished": "2"}, cancel_requested_at="2026-01-01T00:00:02Z")["status"] == "canceled"
    assert view({"queued": "2"})["counts"] == {"queued": 2, "running": 0, "succeeded": 0, "failed": 0, "canceled": 0}
