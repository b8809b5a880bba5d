"""Task names and the priority steps of the GPU queue."""

from __future__ import annotations

import pytest

from broker.names import CANARY_TASK_NAME, GENERATE_TASK_NAME, PRIORITY_STEPS, canary_queue_name, priority_step
from core.jobs.priority import Priority


def test_interactive_work_is_taken_before_low_and_batch_work():
    steps = [priority_step(priority) for priority in ("high", "normal", "low", "batch")]
    assert steps == sorted(steps) and len(set(steps)) == 4 and steps[0] == 0


def test_task_and_canary_queue_names():
    assert GENERATE_TASK_NAME == "llm.generate" and CANARY_TASK_NAME == "llm.canary"
    assert canary_queue_name("gpu", "ab12") == "gpu.canary.ab12"


def test_every_priority_has_its_step_and_earlier_priorities_come_first():
    assert list(PRIORITY_STEPS) == list(Priority)
    assert [priority_step(priority) for priority in Priority] == [0, 3, 6, 9]
    assert priority_step("low") == 6  # a stored or published string reads as its priority


def test_an_unknown_priority_has_no_step():
    with pytest.raises(ValueError):
        priority_step("urgent")
