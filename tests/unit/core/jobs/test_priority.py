"""A job's priority (core/jobs/priority.py): one enum, in the order jobs are taken, and no silent fallback."""

from __future__ import annotations

import pytest
import redis

from core.errors import InvalidInput
from core.jobs.fair_queue import PRIORITY_ORDER, FairQueue
from core.jobs.model import GenerationInput, Job, JobStatus, new_job_id, utc_now_iso
from core.jobs.priority import Priority


def test_priorities_are_taken_in_their_declared_order():
    assert PRIORITY_ORDER == (Priority.HIGH, Priority.NORMAL, Priority.LOW, Priority.BATCH)
    assert [priority.value for priority in Priority] == ["high", "normal", "low", "batch"]


def test_a_submitted_priority_is_typed_and_batch_is_not_one_a_caller_may_ask_for():
    assert GenerationInput(prompt="x").priority is Priority.NORMAL
    assert GenerationInput.model_validate({"prompt": "x", "priority": "high"}).priority is Priority.HIGH
    with pytest.raises(InvalidInput) as refused:
        GenerationInput.parse({"prompt": "x", "priority": "batch"})
    assert refused.value.message == "priority: Input should be 'high', 'normal' or 'low'"


def test_a_stored_job_reads_its_priority_as_the_enum_and_writes_the_same_string():
    job = Job(
        id=new_job_id(), status=JobStatus.QUEUED, created_at=utc_now_iso(), input={"prompt": "x"}, priority="batch"
    )
    assert job.priority is Priority.BATCH
    assert '"priority":"batch"' in job.model_dump_json()


def test_an_unknown_priority_is_an_error_not_a_normal_job():
    # Nothing is sent: staging only queues commands on the pipeline, and the priority is refused first.
    client = redis.Redis(port=1)
    fair = FairQueue(client, "q")
    with pytest.raises(ValueError):
        fair.stage_enqueue(client.pipeline(), "owner", "urgent", ["job"])
    with pytest.raises(ValueError):
        fair.stage_dequeue(client.pipeline(), "owner", "urgent", ["job"])
