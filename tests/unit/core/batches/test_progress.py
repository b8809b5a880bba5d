"""A batch's pace and ETA, as its progress bar shows them."""

from __future__ import annotations

from datetime import UTC, datetime

from core.batches.progress import batch_rates

STARTED = "2026-11-26T10:00:00.000000Z"
TEN_S_LATER = datetime(2026, 11, 26, 10, 0, 10, tzinfo=UTC)


def rates(**counts) -> dict:
    values = {"started_at": STARTED, "completed_at": None, "total": 20, "finished": 0, "completion_tokens": 0}
    return batch_rates(**(values | counts), now=TEN_S_LATER).model_dump(mode="json")


def test_pace_and_eta_from_the_lines_finished_so_far():
    assert rates(finished=5, completion_tokens=400) == {"tokens_per_second": 40.0, "eta_seconds": 30.0}


def test_unknown_until_known():
    assert rates(started_at=None) == {"tokens_per_second": None, "eta_seconds": None}
    assert rates(finished=0)["eta_seconds"] is None


def test_a_completed_batch_keeps_its_pace_until_it_ended():
    done = rates(finished=20, completion_tokens=100, completed_at="2026-11-26T10:00:04.000000Z")
    assert done == {"tokens_per_second": 25.0, "eta_seconds": 0.0}
