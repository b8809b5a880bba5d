"""A few stable rules of the batch model: the view's status from the counters, line validation numbering each bad
line, and batch ids."""

from __future__ import annotations

import pytest

from core.batches.model import Batch, InvalidBatch, batch_view, is_batch_id, new_batch_id, validate_batch_lines
from core.errors import InvalidInput


def view(stats: dict, **batch) -> dict:
    return batch_view(Batch(id="batch_x", created_at="2026-01-01T00:00:00Z", total=2, **batch), stats)


def test_the_status_comes_from_the_counters_and_a_cancel():
    assert view({})["status"] == "queued"
    assert view({"started_at": "2026-01-01T00:00:01Z", "finished": "1"})["status"] == "running"
    assert view({"finished": "2"})["status"] == "completed"
    assert view({"finished": "2"}, cancel_requested_at="2026-01-01T00:00:02Z")["status"] == "canceled"
    assert view({"queued": "2"})["counts"] == {"queued": 2, "running": 0, "succeeded": 0, "failed": 0, "canceled": 0}


def validate(items):
    return validate_batch_lines(items, max_tokens_limit=16, max_prompt_chars=100)


def test_every_bad_line_is_listed_by_its_number():
    with pytest.raises(InvalidBatch) as refused:
        validate([{"custom_id": "a", "body": {"prompt": "x"}}, {"custom_id": "a", "body": {"prompt": "y"}}, 5])
    assert [error["line"] for error in refused.value.line_errors] == [2, 3]
    assert "appears more than once" in refused.value.line_errors[0]["message"]
    assert refused.value.to_dict()["error"]["lines"] == refused.value.line_errors


def test_an_empty_batch_is_refused():
    with pytest.raises(InvalidInput, match="no lines"):
        validate([])


def test_batch_ids():
    assert is_batch_id(new_batch_id()) and not is_batch_id("batch_../x")
