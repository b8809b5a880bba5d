"""Batch ids: `batch_` and 32 hex digits, nothing else."""

from __future__ import annotations

from core.batches.model import is_batch_id, new_batch_id


def test_batch_ids():
    assert is_batch_id(new_batch_id()) and not is_batch_id("batch_../x")
