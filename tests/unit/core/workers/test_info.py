"""A worker's announcement (core/workers/info.py): typed, and written as the fields the worker set."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.jobs.records import ResourceReading
from core.workers.info import WorkerInfo

READING = ResourceReading(
    gpu="none", vram_allocated_gb=0.0, vram_reserved_gb=0.0, ram_used_gb=1.5, ram_total_gb=8.0, ram_percent=18.8
)


def test_the_json_holds_the_fields_set_in_their_order_nones_included():
    info = WorkerInfo(name="gpu@h#1", pid=7, model="demo", resources=READING, canary_round_trip_s=None)
    assert info.as_json() == {
        "name": "gpu@h#1",
        "pid": 7,
        "model": "demo",
        "resources": READING.model_dump(),
        "canary_round_trip_s": None,
    }
    assert list(info.as_json()) == ["name", "pid", "model", "resources", "canary_round_trip_s"]


def test_what_was_read_is_written_back_unchanged():
    raw = '{"name": "gpu@h#1", "running_jobs": 2, "draining": true}'
    assert WorkerInfo.model_validate_json(raw).as_json() == {"name": "gpu@h#1", "running_jobs": 2, "draining": True}


def test_a_worker_is_not_draining_unless_it_says_so():
    assert WorkerInfo(name="gpu@h#1").draining is False
    assert "draining" not in WorkerInfo(name="gpu@h#1").as_json()


def test_an_unknown_field_is_refused():
    with pytest.raises(ValidationError):
        WorkerInfo(name="gpu@h#1", colour="blue")
